// model.h — the definition of sieve.h's opaque sieve_model: what the core keeps of a
// model, whatever its device.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "backend.h"
#include "layout.h"

struct sieve_model {
  sieve::Layout layout;                      // the tensor table and seam settings
  const sieve::Backend* backend = nullptr;   // the device's backend
  std::unique_ptr<sieve::ModelBackend> impl; // this model's numbers on it (destroyed before layout)
  int64_t step = 0;                          // optimizer steps taken
  int64_t micro = 0;                         // forward_backward calls since the last zero_grad (MVUE's key)
  int threads = 1;                           // threads of this model's calls
  std::atomic<int> cancel{0};                // set by sieve_model_cancel, read by the backend between steps
  std::atomic<int> busy{0};                  // held by the call running on the model
};
