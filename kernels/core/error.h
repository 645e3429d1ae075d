// error.h — how the native engine reports failure, and the argument checks that both sets
// of entry points share (core/api.cc: the model; cpu/api.cc: the op-level kernels).
//
// Promises:
//   - Code below the C ABI reports failure by throwing sieve::Error (a status + one
//     sentence that names the culprit). The extern "C" functions run their bodies through
//     guarded(), which turns any exception into a status code and the calling thread's
//     sieve_last_error(); no exception ever crosses the ABI.
//   - Nothing here exits, aborts or prints. Nothing is thrown from inside an OpenMP region:
//     validation happens before parallel loops.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "sieve.h"

namespace sieve {

struct Error {
  int status;  // SIEVE_E_*
  std::string message;
};

[[noreturn]] void fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
#define SIEVE_CHECK(cond, ...)                                          \
  do {                                                                  \
    if (!(cond)) ::sieve::fail(SIEVE_E_INVALID_ARGUMENT, __VA_ARGS__);  \
  } while (0)

// The index in `choices` of environment variable `name`'s value: unset or empty is choices[0], the
// default; any other value fails, naming the variable, its value and the choices.
int env_choice(const char* name, std::initializer_list<const char*> choices);

// Called inside a catch (...) block: stores the exception's message as the calling thread's
// last error and returns its status (bad_alloc: out of memory; anything else unexpected:
// internal).
int status_of_current_exception();
// The calling thread's last error message ("" if none): what sieve_last_error() returns.
const char* last_error();

// Runs body; SIEVE_OK, or the status of what it threw.
template <class F>
int guarded(F&& body) {
  try {
    body();
    return SIEVE_OK;
  } catch (...) {
    return status_of_current_exception();
  }
}

// "<what> is NULL"
void check_ptr(const void* p, const char* what);
// Every id in [0, V), or -1 where allow_ignore: the first bad one is named.
void check_tokens(const int32_t* tokens, int64_t n, int64_t V, const char* what, bool allow_ignore);

}  // namespace sieve
