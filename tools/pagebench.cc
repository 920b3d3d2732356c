// pagebench: pages on a bounded log. Loads pages up to a utilization of the
// capacity, then updates them (64-byte deltas by default, uniform or zipf),
// flushing each page every --flush_every of its updates, while the log is
// cleaned (PageStore::Clean of its oldest eighth whenever it is 75% full)
// so that it stays within --capacity_bytes. Then closes, reopens (recovery)
// and checks every page byte for byte.
//
//   ./bazelw run -c opt //tools:pagebench -- --utilization=0.5 --json
//
// write_amplification = bytes written to the log (block headers and padding
// included) / bytes of page state the user's flushes wrote (the load's
// images, delta pieces, consolidations). The cleaner relocates the oldest
// eighth's live pages as whole images (oldest first; no hot/cold split or
// cost-benefit choice yet), so the figure is what that policy costs.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "mapping/page_store.h"
#include "tools/bench_support.h"
#include "tools/progress.h"

DEFINE_string(dir, "", "directory for the log (default: $TMPDIR or /var/tmp)");
DEFINE_uint64(capacity_bytes, uint64_t{256} << 20, "the log's disk bound");
DEFINE_uint64(page_bytes, 4096, "bytes of each page's base");
DEFINE_double(utilization, 0.5, "live page bytes / capacity (0.05 to 0.9)");
DEFINE_string(distribution, "uniform", "uniform | zipf (s = 0.99)");
DEFINE_uint64(update_bytes, 64, "bytes per delta");
DEFINE_uint64(flush_every, 16, "a page is flushed every this many updates");
DEFINE_uint64(deltas_per_base, 32,
              "a page whose chain reaches this many deltas gets a new base "
              "(UpdateR), as an in-memory consolidation would");
DEFINE_double(seconds, 10, "seconds of updates");
DEFINE_string(cleaning, "on", "on | off (off: no capacity bound)");
DEFINE_bool(json, false, "print one JSON object as the last line of stdout");

namespace lss {
namespace {

using Clock = std::chrono::steady_clock;

std::string Base(uint64_t pid, uint64_t generation) {
  std::string s(FLAGS_page_bytes, '\0');
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<char>((pid * 131 + generation * 31 + i) & 0xff);
  }
  return s;
}

std::string Delta(uint64_t pid, uint64_t generation, uint64_t i) {
  std::string s = absl::StrCat("d", pid, ".", generation, ".", i, ":");
  s.resize(FLAGS_update_bytes, '.');
  return s;
}

// A page as it must read: its base generation and how many deltas since.
struct Expected {
  uint64_t generation = 0;
  uint64_t deltas = 0;
};

uint64_t FileBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
}

// Zipf over [0, n) by inverse transform on a precomputed CDF.
class Zipf {
 public:
  explicit Zipf(uint64_t n) : cdf_(n) {
    double sum = 0;
    for (uint64_t i = 0; i < n; ++i) sum += 1.0 / std::pow(i + 1, 0.99);
    double acc = 0;
    for (uint64_t i = 0; i < n; ++i) {
      acc += 1.0 / std::pow(i + 1, 0.99) / sum;
      cdf_[i] = acc;
    }
  }
  uint64_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
  }

 private:
  std::vector<double> cdf_;
};

int Main() {
  const bool cleaning = FLAGS_cleaning == "on";
  if (!cleaning && FLAGS_cleaning != "off") {
    Die(absl::InvalidArgumentError("--cleaning must be on or off"));
  }
  if (FLAGS_utilization < 0.05 || FLAGS_utilization > 0.9 ||
      FLAGS_page_bytes == 0 || FLAGS_update_bytes == 0 ||
      FLAGS_flush_every == 0 || FLAGS_deltas_per_base == 0) {
    Die(absl::InvalidArgumentError(
        "--utilization must be 0.05 to 0.9; --page_bytes, --update_bytes, "
        "--flush_every and --deltas_per_base must be > 0"));
  }
  if (FLAGS_distribution != "uniform" && FLAGS_distribution != "zipf") {
    Die(absl::InvalidArgumentError("--distribution must be uniform or zipf"));
  }
  std::string dir = FLAGS_dir;
  if (dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    dir = tmp != nullptr ? tmp : "/var/tmp";
  }
  const std::string path = absl::StrCat(dir, "/pagebench.", getpid());
  unlink(path.c_str());
  const uint64_t pages = static_cast<uint64_t>(
      FLAGS_utilization * FLAGS_capacity_bytes / FLAGS_page_bytes);
  PageStoreOptions options;
  options.store.allow_buffered_fallback = true;
  options.store.buffer_bytes = 1 << 20;
  options.store.preallocate_bytes = 16 << 20;
  options.store.capacity_bytes = cleaning ? FLAGS_capacity_bytes : 0;
  options.table.max_pages = pages + 1;
  std::unique_ptr<PageStore> store = Check(PageStore::Open(path, options));

  std::fprintf(stderr, "pagebench: loading %" PRIu64 " pages of %" PRIu64
                       " bytes\n", pages, FLAGS_page_bytes);
  std::vector<Expected> expected(pages);
  uint64_t disk_max = 0;
  // Cleans the oldest eighth of the log once it is 75% full (or now): the
  // relocated pages need room at the tail while the old space is in use.
  const auto clean = [&](bool now) {
    if (!cleaning) return;
    LogStructuredStore& log = store->log();
    const uint64_t head = log.head();
    const uint64_t used = log.AppendedEnd() - head + log.data_start();
    if (!now && used < FLAGS_capacity_bytes / 4 * 3) return;
    Check(log.Sync());
    Check(store->Clean(head + (log.HiStable() - head) / 8));
    disk_max = std::max(disk_max, FileBytes(path));
  };
  // A flush that finds the log full cleans and tries again.
  const auto flush = [&](uint64_t pid) {
    for (int tries = 0;; ++tries) {
      absl::StatusOr<uint64_t> a = store->Flush(pid);
      if (a.ok()) return;
      if (!cleaning || tries == 8 ||
          a.status().code() != absl::StatusCode::kResourceExhausted) {
        Die(a.status());
      }
      clean(/*now=*/true);
    }
  };
  for (uint64_t i = 0; i < pages; ++i) {
    const uint64_t pid = Check(store->Allocate());
    Check(store->UpdateR(pid, PageState::Free(), Base(pid, 0)));
    flush(pid);
    clean(/*now=*/false);
  }
  Check(store->log().Sync());
  const PageStore::FlushStats loaded = store->flush_stats();

  std::fprintf(stderr, "pagebench: updating for %.0f s (%s, cleaning %s)\n",
               FLAGS_seconds, FLAGS_distribution.c_str(),
               FLAGS_cleaning.c_str());
  std::mt19937_64 rng(1);
  const Zipf zipf(FLAGS_distribution == "zipf" ? pages : 1);
  uint64_t updates = 0, flushes = 0;
  std::vector<uint32_t> since_flush(pages, 0);
  ProgressLine progress("pagebench", 0);
  const auto start = Clock::now();
  while (Seconds(start, Clock::now()) < FLAGS_seconds) {
    for (int batch = 0; batch < 256; ++batch) {
      // Zipf ranks are scattered over the PIDs, so hot pages are not
      // neighbours in the log's load order.
      const uint64_t pid =
          FLAGS_distribution == "zipf"
              ? (zipf(rng) * 0x9E3779B97F4A7C15ULL) % pages
              : rng() % pages;
      Expected& e = expected[pid];
      const Page page = Check(store->Read(pid));
      if (e.deltas + 1 >= FLAGS_deltas_per_base) {
        ++e.generation;
        e.deltas = 0;
        Check(store->UpdateR(pid, page.state, Base(pid, e.generation)));
      } else {
        Check(store->UpdateD(pid, page.state,
                             Delta(pid, e.generation, e.deltas)));
        ++e.deltas;
      }
      ++updates;
      if (++since_flush[pid] >= FLAGS_flush_every) {
        since_flush[pid] = 0;
        flush(pid);
        ++flushes;
      }
    }
    clean(/*now=*/false);
    progress.Update(store->log().AppendedEnd());
  }
  const double run_s = Seconds(start, Clock::now());
  progress.Done();
  for (uint64_t pid = 0; pid < pages; ++pid) flush(pid);
  Check(store->log().Sync());
  disk_max = std::max(disk_max, FileBytes(path));
  const PageStore::FlushStats stats = store->flush_stats();
  const uint64_t written = store->log().HiStable() - store->log().data_start();
  const uint64_t user_bytes = stats.bytes - stats.relocated_bytes;
  const double wa = user_bytes > 0 ? double(written) / user_bytes : 0;
  // Only the update phase: the load is written once whatever the policy.
  const uint64_t run_user = user_bytes - (loaded.bytes - loaded.relocated_bytes);
  Check(store->log().Close());
  store.reset();

  std::fprintf(stderr, "pagebench: reopening and checking every page\n");
  const auto open_start = Clock::now();
  store = Check(PageStore::Open(path, options));
  const double recovery_s = Seconds(open_start, Clock::now());
  bool verified = store->recovered_pages() == pages;
  for (uint64_t pid = 0; pid < pages && verified; ++pid) {
    const Page page = Check(store->Read(pid));
    const Expected& e = expected[pid];
    verified = page.base == Base(pid, e.generation) &&
               page.deltas.size() == e.deltas;
    for (uint64_t i = 0; verified && i < e.deltas; ++i) {
      verified = page.deltas[i] == Delta(pid, e.generation, i);
    }
    if (!verified) {
      std::fprintf(stderr, "pagebench: page %" PRIu64 " does not read as "
                           "written\n", pid);
    }
  }
  store.reset();
  unlink(path.c_str());

  std::printf("pagebench: %" PRIu64 " pages of %" PRIu64 " B, utilization "
              "%.2f of %" PRIu64 " MB, %s, cleaning %s\n",
              pages, FLAGS_page_bytes, FLAGS_utilization,
              FLAGS_capacity_bytes >> 20, FLAGS_distribution.c_str(),
              FLAGS_cleaning.c_str());
  std::printf("  updates             %10.0f /s\n", updates / run_s);
  std::printf("  flushes             %10.0f /s\n", flushes / run_s);
  std::printf("  write amplification %10.2f (%" PRIu64 " B to the log for %"
              PRIu64 " B of flushed page state; %" PRIu64 " pages relocated)\n",
              wa, written, user_bytes, stats.relocated);
  std::printf("  largest disk use    %10.1f MB of %.1f MB\n", disk_max / 1e6,
              FLAGS_capacity_bytes / 1e6);
  std::printf("  recovery            %10.3f s\n", recovery_s);
  std::printf("  verify              %s\n",
              verified ? "OK: every page, byte for byte" : "FAILED");
  if (FLAGS_json) {
    std::printf(
        "{\"write_amplification\": %.3f, \"updates_per_s\": %.0f, "
        "\"flushes_per_s\": %.0f, \"disk_bytes_max\": %" PRIu64
        ", \"capacity_bytes\": %" PRIu64 ", \"recovery_s\": %.3f, "
        "\"bytes_written_total\": %" PRIu64 ", \"user_flush_bytes\": %" PRIu64
        ", \"update_phase_user_flush_bytes\": %" PRIu64
        ", \"relocated_pages\": %" PRIu64 ", \"utilization\": %.2f, "
        "\"distribution\": \"%s\", \"cleaning\": \"%s\", \"verified\": %s}\n",
        wa, updates / run_s, flushes / run_s, disk_max, FLAGS_capacity_bytes,
        recovery_s, written, user_bytes, run_user, stats.relocated,
        FLAGS_utilization, FLAGS_distribution.c_str(), FLAGS_cleaning.c_str(),
        verified ? "true" : "false");
  }
  return verified ? 0 : 1;
}

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return lss::Main();
}
