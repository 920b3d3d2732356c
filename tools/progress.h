// A progress line for long runs of the tools: bytes done, rate and time
// left, redrawn in place on stderr, and only when stderr is a terminal, so
// a piped or logged run (and every test's captured output) keeps just the
// results.
//
//   ProgressLine progress("lsstool verify", total_bytes);
//   for (...) progress.Update(done_bytes);
//   progress.Done();  // erases the line before the results are printed
//
// Thread safety: one thread calls Update and Done (external
// synchronization otherwise).

#ifndef LSS_TOOLS_PROGRESS_H_
#define LSS_TOOLS_PROGRESS_H_

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>

namespace lss {

struct ProgressOptions {
  // Drawn only if this descriptor is a terminal.
  int fd = STDERR_FILENO;
  // At most one redraw per interval.
  int64_t interval_ns = 250'000'000;
  // Monotonic nanoseconds; default CLOCK_MONOTONIC. Tests pass their own.
  std::function<int64_t()> now_ns;
};

class ProgressLine {
 public:
  // `total_bytes` 0: unknown, so no percentage and no time left.
  ProgressLine(std::string label, uint64_t total_bytes,
               ProgressOptions options = {});
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { Done(); }

  // False when the descriptor is not a terminal: Update does nothing.
  bool enabled() const { return enabled_; }

  // `done_bytes` of the total are done; redraws if the interval has passed.
  // Costs a branch when disabled, a clock read when enabled.
  void Update(uint64_t done_bytes);

  // Erases the line, if one was drawn. Later Updates draw nothing.
  void Done();

  // The line's text, e.g. "lsstool verify: 1.0 GiB of 4.0 GiB (25%),
  // 512.0 MiB/s, 6 s left".
  static std::string Format(const std::string& label, uint64_t done_bytes,
                            uint64_t total_bytes, double seconds);

 private:
  const std::string label_;
  const uint64_t total_bytes_;
  const ProgressOptions options_;
  bool enabled_;
  bool drawn_ = false;
  int64_t start_ns_ = 0;
  int64_t last_draw_ns_ = 0;
};

}  // namespace lss

#endif  // LSS_TOOLS_PROGRESS_H_
