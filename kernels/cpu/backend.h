// backend.h — what the rest of the engine sees of the CPU backend: the Backend object that
// core/backends.cc hands out for SIEVE_DEVICE_CPU, and the process-wide default thread
// count (of CPU models created afterwards and of the op-level kernels).
#pragma once

#include "core/backend.h"

namespace sieve::cpu {

const Backend& backend();

// OMP_NUM_THREADS or the core count, until sieve_set_default_threads.
int default_threads();
void set_default_threads(int threads);

}  // namespace sieve::cpu
