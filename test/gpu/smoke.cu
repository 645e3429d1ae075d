// smoke.cu — the device answers and the error path names a failed call.
#include "check.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"

SIEVE_GPU_CHECK(device_round_trip) {
  auto host = sieve::gpu_check::normal(1 << 20);
  auto back = sieve::cuda::to_device(host).download();
  c.equal("upload then download", back, host);
}

SIEVE_GPU_CHECK(failed_allocation_is_out_of_memory) {
  try {
    sieve::cuda::DeviceBuffer<float> huge(int64_t(1) << 50);  // 4 PiB
    c.expect(false, "a 4 PiB allocation succeeded");
  } catch (const sieve::Error& e) {
    c.expect(e.status == SIEVE_E_OUT_OF_MEMORY, "status " + std::to_string(e.status) + ": " + e.message);
    c.expect(e.message.find("cudaMalloc") != std::string::npos, "message names the call: " + e.message);
  }
}
