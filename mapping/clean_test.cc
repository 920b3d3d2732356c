// PageStore::Clean: pages with pieces at the head of the log are written
// whole at the tail, and the log is truncated behind them. Every page must
// read as its last state before and after, across reopens, with updates
// and flushes going on between cleanings; freed pages stay freed.

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/io_ring.h"
#include "flush/io_ring_factory.h"
#include "gtest/gtest.h"
#include "mapping/page_store.h"

namespace lss {
namespace {

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

void ExpectPages(PageStore& store, const Model& model,
                 const std::vector<uint64_t>& freed) {
  for (const auto& [pid, want] : model) {
    absl::StatusOr<Page> page = store.Read(pid);
    ASSERT_TRUE(page.ok()) << "page " << pid << ": " << page.status();
    std::vector<std::string> got = {page->base};
    got.insert(got.end(), page->deltas.begin(), page->deltas.end());
    ASSERT_EQ(got, want) << "page " << pid;
  }
  for (uint64_t pid : freed) {
    EXPECT_EQ(store.Read(pid).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << "freed page " << pid << " came back";
  }
}

// Random updates, flushes, evictions and frees; everything flushed at the
// end and made durable.
void Churn(PageStore& store, Model& model, std::vector<uint64_t>& freed,
           std::mt19937_64& rng, int steps) {
  for (int step = 0; step < steps; ++step) {
    if (model.size() < 40 || rng() % 10 == 0) {
      const uint64_t pid = *store.Allocate();
      const std::string base = absl::StrCat("base ", pid, " ", step,
                                            std::string(rng() % 2000, 'b'));
      ASSERT_TRUE(store.UpdateR(pid, PageState::Free(), base).ok());
      model[pid] = {base};
      std::erase(freed, pid);
      continue;
    }
    auto it = model.begin();
    std::advance(it, rng() % model.size());
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
        if (rng() % 4 == 0) {
          ASSERT_TRUE(store.Free(pid).ok());
          freed.push_back(pid);
          model.erase(it);
        }
        break;
    }
  }
  for (const auto& [pid, want] : model) {
    absl::StatusOr<uint64_t> a = store.Flush(pid);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  ASSERT_TRUE(store.log().Sync().ok());
}

TEST(CleanTest, PagesSurviveCleaningAndReopening) {
  const std::string path = TempPath("clean.log");
  std::mt19937_64 rng(7);
  Model model;
  std::vector<uint64_t> freed;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    ExpectPages(**store, model, freed);
    Churn(**store, model, freed, rng, 600);
    const uint64_t head = (*store)->log().head();
    // Clean all but the last quarter of the log.
    const uint64_t to = head + ((*store)->HiStable() - head) * 3 / 4;
    ASSERT_TRUE((*store)->Clean(to).ok());
    EXPECT_GT((*store)->log().head(), head);
    EXPECT_GT((*store)->flush_stats().relocated, 0u);
    ExpectPages(**store, model, freed);
    // More changes after cleaning: new pieces link to relocated images.
    Churn(**store, model, freed, rng, 200);
    ExpectPages(**store, model, freed);
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectPages(**store, model, freed);
}

// A relocation writes what the page's last flush made stable; the changes
// since stay in memory for the page's next Flush. A page not flushed since
// its UpdateR has nothing stable in memory and is written as it is now:
// what that takes along counts as relocated until the page's next Flush
// finds it (it would have written it), then as new page state, and a
// second relocation before that Flush takes it along again.
TEST(CleanTest, RelocationsWriteTheFlushedState) {
  const std::string path = TempPath("clean_new_state.log");
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  // Pages a, c and d: flushed, then a delta no flush wrote.
  const uint64_t a = *s.Allocate();
  ASSERT_TRUE(s.UpdateR(a, PageState::Free(), std::string(1000, 'a')).ok());
  ASSERT_TRUE(s.Flush(a).ok());
  ASSERT_TRUE(s.UpdateD(a, s.Read(a)->state, "d1").ok());
  const uint64_t c = *s.Allocate();
  ASSERT_TRUE(s.UpdateR(c, PageState::Free(), std::string(900, 'c')).ok());
  ASSERT_TRUE(s.Flush(c).ok());
  ASSERT_TRUE(s.UpdateD(c, s.Read(c)->state, "d3").ok());
  const uint64_t d = *s.Allocate();
  ASSERT_TRUE(s.UpdateR(d, PageState::Free(), std::string(600, 'd')).ok());
  ASSERT_TRUE(s.Flush(d).ok());
  ASSERT_TRUE(s.UpdateD(d, s.Read(d)->state, "d4").ok());
  // Page b: flushed, then a new base no flush wrote.
  const uint64_t b = *s.Allocate();
  ASSERT_TRUE(s.UpdateR(b, PageState::Free(), std::string(700, 'b')).ok());
  ASSERT_TRUE(s.Flush(b).ok());
  ASSERT_TRUE(s.UpdateR(b, s.Read(b)->state, std::string(500, 'e')).ok());
  ASSERT_TRUE(s.log().Sync().ok());
  const PageStore::FlushStats before = s.flush_stats();
  ASSERT_TRUE(s.Clean(s.log().HiStable()).ok());
  ASSERT_TRUE(s.Clean(s.log().HiStable()).ok());
  // Images: u32 base length, base, u32 delta count (no deltas).
  const size_t image_a = RecordFootprint(4 + 1000 + 4);
  const size_t image_b = RecordFootprint(4 + 500 + 4);
  const size_t image_c = RecordFootprint(4 + 900 + 4);
  const size_t image_d = RecordFootprint(4 + 600 + 4);
  PageStore::FlushStats after = s.flush_stats();
  const size_t images = image_a + image_b + image_c + image_d;
  {
    // A crash now: the relocated images hold what the flushes wrote (b's,
    // what it is).
    ASSERT_TRUE(s.log().Sync().ok());
    const std::string crashed = path + ".crashed";
    std::filesystem::copy_file(
        path, crashed, std::filesystem::copy_options::overwrite_existing);
    auto copy = PageStore::Open(crashed, Options());
    ASSERT_TRUE(copy.ok()) << copy.status();
    ExpectPages(**copy, {{a, {std::string(1000, 'a')}},
                         {b, {std::string(500, 'e')}},
                         {c, {std::string(900, 'c')}},
                         {d, {std::string(600, 'd')}}},
                {});
  }
  EXPECT_EQ(after.relocated - before.relocated, 8u);
  EXPECT_EQ(after.bytes - before.bytes, 2 * images);
  EXPECT_EQ(after.relocated_bytes - before.relocated_bytes, 2 * images);
  EXPECT_EQ(after.relocated_new_bytes, before.relocated_new_bytes);
  // b: its flush has nothing left to write; what the relocations took
  // along is new page state. a and d: their flushes write their deltas
  // since, as delta pieces. c: replaced first.
  uint64_t end = s.log().AppendedEnd();
  ASSERT_TRUE(s.Flush(b).ok());
  EXPECT_EQ(s.log().AppendedEnd(), end);
  end = s.flush_stats().bytes;
  ASSERT_TRUE(s.Flush(a).ok());
  EXPECT_EQ(s.flush_stats().bytes - end, RecordFootprint(8 + 4 + 4 + 4 + 2));
  ASSERT_TRUE(s.UpdateD(d, s.Read(d)->state, "d5").ok());
  ASSERT_TRUE(s.Flush(d).ok());
  ASSERT_TRUE(s.UpdateR(c, s.Read(c)->state, std::string(800, 'f')).ok());
  ASSERT_TRUE(s.Flush(c).ok());
  after = s.flush_stats();
  EXPECT_EQ(after.relocated_new_bytes - before.relocated_new_bytes, image_b);
  EXPECT_EQ(after.relocated_bytes - before.relocated_bytes,
            2 * images - image_b);
  ExpectPages(s, {{a, {std::string(1000, 'a'), "d1"}},
                  {b, {std::string(500, 'e')}},
                  {c, {std::string(800, 'f')}},
                  {d, {std::string(600, 'd'), "d4", "d5"}}},
              {});
  ASSERT_TRUE(s.log().Sync().ok());
  for (uint64_t pid : {a, b, c, d}) ASSERT_TRUE(s.Evict(pid).ok()) << pid;
  ExpectPages(s, {{a, {std::string(1000, 'a'), "d1"}},
                  {b, {std::string(500, 'e')}},
                  {c, {std::string(800, 'f')}},
                  {d, {std::string(600, 'd'), "d4", "d5"}}},
              {});
}

// Updates and flushes from another thread while the cleaner runs: no
// update is lost, and the log reopens with every page.
TEST(CleanTest, CleaningRacesUpdates) {
  const std::string path = TempPath("clean_race.log");
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  constexpr int kPages = 64;
  std::vector<uint64_t> pids;
  for (int i = 0; i < kPages; ++i) {
    const uint64_t pid = *s.Allocate();
    ASSERT_TRUE(s.UpdateR(pid, PageState::Free(), absl::StrCat("p", i)).ok());
    ASSERT_TRUE(s.Flush(pid).ok());
    pids.push_back(pid);
  }
  ASSERT_TRUE(s.log().Sync().ok());
  std::vector<int> deltas(kPages, 0);
  std::thread writer([&] {
    std::mt19937_64 rng(3);
    for (int step = 0; step < 3000; ++step) {
      const int i = static_cast<int>(rng() % kPages);
      for (;;) {
        absl::StatusOr<Page> page = s.Read(pids[i]);
        ASSERT_TRUE(page.ok()) << page.status();
        if (s.UpdateD(pids[i], page->state, absl::StrCat("d", deltas[i]))
                .ok()) {
          break;
        }
      }
      ++deltas[i];
      if (step % 3 == 0) {
        absl::StatusOr<uint64_t> a = s.Flush(pids[i]);
        ASSERT_TRUE(a.ok() ||
                    a.status().code() == absl::StatusCode::kAborted)
            << a.status();
      }
    }
  });
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(s.log().Sync().ok());
    const uint64_t head = s.log().head();
    ASSERT_TRUE(s.Clean(head + (s.HiStable() - head) / 2).ok());
  }
  writer.join();
  for (int i = 0; i < kPages; ++i) {
    absl::StatusOr<uint64_t> a = s.Flush(pids[i]);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  ASSERT_TRUE(s.log().Sync().ok());
  store->reset();
  store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < kPages; ++i) {
    absl::StatusOr<Page> page = (*store)->Read(pids[i]);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->base, absl::StrCat("p", i));
    ASSERT_EQ(page->deltas.size(), static_cast<size_t>(deltas[i]));
    for (int d = 0; d < deltas[i]; ++d) {
      ASSERT_EQ(page->deltas[d], absl::StrCat("d", d));
    }
  }
}

// Shared by every ring of one store: once armed, the first read covering
// `address` is held once it has completed, before the reader sees it,
// until released. Reads by address have a ring of their own, so a Read
// that has read the newest piece of a page's chain stops there for as
// long as the test wants.
struct ReadHold {
  void Arm(uint64_t address) {
    std::lock_guard<std::mutex> lock(mu);
    armed = address;
  }
  void WaitHeld() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return held; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }

  std::mutex mu;
  std::condition_variable cv;
  std::optional<uint64_t> armed;
  bool held = false;
  bool released = false;
};

class HoldingRing final : public IoRing {
 public:
  HoldingRing(std::unique_ptr<IoRing> inner, ReadHold& hold)
      : inner_(std::move(inner)), hold_(hold) {}

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next) override {
    return inner_->PrepareWrite(fd, data, offset, tag, link_next);
  }
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next) override {
    {
      std::lock_guard<std::mutex> lock(hold_.mu);
      if (hold_.armed.has_value() && offset <= *hold_.armed &&
          *hold_.armed < offset + data.size()) {
        hold_.armed.reset();
        held_tag_ = tag;
      }
    }
    return inner_->PrepareRead(fd, data, offset, tag, link_next);
  }
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next) override {
    return inner_->PrepareDataSync(fd, tag, link_next);
  }
  absl::Status Submit() override { return inner_->Submit(); }
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override {
    absl::StatusOr<size_t> n = inner_->Reap(min_complete, max, out);
    if (!n.ok() || !held_tag_.has_value()) return n;
    for (size_t i = out.size() - *n; i < out.size(); ++i) {
      if (out[i].tag != *held_tag_) continue;
      held_tag_.reset();
      std::unique_lock<std::mutex> lock(hold_.mu);
      hold_.held = true;
      hold_.cv.notify_all();
      hold_.cv.wait(lock, [&] { return hold_.released; });
    }
    return n;
  }
  size_t pending() const override { return inner_->pending(); }
  size_t capacity() const override { return inner_->capacity(); }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override {
    return inner_->DirectIoAlignment(fd);
  }

 private:
  const std::unique_ptr<IoRing> inner_;
  ReadHold& hold_;
  // The held read's tag; only the thread that prepared it reaps this ring.
  std::optional<uint64_t> held_tag_;
};

// A Read of an evicted page has read the chain's newest piece when the
// cleaner relocates the page and truncates the log under the rest of the
// chain. The page moved, so the Read must load it from where it is now,
// not report the truncated piece as damage.
TEST(CleanTest, ReadLoadingAChainThatCleanTruncates) {
  const std::string path = TempPath("clean_read_race.log");
  ReadHold hold;
  PageStoreOptions options = Options();
  options.store.io_ring_factory =
      [&](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    absl::StatusOr<std::unique_ptr<IoRing>> inner = CreateIoRing(depth);
    if (!inner.ok()) return inner.status();
    return std::make_unique<HoldingRing>(*std::move(inner), hold);
  };
  auto store = PageStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  // A chain of two pieces in two blocks: an image, then a delta piece.
  const uint64_t pid = *s.Allocate();
  const std::string base(3000, 'b');
  ASSERT_TRUE(s.UpdateR(pid, PageState::Free(), base).ok());
  ASSERT_TRUE(s.Flush(pid).ok());
  ASSERT_TRUE(s.log().Sync().ok());
  absl::StatusOr<Page> page = s.Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_TRUE(s.UpdateD(pid, page->state, "delta").ok());
  absl::StatusOr<uint64_t> newest = s.Flush(pid);
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_TRUE(s.log().Sync().ok());
  ASSERT_TRUE(s.Evict(pid).ok());

  hold.Arm(*newest);
  absl::StatusOr<Page> read = absl::UnknownError("not read");
  std::thread reader([&] { read = s.Read(pid); });
  hold.WaitHeld();  // the reader is inside its load, at the newest piece
  const uint64_t to = s.HiStable();
  ASSERT_TRUE(s.Clean(to).ok());
  ASSERT_GT(s.log().head(), *newest);  // the whole old chain is gone
  hold.Release();
  reader.join();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->base, base);
  EXPECT_EQ(read->deltas, std::vector<std::string>{"delta"});
}


// A page of about 4 KiB flushed as a whole image; returns its address.
uint64_t WriteImage(PageStore& s, uint64_t pid, PageState expected,
                    const std::string& tag) {
  std::string base = absl::StrCat("page ", pid, " ", tag, " ");
  base.resize(4000, 'x');
  EXPECT_TRUE(s.UpdateR(pid, expected, base).ok());
  absl::StatusOr<uint64_t> a = s.Flush(pid);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.value_or(0);
}

// Pages of filler, each flushed once, until the log reaches `end`.
std::vector<uint64_t> FillTo(PageStore& s, uint64_t end) {
  std::vector<uint64_t> pids;
  while (s.log().AppendedEnd() < end) {
    const uint64_t pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "filler");
    pids.push_back(pid);
  }
  EXPECT_TRUE(s.log().Sync().ok());
  return pids;
}

// Records of no page until the log reaches `end`: the cleaner has nothing
// to relocate there.
void FillWithoutPages(PageStore& s, uint64_t end) {
  while (s.log().AppendedEnd() < end) {
    ASSERT_TRUE(s.log().Append(std::string(4000, 'r')).ok());
  }
}

// Writes a version 1 checkpoint (older builds) of `pieces`: PID -> its
// newest piece and that piece's position. u32 1, u32 0, u64 high water,
// u64 count, then per page u64 PID, u64 newest piece, u32 its position,
// u32 flags.
void WriteVersionOneCheckpoint(
    PageStore& s,
    const std::map<uint64_t, std::pair<uint64_t, uint32_t>>& pieces) {
  std::string bytes;
  auto put = [&](auto v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  put(uint32_t{1});
  put(uint32_t{0});
  put(uint64_t{pieces.rbegin()->first + 1});
  put(uint64_t{pieces.size()});
  for (const auto& [pid, piece] : pieces) {
    put(pid);
    put(piece.first);
    put(piece.second);
    put(uint32_t{0});
  }
  LogStructuredStore& log = s.log();
  ASSERT_TRUE(log.WriteCheckpoint(log.CheckpointBoundary(), bytes).ok());
}

// Adds `delta` to the page and flushes it as a delta piece, made durable;
// returns its address.
uint64_t FlushDelta(PageStore& s, uint64_t pid, const std::string& delta) {
  EXPECT_TRUE(s.UpdateD(pid, s.Read(pid)->state, delta).ok());
  absl::StatusOr<uint64_t> at = s.Flush(pid);
  EXPECT_TRUE(at.ok()) << at.status();
  EXPECT_TRUE(s.log().Sync().ok());
  return at.value_or(0);
}

// Appends a copy of the page's delta piece at `at`, as the cleaner would
// before it releases the original, made durable.
void AppendCopyOf(PageStore& s, uint64_t pid, uint64_t at) {
  absl::StatusOr<LogRecord> original = s.log().Read(at);
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_TRUE(s.log()
                  .Append(original->payload,
                          RecordTag{.type = kPageDeltaRecord, .key = pid})
                  .ok());
  ASSERT_TRUE(s.log().Sync().ok());
}

// Writes a version 2 checkpoint of page `pid` alone, as the newest piece
// listed, at `position` in its chain, with `listed` (address and bytes of
// each piece listed, oldest first): u32 2, u32 0, u64 high water, u64
// count, then u64 PID, u64 newest piece, u32 its position, u32 flags, u32
// pieces listed, and for each u64 address, u32 bytes.
void WriteOnePageCheckpoint(
    PageStore& s, uint64_t pid, uint32_t position,
    const std::vector<std::pair<uint64_t, uint32_t>>& listed) {
  std::string bytes;
  auto put = [&](auto v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  put(uint32_t{2});
  put(uint32_t{0});
  put(uint64_t{pid + 1});
  put(uint64_t{1});
  put(pid);
  put(listed.back().first);
  put(position);
  put(uint32_t{0});
  put(static_cast<uint32_t>(listed.size()));
  for (const auto& [address, piece_bytes] : listed) {
    put(address);
    put(piece_bytes);
  }
  LogStructuredStore& log = s.log();
  ASSERT_TRUE(log.WriteCheckpoint(log.CheckpointBoundary(), bytes).ok());
}

PageStoreOptions NoCheckpoints() {
  PageStoreOptions o = Options();
  o.checkpoints = false;
  return o;
}

// The region that holds `address`: [from, from + region_bytes).
uint64_t RegionOf(const PageStore& s, uint64_t address) {
  return address / s.region_bytes() * s.region_bytes();
}

// Cleaning regions in the middle of the log (CleanNext, CleanRange),
// churn between them: every page reads as its last state, and reopens read
// the same, resuming from a checkpoint and replaying the whole log (which
// then meets delta pieces whose chains start in released ranges).
TEST(CleanTest, PagesSurviveCleaningRegionsAndReopening) {
  const std::string path = TempPath("clean_regions.log");
  std::mt19937_64 rng(11);
  Model model;
  std::vector<uint64_t> freed;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto store = PageStore::Open(path, round % 2 == 0 ? Options()
                                                      : NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    ExpectPages(s, model, freed);
    Churn(s, model, freed, rng, 800);
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<Hole> cleaned = s.CleanNext();
      ASSERT_TRUE(cleaned.ok()) << cleaned.status();
      ExpectPages(s, model, freed);
      Churn(s, model, freed, rng, 100);
    }
    // A range in the middle, named by hand.
    const uint64_t from = RegionOf(s, s.log().head()) + 2 * s.region_bytes();
    if (from + s.region_bytes() <= s.log().CheckpointBoundary()) {
      ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
      EXPECT_FALSE(s.log().holes().empty());
    }
    ExpectPages(s, model, freed);
  }
  for (const PageStoreOptions& o : {Options(), NoCheckpoints()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    ExpectPages(**store, model, freed);
  }
}

// A free record in a released range: the page's older image lies below it
// and survives, so the cleaner must write the free again, or a replay of
// the log brings the page back. A later life of the PID is left alone.
TEST(CleanTest, FreeInAReleasedRangeStaysFree) {
  const std::string path = TempPath("clean_tombstone.log");
  uint64_t gone = 0;
  uint64_t reborn = 0;
  uint64_t reborn_late = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    gone = *s.Allocate();
    reborn = *s.Allocate();
    reborn_late = *s.Allocate();
    for (uint64_t pid : {gone, reborn, reborn_late}) {
      WriteImage(s, pid, PageState::Free(), "first life");
    }
    FillTo(s, 3 * s.region_bytes());
    const uint64_t from = RegionOf(s, s.log().AppendedEnd());
    ASSERT_TRUE(s.Free(reborn).ok());
    ASSERT_TRUE(s.Free(reborn_late).ok());
    // `reborn` lives again before the cleaning, `reborn_late` after it.
    const std::set<uint64_t> again = {*s.Allocate(), *s.Allocate()};
    ASSERT_EQ(again, (std::set<uint64_t>{reborn, reborn_late}));
    ASSERT_TRUE(s.Free(gone).ok());
    // Held, never written, so the filler below cannot take the PID.
    ASSERT_EQ(*s.Allocate(), gone);
    ASSERT_TRUE(s.log().Sync().ok());
    ASSERT_EQ(RegionOf(s, s.log().AppendedEnd()), from);
    FillTo(s, from + s.region_bytes());
    WriteImage(s, reborn, PageState::Free(), "second life");
    FillTo(s, from + 3 * s.region_bytes());
    ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
    ASSERT_EQ(s.log().holes().size(), 1u);
    EXPECT_LE(s.log().holes()[0].begin, from + (64 << 10));
    WriteImage(s, reborn_late, PageState::Free(), "second life");
    ASSERT_TRUE(s.log().Sync().ok());
  }
  for (const PageStoreOptions& o : {NoCheckpoints(), Options()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->Read(gone).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << "the freed page came back";
    for (uint64_t pid : {reborn, reborn_late}) {
      absl::StatusOr<Page> page = (*store)->Read(pid);
      ASSERT_TRUE(page.ok()) << page.status();
      EXPECT_TRUE(page->base.starts_with(
          absl::StrCat("page ", pid, " second life")))
          << page->base.substr(0, 40);
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
}

// A tombstone copied out of a released range is copied again each time
// its region is cleaned, but only until the head passes the free it stands
// for: below the head nothing of the life that free ended is left. (The
// reopens below cannot fail for want of the tombstone, since the page's
// image went with the head; they check that nothing else brings it back.)
TEST(CleanTest, ATombstoneIsDroppedOnceTheHeadPassesItsFree) {
  const std::string path = TempPath("clean_tombstone_head.log");
  uint64_t pid = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "only life");
    FillTo(s, 3 * s.region_bytes());
    const uint64_t from = RegionOf(s, s.log().AppendedEnd());
    ASSERT_TRUE(s.Free(pid).ok());
    // Held, never written, so the filler cannot take the PID.
    ASSERT_EQ(*s.Allocate(), pid);
    FillTo(s, from + 3 * s.region_bytes());
    auto records = [&](uint32_t type) {
      std::vector<uint64_t> found;
      auto reader = *s.log().NewLogReader();
      while (*reader->Next()) {
        const RecordView& r = reader->record();
        if (r.tag.type == type && r.tag.key == pid) found.push_back(r.address);
      }
      return found;
    };
    const std::vector<uint64_t> frees = records(kPageFreedRecord);
    ASSERT_EQ(frees.size(), 1u);
    ASSERT_EQ(RegionOf(s, frees[0]), from);
    // Its image is below the released range, so the free stays, copied.
    ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
    const std::vector<uint64_t> copied = records(kPageTombstoneRecord);
    ASSERT_EQ(copied.size(), 1u);
    ASSERT_TRUE(s.Clean(from + s.region_bytes()).ok());
    ASSERT_GT(s.log().head(), frees[0]);
    const uint64_t copy_from = RegionOf(s, copied[0]);
    ASSERT_GT(copy_from, s.log().head());
    FillTo(s, copy_from + 2 * s.region_bytes());
    ASSERT_TRUE(s.CleanRange(copy_from, copy_from + s.region_bytes()).ok());
    EXPECT_TRUE(records(kPageTombstoneRecord).empty());
    ASSERT_TRUE(s.log().Sync().ok());
  }
  for (const PageStoreOptions& o : {NoCheckpoints(), Options()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->Read(pid).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << "the freed page came back";
    ASSERT_TRUE((*store)->Close().ok());
  }
}

// A page's older image lies below a released range and its newest delta
// piece above it links into the range: the replay must take the delta
// piece's chain as cut (as below the head), not as a second life of the
// page, and the relocated image replaces it.
TEST(CleanTest, DeltaPieceLinkingIntoAReleasedRange) {
  const std::string path = TempPath("clean_link_hole.log");
  uint64_t pid = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "old");
    FillTo(s, 3 * s.region_bytes());
    absl::StatusOr<Page> page = s.Read(pid);
    ASSERT_TRUE(page.ok());
    const uint64_t image = WriteImage(s, pid, page->state, "new");
    FillTo(s, RegionOf(s, image) + 2 * s.region_bytes());
    page = s.Read(pid);
    ASSERT_TRUE(page.ok());
    ASSERT_TRUE(s.UpdateD(pid, page->state, "delta").ok());
    ASSERT_TRUE(s.Flush(pid).ok());
    FillTo(s, s.log().AppendedEnd() + s.region_bytes());
    const uint64_t from = RegionOf(s, image);
    ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
    EXPECT_EQ(s.Read(pid)->deltas, std::vector<std::string>{"delta"});
  }
  auto store = PageStore::Open(path, NoCheckpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<Page> page = (*store)->Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->base.starts_with(absl::StrCat("page ", pid, " new")));
  EXPECT_EQ(page->deltas, std::vector<std::string>{"delta"});
}

// A copy of a page's newest piece whose original the replay knows only by
// its address (from a version 1 checkpoint) replaces it as well.
TEST(CleanTest, ACopyReplacesAPieceAVersionOneCheckpointNames) {
  const std::string path = TempPath("clean_v1_copy.log");
  uint64_t pid = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "image");
    WriteVersionOneCheckpoint(s, {{pid, {FlushDelta(s, pid, "delta"), 2}}});
    ASSERT_TRUE(s.Close().ok());
  }
  {
    // Resumed from it; then a crash (no Close) after a copy of the next
    // piece.
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    ASSERT_NE(s.log().recovery().checkpoint, 0u);
    AppendCopyOf(s, pid, FlushDelta(s, pid, "after"));
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NE((*store)->log().recovery().checkpoint, 0u);
  absl::StatusOr<Page> page = (*store)->Read(pid);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->deltas, (std::vector<std::string>{"delta", "after"}));
}

// A region that holds only a page's newest piece, a delta piece: cleaning
// it copies that piece alone to the tail, linked where it was, whether the
// page is in memory (its deltas not flushed yet stay above the copy) or
// evicted. A page replaced since its last flush is written whole. Reopened
// (from a checkpoint or the whole log), every page reads the same.
TEST(CleanTest, ANewestDeltaPieceIsCopiedAlone) {
  const std::string path = TempPath("clean_move.log");
  uint64_t kept = 0;      // in memory, with a delta not flushed
  uint64_t evicted = 0;   // on the log
  uint64_t replaced = 0;  // UpdateR since its last flush
  {
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    kept = *s.Allocate();
    evicted = *s.Allocate();
    replaced = *s.Allocate();
    for (uint64_t pid : {kept, evicted, replaced}) {
      WriteImage(s, pid, PageState::Free(), "image");
    }
    // Then records of no page, so the region holds only the pieces.
    FillTo(s, 3 * s.region_bytes());
    const uint64_t from = RegionOf(s, s.log().AppendedEnd()) + s.region_bytes();
    FillWithoutPages(s, from);
    uint64_t piece_of_kept = 0;
    for (uint64_t pid : {kept, evicted, replaced}) {
      ASSERT_TRUE(s.UpdateD(pid, s.Read(pid)->state, "piece").ok());
      absl::StatusOr<uint64_t> at = s.Flush(pid);
      ASSERT_TRUE(at.ok()) << at.status();
      ASSERT_EQ(RegionOf(s, *at), from);
      if (pid == kept) piece_of_kept = *at;
    }
    ASSERT_TRUE(s.UpdateD(kept, s.Read(kept)->state, "unflushed").ok());
    ASSERT_TRUE(s.log().Sync().ok());
    ASSERT_TRUE(s.Evict(evicted).ok());
    ASSERT_TRUE(
        s.UpdateR(replaced, s.Read(replaced)->state, "replaced").ok());
    FillWithoutPages(s, from + 2 * s.region_bytes());
    ASSERT_TRUE(s.log().Sync().ok());
    // Each page's region costs what cleaning writes: the piece alone, but
    // `replaced`, given a new base since its flush, is written whole: its
    // chain's bytes (its image and the piece) stand for that.
    const size_t piece = RecordFootprint(8 + 4 + 4 + 4 + 5);
    const size_t image = RecordFootprint(4 + 4000 + 4);
    EXPECT_EQ(s.region_use(from).relocation, 3 * piece + image);
    const PageStore::FlushStats before = s.flush_stats();
    const uint64_t end = s.log().AppendedEnd();
    ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
    const PageStore::FlushStats after = s.flush_stats();
    EXPECT_EQ(after.moved - before.moved, 2u);
    EXPECT_EQ(after.relocated - before.relocated, 3u);
    EXPECT_EQ(after.images - before.images, 1u);  // `replaced`
    EXPECT_EQ(after.bytes - before.bytes,
              2 * piece + RecordFootprint(4 + 8 + 4));
    // The copy is the page's newest piece: the next flush links to it.
    const uint64_t flushed = s.flush_stats().bytes;
    absl::StatusOr<uint64_t> next = s.Flush(kept);
    ASSERT_TRUE(next.ok()) << next.status();
    absl::StatusOr<LogRecord> record = s.log().Read(*next);
    ASSERT_TRUE(record.ok()) << record.status();
    ASSERT_EQ(record->tag.type, kPageDeltaRecord);
    uint64_t link = 0;
    std::memcpy(&link, record->payload.data(), sizeof(link));
    EXPECT_GE(link, end);
    EXPECT_NE(link, piece_of_kept);
    EXPECT_EQ(s.flush_stats().bytes - flushed,
              RecordFootprint(8 + 4 + 4 + 4 + 9));
    ASSERT_TRUE(s.log().Sync().ok());
  }
  for (const PageStoreOptions& o : {Options(), NoCheckpoints()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    EXPECT_EQ(s.Read(kept)->deltas,
              (std::vector<std::string>{"piece", "unflushed"}));
    EXPECT_EQ(s.Read(evicted)->deltas, std::vector<std::string>{"piece"});
    EXPECT_EQ(s.Read(replaced)->base, "replaced");
    ASSERT_TRUE(s.Close().ok());
  }
}

// Copies of newest pieces race with updates, flushes and evictions of the
// same pages from two threads: a lost race is retried, and every page
// reads as its last state, then and after a reopen.
TEST(CleanTest, CopiedPiecesRaceWithUpdates) {
  const std::string path = TempPath("clean_move_race.log");
  constexpr int kThreads = 2;
  constexpr int kPages = 64;
  std::vector<uint64_t> pids;
  Model model;
  {
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    for (int i = 0; i < kPages; ++i) {
      pids.push_back(*s.Allocate());
      WriteImage(s, pids.back(), PageState::Free(), "image");
      model[pids.back()] = {s.Read(pids.back())->base};
    }
    const uint64_t from = RegionOf(s, s.log().AppendedEnd()) + s.region_bytes();
    FillWithoutPages(s, from);
    for (uint64_t pid : pids) {
      ASSERT_TRUE(s.UpdateD(pid, s.Read(pid)->state, "piece").ok());
      ASSERT_TRUE(s.Flush(pid).ok());
      model[pid].push_back("piece");
    }
    FillWithoutPages(s, from + 2 * s.region_bytes());
    ASSERT_TRUE(s.log().Sync().ok());
    const uint64_t moved = s.flush_stats().moved;
    std::atomic<bool> cleaned{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(t + 7);
        // Thread t owns the pages i with i % kThreads == t; those with
        // i % 4 != 0 are only updated, so their pieces stay the newest.
        for (int n = 0; !cleaned.load() || n < 2000; ++n) {
          const int i = rng() % (kPages / kThreads) * kThreads + t;
          const uint64_t pid = pids[i];
          if (i % 4 == 0 && rng() % 4 == 0) {
            absl::StatusOr<uint64_t> a = s.Flush(pid);
            ASSERT_TRUE(a.ok() || a.status().code() ==
                                      absl::StatusCode::kAborted)
                << a.status();
            if (!a.ok()) continue;
            ASSERT_TRUE(s.MkStable(*a).ok());
            const absl::Status e = s.Evict(pid);
            ASSERT_TRUE(e.ok() || e.code() == absl::StatusCode::kAborted ||
                        e.code() == absl::StatusCode::kFailedPrecondition)
                << e;
            continue;
          }
          const std::string delta = absl::StrCat("d", n);
          for (;;) {
            absl::StatusOr<Page> page = s.Read(pid);
            ASSERT_TRUE(page.ok()) << page.status();
            absl::StatusOr<PageState> u = s.UpdateD(pid, page->state, delta);
            if (u.ok()) break;
            ASSERT_EQ(u.status().code(), absl::StatusCode::kAborted)
                << u.status();
          }
          model.at(pid).push_back(delta);
        }
      });
    }
    ASSERT_TRUE(s.CleanRange(from, from + s.region_bytes()).ok());
    cleaned.store(true);
    for (std::thread& th : threads) th.join();
    EXPECT_GT(s.flush_stats().moved - moved, 0u);
    ExpectPages(s, model, {});
    for (uint64_t pid : pids) {
      for (;;) {
        absl::StatusOr<uint64_t> a = s.Flush(pid);
        if (a.ok()) break;
        ASSERT_EQ(a.status().code(), absl::StatusCode::kAborted);
      }
    }
    ASSERT_TRUE(s.Close().ok());
  }
  for (const PageStoreOptions& o : {Options(), NoCheckpoints()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    ExpectPages(**store, model, {});
  }
}

// A crash after the cleaner copied a page's newest piece and before the
// range went leaves both in the log: the copy takes the original's place,
// and pieces flushed after it link to it.
TEST(CleanTest, ACopiedPieceNextToItsOriginalReplacesIt) {
  const std::string path = TempPath("clean_move_both.log");
  uint64_t pid = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "image");
    AppendCopyOf(s, pid, FlushDelta(s, pid, "piece"));
  }
  for (int round = 0; round < 2; ++round) {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    absl::StatusOr<Page> page = s.Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    if (round == 1) {
      EXPECT_EQ(page->deltas, (std::vector<std::string>{"piece", "after"}));
      continue;
    }
    EXPECT_EQ(page->deltas, std::vector<std::string>{"piece"});
    ASSERT_TRUE(s.UpdateD(pid, page->state, "after").ok());
    ASSERT_TRUE(s.Flush(pid).ok());
    ASSERT_TRUE(s.log().Sync().ok());
    ASSERT_TRUE(s.Evict(pid).ok());
    EXPECT_EQ(s.Read(pid)->deltas,
              (std::vector<std::string>{"piece", "after"}));
  }
}

// The cleaner's accounting: a region whose pages all moved on holds nothing
// live and is the one CleanNext takes, relocating nothing; the
// accounting is the same after a reopen, from a checkpoint or from the
// whole log.
TEST(CleanTest, CleanNextTakesTheRegionThatMovedOn) {
  const std::string path = TempPath("clean_cheapest.log");
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  const uint64_t region = s.region_bytes();
  const uint64_t target = RegionOf(s, s.log().data_start()) + 3 * region;
  std::vector<uint64_t> pids = FillTo(s, target + 5 * region);
  for (uint64_t pid : pids) {
    absl::StatusOr<Page> page = s.Read(pid);
    ASSERT_TRUE(page.ok());
    absl::StatusOr<uint64_t> at = s.Flush(pid);
    ASSERT_TRUE(at.ok());
    // The region's last block may reach a buffer (64 KiB) into the next,
    // and it goes too.
    if (*at < target || *at >= target + region + (64 << 10)) continue;
    WriteImage(s, pid, page->state, "moved on");
  }
  ASSERT_TRUE(s.log().Sync().ok());
  EXPECT_EQ(s.region_use(target).live, 0u);
  EXPECT_EQ(s.region_use(target).relocation, 0u);
  EXPECT_GT(s.region_use(target - region).live, region / 2);
  EXPECT_GT(s.region_use(target - region).relocation, region / 2);
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> uses;
  for (uint64_t from = 0; from < s.log().AppendedEnd(); from += region) {
    uses[from] = {s.region_use(from).live, s.region_use(from).relocation};
  }
  ASSERT_TRUE(s.Close().ok());
  for (const PageStoreOptions& o : {Options(), NoCheckpoints()}) {
    store->reset();
    store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    for (const auto& [from, use] : uses) {
      EXPECT_EQ((*store)->region_use(from).live, use.first) << from;
      EXPECT_EQ((*store)->region_use(from).relocation, use.second) << from;
    }
  }
  PageStore& t = **store;
  const uint64_t relocated = t.flush_stats().relocated;
  absl::StatusOr<Hole> cleaned = t.CleanNext();
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  EXPECT_EQ(cleaned->begin, target);
  EXPECT_EQ(cleaned->end, target + region);
  EXPECT_EQ(t.flush_stats().relocated, relocated);
  for (uint64_t pid : pids) ASSERT_TRUE(t.Read(pid).ok()) << pid;
}


// A store resumed from a version 1 checkpoint (older builds) knows only each
// page's newest piece: the rest of a chain may lie in any region below it,
// so cleaning a region that holds a page's image must relocate the page,
// not release the image under its newer delta piece.
TEST(CleanTest, AVersionOneCheckpointKeepsWholeChains) {
  const std::string path = TempPath("clean_v1.log");
  // PID -> its newest piece and that piece's position.
  std::map<uint64_t, std::pair<uint64_t, uint32_t>> pieces;
  uint64_t pid = 0;
  uint64_t image = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    pid = *s.Allocate();
    std::vector<uint64_t> fillers = FillTo(s, 2 * s.region_bytes());
    image = WriteImage(s, pid, PageState::Free(), "chained");
    for (uint64_t filler :
         FillTo(s, RegionOf(s, image) + 3 * s.region_bytes())) {
      fillers.push_back(filler);
    }
    absl::StatusOr<Page> page = s.Read(pid);
    ASSERT_TRUE(page.ok());
    ASSERT_TRUE(s.UpdateD(pid, page->state, "delta").ok());
    pieces[pid] = {*s.Flush(pid), 2};
    for (uint64_t filler :
         FillTo(s, s.log().AppendedEnd() + s.region_bytes())) {
      fillers.push_back(filler);
    }
    for (uint64_t filler : fillers) pieces[filler] = {*s.Flush(filler), 1};
    WriteVersionOneCheckpoint(s, pieces);
    ASSERT_TRUE(s.Close().ok());
  }
  {
    auto store = PageStore::Open(path, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_NE((*store)->log().recovery().checkpoint, 0u);
    const uint64_t from = RegionOf(**store, image);
    ASSERT_TRUE((*store)->CleanRange(from, from + (*store)->region_bytes())
                    .ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  for (const PageStoreOptions& o : {NoCheckpoints(), Options()}) {
    auto store = PageStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<Page> page = (*store)->Read(pid);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_TRUE(page->base.starts_with(absl::StrCat("page ", pid, " chained")));
    EXPECT_EQ(page->deltas, std::vector<std::string>{"delta"});
  }
}


TEST(CleanTest, ARegionSmallerThanTwoBuffersIsRefused) {
  const std::string path = TempPath("clean_small_region.log");
  PageStoreOptions o = Options();
  o.cleaner.region_bytes = o.store.buffer_bytes;
  auto store = PageStore::Open(path, o);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument)
      << store.status();
  EXPECT_NE(store.status().message().find(path), std::string::npos);
}


TEST(CleanTest, ARangePastTheDurableBlocksIsRefused) {
  const std::string path = TempPath("clean_past.log");
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  FillTo(s, 2 * s.region_bytes());
  const uint64_t past = s.log().CheckpointBoundary() + s.region_bytes();
  const absl::Status refused = s.CleanRange(s.region_bytes(), past);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find(path), std::string::npos) << refused;
  EXPECT_TRUE(s.log().holes().empty());
}

// A range whose release would list one released range too many is
// refused before any page is relocated: relocations the release then
// refused would only use up the room left.
TEST(CleanTest, ARangeThatWouldAddAHoleTooManyIsRefusedFirst) {
  const std::string path = TempPath("clean_holes.log");
  auto store = PageStore::Open(path, NoCheckpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  // A block per page: each Sync ends one.
  std::vector<uint64_t> blocks;
  while (blocks.size() < 2 * kMaxHoles + 6) {
    const uint64_t pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "one block");
    ASSERT_TRUE(s.log().Sync().ok());
    const uint64_t at = s.log().AppendedEnd();
    if (blocks.empty() || at > blocks.back()) blocks.push_back(at);
  }
  // blocks[i] is where a block starts (or past it, in its header).
  for (size_t i = 0; i < kMaxHoles; ++i) {
    ASSERT_TRUE(s.log().Release(blocks[2 * i + 1], blocks[2 * i + 2]).ok())
        << i;
  }
  ASSERT_EQ(s.log().holes().size(), kMaxHoles);
  const uint64_t appended = s.log().AppendedEnd();
  const uint64_t from = blocks[2 * kMaxHoles + 2];
  const absl::Status refused = s.CleanRange(from, blocks[2 * kMaxHoles + 3]);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find(path), std::string::npos) << refused;
  EXPECT_EQ(s.log().AppendedEnd(), appended) << "it relocated pages first";
  EXPECT_EQ(s.log().holes().size(), kMaxHoles);
}

// Damage the replay must name rather than act on: a tombstone too short
// for its free's address.
TEST(CleanTest, AMalformedTombstoneIsDataLoss) {
  const std::string path = TempPath("clean_bad_tombstone.log");
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    const uint64_t pid = *(*store)->Allocate();
    WriteImage(**store, pid, PageState::Free(), "page");
    ASSERT_TRUE((*store)
                    ->log()
                    .Append("xyz", RecordTag{.type = kPageTombstoneRecord,
                                             .key = pid})
                    .ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = PageStore::Open(path, NoCheckpoints());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_NE(store.status().message().find(path), std::string::npos);
  EXPECT_NE(store.status().message().find("tombstone"), std::string::npos);
}

// And a version 2 checkpoint entry that leaves out pieces of its chain
// without marking them: the cleaner would release them under the page.
TEST(CleanTest, ACheckpointEntryMissingPiecesIsDataLoss) {
  const std::string path = TempPath("clean_bad_entry.log");
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    const uint64_t pid = *s.Allocate();
    WriteImage(s, pid, PageState::Free(), "page");
    absl::StatusOr<Page> page = s.Read(pid);
    ASSERT_TRUE(page.ok());
    ASSERT_TRUE(s.UpdateD(pid, page->state, "delta").ok());
    const uint64_t newest = *s.Flush(pid);
    ASSERT_TRUE(s.log().Sync().ok());
    // Its newest piece is #2, but only it is listed.
    WriteOnePageCheckpoint(s, pid, 2, {{newest, 100}});
    ASSERT_TRUE(s.Close().ok());
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_NE(store.status().message().find("lists 1 of its 2 pieces"),
            std::string::npos)
      << store.status();
}

// A checkpoint whose chain for a page disagrees with the log (its delta
// piece links to another image than the one the chain lists before it):
// the cleaner must not copy the piece under the wrong chain, nor release
// the range; it says where and why.
TEST(CleanTest, APieceThatDisagreesWithItsChainIsDataLoss) {
  const std::string path = TempPath("clean_bad_chain.log");
  uint64_t from = 0;
  uint64_t piece = 0;
  uint64_t old_image = 0;
  {
    auto store = PageStore::Open(path, NoCheckpoints());
    ASSERT_TRUE(store.ok()) << store.status();
    PageStore& s = **store;
    const uint64_t pid = *s.Allocate();
    ASSERT_EQ(pid, 0u);
    old_image = WriteImage(s, pid, PageState::Free(), "old");
    WriteImage(s, pid, s.Read(pid)->state, "new");
    from = RegionOf(s, s.log().AppendedEnd()) + s.region_bytes();
    FillWithoutPages(s, from);
    ASSERT_TRUE(s.UpdateD(pid, s.Read(pid)->state, "delta").ok());
    absl::StatusOr<uint64_t> at = s.Flush(pid);
    ASSERT_TRUE(at.ok()) << at.status();
    piece = *at;
    ASSERT_EQ(RegionOf(s, piece), from);
    FillWithoutPages(s, from + 2 * s.region_bytes());
    ASSERT_TRUE(s.log().Sync().ok());
    // Two pieces: the old image and the delta piece.
    WriteOnePageCheckpoint(s, pid, 2, {{old_image, 4096}, {piece, 64}});
    ASSERT_TRUE(s.Close().ok());
  }
  auto store = PageStore::Open(path, Options());
  ASSERT_TRUE(store.ok()) << store.status();
  PageStore& s = **store;
  const absl::Status cleaned = s.CleanRange(from, from + s.region_bytes());
  ASSERT_EQ(cleaned.code(), absl::StatusCode::kDataLoss) << cleaned;
  for (const std::string& part :
       {path, absl::StrCat("offset ", piece, ": not the delta piece of page 0 "
                           "linked to offset ", old_image)}) {
    EXPECT_NE(cleaned.message().find(part), std::string::npos) << cleaned;
  }
  EXPECT_TRUE(s.log().holes().empty());
  EXPECT_EQ(s.flush_stats().moved, 0u);
}

}  // namespace
}  // namespace lss
