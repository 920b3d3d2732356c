// The background cleaner (CleanerOptions): it keeps a page log within
// capacity_bytes while threads update, flush and evict pages, every page
// reads as its last state before and after a reopen, and a log whose live
// pages do not fit fails flushes with ResourceExhausted instead of hanging.

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapping/page_store.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::lss::testing::TempPath;

constexpr uint64_t kCapacity = uint64_t{2} << 20;

PageStoreOptions Options() {
  PageStoreOptions o;
  o.store.buffer_bytes = 64 << 10;
  o.store.ring_size = 2;
  o.store.allow_buffered_fallback = true;
  o.store.preallocate_bytes = 256 << 10;
  o.store.capacity_bytes = kCapacity;
  o.table.max_pages = 1 << 12;
  o.max_flushed_pieces = 4;
  o.cleaner.background = true;
  return o;
}

uint64_t DiskBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
}

std::string Base(uint64_t pid, int generation) {
  std::string s = absl::StrCat("page ", pid, " generation ", generation, " ");
  s.resize(1500 + pid % 500, static_cast<char>('a' + generation % 26));
  return s;
}

TEST(CleanerTest, KeepsTheLogWithinCapacityOverTenTimesItsSize) {
  const std::string path = TempPath("cleaner.log");
  auto opened = PageStore::Open(path, Options());
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  // 240 pages of about 1.7 KiB: a fifth of the capacity is live.
  constexpr int kThreads = 2;
  constexpr uint64_t kPages = 240;
  std::vector<uint64_t> pids;
  for (uint64_t i = 0; i < kPages; ++i) {
    const uint64_t pid = *store.Allocate();
    ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), Base(pid, 0)).ok());
    ASSERT_TRUE(store.Flush(pid).ok());
    pids.push_back(pid);
  }
  // What each page must read as: its generation and its deltas since.
  std::vector<int> generation(kPages, 0);
  std::vector<int> deltas(kPages, 0);
  std::atomic<uint64_t> disk_max{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      // Thread t owns the pages i with i % kThreads == t.
      while (store.HiStable() < 10 * kCapacity) {
        const uint64_t i = rng() % (kPages / kThreads) * kThreads + t;
        const uint64_t pid = pids[i];
        const bool rebase = rng() % 4 == 0;
        for (;;) {  // the cleaner's relocation may win the CAS
          absl::StatusOr<Page> page = store.Read(pid);
          ASSERT_TRUE(page.ok()) << page.status();
          absl::StatusOr<PageState> s =
              rebase ? store.UpdateR(pid, page->state,
                                     Base(pid, generation[i] + 1))
                     : store.UpdateD(pid, page->state,
                                     absl::StrCat("d", deltas[i]));
          if (s.ok()) break;
          ASSERT_EQ(s.status().code(), absl::StatusCode::kAborted)
              << s.status();
        }
        if (rebase) {
          ++generation[i];
          deltas[i] = 0;
        } else {
          ++deltas[i];
        }
        absl::StatusOr<uint64_t> a = store.Flush(pid);
        ASSERT_TRUE(a.ok() || a.status().code() == absl::StatusCode::kAborted)
            << a.status();
        if (a.ok() && rng() % 8 == 0) {
          ASSERT_TRUE(store.MkStable(*a).ok());
          const absl::Status e = store.Evict(pid);
          ASSERT_TRUE(e.ok() || e.code() == absl::StatusCode::kAborted ||
                      e.code() == absl::StatusCode::kFailedPrecondition)
              << e;
        }
        if (t == 0) {
          disk_max.store(std::max(disk_max.load(), DiskBytes(path)));
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (uint64_t i = 0; i < kPages; ++i) {
    for (;;) {
      absl::StatusOr<uint64_t> a = store.Flush(pids[i]);
      if (a.ok()) break;
      ASSERT_EQ(a.status().code(), absl::StatusCode::kAborted) << a.status();
    }
  }
  ASSERT_TRUE(store.log().Sync().ok());
  ASSERT_TRUE(store.cleaner_status().ok()) << store.cleaner_status();
  EXPECT_GT(store.flush_stats().cleanings, 10u);
  EXPECT_LE(disk_max.load(), kCapacity);
  EXPECT_LE(DiskBytes(path), kCapacity);
  const auto expect_pages = [&](PageStore& reopened) {
    for (uint64_t i = 0; i < kPages; ++i) {
      absl::StatusOr<Page> page = reopened.Read(pids[i]);
      ASSERT_TRUE(page.ok()) << page.status();
      ASSERT_EQ(page->base, Base(pids[i], generation[i]))
          << "page " << pids[i];
      ASSERT_EQ(page->deltas.size(), static_cast<size_t>(deltas[i]));
      for (int d = 0; d < deltas[i]; ++d) {
        ASSERT_EQ(page->deltas[d], absl::StrCat("d", d));
      }
    }
  };
  // Left without PageStore::Close (which would write a checkpoint): the
  // reopen resumes from one of the checkpoints the cleaner wrote (every
  // half of the capacity) while the threads flushed.
  opened->reset();
  opened = PageStore::Open(path, Options());
  ASSERT_TRUE(opened.ok()) << opened.status();
  const RecoveryReport& r = (*opened)->log().recovery();
  EXPECT_NE(r.checkpoint, 0u);
  EXPECT_GT(r.scan_from, r.head);
  expect_pages(**opened);
  ASSERT_TRUE((*opened)->Close().ok());

  // Reopened again (with its own cleaner), every page reads as left.
  opened = PageStore::Open(path, Options());
  ASSERT_TRUE(opened.ok()) << opened.status();
  expect_pages(**opened);
}

// Pages that are never replaced fill the log: once the cleaner cannot make
// room, a flush fails with ResourceExhausted (and everything flushed before
// stays readable) rather than waiting for ever.
TEST(CleanerTest, AFlushFailsWhenTheLivePagesDoNotFit) {
  const std::string path = TempPath("cleaner_full.log");
  auto opened = PageStore::Open(path, Options());
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  std::vector<uint64_t> flushed;
  absl::Status full;
  while (full.ok()) {
    ASSERT_LT(flushed.size(), 4000u) << "2 MiB held 4000 pages of 1.5 KiB";
    const uint64_t pid = *store.Allocate();
    ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), Base(pid, 1)).ok());
    absl::StatusOr<uint64_t> a = store.Flush(pid);
    if (a.ok()) {
      flushed.push_back(pid);
    } else {
      full = a.status();
    }
  }
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_GT(flushed.size(), 400u) << "most of the capacity is usable";
  for (uint64_t pid : flushed) {
    absl::StatusOr<Page> page = store.Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->base, Base(pid, 1));
  }
}

// Relocations can come out larger than their estimates (pages grow, and a
// region's last block reaches into the next), so the room can dip below the
// cleaner's reserve. CleanNext must still gain room then: cleaning the
// head's region, whose pages are all live, would write about as much as it
// frees, and the room would shrink to nothing.
TEST(CleanerTest, BelowTheReserveCleanNextStillGainsRoom) {
  PageStoreOptions o = Options();
  o.checkpoints = false;
  auto opened = PageStore::Open(TempPath("cleaner_tight.log"), o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  LogStructuredStore& log = store.log();
  const uint64_t region = store.region_bytes();
  const auto room = [&] { return log.SpaceEnd() - log.AppendedEnd(); };
  std::vector<uint64_t> live;
  while (log.AppendedEnd() < 2 * region) {
    const uint64_t pid = *store.Allocate();
    ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), Base(pid, 0)).ok());
    ASSERT_TRUE(store.Flush(pid).ok());
    live.push_back(pid);
  }
  // Then records no page holds (as lost flush races leave), appended
  // without a Flush, which would wake the background cleaner, until less
  // than the reserve (half the default low mark) is free.
  const std::string dead(4000, 'd');
  while (room() > region) {
    ASSERT_TRUE(
        log.Append(dead, RecordTag{.type = kFailedFlushRecord, .key = 0}).ok());
  }
  ASSERT_TRUE(log.Sync().ok());
  ASSERT_LT(room(), 3 * region / 2);
  const uint64_t before = room();
  absl::StatusOr<Hole> cleaned = store.CleanNext();
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  EXPECT_GE(cleaned->begin, 2 * region) << "it took the live pages' region";
  EXPECT_GE(room(), before + region / 2);
  for (uint64_t pid : live) {
    absl::StatusOr<Page> page = store.Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->base, Base(pid, 0));
  }
}

// Woken below its low mark, the cleaner goes on past it until burst_bytes
// more are free, and no further (each cleaning here but the head's frees a
// whole region of dead records).
TEST(CleanerTest, OnceWokenTheCleanerCleansABurstPastItsLowMark) {
  PageStoreOptions o = Options();
  o.checkpoints = false;
  o.cleaner.region_bytes = 128 << 10;
  o.cleaner.burst_bytes = 4 * o.cleaner.region_bytes;
  const std::string path = TempPath("cleaner_burst.log");
  auto opened = PageStore::Open(path, o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  LogStructuredStore& log = store.log();
  const uint64_t region = store.region_bytes();
  // The default free_bytes_low, 3 regions, is more than the flushes'
  // reserve and a buffer (with no checkpoints).
  const uint64_t low = 3 * region;
  const uint64_t burst = o.cleaner.burst_bytes;
  const auto room = [&] { return log.SpaceEnd() - log.AppendedEnd(); };
  std::vector<uint64_t> live;
  while (log.AppendedEnd() < region) {
    const uint64_t pid = *store.Allocate();
    ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), Base(pid, 0)).ok());
    ASSERT_TRUE(store.Flush(pid).ok());
    live.push_back(pid);
  }
  // Dead records, appended without a Flush (which would wake the cleaner),
  // until less than the low mark is free; then one Flush wakes it.
  const std::string dead(4000, 'd');
  while (room() >= low - region / 2) {
    ASSERT_TRUE(
        log.Append(dead, RecordTag{.type = kFailedFlushRecord, .key = 0}).ok());
  }
  ASSERT_TRUE(log.Sync().ok());
  const uint64_t before = room();
  ASSERT_TRUE(store.UpdateD(live[0], (*store.Read(live[0])).state, "d").ok());
  ASSERT_TRUE(store.Flush(live[0]).ok());
  // Polled, with a deadline only so that a cleaner that stops at the low
  // mark fails the test instead of hanging it.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (room() < low + burst &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(room(), low + burst) << "the cleaner stopped at " << room();
  ASSERT_TRUE(store.cleaner_status().ok()) << store.cleaner_status();
  // Close waits for the cleaner; a burst that ignored its end would have
  // gone on through the log's dead regions.
  ASSERT_TRUE(store.Close().ok());
  const uint64_t needed = (low + burst - before + region - 1) / region;
  EXPECT_GE(store.flush_stats().cleanings, needed);
  EXPECT_LE(store.flush_stats().cleanings, needed + 2);
  o.cleaner.background = false;
  auto reopened = PageStore::Open(path, o);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  for (uint64_t pid : live) {
    absl::StatusOr<Page> page = (*reopened)->Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->base, Base(pid, 0));
  }
}

// CleanerOptions::separate_relocations: what a cleaning pass relocates
// lies together, apart from what flushes write, so going through the log
// in address order the cleaner's records come in long runs.
TEST(CleanerTest, RelocationsLieApartFromFlushes) {
  PageStoreOptions o = Options();
  o.checkpoints = false;
  o.cleaner.separate_relocations = true;
  const std::string path = TempPath("cleaner_apart.log");
  auto opened = PageStore::Open(path, o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  constexpr int kThreads = 2;
  constexpr uint64_t kPages = 600;
  std::vector<uint64_t> pids;
  std::set<uint64_t> flushed;  // every address Flush returned
  for (uint64_t i = 0; i < kPages; ++i) {
    const uint64_t pid = *store.Allocate();
    ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), Base(pid, 0)).ok());
    absl::StatusOr<uint64_t> a = store.Flush(pid);
    ASSERT_TRUE(a.ok()) << a.status();
    flushed.insert(*a);
    pids.push_back(pid);
  }
  std::vector<std::set<uint64_t>> by_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      int generation = 0;
      while (store.HiStable() < 20 * kCapacity) {
        // A quarter of the pages is updated; the rest, never updated, is
        // what the cleaner relocates and what stays in the log.
        const uint64_t pid =
            pids[rng() % (kPages / 4 / kThreads) * kThreads + t];
        absl::StatusOr<Page> page = store.Read(pid);
        ASSERT_TRUE(page.ok()) << page.status();
        // A relocation may win the CAS: then the page is simply skipped.
        if (!store.UpdateR(pid, page->state, Base(pid, ++generation)).ok()) {
          continue;
        }
        absl::StatusOr<uint64_t> a = store.Flush(pid);
        ASSERT_TRUE(a.ok() || a.status().code() == absl::StatusCode::kAborted)
            << a.status();
        if (a.ok()) by_thread[t].insert(*a);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::set<uint64_t>& s : by_thread) {
    flushed.insert(s.begin(), s.end());
  }
  ASSERT_TRUE(store.log().Sync().ok());
  ASSERT_TRUE(store.cleaner_status().ok()) << store.cleaner_status();
  const uint64_t cleanings = store.flush_stats().cleanings;
  EXPECT_GT(cleanings, 10u);
  absl::StatusOr<std::unique_ptr<LogReader>> reader =
      store.log().NewLogReader();
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint64_t relocations = 0;
  uint64_t switches = 0;
  std::optional<bool> last;  // whether the last page record was a Flush's
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    const RecordView& r = (*reader)->record();
    if (r.tag.type != kPageImageRecord && r.tag.type != kPageDeltaRecord) {
      continue;
    }
    // A Flush that finds the page just relocated returns the relocation's
    // address: that relocation counts as a flush here.
    const bool by_flush = flushed.count(r.address) != 0;
    if (!by_flush) ++relocations;
    if (last.has_value() && *last != by_flush) ++switches;
    last = by_flush;
  }
  EXPECT_GT(relocations, 200u);
  EXPECT_GT(store.flush_stats().passes_apart, 0u);
  // Runs of relocations: at least 60 records long on average (125 to 180
  // in runs of this test; mixed with the flushes, with
  // separate_relocations off, they were 8 to 26 long).
  const uint64_t runs = switches / 2 + 1;
  EXPECT_GE(relocations, 60 * runs)
      << relocations << " relocations in " << runs << " runs";
}

// A pass whose regions hold only dead pieces relocates nothing, so it need
// not keep flushes out: a few pages rewritten whole over and over leave
// nothing live but their newest images, which the cleaner's oldest,
// emptiest regions do not hold.
TEST(CleanerTest, PassesOfDeadPiecesKeepNoFlushOut) {
  PageStoreOptions o = Options();
  o.checkpoints = false;
  o.cleaner.separate_relocations = true;
  const std::string path = TempPath("cleaner_dead.log");
  auto opened = PageStore::Open(path, o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PageStore& store = **opened;
  std::vector<uint64_t> pids;
  for (int i = 0; i < 4; ++i) pids.push_back(*store.Allocate());
  for (int generation = 0; store.HiStable() < 10 * kCapacity; ++generation) {
    for (uint64_t pid : pids) {
      // A relocation may win the CAS (or the flush's): then go again.
      absl::StatusOr<PageState> s;
      do {
        PageState before = PageState::Free();
        if (generation > 0) {
          absl::StatusOr<Page> page = store.Read(pid);
          ASSERT_TRUE(page.ok()) << page.status();
          before = page->state;
        }
        s = store.UpdateR(pid, before, Base(pid, generation));
      } while (s.status().code() == absl::StatusCode::kAborted);
      ASSERT_TRUE(s.ok()) << s.status();
      absl::StatusOr<uint64_t> a = store.Flush(pid);
      while (a.status().code() == absl::StatusCode::kAborted) {
        a = store.Flush(pid);
      }
      ASSERT_TRUE(a.ok()) << a.status();
    }
  }
  ASSERT_TRUE(store.log().Sync().ok());
  ASSERT_TRUE(store.cleaner_status().ok()) << store.cleaner_status();
  const PageStore::FlushStats stats = store.flush_stats();
  EXPECT_GT(stats.cleanings, 10u);
  // Each time flushes were kept out, a page was live in the region
  // (`relocated` counts the pieces moved alone too).
  EXPECT_LE(stats.passes_apart, stats.relocated)
      << stats.cleanings << " cleanings";
}

TEST(CleanerTest, OptionsAreChecked) {
  PageStoreOptions o = Options();
  o.store.capacity_bytes = 0;
  EXPECT_EQ(PageStore::Open(TempPath("no_capacity.log"), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.cleaner.region_bytes = kCapacity / 2;
  EXPECT_EQ(PageStore::Open(TempPath("big_region.log"), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.cleaner.region_bytes = o.store.buffer_bytes;  // the head moves by blocks
  EXPECT_EQ(PageStore::Open(TempPath("small_region.log"), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.cleaner.free_bytes_low = kCapacity;
  EXPECT_EQ(PageStore::Open(TempPath("big_low.log"), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.cleaner.burst_bytes = kCapacity;
  EXPECT_EQ(PageStore::Open(TempPath("big_burst.log"), o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lss
