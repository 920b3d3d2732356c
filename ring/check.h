// Invariant checks that stay on in release builds.
//
// A violated invariant in a log means memory or on-disk state can no longer be
// trusted, so the process stops at once with the location and a reason rather
// than carrying on and acknowledging data it may lose.

#ifndef LSS_RING_CHECK_H_
#define LSS_RING_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define LSS_CHECK(condition, message)                                  \
  do {                                                                 \
    if (__builtin_expect(!(condition), 0)) {                           \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, \
                   __LINE__, #condition, message);                     \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

#endif  // LSS_RING_CHECK_H_
