// backends.cc — the backends of this build, by device. The CPU backend is always compiled in
// (it is also the reference every other backend is checked against). The CUDA backend is a
// separate library, libsieve_cuda.so (kernels/cuda/build.sh, where nvcc exists), loaded on
// the first request for device cuda: a machine without it, without a driver or without a GPU
// gets a clear SIEVE_E_UNAVAILABLE naming what is missing, never a crash or a silent
// fallback to the CPU.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/backend.h"
#include "error.h"

namespace sieve {

namespace {

// Where libsieve_cuda.so may be: $SIEVE_CUDA_LIBRARY, else beside the binary holding this
// code (a GPU check), else in the checkout's build-gpu/ (from the addon, build/Release/sieve.node).
// Not under build/: node-gyp deletes that folder whenever npm rebuilds the addon.
std::vector<std::string> cuda_library_candidates() {
  if (const char* path = std::getenv("SIEVE_CUDA_LIBRARY"); path && *path) return {path};
  auto parent = [](const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
  };
  Dl_info self{};
  std::string dir = ".";
  if (dladdr(reinterpret_cast<void*>(&backend_for), &self) && self.dli_fname) dir = parent(self.dli_fname);
  return {dir + "/libsieve_cuda.so", parent(parent(dir)) + "/build-gpu/libsieve_cuda.so"};
}

struct CudaLoad {
  const Backend* backend = nullptr;
  std::string why;  // when backend is null
};

CudaLoad load_cuda() {
  using Entry = const Backend* (*)(char*, size_t);
  std::string tried;
  for (const std::string& path : cuda_library_candidates()) {
    if (access(path.c_str(), F_OK) != 0) {
      tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    // A library that exists but cannot load (a missing libcublasLt, say) is the answer.
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return {nullptr, std::string("cannot load the CUDA backend: ") + dlerror()};
    auto entry = reinterpret_cast<Entry>(dlsym(lib, "sieve_cuda_backend"));
    if (!entry) return {nullptr, path + " is not sieve's CUDA backend (no sieve_cuda_backend symbol)"};
    char why[512] = "";
    const Backend* b = entry(why, sizeof why);
    if (!b) return {nullptr, std::string("the CUDA backend found no usable GPU: ") + why};
    return {b, ""};
  }
  return {nullptr, "this build of sieve has no CUDA backend (no libsieve_cuda.so at " + tried +
                       "; build it with kernels/cuda/build.sh where nvcc exists, or set SIEVE_CUDA_LIBRARY)"};
}

const Backend& cuda_backend() {
  static std::once_flag once;
  static CudaLoad loaded;
  std::call_once(once, [] { loaded = load_cuda(); });
  if (!loaded.backend) fail(SIEVE_E_UNAVAILABLE, "%s; use device cpu", loaded.why.c_str());
  return *loaded.backend;
}

}  // namespace

const Backend& backend_for(int32_t device) {
  switch (device) {
    case SIEVE_DEVICE_CPU: return cpu::backend();
    case SIEVE_DEVICE_CUDA: return cuda_backend();
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown device %d: expected cpu (%d) or cuda (%d)", (int)device, SIEVE_DEVICE_CPU,
       SIEVE_DEVICE_CUDA);
}

}  // namespace sieve
