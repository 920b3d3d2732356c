#include "tools/progress.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lss {
namespace {

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string Bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%.0f B", bytes)
                   : absl::StrFormat("%.1f %s", bytes, kUnits[unit]);
}

// Writes all of `s`, retrying EINTR; a terminal that refuses is ignored
// (progress is never worth failing a run for).
void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Back to the line's start and erase it.
constexpr char kErase[] = "\r\033[K";

}  // namespace

ProgressLine::ProgressLine(std::string label, uint64_t total_bytes,
                           ProgressOptions options)
    : label_(std::move(label)),
      total_bytes_(total_bytes),
      options_(std::move(options)),
      enabled_(isatty(options_.fd) == 1) {
  if (enabled_) start_ns_ = last_draw_ns_ = options_.now_ns
                                                ? options_.now_ns()
                                                : MonotonicNanos();
}

void ProgressLine::Update(uint64_t done_bytes) {
  if (!enabled_) return;
  const int64_t now = options_.now_ns ? options_.now_ns() : MonotonicNanos();
  if (now - last_draw_ns_ < options_.interval_ns) return;
  last_draw_ns_ = now;
  drawn_ = true;
  WriteAll(options_.fd,
           absl::StrCat(kErase, Format(label_, done_bytes, total_bytes_,
                                       (now - start_ns_) / 1e9)));
}

void ProgressLine::Done() {
  if (drawn_) WriteAll(options_.fd, kErase);
  drawn_ = false;
  enabled_ = false;
}

std::string ProgressLine::Format(const std::string& label, uint64_t done_bytes,
                                 uint64_t total_bytes, double seconds) {
  std::string line = absl::StrCat(label, ": ", Bytes(done_bytes));
  if (total_bytes > 0) {
    absl::StrAppend(&line, " of ", Bytes(total_bytes),
                    absl::StrFormat(" (%.0f%%)", 100.0 * done_bytes /
                                                     total_bytes));
  }
  if (seconds > 0 && done_bytes > 0) {
    const double rate = done_bytes / seconds;
    absl::StrAppend(&line, ", ", Bytes(rate), "/s");
    if (total_bytes > done_bytes) {
      absl::StrAppend(&line,
                      absl::StrFormat(", %.0f s left",
                                      std::ceil((total_bytes - done_bytes) /
                                                rate)));
    }
  }
  return line;
}

}  // namespace lss
