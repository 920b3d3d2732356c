// What the benchmark binaries share: elapsed seconds, and stopping at the
// first error with the program's name and the Status (which names the file
// and the reason).

#ifndef LSS_TOOLS_BENCH_SUPPORT_H_
#define LSS_TOOLS_BENCH_SUPPORT_H_

#include <errno.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lss {

inline double Seconds(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Prints "<program>: <status>" on stderr and exits 1.
[[noreturn]] inline void Die(const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name,
               s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) Die(v.status());
  return *std::move(v);
}

inline void Check(const absl::Status& s) {
  if (!s.ok()) Die(s);
}

}  // namespace lss

#endif  // LSS_TOOLS_BENCH_SUPPORT_H_
