// pagebench: pages on a bounded log. Loads pages up to a utilization of the
// capacity, then updates them from --threads threads (64-byte deltas by
// default, uniform, zipf or 80/20 hot/cold), flushing each page every
// --flush_every of its updates, while PageStore's background cleaner keeps
// the log within --capacity_bytes (it cleans a region, a 128th of the
// capacity by default, chosen by --cleaner_policy, whenever less than
// --free_bytes_low is free).
// Then syncs, drops the store without PageStore::Close and reopens it
// (recovery from the newest checkpoint the cleaner wrote, as after a crash:
// crash_recovery_s; the log itself still ends with its close marker, so
// losing an unsynced tail is left to the crash loops and the power-loss
// test), closes (which writes a checkpoint) and reopens again
// (recovery_s), checking each time that every page reads byte for byte as
// its last flush left it (the changes since are in memory only), or as a
// later state of its own that a relocation wrote.
//
//   ./bazelw run -c opt //tools:pagebench -- --utilization=0.5 --json
//
// Utilization = live page state (each page's base and deltas) / capacity:
// the page count is chosen for the target, and the run reports the mean it
// measured. write_amplification = bytes written to the log (block headers
// and padding included) / bytes of new page state written: by the user's
// flushes (the load's images, delta pieces, consolidations; not the markers
// of flushes that lost their race), and by
// relocations of pages not flushed since their last UpdateR, which write a
// page as it is now and so take along changes no flush wrote yet, once the
// page's next flush finds them (it would have written them;
// FlushStats::relocated_new_bytes). The cleaner relocates
// the live pages of the region it takes as whole images (or, for a page
// whose only piece there is its newest delta piece, a copy of that piece),
// at the tail, in regions apart from fresh flushes (--separate_relocations;
// flushes wait from a pass's first relocation to its end).

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
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
DEFINE_string(distribution, "uniform",
              "uniform | zipf (s = 0.99) | hotcold (80% of the updates to "
              "a fifth of the pages)");
DEFINE_uint64(update_bytes, 64, "bytes per delta");
DEFINE_uint64(flush_every, 16, "a page is flushed every this many updates");
DEFINE_uint64(deltas_per_base, 32,
              "a page whose chain reaches this many deltas gets a new base "
              "(UpdateR), as an in-memory consolidation would");
DEFINE_uint32(max_flushed_pieces, 8,
              "PageStoreOptions::max_flushed_pieces (1: every flush writes "
              "the whole page, as in the textbook cleaning model)");
DEFINE_double(seconds, 10, "seconds of updates");
DEFINE_double(laps, 0,
              "if > 0: update until the log has written this many times "
              "--capacity_bytes since the load, instead of for --seconds "
              "(write amplification rises over the first laps, so runs of "
              "the same laps compare across machines)");
DEFINE_int32(threads, 1, "updating threads, each owning a share of the pages");
DEFINE_string(cleaning, "on", "on | off (off: no capacity bound)");
DEFINE_string(cleaner_policy, "cost_benefit",
              "oldest | cost_benefit: which region the cleaner takes "
              "(CleaningPolicy)");
DEFINE_uint64(buffer_bytes, 256 << 10,
              "flush buffer bytes (a block at most; a region is at least "
              "two; with four or more in a region, as with 256 KiB and a "
              "capacity of 128 MiB or more, the cleaner's runs can begin "
              "and end regions of their own: --separate_relocations)");
DEFINE_uint64(region_bytes, 0,
              "what one cleaning takes from the head (0: the store's "
              "default, CleanerOptions::region_bytes)");
DEFINE_uint64(free_bytes_low, 0,
              "the cleaner cleans while less is free (0: the store's "
              "default, CleanerOptions::free_bytes_low)");
DEFINE_uint64(burst_bytes, 0,
              "woken below its low mark, the cleaner goes on until this "
              "much more is free (0: the store's default, "
              "CleanerOptions::burst_bytes; 1: it stops at the low mark)");
DEFINE_bool(separate_relocations, true,
            "CleanerOptions::separate_relocations (off in PageStore by "
            "default): the cleaner's relocations in regions of their own, "
            "apart from flushes, which wait from a pass's first relocation "
            "to its end");
DEFINE_string(checkpoints, "on",
              "on | off: mapping-table checkpoints (the cleaner writes one "
              "every --checkpoint_every_bytes, Close one)");
DEFINE_uint64(checkpoint_every_bytes, 0,
              "log bytes between checkpoints (0: half the capacity)");
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
    // The last sum may round to a little below 1.
    const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    return std::min<uint64_t>(it - cdf_.begin(), cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

// A flush that loses its CAS to the cleaner's relocation goes again.
void Flush(PageStore& store, uint64_t pid) {
  for (;;) {
    absl::StatusOr<uint64_t> a = store.Flush(pid);
    if (a.ok()) return;
    if (a.status().code() == absl::StatusCode::kAborted) continue;
    if (absl::Status c = store.cleaner_status(); !c.ok()) {
      Die(absl::Status(c.code(), absl::StrCat("the cleaner: ", c.message())));
    }
    Die(a.status());
  }
}

int Main() {
  const bool cleaning = FLAGS_cleaning == "on";
  if (!cleaning && FLAGS_cleaning != "off") {
    Die(absl::InvalidArgumentError("--cleaning must be on or off"));
  }
  const bool cost_benefit = FLAGS_cleaner_policy == "cost_benefit";
  if (!cost_benefit && FLAGS_cleaner_policy != "oldest") {
    Die(absl::InvalidArgumentError(
        "--cleaner_policy must be oldest or cost_benefit"));
  }
  if (FLAGS_utilization < 0.05 || FLAGS_utilization > 0.9 ||
      FLAGS_page_bytes == 0 || FLAGS_update_bytes == 0 ||
      FLAGS_flush_every == 0 || FLAGS_deltas_per_base == 0 ||
      !(FLAGS_laps >= 0 && FLAGS_laps <= 1000) ||
      FLAGS_threads < 1 || FLAGS_threads > 64) {
    Die(absl::InvalidArgumentError(
        "--utilization must be 0.05 to 0.9; --page_bytes, --update_bytes, "
        "--flush_every and --deltas_per_base must be > 0; --threads 1 to "
        "64; --laps 0 to 1000"));
  }
  if (FLAGS_distribution != "uniform" && FLAGS_distribution != "zipf" &&
      FLAGS_distribution != "hotcold") {
    Die(absl::InvalidArgumentError(
        "--distribution must be uniform, zipf or hotcold"));
  }
  if (FLAGS_checkpoints != "on" && FLAGS_checkpoints != "off") {
    Die(absl::InvalidArgumentError("--checkpoints must be on or off"));
  }
  std::string dir = FLAGS_dir;
  if (dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    dir = tmp != nullptr ? tmp : "/var/tmp";
  }
  const std::string path = absl::StrCat(dir, "/pagebench.", getpid());
  unlink(path.c_str());
  // Live bytes are page state: a base and its deltas, which number
  // (deltas_per_base - 2) / 2 on average once every page is being updated.
  const double mean_page_bytes =
      FLAGS_page_bytes +
      (FLAGS_deltas_per_base - 1) / 2.0 * FLAGS_update_bytes;
  const uint64_t pages = static_cast<uint64_t>(
      FLAGS_utilization * FLAGS_capacity_bytes / mean_page_bytes);
  // Every thread updates pages of its own.
  if (pages < uint64_t(FLAGS_threads)) {
    Die(absl::InvalidArgumentError(absl::StrCat(
        "--utilization x --capacity_bytes holds ", pages, " pages of ",
        mean_page_bytes, " bytes on average, fewer than --threads ",
        FLAGS_threads)));
  }
  PageStoreOptions options;
  options.store.allow_buffered_fallback = true;
  options.store.buffer_bytes = FLAGS_buffer_bytes;
  options.cleaner.region_bytes = FLAGS_region_bytes;
  options.cleaner.policy = cost_benefit ? CleaningPolicy::kCostBenefit
                                        : CleaningPolicy::kOldest;
  options.store.preallocate_bytes = 16 << 20;
  options.store.capacity_bytes = cleaning ? FLAGS_capacity_bytes : 0;
  options.cleaner.background = cleaning;
  options.cleaner.free_bytes_low = FLAGS_free_bytes_low;
  options.cleaner.burst_bytes = FLAGS_burst_bytes;
  options.cleaner.separate_relocations = FLAGS_separate_relocations;
  options.max_flushed_pieces = FLAGS_max_flushed_pieces;
  options.table.max_pages = pages + 1;
  options.checkpoints = FLAGS_checkpoints == "on";
  options.checkpoint_every_bytes = FLAGS_checkpoint_every_bytes;
  std::unique_ptr<PageStore> store = Check(PageStore::Open(path, options));

  std::fprintf(stderr, "pagebench: loading %" PRIu64 " pages of %" PRIu64
                       " bytes\n", pages, FLAGS_page_bytes);
  std::vector<Expected> expected(pages);
  // Each page as its last flush wrote it: what a reopen must read.
  std::vector<Expected> flushed(pages);
  for (uint64_t i = 0; i < pages; ++i) {
    const uint64_t pid = Check(store->Allocate());
    Check(store->UpdateR(pid, PageState::Free(), Base(pid, 0)));
    Flush(*store, pid);
  }
  Check(store->log().Sync());
  const PageStore::FlushStats loaded = store->flush_stats();
  const uint64_t loaded_end = store->log().HiStable();

  const bool by_laps = FLAGS_laps > 0;
  const uint64_t laps_bytes =
      static_cast<uint64_t>(FLAGS_laps * FLAGS_capacity_bytes);
  std::fprintf(stderr, "pagebench: updating for %s from %d threads (%s, "
               "cleaning %s)\n",
               by_laps ? absl::StrCat(FLAGS_laps, " laps of the log").c_str()
                       : absl::StrCat(FLAGS_seconds, " s").c_str(),
               FLAGS_threads, FLAGS_distribution.c_str(),
               FLAGS_cleaning.c_str());
  const Zipf zipf(FLAGS_distribution == "zipf" ? pages : 1);
  // The rank of the page to update, hottest first: zipf's, or hotcold's
  // (the first fifth of the ranks takes 80% of the updates, uniform within
  // either part, as in LFS's "hot-and-cold"); uniform's is its PID.
  const uint64_t hot = std::max<uint64_t>(1, pages / 5);
  const auto rank = [&](std::mt19937_64& rng) -> uint64_t {
    if (FLAGS_distribution == "zipf") return zipf(rng);
    if (FLAGS_distribution == "uniform") return rng() % pages;
    if (hot == pages || rng() % 5 != 0) return rng() % hot;
    return hot + rng() % (pages - hot);
  };
  // The PID of each rank: a permutation, so that every page has a rank
  // of its own and hot pages are not neighbours in the log's load order.
  std::vector<uint64_t> rank_pid(pages);
  std::iota(rank_pid.begin(), rank_pid.end(), uint64_t{0});
  if (FLAGS_distribution != "uniform") {
    std::shuffle(rank_pid.begin(), rank_pid.end(), std::mt19937_64(42));
  }
  std::atomic<uint64_t> updates{0}, flushes{0};
  // Live page bytes: each thread counts those of its own pages; thread 0
  // samples the sum (and the file's size) after each batch.
  std::vector<std::atomic<uint64_t>> live(FLAGS_threads);
  double live_sum = 0;
  uint64_t live_samples = 0;
  uint64_t disk_max = 0;
  std::vector<uint32_t> since_flush(pages, 0);
  ProgressLine progress("pagebench", 0);
  const auto start = Clock::now();
  // Thread t owns the PIDs with pid % threads == t: one writer per page, so
  // each page's expected state is known exactly.
  const auto run = [&](int t) {
    std::mt19937_64 rng(1 + t);
    uint64_t mine = 0;
    for (uint64_t pid = t; pid < pages; pid += FLAGS_threads) {
      mine += FLAGS_page_bytes;
    }
    while (by_laps
               ? store->log().AppendedEnd() - loaded_end < laps_bytes
               : Seconds(start, Clock::now()) < FLAGS_seconds) {
      for (int batch = 0; batch < 256; ++batch) {
        // One of this thread's pages, drawn again until it is: each
        // thread's updates keep the distribution over its own pages.
        uint64_t pid = rank_pid[rank(rng)];
        while (pid % FLAGS_threads != uint64_t(t)) pid = rank_pid[rank(rng)];
        Expected& e = expected[pid];
        // The cleaner may relocate the page between the Read and the
        // update (its CAS wins): then read it again.
        const bool rebase = e.deltas + 1 >= FLAGS_deltas_per_base;
        for (;;) {
          const Page page = Check(store->Read(pid));
          absl::StatusOr<PageState> s =
              rebase ? store->UpdateR(pid, page.state,
                                      Base(pid, e.generation + 1))
                     : store->UpdateD(pid, page.state,
                                      Delta(pid, e.generation, e.deltas));
          if (s.ok()) break;
          if (s.status().code() != absl::StatusCode::kAborted) Die(s.status());
        }
        if (rebase) {
          mine -= e.deltas * FLAGS_update_bytes;
          ++e.generation;
          e.deltas = 0;
        } else {
          ++e.deltas;
          mine += FLAGS_update_bytes;
        }
        updates.fetch_add(1, std::memory_order_relaxed);
        if (++since_flush[pid] >= FLAGS_flush_every) {
          since_flush[pid] = 0;
          Flush(*store, pid);
          flushed[pid] = e;
          flushes.fetch_add(1, std::memory_order_relaxed);
        }
      }
      live[t].store(mine, std::memory_order_relaxed);
      if (t != 0) continue;
      uint64_t all = 0;
      for (const auto& l : live) all += l.load(std::memory_order_relaxed);
      live_sum += double(all) / FLAGS_capacity_bytes;
      ++live_samples;
      disk_max = std::max(disk_max, FileBytes(path));
      progress.Update(store->log().AppendedEnd());
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < FLAGS_threads; ++t) threads.emplace_back(run, t);
  for (std::thread& th : threads) th.join();
  const double run_s = Seconds(start, Clock::now());
  progress.Done();
  Check(store->log().Sync());
  disk_max = std::max(disk_max, FileBytes(path));
  const PageStore::FlushStats stats = store->flush_stats();
  const uint64_t written = store->log().HiStable() - store->log().data_start();
  // Markers of flushes that lost their race hold no page state.
  auto user = [](const PageStore::FlushStats& s) {
    return s.bytes - s.relocated_bytes - s.failed_bytes;
  };
  const uint64_t user_bytes = user(stats);
  // The update phase's alone: the load is written once whatever the
  // policy, and counting it would flatter a short run.
  const uint64_t run_written = store->log().HiStable() - loaded_end;
  const uint64_t run_user = user_bytes - user(loaded);
  const double wa = run_user > 0 ? double(run_written) / run_user : 0;
  const uint64_t run_new =
      stats.relocated_new_bytes - loaded.relocated_new_bytes;
  const double utilization = live_samples > 0 ? live_sum / live_samples : 0;
  Check(store->cleaner_status());
  // Every page reads as its last flush wrote it, or as a later state of
  // its own: a relocation of a page not flushed since its UpdateR writes
  // it as it is, deltas since included. That happens only when
  // --flush_every does not divide --deltas_per_base (a page gets deltas on
  // a new base before its next flush), and shows if the run ends before
  // that flush. A page with a flush is relocated as the flush left it.
  const auto VerifyAll = [&](PageStore& recovered) {
    if (recovered.recovered_pages() != pages) {
      std::fprintf(stderr, "pagebench: %" PRIu64 " pages recovered of %"
                   PRIu64 "\n", recovered.recovered_pages(), pages);
      return false;
    }
    for (uint64_t pid = 0; pid < pages; ++pid) {
      const Page page = Check(recovered.Read(pid));
      const Expected& from = flushed[pid];
      const Expected& to = expected[pid];
      const uint64_t d = page.deltas.size();
      const auto reads_as = [&](uint64_t g) {
        if (page.base != Base(pid, g)) return false;
        for (uint64_t i = 0; i < d; ++i) {
          if (page.deltas[i] != Delta(pid, g, i)) return false;
        }
        return true;
      };
      bool same = d == from.deltas && reads_as(from.generation);
      for (uint64_t g = from.generation + 1; !same && g <= to.generation;
           ++g) {
        same = (g < to.generation || d <= to.deltas) && reads_as(g);
      }
      if (!same) {
        std::fprintf(stderr,
                     "pagebench: page %" PRIu64 " reads as %zu deltas on a "
                     "base of %zu bytes, not as generation %" PRIu64
                     " with %" PRIu64 " deltas (its last flush) or a later "
                     "state (up to generation %" PRIu64 " with %" PRIu64
                     ")\n",
                     pid, page.deltas.size(), page.base.size(),
                     from.generation, from.deltas, to.generation, to.deltas);
        return false;
      }
    }
    return true;
  };

  // Recovery as after a crash: the store is dropped without
  // PageStore::Close, which would write a checkpoint, so the reopen
  // recovers from the newest checkpoint the cleaner wrote and replays the
  // log after it. Not a crash of the log: dropping it still writes its
  // close marker after whatever the cleaner appended since the Sync.
  store.reset();
  std::fprintf(stderr, "pagebench: reopening without Close (recovery from "
                       "the cleaner's newest checkpoint), checking every "
                       "page\n");
  const auto crash_start = Clock::now();
  store = Check(PageStore::Open(path, options));
  const double crash_recovery_s = Seconds(crash_start, Clock::now());
  const RecoveryReport crash_report = store->log().recovery();
  const uint64_t live_log_bytes = crash_report.tail - crash_report.head;
  bool verified = VerifyAll(*store);
  Check(store->Close());
  store.reset();

  std::fprintf(stderr, "pagebench: reopening after Close, checking every "
                       "page\n");
  const auto open_start = Clock::now();
  store = Check(PageStore::Open(path, options));
  const double recovery_s = Seconds(open_start, Clock::now());
  const RecoveryReport report = store->log().recovery();
  verified = verified && VerifyAll(*store);
  store.reset();
  unlink(path.c_str());

  std::printf("pagebench: %" PRIu64 " pages of %" PRIu64 " B, utilization "
              "%.2f of %" PRIu64 " MB, %s, cleaning %s\n",
              pages, FLAGS_page_bytes, FLAGS_utilization,
              FLAGS_capacity_bytes >> 20, FLAGS_distribution.c_str(),
              FLAGS_cleaning.c_str());
  const double updates_per_s = updates.load() / run_s;
  const double flushes_per_s = flushes.load() / run_s;
  std::printf("  utilization         %10.2f measured (live page state / "
              "capacity, mean over the run)\n", utilization);
  std::printf("  updates             %10.0f /s\n", updates_per_s);
  std::printf("  flushes             %10.0f /s\n", flushes_per_s);
  std::printf("  write amplification %10.2f (updates: %" PRIu64 " B to the log "
              "for %" PRIu64 " B of new page state, %" PRIu64 " B of it "
              "taken along by relocations; %" PRIu64
              " pages relocated, %" PRIu64 " of them by a copy of their "
              "newest piece, in %" PRIu64 " cleanings)\n",
              wa, run_written, run_user, run_new, stats.relocated,
              stats.moved, stats.cleanings);
  std::printf("  written             %10.1f x the capacity, load included\n",
              double(written) / FLAGS_capacity_bytes);
  std::printf("  largest disk use    %10.1f MB of %.1f MB\n", disk_max / 1e6,
              FLAGS_capacity_bytes / 1e6);
  std::printf("  recovery            %10.3f s after Close (%s, %.1f MB "
              "scanned)\n", recovery_s,
              report.checkpoint != 0 ? "from its checkpoint" : "whole log",
              report.bytes_scanned / 1e6);
  std::printf("  crash recovery      %10.3f s (%s, %.1f MB scanned of a "
              "%.1f MB live log)\n", crash_recovery_s,
              crash_report.checkpoint != 0 ? "from a periodic checkpoint"
                                           : "no checkpoint: whole log",
              crash_report.bytes_scanned / 1e6, live_log_bytes / 1e6);
  std::printf("  verify              %s\n",
              verified ? "OK: every page, byte for byte" : "FAILED");
  if (FLAGS_json) {
    std::printf(
        "{\"write_amplification\": %.3f, \"updates_per_s\": %.0f, "
        "\"flushes_per_s\": %.0f, \"disk_bytes_max\": %" PRIu64
        ", \"capacity_bytes\": %" PRIu64 ", \"recovery_s\": %.3f, "
        "\"bytes_written_total\": %" PRIu64 ", \"user_flush_bytes\": %" PRIu64
        ", \"update_phase_bytes_written\": %" PRIu64
        ", \"update_phase_user_flush_bytes\": %" PRIu64
        ", \"update_phase_relocated_new_bytes\": %" PRIu64
        ", \"update_phase_laps\": %.2f, \"update_phase_s\": %.1f"
        ", \"updates\": %" PRIu64 ", \"failed_flushes\": %" PRIu64
        ", \"relocated_pages\": %" PRIu64 ", \"moved_pieces\": %" PRIu64
        ", \"cleanings\": %" PRIu64 ", \"passes_apart\": %" PRIu64
        ", \"utilization\": %.2f, \"utilization_measured\": %.3f"
        ", \"threads\": %d, \"flush_every\": %" PRIu64
        ", \"max_flushed_pieces\": %u"
        ", \"buffer_bytes\": %" PRIu64 ", \"region_bytes\": %" PRIu64
        ", \"free_bytes_low\": %" PRIu64 ", \"burst_bytes\": %" PRIu64
        ", \"separate_relocations\": %s"
        ", \"checkpoints\": \"%s\", \"recovery_bytes_scanned\": %" PRIu64
        ", \"crash_recovery_s\": %.3f, \"crash_recovery_bytes_scanned\": %"
        PRIu64 ", \"crash_recovery_resumed\": %s"
        ", \"live_log_bytes\": %" PRIu64
        ", \"distribution\": \"%s\", \"cleaning\": \"%s\""
        ", \"cleaner_policy\": \"%s\""
        ", \"verified\": %s}\n",
        wa, updates_per_s, flushes_per_s, disk_max, FLAGS_capacity_bytes,
        recovery_s, written, user_bytes, run_written, run_user, run_new,
        double(run_written) / FLAGS_capacity_bytes, run_s, updates.load(),
        stats.failed,
        stats.relocated, stats.moved, stats.cleanings, stats.passes_apart,
        FLAGS_utilization,
        utilization,
        FLAGS_threads, FLAGS_flush_every, FLAGS_max_flushed_pieces,
        FLAGS_buffer_bytes, FLAGS_region_bytes, FLAGS_free_bytes_low,
        FLAGS_burst_bytes, FLAGS_separate_relocations ? "true" : "false",
        FLAGS_checkpoints.c_str(),
        report.bytes_scanned, crash_recovery_s,
        crash_report.bytes_scanned,
        crash_report.checkpoint != 0 ? "true" : "false", live_log_bytes,
        FLAGS_distribution.c_str(), FLAGS_cleaning.c_str(),
        FLAGS_cleaner_policy.c_str(), verified ? "true" : "false");
  }
  return verified ? 0 : 1;
}

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return lss::Main();
}
