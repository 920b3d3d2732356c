// PageStore checkpoints: Open resumes from the newest one and replays only
// the log after it, and must then read every page exactly as a replay of
// the whole log does, freed pages staying freed, across Close, a crash
// image of the file (a copy taken while the store is open) and cleaning.

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mapping/page_store.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  unlink(path.c_str());
  return path;
}

PageStoreOptions Options() {
  PageStoreOptions o;
  o.store.buffer_bytes = 64 << 10;
  o.store.ring_size = 2;
  o.store.allow_buffered_fallback = true;
  o.store.preallocate_bytes = 1 << 20;
  o.table.max_pages = 1 << 12;
  o.max_flushed_pieces = 4;
  return o;
}

// What each live page must read as: its base and deltas, oldest first.
using Model = std::map<uint64_t, std::vector<std::string>>;

struct Pages {
  Model live;
  std::vector<uint64_t> freed;
};

void ExpectPages(PageStore& store, const Pages& want) {
  for (const auto& [pid, content] : want.live) {
    absl::StatusOr<Page> page = store.Read(pid);
    ASSERT_TRUE(page.ok()) << "page " << pid << ": " << page.status();
    std::vector<std::string> got = {page->base};
    got.insert(got.end(), page->deltas.begin(), page->deltas.end());
    ASSERT_EQ(got, content) << "page " << pid;
  }
  for (uint64_t pid : want.freed) {
    EXPECT_EQ(store.Read(pid).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << "freed page " << pid << " came back";
  }
}

// Random updates, flushes (delta pieces and images), evictions, frees and
// reuses of freed PIDs; every page flushed at the end and made durable, so
// `pages` is what any recovery must read.
void Churn(PageStore& store, Pages& pages, std::mt19937_64& rng, int steps) {
  for (int step = 0; step < steps; ++step) {
    if (pages.live.size() < 40 || rng() % 10 == 0) {
      absl::StatusOr<uint64_t> pid = store.Allocate();
      ASSERT_TRUE(pid.ok()) << pid.status();
      const std::string base = absl::StrCat("base ", *pid, " ", step,
                                            std::string(rng() % 500, 'b'));
      ASSERT_TRUE(store.UpdateR(*pid, PageState::Free(), base).ok());
      pages.live[*pid] = {base};
      std::erase(pages.freed, *pid);
      continue;
    }
    auto it = pages.live.begin();
    std::advance(it, rng() % pages.live.size());
    const uint64_t pid = it->first;
    switch (rng() % 6) {
      case 0:
      case 1: {
        absl::StatusOr<Page> page = store.Read(pid);
        ASSERT_TRUE(page.ok()) << page.status();
        const std::string delta = absl::StrCat("delta ", step);
        ASSERT_TRUE(store.UpdateD(pid, page->state, delta).ok());
        it->second.push_back(delta);
        break;
      }
      case 2:
      case 3:
        ASSERT_TRUE(store.Flush(pid).ok());
        break;
      case 4: {
        absl::StatusOr<uint64_t> a = store.Flush(pid);
        ASSERT_TRUE(a.ok());
        ASSERT_TRUE(store.MkStable(*a).ok());
        ASSERT_TRUE(store.Evict(pid).ok());
        break;
      }
      case 5:
        if (rng() % 3 == 0) {
          ASSERT_TRUE(store.Free(pid).ok());
          pages.freed.push_back(pid);
          pages.live.erase(it);
        }
        break;
    }
  }
  for (const auto& [pid, content] : pages.live) {
    absl::StatusOr<uint64_t> a = store.Flush(pid);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  ASSERT_TRUE(store.log().Sync().ok());
}

// The file as a crash would leave it now (everything synced is in it).
std::string CrashImage(const std::string& path, const std::string& name) {
  const std::string copy = TempPath(name);
  std::filesystem::copy_file(path, copy,
                             std::filesystem::copy_options::overwrite_existing);
  return copy;
}

TEST(CheckpointTest, AResumedOpenReadsWhatAFullReplayReads) {
  const std::string path = TempPath("ckpt.log");
  std::mt19937_64 rng(11);
  Pages pages;
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  // Checkpoints between changes: pages freed, reused, and chains of delta
  // pieces that go on past each checkpoint.
  for (int i = 0; i < 3; ++i) {
    Churn(**store, pages, rng, 300);
    ASSERT_TRUE((*store)->Checkpoint().ok());
  }
  Churn(**store, pages, rng, 300);
  const uint64_t resume = (*store)->log().checkpoint_resume();
  ASSERT_GT(resume, (*store)->log().head());
  const std::string crashed = CrashImage(path, "ckpt-crash.log");
  const std::string crashed_too = CrashImage(path, "ckpt-crash-full.log");
  ASSERT_TRUE((*store)->Close().ok());

  PageStoreOptions no_checkpoints = Options();
  no_checkpoints.checkpoints = false;
  auto full = PageStore::Open(crashed_too, no_checkpoints);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ((*full)->log().recovery().scan_from, (*full)->log().head());
  EXPECT_EQ((*full)->log().recovery().checkpoint, 0u);
  ExpectPages(**full, pages);

  auto resumed = PageStore::Open(crashed, Options());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  const RecoveryReport& r = (*resumed)->log().recovery();
  EXPECT_EQ(r.scan_from, resume);
  EXPECT_NE(r.checkpoint, 0u);
  EXPECT_LT(r.records, (*full)->log().recovery().records);
  EXPECT_EQ((*resumed)->recovered_pages(), (*full)->recovered_pages());
  ExpectPages(**resumed, pages);
  // And it goes on: changes after the resumed open survive the next one.
  Churn(**resumed, pages, rng, 300);
  ASSERT_TRUE((*resumed)->Close().ok());
  resumed = PageStore::Open(crashed, Options());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ExpectPages(**resumed, pages);
}

TEST(CheckpointTest, CloseWritesOneAndEveryReopenResumesFromIt) {
  const std::string path = TempPath("ckpt-close.log");
  std::mt19937_64 rng(12);
  Pages pages;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    if (round > 0) {
      const RecoveryReport& r = (*store)->log().recovery();
      EXPECT_NE(r.checkpoint, 0u);
      EXPECT_GT(r.scan_from, r.head);
      // The last written block, the checkpoint's and the close marker.
      EXPECT_LE(r.blocks, 3u);
    }
    ExpectPages(**store, pages);
    Churn(**store, pages, rng, 400);
    ASSERT_TRUE((*store)->Close().ok());
  }
}

// Right after recovering from a crash, the log's last block holds records
// the replay has seen, and the checkpoint resumes at that block's start:
// the next open replays them a second time, which must change nothing
// (a delta piece applied twice would link to itself).
TEST(CheckpointTest, RecordsReplayedTwiceChangeNothing) {
  const std::string path = TempPath("ckpt-twice.log");
  std::mt19937_64 rng(16);
  Pages pages;
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  Churn(**store, pages, rng, 300);
  // Deltas flushed last, so the last block holds delta pieces.
  for (auto& [pid, content] : pages.live) {
    absl::StatusOr<Page> page = (*store)->Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_TRUE((*store)->UpdateD(pid, page->state, "last").ok());
    content.push_back("last");
    ASSERT_TRUE((*store)->Flush(pid).ok());
  }
  ASSERT_TRUE((*store)->log().Sync().ok());
  std::string crashed = CrashImage(path, "ckpt-twice-0.log");
  ASSERT_TRUE((*store)->Close().ok());
  // Recover, checkpoint at once, crash again: three times over.
  for (int open = 0; open < 3; ++open) {
    SCOPED_TRACE(absl::StrCat("open ", open));
    auto again = PageStore::Open(crashed, Options());
    ASSERT_TRUE(again.ok()) << again.status();
    const RecoveryReport& r = (*again)->log().recovery();
    if (open > 0) {
      EXPECT_NE(r.checkpoint, 0u);
      EXPECT_GT(r.scan_from, r.head);
    }
    ExpectPages(**again, pages);
    ASSERT_TRUE((*again)->Checkpoint().ok());
    EXPECT_LT((*again)->log().checkpoint_resume(), r.tail);
    crashed = CrashImage(crashed, absl::StrCat("ckpt-twice-", open + 1,
                                               ".log"));
    ASSERT_TRUE((*again)->Close().ok());
  }
}

TEST(CheckpointTest, CleaningPastTheCheckpointWritesANewerOneFirst) {
  const std::string path = TempPath("ckpt-clean.log");
  std::mt19937_64 rng(13);
  Pages pages;
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  Churn(**store, pages, rng, 400);
  ASSERT_TRUE((*store)->Checkpoint().ok());
  const uint64_t first = (*store)->log().checkpoint_resume();
  Churn(**store, pages, rng, 400);
  const uint64_t head = (*store)->log().head();
  const uint64_t to = head + ((*store)->HiStable() - head) * 3 / 4;
  ASSERT_GT(to, first);
  ASSERT_TRUE((*store)->Clean(to).ok());
  EXPECT_GT((*store)->log().head(), first);
  EXPECT_GE((*store)->log().checkpoint_resume(), (*store)->log().head());
  Churn(**store, pages, rng, 200);
  const std::string crashed = CrashImage(path, "ckpt-clean-crash.log");
  ASSERT_TRUE((*store)->Close().ok());
  auto resumed = PageStore::Open(crashed, Options());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_GT((*resumed)->log().recovery().scan_from,
            (*resumed)->log().head());
  ExpectPages(**resumed, pages);
}

TEST(CheckpointTest, ADamagedPageCheckpointIsDataLossNamingTheFile) {
  const std::string path = TempPath("ckpt-bad.log");
  std::mt19937_64 rng(14);
  Pages pages;
  PageStoreOptions no_checkpoints = Options();
  no_checkpoints.checkpoints = false;
  {
    auto store = PageStore::Open(path, no_checkpoints);
    ASSERT_TRUE(store.ok()) << store.status();
    Churn(**store, pages, rng, 200);
    LogStructuredStore& log = (*store)->log();
    absl::StatusOr<uint64_t> at =
        log.WriteCheckpoint(log.CheckpointBoundary(), "not a page table");
    ASSERT_TRUE(at.ok()) << at.status();
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto bad = PageStore::Open(path, Options());
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr(path));
  EXPECT_THAT(bad.status().message(), HasSubstr("page checkpoint at offset"));
  // Without checkpoints the whole log is replayed, and it is intact.
  auto full = PageStore::Open(path, no_checkpoints);
  ASSERT_TRUE(full.ok()) << full.status();
  ExpectPages(**full, pages);
}

// 24 bytes per page: 3,000 pages take more than a 64 KiB buffer's record.
TEST(CheckpointTest, ALargeTableSpansRecords) {
  const std::string path = TempPath("ckpt-large.log");
  Pages pages;
  {
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 3000; ++i) {
      absl::StatusOr<uint64_t> pid = (*store)->Allocate();
      ASSERT_TRUE(pid.ok());
      const std::string base = absl::StrCat("page ", *pid);
      ASSERT_TRUE((*store)->UpdateR(*pid, PageState::Free(), base).ok());
      ASSERT_TRUE((*store)->Flush(*pid).ok());
      pages.live[*pid] = {base};
    }
    ASSERT_TRUE((*store)->log().Sync().ok());
    ASSERT_TRUE((*store)->Checkpoint().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE((*store)->log().recovery().checkpoint, 0u);
  EXPECT_EQ((*store)->recovered_pages(), 3000u);
  ExpectPages(**store, pages);
}

// Found in review: a Free whose record could not be logged (the log was
// full) freed the page in the table anyway, so Clean skipped it and
// truncated its pieces; a whole replay then found the page free, and a
// checkpoint taken before named its piece below the new head. Now the page
// stays as it was, Clean relocates it, and both opens agree.
TEST(CheckpointTest, AFreeThatCannotBeLoggedLeavesThePage) {
  const std::string path = TempPath("ckpt-free-full.log");
  PageStoreOptions o = Options();
  o.store.capacity_bytes = 1 << 20;
  o.max_flushed_pieces = 1;
  uint64_t p = 0;
  {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    p = *(*store)->Allocate();
    ASSERT_TRUE((*store)->UpdateR(p, PageState::Free(), "victim").ok());
    absl::StatusOr<uint64_t> x = (*store)->Flush(p);
    ASSERT_TRUE(x.ok()) << x.status();
    ASSERT_TRUE((*store)->log().Sync().ok());
    const uint64_t q = *(*store)->Allocate();
    ASSERT_TRUE(
        (*store)->UpdateR(q, PageState::Free(), std::string(4000, 'q')).ok());
    ASSERT_TRUE((*store)->Flush(q).ok());
    ASSERT_TRUE((*store)->log().Sync().ok());
    ASSERT_TRUE((*store)->Checkpoint().ok());  // names p at *x
    // Fill the log to its bound with new images of q.
    for (int i = 0;; ++i) {
      absl::StatusOr<Page> page = (*store)->Read(q);
      ASSERT_TRUE(page.ok()) << page.status();
      ASSERT_TRUE((*store)
                      ->UpdateR(q, page->state,
                                std::string(4000, 'a' + i % 26))
                      .ok());
      if (!(*store)->Flush(q).ok()) break;
    }
    while ((*store)->log().Append("x").ok()) {
    }
    const absl::Status freed = (*store)->Free(p);
    EXPECT_EQ(freed.code(), absl::StatusCode::kResourceExhausted) << freed;
    absl::StatusOr<Page> still = (*store)->Read(p);
    ASSERT_TRUE(still.ok()) << still.status();
    EXPECT_EQ(still->base, "victim");
    ASSERT_TRUE((*store)->log().Sync().ok());
    // Clean relocates p (or, with no room, stops below it).
    (*store)->Clean((*store)->HiStable()).IgnoreError();
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::string copy = CrashImage(path, "ckpt-free-full-copy.log");
  PageStoreOptions whole = o;
  whole.checkpoints = false;
  for (const bool resume : {false, true}) {
    SCOPED_TRACE(resume ? "resumed" : "whole replay");
    auto store = PageStore::Open(resume ? path : copy, resume ? o : whole);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<Page> page = (*store)->Read(p);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->base, "victim");
  }
}

// A checkpoint entry whose pieces all lie below the head is one a replay
// from the head would not know: the page is free.
TEST(CheckpointTest, EntriesBelowTheHeadAreFree) {
  const std::string path = TempPath("ckpt-below-head.log");
  uint64_t p = 0;
  {
    PageStoreOptions o = Options();
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    p = *(*store)->Allocate();
    ASSERT_TRUE((*store)->UpdateR(p, PageState::Free(), "gone").ok());
    ASSERT_TRUE((*store)->Flush(p).ok());
    ASSERT_TRUE((*store)->log().Sync().ok());
    // Another page in a later block, where the checkpoint resumes.
    const uint64_t q = *(*store)->Allocate();
    ASSERT_TRUE((*store)->UpdateR(q, PageState::Free(), "kept").ok());
    ASSERT_TRUE((*store)->Flush(q).ok());
    ASSERT_TRUE((*store)->log().Sync().ok());
    ASSERT_TRUE((*store)->Checkpoint().ok());
    const uint64_t resume = (*store)->log().checkpoint_resume();
    // Truncate the log below the checkpoint's resume address, past p's
    // image, behind PageStore's back.
    ASSERT_TRUE((*store)->log().Truncate(resume).ok());
    ASSERT_EQ((*store)->log().checkpoint_resume(), resume);
    ASSERT_GT((*store)->log().head(), (*store)->log().data_start());
    (*store)->log().Close().IgnoreError();
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE((*store)->log().recovery().checkpoint, 0u);
  EXPECT_EQ((*store)->Read(p).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*store)->recovered_pages(), 1u);
}

TEST(CheckpointTest, ReadOnlyStoresResumeButDoNotWrite) {
  const std::string path = TempPath("ckpt-ro.log");
  std::mt19937_64 rng(15);
  Pages pages;
  {
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    Churn(**store, pages, rng, 300);
    ASSERT_TRUE((*store)->Close().ok());
  }
  PageStoreOptions read_only = Options();
  read_only.store.read_only = true;
  auto store = PageStore::Open(path, read_only);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE((*store)->log().recovery().checkpoint, 0u);
  ExpectPages(**store, pages);
  EXPECT_EQ((*store)->Checkpoint().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lss
