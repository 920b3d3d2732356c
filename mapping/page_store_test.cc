// PageStore on a real log file: page operations, the flush protocol (the
// failed-flush path forced by racing updates), eviction and reload,
// recovery, and a linearizability check of concurrent installs and reads
// (a concurrency test: CI runs it under TSan and ASan, which also checks
// that epoch reclamation never frees a chain a reader still walks).

#include "mapping/page_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lss {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  unlink(path.c_str());
  return path;
}

PageStoreOptions SmallOptions() {
  PageStoreOptions o;
  o.store.buffer_bytes = 64 << 10;
  o.store.ring_size = 2;
  o.store.allow_buffered_fallback = true;
  o.store.preallocate_bytes = 1 << 20;
  o.table.max_pages = 1 << 16;
  return o;
}

std::unique_ptr<PageStore> OpenStore(const std::string& path) {
  auto store = PageStore::Open(path, SmallOptions());
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

TEST(PageStoreTest, UpdatesFlushEvictAndReloadRoundTrip) {
  auto store = OpenStore(TempPath("roundtrip.log"));
  ASSERT_NE(store, nullptr);
  const uint64_t pid = *store->Allocate();
  absl::StatusOr<PageState> s = store->UpdateR(pid, PageState::Free(), "base");
  ASSERT_TRUE(s.ok()) << s.status();
  for (const char* d : {"d1", "d2", "d3"}) {
    s = store->UpdateD(pid, *s, d);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  absl::StatusOr<Page> page = store->Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "base");
  EXPECT_THAT(page->deltas, ElementsAre("d1", "d2", "d3"));

  EXPECT_EQ(store->Evict(pid).code(), absl::StatusCode::kFailedPrecondition)
      << "unflushed changes cannot be evicted";
  absl::StatusOr<uint64_t> at = store->Flush(pid);
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(*store->Flush(pid), *at) << "nothing changed: same image";
  ASSERT_TRUE(store->MkStable(*at).ok());
  EXPECT_GT(store->HiStable(), *at);
  ASSERT_TRUE(store->Evict(pid).ok());
  EXPECT_EQ(*store->table().Read(pid), PageState::OnLog(*at));

  page = store->Read(pid);  // loads from the log
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->state.in_memory());
  EXPECT_EQ(page->base, "base");
  EXPECT_THAT(page->deltas, ElementsAre("d1", "d2", "d3"));
  // A reloaded page is still flushed: it can be evicted again at once.
  EXPECT_TRUE(store->Evict(pid).ok());
}

// An evicted page whose image was damaged on disk is DataLoss, not a
// missing record: its address came from the log itself.
TEST(PageStoreTest, ADamagedEvictedImageIsDataLoss) {
  const std::string path = TempPath("damaged.log");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const uint64_t pid = *store->Allocate();
  ASSERT_TRUE(store->UpdateR(pid, PageState::Free(), "a base image").ok());
  absl::StatusOr<uint64_t> at = store->Flush(pid);
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_TRUE(store->MkStable(*at).ok());
  ASSERT_TRUE(store->Evict(pid).ok());
  // One bit of the image's payload, through another descriptor.
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 0;
  const off_t byte = static_cast<off_t>(*at + 24 + 3);
  ASSERT_EQ(pread(fd, &c, 1, byte), 1);
  c = static_cast<char>(c ^ 0x10);
  ASSERT_EQ(pwrite(fd, &c, 1, byte), 1);
  close(fd);
  absl::StatusOr<Page> page = store->Read(pid);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), absl::StatusCode::kDataLoss)
      << page.status();
  EXPECT_THAT(page.status().message(), HasSubstr(path));
}

TEST(PageStoreTest, StaleExpectationsAndWrongStatesAreRefused) {
  auto store = OpenStore(TempPath("stale.log"));
  ASSERT_NE(store, nullptr);
  const uint64_t pid = *store->Allocate();
  const PageState first = *store->UpdateR(pid, PageState::Free(), "v1");
  ASSERT_TRUE(store->UpdateR(pid, first, "v2").ok());
  EXPECT_EQ(store->UpdateR(pid, first, "v3").status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->UpdateD(pid, first, "d").status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->Read(pid)->base, "v2");

  const uint64_t at = *store->Flush(pid);
  ASSERT_TRUE(store->MkStable(at).ok());
  ASSERT_TRUE(store->Evict(pid).ok());
  EXPECT_EQ(store->UpdateD(pid, PageState::OnLog(at), "d").status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(store->Free(pid).ok());
  EXPECT_EQ(store->Free(pid).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store->Read(pid).status().message(), HasSubstr("free"));
  EXPECT_EQ(*store->Allocate(), pid) << "freed PIDs are reused";
}

// An `expected` whose chain was evicted and freed meanwhile: the update is
// refused without touching the freed memory (ASan checks that).
TEST(PageStoreTest, AnExpectationWhoseChainWasFreedIsAborted) {
  auto store = OpenStore(TempPath("freedchain.log"));
  ASSERT_NE(store, nullptr);
  const uint64_t pid = *store->Allocate();
  const uint64_t other = *store->Allocate();
  const PageState old = *store->UpdateR(pid, PageState::Free(), "A");
  const uint64_t at = *store->Flush(pid);
  ASSERT_TRUE(store->MkStable(at).ok());
  ASSERT_TRUE(store->Evict(pid).ok());  // retires the chain `old` points at
  PageState s = *store->UpdateR(other, PageState::Free(), "x");
  for (int i = 0; i < 3 * int(EpochManager::kReclaimThreshold); ++i) {
    s = *store->UpdateR(other, s, "x");  // retire and reclaim a lot
  }
  EXPECT_EQ(store->UpdateD(pid, old, "d").status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->UpdateR(pid, old, "B").status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->Read(pid)->base, "A");
}

// Only flushed, stable pages come back; freed ones stay free; unflushed
// changes are gone; a failed flush leaves nothing behind.
TEST(PageStoreTest, RecoveryRebuildsTheTableFromTheLog) {
  const std::string path = TempPath("recover.log");
  uint64_t kept, freed, never_flushed, changed_after_flush;
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    kept = *store->Allocate();
    freed = *store->Allocate();
    never_flushed = *store->Allocate();
    changed_after_flush = *store->Allocate();
    PageState k = *store->UpdateR(kept, PageState::Free(), "kept");
    k = *store->UpdateD(kept, k, "+1");
    ASSERT_TRUE(store->Flush(kept).ok());
    ASSERT_TRUE(store->UpdateR(freed, PageState::Free(), "freed").ok());
    ASSERT_TRUE(store->Flush(freed).ok());
    ASSERT_TRUE(store->Free(freed).ok());
    ASSERT_TRUE(
        store->UpdateR(never_flushed, PageState::Free(), "volatile").ok());
    ASSERT_TRUE(
        store->UpdateR(changed_after_flush, PageState::Free(), "flushed").ok());
    ASSERT_TRUE(store->Flush(changed_after_flush).ok());
    PageState c;
    c = store->Read(changed_after_flush)->state;  // the flush changed it
    ASSERT_TRUE(store->UpdateD(changed_after_flush, c, "lost").ok());
    ASSERT_TRUE(store->log().Sync().ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->recovered_pages(), 2u);
  absl::StatusOr<Page> page = store->Read(kept);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "kept");
  EXPECT_THAT(page->deltas, ElementsAre("+1"));
  page = store->Read(changed_after_flush);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "flushed");
  EXPECT_TRUE(page->deltas.empty());
  EXPECT_EQ(store->Read(freed).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Read(never_flushed).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The free PIDs are handed out again, lowest first.
  EXPECT_EQ(*store->Allocate(), std::min(freed, never_flushed));
}

// A page record whose key is not a PID the table can hold (a corrupt or
// hostile log) fails recovery with DataLoss naming the file, the record and
// the key, and must not first size anything by that key.
TEST(PageStoreTest, RecoveryRefusesAPageRecordWhoseKeyIsNotAPid) {
  const PageStoreOptions options = SmallOptions();
  const uint64_t max_pages = options.table.max_pages;
  for (const uint32_t type : {kPageImageRecord, kPageFreedRecord}) {
    for (const uint64_t key : {max_pages, uint64_t{1} << 40, ~uint64_t{0}}) {
      SCOPED_TRACE(absl::StrCat("type ", type, ", key ", key));
      const std::string path = TempPath("badkey.log");
      uint64_t at = 0;
      {
        auto log = LogStructuredStore::Open(path, options.store);
        ASSERT_TRUE(log.ok()) << log.status();
        absl::StatusOr<uint64_t> appended =
            (*log)->Append("x", RecordTag{.type = type, .key = key});
        ASSERT_TRUE(appended.ok()) << appended.status();
        at = *appended;
        ASSERT_TRUE((*log)->Close().ok());
      }
      auto store = PageStore::Open(path, options);
      EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
          << store.status();
      EXPECT_THAT(store.status().message(), HasSubstr(path));
      EXPECT_THAT(store.status().message(),
                  HasSubstr(absl::StrCat("offset ", at, " ")));
      EXPECT_THAT(store.status().message(),
                  HasSubstr(absl::StrCat("key ", key, ",")));
    }
  }
}

// Forces the losing side of LLAMA's flush protocol, deterministically: with
// a ring of one buffer, a held reservation keeps the buffer from being
// written, so a Flush that needs a new buffer waits inside Reserve (after it
// read the page's state). The page changes meanwhile, so its CAS loses. The
// space it reserved must become a failed-flush record, and recovery must
// give the page as of its last successful flush.
TEST(PageStoreTest, AFlushThatLosesItsCasLeavesAMarkerRecoveryIgnores) {
  const std::string path = TempPath("failedflush.log");
  PageStoreOptions options = SmallOptions();
  options.store.ring_size = 1;
  constexpr int kLosses = 3;
  uint64_t last_good = 0;
  {
    auto opened = PageStore::Open(path, options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    PageStore& store = **opened;
    const uint64_t pid = *store.Allocate();
    PageState state =
        *store.UpdateR(pid, PageState::Free(), std::string(8000, 'a'));
    last_good = *store.Flush(pid);
    state = store.Read(pid)->state;
    for (int loss = 0; loss < kLosses; ++loss) {
      state = *store.UpdateD(pid, state, absl::StrCat("before ", loss));
      ASSERT_TRUE(store.log().Flush().ok());  // start from an empty buffer
      // Fill the buffer but for less than the page image, and hold it.
      absl::StatusOr<StoreReservation> hold =
          store.log().Reserve(options.store.buffer_bytes - 64 - 24 - 4096);
      ASSERT_TRUE(hold.ok()) << hold.status();
      const uint64_t waits = store.log().ring_stats().waits;
      absl::StatusOr<uint64_t> flushed;
      std::thread flusher([&] { flushed = store.Flush(pid); });
      while (store.log().ring_stats().waits == waits) {
        std::this_thread::yield();  // until the flusher waits in Reserve
      }
      state = *store.UpdateD(pid, state, absl::StrCat("racing ", loss));
      store.log().Commit(*std::move(hold));
      flusher.join();
      EXPECT_EQ(flushed.status().code(), absl::StatusCode::kAborted)
          << flushed.status();
    }
    last_good = *store.Flush(pid);
    ASSERT_TRUE(store.MkStable(last_good).ok());
  }
  auto store = PageStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  int markers = 0;
  auto reader = *(*store)->log().NewLogReader();
  while (*reader->Next()) {
    markers += reader->record().tag.type == kFailedFlushRecord;
  }
  EXPECT_EQ(markers, kLosses);
  EXPECT_EQ(*(*store)->table().Read(0), PageState::OnLog(last_good));
  absl::StatusOr<Page> page = (*store)->Read(0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->deltas.size(), 2u * kLosses);
  EXPECT_EQ(page->deltas.back(), absl::StrCat("racing ", kLosses - 1));
}

// Linearizability of installs and reads: writers install bases "pid:version"
// with versions increasing per PID (one writer per PID owns the counter),
// readers check that each read is a state some writer installed and that,
// per reader, a PID's version never goes backwards. Flushes and evictions
// run alongside, so reads also race with loads from the log; retired chains
// are freed by epochs while readers walk them.
TEST(PageStoreConcurrencyTest, ReadsSeeInstalledStatesInOrder) {
  auto store = OpenStore(TempPath("linear.log"));
  ASSERT_NE(store, nullptr);
  constexpr int kPids = 4;
  constexpr int kVersions = 3000;
  for (int p = 0; p < kPids; ++p) {
    ASSERT_EQ(*store->Allocate(), uint64_t(p));
    ASSERT_TRUE(store->UpdateR(p, PageState::Free(), absl::StrCat(p, ":0"))
                    .ok());
  }
  std::atomic<int> writers_left{2};
  std::atomic<uint64_t> errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int v = 1; v <= kVersions; ++v) {
        for (int p = w; p < kPids; p += 2) {
          for (;;) {
            EpochGuard pin = store->Pin();  // expected stays meaningful
            absl::StatusOr<Page> page = store->Read(p);
            if (!page.ok()) {
              errors.fetch_add(1);
              break;
            }
            absl::StatusOr<PageState> s = v % 3 == 0
                ? store->UpdateD(p, page->state, absl::StrCat(p, ":", v))
                : store->UpdateR(p, page->state, absl::StrCat(p, ":", v));
            if (s.ok()) break;
            if (s.status().code() != absl::StatusCode::kAborted) {
              errors.fetch_add(1);
              break;
            }
          }
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  // The newest version a page shows: its last delta, else its base.
  auto version_of = [](const Page& page, int pid, int& version) {
    const std::string& top = page.deltas.empty() ? page.base
                                                 : page.deltas.back();
    const std::string prefix = absl::StrCat(pid, ":");
    return top.rfind(prefix, 0) == 0 &&
           absl::SimpleAtoi(top.substr(prefix.size()), &version) &&
           version >= 0 && version <= kVersions;
  };
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      std::vector<int> seen(kPids, 0);
      while (writers_left.load() > 0) {
        for (int p = 0; p < kPids; ++p) {
          absl::StatusOr<Page> page = store->Read(p);
          int version = -1;
          if (!page.ok() || !version_of(*page, p, version) ||
              version < seen[p]) {
            errors.fetch_add(1);
            continue;
          }
          seen[p] = version;
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (writers_left.load() > 0) {
      for (int p = 0; p < kPids; ++p) {
        absl::StatusOr<uint64_t> at = store->Flush(p);
        if (!at.ok()) continue;  // lost to an update: fine
        if (!store->MkStable(*at).ok()) errors.fetch_add(1);
        const absl::Status evicted = store->Evict(p);
        if (!evicted.ok() &&
            evicted.code() != absl::StatusCode::kAborted &&
            evicted.code() != absl::StatusCode::kFailedPrecondition) {
          errors.fetch_add(1);
        }
      }
    }
  });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0u);
  for (int p = 0; p < kPids; ++p) {
    absl::StatusOr<Page> page = store->Read(p);
    ASSERT_TRUE(page.ok());
    int version = -1;
    ASSERT_TRUE(version_of(*page, p, version));
    EXPECT_EQ(version, kVersions);
  }
}

}  // namespace
}  // namespace lss
