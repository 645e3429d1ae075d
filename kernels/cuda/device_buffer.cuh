// device_buffer.cuh — an owning device allocation (cudaMalloc; never managed memory) and
// the copies in and out of it. Move-only; freed on destruction.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "common.cuh"

namespace sieve::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(int64_t n) : n_(n) {
    if (n > 0) SIEVE_CUDA(cudaMalloc(&p_, sizeof(T) * (size_t)n));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }

  T* get() const { return p_; }
  int64_t size() const { return n_; }

  void upload(const std::vector<T>& host) {
    SIEVE_CHECK((int64_t)host.size() == n_, "upload of %zu elements into a buffer of %lld", host.size(), (long long)n_);
    SIEVE_CUDA(cudaMemcpy(p_, host.data(), sizeof(T) * (size_t)n_, cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host((size_t)n_);
    SIEVE_CUDA(cudaMemcpy(host.data(), p_, sizeof(T) * (size_t)n_, cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d((int64_t)host.size());
  d.upload(host);
  return d;
}

}  // namespace sieve::cuda
