// backends.cc — the backends compiled into this build, by device. The CPU backend is
// always there (it is also the reference every other backend is checked against); a CUDA
// backend is not built yet, so asking for one is a clear SIEVE_E_UNAVAILABLE rather than
// a crash or a silent fallback to the CPU.
#include "backend.h"
#include "cpu/backend.h"
#include "error.h"

namespace sieve {

const Backend& backend_for(int32_t device) {
  switch (device) {
    case SIEVE_DEVICE_CPU: return cpu::backend();
    case SIEVE_DEVICE_CUDA:
      fail(SIEVE_E_UNAVAILABLE, "this build of sieve has no CUDA backend (it was built without nvcc); use device cpu");
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown device %d: expected cpu (%d) or cuda (%d)", (int)device, SIEVE_DEVICE_CPU,
       SIEVE_DEVICE_CUDA);
}

}  // namespace sieve
