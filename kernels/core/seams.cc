// seams.cc — names, parameter checks and properties of every seam kind (one case per
// kind in each switch).
#include "seams.h"

#include <cmath>

#include "error.h"

namespace sieve {

void check_seam_params(const float* params, int64_t n) {
  SIEVE_CHECK(n >= 0 && n <= 64, "n_params must be in [0, 64], got %lld", (long long)n);
  if (n > 0) check_ptr(params, "params");
}

// ---------------------------------------------------------------- weight transform

const char* transform_name(int32_t kind) {
  switch (kind) {
    case SIEVE_TRANSFORM_NONE: return "none";
    case SIEVE_TRANSFORM_MASK: return "mask";
    case SIEVE_TRANSFORM_SSTE: return "sste";
    case SIEVE_TRANSFORM_SCALE: return "scale";
  }
  return "unknown";
}

void transform_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  switch (kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK:
    case SIEVE_TRANSFORM_SCALE:
      SIEVE_CHECK(n_params == 0, "transform '%s' of tensor '%s' takes no parameters, got %lld",
                  transform_name(kind), tensor.c_str(), (long long)n_params);
      return;
    case SIEVE_TRANSFORM_SSTE:
      SIEVE_CHECK(n_params == 1, "transform 'sste' of tensor '%s' takes one parameter (beta), got %lld", tensor.c_str(),
                  (long long)n_params);
      SIEVE_CHECK(std::isfinite(params[0]) && params[0] > 0.0f,
                  "sste beta of tensor '%s' must be a finite number > 0, got %g", tensor.c_str(), (double)params[0]);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown weight transform kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

void transform_check_tensor(int32_t kind, const TensorEntry& t) {
  switch (kind) {
    case SIEVE_TRANSFORM_SSTE:
      SIEVE_CHECK(t.shape[1] % 4 == 0,
                  "transform 'sste' needs 2:4 groups along the input dim, but tensor '%s' is [%lld, %lld]: %lld is not a "
                  "multiple of 4",
                  t.name.c_str(), (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[1]);
      return;
    case SIEVE_TRANSFORM_SCALE:
      SIEVE_CHECK(t.scale >= 0,
                  "transform 'scale' reads the tensor's weight scales, but '%s' has none: give the model config "
                  "scale_segments and an adapter scope that covers it",
                  t.name.c_str());
      return;
  }
}

bool transform_is_identity(int32_t kind) { return kind == SIEVE_TRANSFORM_NONE; }

bool transform_is_straight_through(int32_t kind) {
  switch (kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK:
    case SIEVE_TRANSFORM_SSTE: return true;
  }
  return false;
}

bool transform_uses_mask(int32_t kind) { return kind == SIEVE_TRANSFORM_MASK; }

bool transform_uses_scale(int32_t kind) { return kind == SIEVE_TRANSFORM_SCALE; }

// ---------------------------------------------------------------- gradient hook

const char* grad_hook_name(int32_t kind) {
  switch (kind) {
    case SIEVE_HOOK_NONE: return "none";
    case SIEVE_HOOK_MASKED_DECAY: return "masked-decay";
  }
  return "unknown";
}

void grad_hook_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  switch (kind) {
    case SIEVE_HOOK_NONE:
      SIEVE_CHECK(n_params == 0, "gradient hook '%s' of tensor '%s' takes no parameters, got %lld",
                  grad_hook_name(kind), tensor.c_str(), (long long)n_params);
      return;
    case SIEVE_HOOK_MASKED_DECAY:
      SIEVE_CHECK(n_params == 1, "gradient hook '%s' of tensor '%s' takes one parameter (lambda), got %lld",
                  grad_hook_name(kind), tensor.c_str(), (long long)n_params);
      SIEVE_CHECK(std::isfinite(params[0]) && params[0] >= 0.0f,
                  "masked-decay lambda of tensor '%s' must be a finite number >= 0, got %g", tensor.c_str(),
                  (double)params[0]);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown gradient hook kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

bool grad_hook_uses_mask(int32_t kind) { return kind == SIEVE_HOOK_MASKED_DECAY; }

// ---------------------------------------------------------------- update rule

const char* update_rule_name(int32_t kind) {
  switch (kind) {
    case SIEVE_RULE_ADAMW: return "adamw";
    case SIEVE_RULE_FROZEN: return "frozen";
    case SIEVE_RULE_AST: return "ast";
    case SIEVE_RULE_ADAMS: return "adams";
  }
  return "unknown";
}

void update_rule_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  auto lambda = [&](float x) {
    SIEVE_CHECK(std::isfinite(x) && x >= 0.0f, "%s lambda of tensor '%s' must be a finite number >= 0, got %g",
                update_rule_name(kind), tensor.c_str(), (double)x);
  };
  switch (kind) {
    case SIEVE_RULE_ADAMW:
    case SIEVE_RULE_FROZEN:
      SIEVE_CHECK(n_params == 0, "update rule '%s' of tensor '%s' takes no parameters, got %lld",
                  update_rule_name(kind), tensor.c_str(), (long long)n_params);
      return;
    case SIEVE_RULE_AST:
      SIEVE_CHECK(n_params == 1, "update rule 'ast' of tensor '%s' takes one parameter (lambda), got %lld",
                  tensor.c_str(), (long long)n_params);
      lambda(params[0]);
      return;
    case SIEVE_RULE_ADAMS:
      SIEVE_CHECK(n_params == 2, "update rule 'adams' of tensor '%s' takes two parameters (alpha, lambda), got %lld",
                  tensor.c_str(), (long long)n_params);
      SIEVE_CHECK(params[0] >= 0.0f && params[0] <= 1.0f, "adams alpha of tensor '%s' must be in [0, 1], got %g",
                  tensor.c_str(), (double)params[0]);
      lambda(params[1]);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown update rule kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

bool update_rule_uses_mask(int32_t kind) { return kind == SIEVE_RULE_AST || kind == SIEVE_RULE_ADAMS; }

bool update_rule_uses_moments(int32_t kind) {
  return kind == SIEVE_RULE_ADAMW || kind == SIEVE_RULE_AST || kind == SIEVE_RULE_ADAMS;
}

}  // namespace sieve
