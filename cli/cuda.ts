// Whether this machine can run `device: cuda` stages: the reason it cannot (the CUDA backend's
// loader names what is missing: the library, a driver, a GPU), or null. The native addon is
// loaded only when a cuda recipe or queue asks, so other commands never pay for it.
export function cudaUnavailable(): string | null {
  const { backendInfo, BackendUnavailableError } = require('../kernels') as typeof import('../kernels');
  try {
    backendInfo('cuda');
    return null;
  } catch (err) {
    if (err instanceof BackendUnavailableError) return err.message.replace(/; use device cpu$/, '');
    throw err;
  }
}
