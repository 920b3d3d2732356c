// PageStore on a real log file: page operations, the flush protocol (the
// failed-flush path forced by racing updates), incremental flushes (chains
// of pieces, consolidation, links across frees, damaged links), eviction
// and reload, recovery, and a linearizability check of concurrent installs and reads
// (a concurrency test: CI runs it under TSan and ASan, which also checks
// that epoch reclamation never frees a chain a reader still walks).

#include "mapping/page_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/format.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ::lss::testing::TempPath;

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
  for (const uint32_t type :
       {kPageImageRecord, kPageDeltaRecord, kPageFreedRecord}) {
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
// give the page as of its last successful flush. Both kinds of flush lose:
// whole images (max_flushed_pieces 1) and delta pieces.
TEST(PageStoreTest, AFlushThatLosesItsCasLeavesAMarkerRecoveryIgnores) {
  for (const uint32_t max_pieces : {1u, 8u}) {
    SCOPED_TRACE(absl::StrCat("max_flushed_pieces ", max_pieces));
    const std::string path = TempPath("failedflush.log");
    PageStoreOptions options = SmallOptions();
    options.store.ring_size = 1;
    options.max_flushed_pieces = max_pieces;
    constexpr int kLosses = 3;
    uint64_t last_good = 0;
    uint64_t failed_bytes = 0;
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
        // Fill the buffer but for 32 bytes, less than any flush needs, and
        // hold it.
        absl::StatusOr<StoreReservation> hold =
            store.log().Reserve(options.store.buffer_bytes - 64 - 24 - 32);
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
      EXPECT_EQ(store.flush_stats().failed, uint64_t{kLosses});
      failed_bytes = store.flush_stats().failed_bytes;
      last_good = *store.Flush(pid);
      ASSERT_TRUE(store.MkStable(last_good).ok());
    }
    auto store = PageStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    int markers = 0;
    uint64_t marker_bytes = 0;
    uint32_t last_type = 0;
    auto reader = *(*store)->log().NewLogReader();
    while (*reader->Next()) {
      if (reader->record().tag.type == kFailedFlushRecord) {
        ++markers;
        marker_bytes += RecordFootprint(reader->record().payload.size());
      }
      if (reader->record().address == last_good) {
        last_type = reader->record().tag.type;
      }
    }
    EXPECT_EQ(markers, kLosses);
    // What pagebench leaves out of the page state flushed.
    EXPECT_EQ(failed_bytes, marker_bytes);
    EXPECT_EQ(last_type, max_pieces == 1 ? kPageImageRecord : kPageDeltaRecord);
    EXPECT_EQ(*(*store)->table().Read(0), PageState::OnLog(last_good));
    absl::StatusOr<Page> page = (*store)->Read(0);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->base, std::string(8000, 'a'));
    EXPECT_EQ(page->deltas.size(), 2u * kLosses);
    EXPECT_EQ(page->deltas.back(), absl::StrCat("racing ", kLosses - 1));
  }
}

// A delta piece as Flush writes it (page_store.h).
std::string DeltaPiece(uint64_t previous, uint32_t pieces,
                       const std::vector<std::string>& deltas) {
  std::string out(reinterpret_cast<const char*>(&previous), 8);
  out.append(reinterpret_cast<const char*>(&pieces), 4);
  const uint32_t count = static_cast<uint32_t>(deltas.size());
  out.append(reinterpret_cast<const char*>(&count), 4);
  for (const std::string& d : deltas) {
    const uint32_t len = static_cast<uint32_t>(d.size());
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += d;
  }
  return out;
}

// A whole image with no deltas, as Flush writes it.
std::string Image(const std::string& base) {
  const uint32_t len = static_cast<uint32_t>(base.size());
  std::string out(reinterpret_cast<const char*>(&len), 4);
  out += base;
  out.append(4, '\0');
  return out;
}

// Flushes, makes the flush stable and evicts, so the next Read loads the
// page from the log; returns the flush's address.
uint64_t FlushAndEvict(PageStore& store, uint64_t pid) {
  absl::StatusOr<uint64_t> at = store.Flush(pid);
  EXPECT_TRUE(at.ok()) << at.status();
  if (!at.ok()) return 0;
  EXPECT_TRUE(store.MkStable(*at).ok());
  EXPECT_TRUE(store.Evict(pid).ok());
  return *at;
}

// Each flush writes only the deltas added since the previous one, linked to
// it; every max_flushed_pieces-th flush is a whole image again. Evicted,
// the page reads back whole from the chain, and so after reopening.
TEST(PageStoreTest, FlushesWriteDeltaPiecesAndAChainThatGrowsLongIsConsolidated) {
  const std::string path = TempPath("chain.log");
  PageStoreOptions options = SmallOptions();
  options.max_flushed_pieces = 4;
  const std::string base(3000, 'b');
  std::vector<std::string> deltas;
  uint64_t last = 0;
  {
    auto opened = PageStore::Open(path, options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    PageStore& store = **opened;
    const uint64_t pid = *store.Allocate();
    PageState s = *store.UpdateR(pid, PageState::Free(), base);
    uint64_t previous = 0;
    for (int flush = 0; flush < 10; ++flush) {
      SCOPED_TRACE(absl::StrCat("flush #", flush));
      // One, then two deltas since the last flush (the first flush has
      // none: the base alone).
      std::vector<std::string> fresh;
      for (int d = 0; flush > 0 && d < 1 + flush % 2; ++d) {
        fresh.push_back(absl::StrCat("delta ", flush, ".", d));
        s = *store.UpdateD(pid, s, fresh.back());
      }
      deltas.insert(deltas.end(), fresh.begin(), fresh.end());
      const PageStore::FlushStats stats = store.flush_stats();
      const uint64_t at = FlushAndEvict(store, pid);
      ASSERT_GT(at, previous);
      absl::StatusOr<LogRecord> record = store.log().Read(at);
      ASSERT_TRUE(record.ok()) << record.status();
      EXPECT_EQ(record->tag.key, pid);
      const uint32_t position = flush % 4 + 1;  // 1 2 3 4 1 2 3 4 1 2
      if (position == 1) {
        EXPECT_EQ(record->tag.type, kPageImageRecord);
        EXPECT_GT(record->payload.size(), base.size());
        EXPECT_EQ(store.flush_stats().images, stats.images + 1);
        EXPECT_EQ(store.flush_stats().consolidations,
                  stats.consolidations + (flush > 0 ? 1 : 0));
      } else {
        EXPECT_EQ(record->tag.type, kPageDeltaRecord);
        EXPECT_EQ(record->payload, DeltaPiece(previous, position, fresh));
        EXPECT_EQ(store.flush_stats().delta_pieces, stats.delta_pieces + 1);
      }
      EXPECT_EQ(store.flush_stats().bytes - stats.bytes,
                RecordFootprint(record->payload.size()));
      absl::StatusOr<Page> page = store.Read(pid);  // gathers the pieces
      ASSERT_TRUE(page.ok()) << page.status();
      EXPECT_EQ(page->base, base);
      EXPECT_EQ(page->deltas, deltas);
      s = page->state;
      EXPECT_EQ(*store.Flush(pid), at) << "a reloaded page is flushed";
      previous = at;
    }
    last = previous;
  }
  auto store = PageStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->table().Read(0), PageState::OnLog(last));
  absl::StatusOr<Page> page = (*store)->Read(0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, base);
  EXPECT_EQ(page->deltas, deltas);
}

// A page that was never flushed since its base was installed has no piece
// to link to: UpdateR, and Free then a new life of the PID, start the chain
// again with a whole image, and no piece of the old life shows.
TEST(PageStoreTest, UpdateRAndFreeStartTheChainAgain) {
  const std::string path = TempPath("restart.log");
  uint64_t pid = 0, freed = 0;
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    pid = *store->Allocate();
    freed = *store->Allocate();
    for (const uint64_t p : {pid, freed}) {
      PageState s = *store->UpdateR(p, PageState::Free(), "old");
      ASSERT_TRUE(store->Flush(p).ok());
      s = store->Read(p)->state;
      ASSERT_TRUE(store->UpdateD(p, s, "old delta").ok());
      const uint64_t at = FlushAndEvict(*store, p);
      EXPECT_EQ(store->log().Read(at)->tag.type, kPageDeltaRecord);
    }
    // Replaced: an image, then pieces linked to it.
    PageState s = store->Read(pid)->state;
    s = *store->UpdateR(pid, s, "new");
    const uint64_t image = *store->Flush(pid);
    EXPECT_EQ(store->log().Read(image)->tag.type, kPageImageRecord);
    s = store->Read(pid)->state;
    ASSERT_TRUE(store->UpdateD(pid, s, "new delta").ok());
    const uint64_t piece = FlushAndEvict(*store, pid);
    EXPECT_EQ(store->log().Read(piece)->payload,
              DeltaPiece(image, 2, {"new delta"}));
    // Freed and allocated again: the new life's first flush is an image.
    ASSERT_TRUE(store->Free(freed).ok());
    ASSERT_EQ(*store->Allocate(), freed);
    ASSERT_TRUE(store->UpdateR(freed, PageState::Free(), "reborn").ok());
    const uint64_t reborn = *store->Flush(freed);
    EXPECT_EQ(store->log().Read(reborn)->tag.type, kPageImageRecord);
    s = store->Read(freed)->state;
    ASSERT_TRUE(store->UpdateD(freed, s, "reborn delta").ok());
    const uint64_t reborn_piece = FlushAndEvict(*store, freed);
    EXPECT_EQ(store->log().Read(reborn_piece)->payload,
              DeltaPiece(reborn, 2, {"reborn delta"}));
    ASSERT_TRUE(store->log().Sync().ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Page> page = store->Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "new");
  EXPECT_THAT(page->deltas, ElementsAre("new delta"));
  page = store->Read(freed);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "reborn");
  EXPECT_THAT(page->deltas, ElementsAre("reborn delta"));
  // Freed for good: it stays free, though its pieces are on the log.
  ASSERT_TRUE(store->Free(freed).ok());
  ASSERT_TRUE(store->log().Sync().ok());
  store.reset();
  store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Read(freed).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->recovered_pages(), 1u);
}

// Recovery refuses a delta piece that does not continue its page's newest
// piece: after a free (it would bring the freed page back), on a page never
// flushed, linked past the newest piece, or at the wrong position.
TEST(PageStoreTest, RecoveryRefusesADeltaPieceThatDoesNotContinueItsPage) {
  const PageStoreOptions options = SmallOptions();
  struct Case {
    const char* name;
    bool free_first;     // image, free, then the piece
    bool second_image;   // image, image, then the piece (linked to the first)
    bool no_image;       // the piece alone
    uint32_t position;   // of the piece
    const char* expect;  // in the message
  };
  const Case cases[] = {
      {"after a free", true, false, false, 2,
       "whose image is not in the log"},
      {"never flushed", false, false, true, 2,
       "whose image is not in the log"},
      {"past the newest", false, true, false, 2, "#1 at offset "},
      {"wrong position", false, false, false, 3, "#1 at offset "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = TempPath("badpiece.log");
    uint64_t piece = 0;
    {
      auto log = LogStructuredStore::Open(path, options.store);
      ASSERT_TRUE(log.ok()) << log.status();
      const RecordTag image_tag{.type = kPageImageRecord, .key = 0};
      uint64_t image = 0;
      if (!c.no_image) image = *(*log)->Append(Image("old"), image_tag);
      if (c.second_image) {
        ASSERT_TRUE((*log)->Append(Image("x"), image_tag).ok());
      }
      if (c.free_first) {
        ASSERT_TRUE(
            (*log)->Append("F", RecordTag{.type = kPageFreedRecord, .key = 0})
                .ok());
      }
      absl::StatusOr<uint64_t> at = (*log)->Append(
          DeltaPiece(image, c.position, {"d"}),
          RecordTag{.type = kPageDeltaRecord, .key = 0});
      ASSERT_TRUE(at.ok()) << at.status();
      piece = *at;
      ASSERT_TRUE((*log)->Close().ok());
    }
    auto store = PageStore::Open(path, options);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
        << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(path));
    EXPECT_THAT(store.status().message(),
                HasSubstr(absl::StrCat("offset ", piece, " ")));
    EXPECT_THAT(store.status().message(), HasSubstr(c.expect));
  }
}

// The cleaner copied a delta piece (MovePiece) whose original stayed in the
// log (the block that holds it started before the range cleaned), and later
// the page's image went (the page was written whole again, its old pieces
// released). A replay then finds the original's link gone and the copy
// linking to the same place: the copy takes its place, not DataLoss, and
// the page's newer image decides. Without one the page is still DataLoss.
TEST(PageStoreTest, RecoveryTakesACopyOfAPieceWhoseImageWent) {
  const PageStoreOptions options = SmallOptions();
  for (const bool newer_image : {true, false}) {
    SCOPED_TRACE(newer_image ? "newer image" : "no newer image");
    const std::string path = TempPath("copy_of_broken.log");
    uint64_t copy = 0;
    {
      auto log = LogStructuredStore::Open(path, options.store);
      ASSERT_TRUE(log.ok()) << log.status();
      const RecordTag image_tag{.type = kPageImageRecord, .key = 0};
      const RecordTag piece_tag{.type = kPageDeltaRecord, .key = 0};
      const uint64_t image = *(*log)->Append(Image("old"), image_tag);
      ASSERT_TRUE((*log)->Sync().ok());  // the piece starts a new block
      const uint64_t piece =
          *(*log)->Append(DeltaPiece(image, 2, {"d"}), piece_tag);
      copy = *(*log)->Append(DeltaPiece(image, 2, {"d"}), piece_tag);
      if (newer_image) {
        ASSERT_TRUE((*log)->Append(Image("new"), image_tag).ok());
      }
      ASSERT_TRUE((*log)->Sync().ok());
      ASSERT_TRUE((*log)->Truncate(piece).ok());
      ASSERT_GT((*log)->head(), image);
      ASSERT_TRUE((*log)->Close().ok());
    }
    auto store = PageStore::Open(path, options);
    if (!newer_image) {
      EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
          << store.status();
      EXPECT_THAT(store.status().message(), HasSubstr(path));
      // The copy is the page's newest piece now.
      EXPECT_THAT(store.status().message(),
                  HasSubstr(absl::StrCat("offset ", copy)));
      continue;
    }
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<Page> page = (*store)->Read(0);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->base, "new");
    EXPECT_TRUE(page->deltas.empty());
  }
}

// Rewrites the delta piece at `at` in the file (record checksum made good
// again, so only the link is wrong) with `payload`, of the same length.
void RewritePiece(const std::string& path, uint64_t at, uint64_t pid,
                  const std::string& payload) {
  std::vector<std::byte> record(RecordFootprint(payload.size()));
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, record.data(), record.size(), static_cast<off_t>(at)),
            static_cast<ssize_t>(record.size()));
  std::memcpy(record.data() + kRecordHeaderBytes, payload.data(),
              payload.size());
  SealRecord(at, RecordTag{.type = kPageDeltaRecord, .key = pid},
             payload.size(), record);
  ASSERT_EQ(pwrite(fd, record.data(), record.size(), static_cast<off_t>(at)),
            static_cast<ssize_t>(record.size()));
  close(fd);
}

// An evicted page whose piece links to something that is not the piece one
// position lower of the same page (another page's image, an address inside
// a record, a piece at another position) is DataLoss naming the file and
// the offset the link points at; so is a link that does not point back.
TEST(PageStoreTest, ADamagedLinkIsDataLoss) {
  const std::string path = TempPath("badlink.log");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const uint64_t pid = *store->Allocate();
  const uint64_t other = *store->Allocate();
  ASSERT_TRUE(store->UpdateR(other, PageState::Free(), "other page").ok());
  const uint64_t other_image = FlushAndEvict(*store, other);
  PageState s = *store->UpdateR(pid, PageState::Free(), "base");
  const uint64_t image = *store->Flush(pid);
  s = store->Read(pid)->state;
  s = *store->UpdateD(pid, s, "d2");
  const uint64_t second = *store->Flush(pid);
  s = store->Read(pid)->state;
  ASSERT_TRUE(store->UpdateD(pid, s, "d3").ok());
  const uint64_t third = FlushAndEvict(*store, pid);
  ASSERT_TRUE(store->log().Sync().ok());
  ASSERT_EQ(store->log().Read(third)->payload, DeltaPiece(second, 3, {"d3"}));

  struct Case {
    const char* name;
    uint64_t link;
    std::string expect;
  };
  const Case cases[] = {
      {"another page's image", other_image,
       absl::StrCat(path, ": offset ", other_image, " (linked from offset ",
                    third, "): not piece #2 of page ", pid)},
      {"inside a record", second + 8,
       absl::StrCat(path, ": page ", pid, ": its piece at offset ",
                    second + 8, " (linked from offset ", third,
                    ") is unreadable")},
      {"the image, where piece #2 belongs", image,
       absl::StrCat("offset ", image, " (linked from offset ", third,
                    "): not piece #2 of page ", pid)},
      {"not back in the log", third,
       absl::StrCat(path, ": offset ", third, ": not a piece of page ",
                    pid)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RewritePiece(path, third, pid, DeltaPiece(c.link, 3, {"d3"}));
    absl::StatusOr<Page> page = store->Read(pid);
    ASSERT_FALSE(page.ok());
    EXPECT_EQ(page.status().code(), absl::StatusCode::kDataLoss)
        << page.status();
    EXPECT_THAT(page.status().message(), HasSubstr(c.expect));
  }
  // Repaired, the chain reads again: the failures came from the link alone.
  RewritePiece(path, third, pid, DeltaPiece(second, 3, {"d3"}));
  absl::StatusOr<Page> page = store->Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->base, "base");
  EXPECT_THAT(page->deltas, ElementsAre("d2", "d3"));
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
