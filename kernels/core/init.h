// init.h — GPT-2 style initialisation from a seed (docs/kernels.md, "Initialisation").
#pragma once

#include <cstdint>

#include "model.h"

namespace sieve {

// Generates every tensor on the host (rng.h) and writes it to the model's backend, so a
// seed gives the same bits on every backend: linear weights, embeddings and head
// ~ N(0, 0.02), the residual output projections ~ N(0, 0.02 / sqrt(2 L)), biases 0, norm
// weights 1.
// Adapters: SLoRB's P the block indicator, SLoRB's S zero, weight scales one.
void init_weights(sieve_model& m, uint64_t seed);

// Sets every weight-scale adapter to one (a new model's table: scales start at the identity).
void init_scales(sieve_model& m);

}  // namespace sieve
