// error.cc — the thread-local last error, fail(), and the shared argument checks.
#include "error.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

namespace sieve {

namespace {
thread_local std::string g_last_error;
}  // namespace

[[noreturn]] void fail(int status, const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  throw Error{status, buf};
}

int status_of_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    g_last_error = e.message;
    return e.status;
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory";
    return SIEVE_E_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return SIEVE_E_INTERNAL;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return SIEVE_E_INTERNAL;
  }
}

const char* last_error() { return g_last_error.c_str(); }

void check_ptr(const void* p, const char* what) {
  if (!p) fail(SIEVE_E_INVALID_ARGUMENT, "%s is NULL", what);
}

void check_tokens(const int32_t* tokens, int64_t n, int64_t V, const char* what, bool allow_ignore) {
  for (int64_t i = 0; i < n; i++) {
    const int32_t t = tokens[i];
    if (t >= 0 && t < V) continue;
    if (allow_ignore && t == -1) continue;
    fail(SIEVE_E_INVALID_ARGUMENT, "%s[%lld] = %d is not a token id of this model (vocab %lld%s)", what, (long long)i,
         (int)t, (long long)V, allow_ignore ? "; -1 ignores a position" : "");
  }
}

int env_choice(const char* name, std::initializer_list<const char*> choices) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  std::string expected;
  int i = 0;
  for (const char* c : choices) {
    if (!std::strcmp(v, c)) return i;
    expected += (i == 0 ? "" : i + 1 == (int)choices.size() ? " or " : ", ") + std::string(c);
    i++;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "%s=%s: expected %s", name, v, expected.c_str());
}

}  // namespace sieve
