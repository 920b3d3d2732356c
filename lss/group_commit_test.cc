// Group commit: many threads, each waiting for its own record to become
// durable, share blocks and fdatasyncs (issue 11, section 1).
//   - A thread that waits while a group commit is in flight joins the next
//     group instead of cutting a block for itself (checked by holding the
//     first group's completions back at the I/O ring).
//   - Durable small appends keep filling one flush buffer block by block:
//     the ring does not run dry.
//   - A waiter asleep is woken by what it waits for: its block handed to
//     the appender once the last copy into it ends (a race: the test hangs
//     without that wake-up only when the waiter fell asleep first), or a
//     failed fdatasync (every waiter then fails).
//   - Under simulated power loss (testing/sim_disk.h), every record whose
//     WaitStable returned OK reads back after the crash, byte for byte.

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/io_ring_factory.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"
#include "testing/sim_disk.h"
#include "testing/sim_store.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::lss::testing::TempPath;

// A self-describing payload: thread `stream`, its record `index`.
std::string Payload(uint64_t stream, uint64_t index) {
  return testing::Payload(stream, index,
                          16 + (stream * 131 + index * 17) % 200);
}

// Forwards to a real I/O ring, but Reap blocks while the gate is closed, so
// a test can hold a group commit in flight for as long as it likes.
class GatedIoRing final : public IoRing {
 public:
  explicit GatedIoRing(std::unique_ptr<IoRing> inner)
      : inner_(std::move(inner)) {}

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until a reaper is held at the closed gate.
  void AwaitHeldReaper() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return held_ > 0; });
  }

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next) override {
    return inner_->PrepareWrite(fd, data, offset, tag, link_next);
  }
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next) override {
    return inner_->PrepareRead(fd, data, offset, tag, link_next);
  }
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next) override {
    return inner_->PrepareDataSync(fd, tag, link_next);
  }
  absl::Status Submit() override { return inner_->Submit(); }
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++held_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
      --held_;
    }
    return inner_->Reap(min_complete, max, out);
  }
  size_t pending() const override { return inner_->pending(); }
  size_t capacity() const override { return inner_->capacity(); }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override {
    return inner_->DirectIoAlignment(fd);
  }

 private:
  const std::unique_ptr<IoRing> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int held_ = 0;
};

StoreOptions RealFileOptions() {
  StoreOptions o;
  o.buffer_bytes = 64 << 10;
  o.ring_size = 2;
  o.preallocate_bytes = 1 << 20;
  o.allow_buffered_fallback = true;
  return o;
}

// Appends `records` records one at a time, each waited for until stable,
// closes, reopens and reads every one back.
void DurableAppendsReadBack(const std::string& path, const StoreOptions& o,
                            int records) {
  std::vector<uint64_t> at;
  {
    auto store = LogStructuredStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < records; ++i) {
      absl::StatusOr<uint64_t> a = (*store)->Append(Payload(1, i));
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE((*store)->WaitStable(*a).ok());
      at.push_back(*a);
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto reopened = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  for (int i = 0; i < records; ++i) {
    absl::StatusOr<LogRecord> r = (*reopened)->Read(at[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->payload, Payload(1, i));
  }
}

TEST(GroupCommitTest, WaitersJoinTheNextGroupWhileOneIsInFlight) {
  const std::string path = TempPath("join.log");
  GatedIoRing* gate = nullptr;
  StoreOptions o = RealFileOptions();
  o.io_ring_factory =
      [&gate](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    absl::StatusOr<std::unique_ptr<IoRing>> inner = CreateIoRing(depth);
    if (!inner.ok()) return inner.status();
    auto ring = std::make_unique<GatedIoRing>(*std::move(inner));
    gate = ring.get();
    return ring;
  };
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  LogStructuredStore& log = **store;
  const uint64_t syncs_before = log.appender_stats().syncs;
  const uint64_t cuts_before = log.ring_stats().cuts;

  // The first group: one record, its write and fdatasync held at the gate.
  gate->Close();
  absl::StatusOr<uint64_t> first = log.Append(Payload(99, 0));
  ASSERT_TRUE(first.ok()) << first.status();
  std::thread leader([&] { EXPECT_TRUE(log.WaitStable(*first).ok()); });
  gate->AwaitHeldReaper();

  // Meanwhile every other thread appends and waits. None may cut a block
  // for itself while the first group is in flight.
  constexpr int kThreads = 12;
  std::mutex mu;
  std::condition_variable appended_cv;
  int appended = 0;
  std::vector<uint64_t> at(kThreads);
  std::vector<std::thread> waiters;
  for (int t = 0; t < kThreads; ++t) {
    waiters.emplace_back([&, t] {
      absl::StatusOr<uint64_t> a = log.Append(Payload(t, 0));
      ASSERT_TRUE(a.ok()) << a.status();
      at[t] = *a;
      {
        std::lock_guard<std::mutex> lock(mu);
        ++appended;
        appended_cv.notify_all();
      }
      EXPECT_TRUE(log.WaitStable(*a).ok());
      EXPECT_GT(log.HiStable(), *a);
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    appended_cv.wait(lock, [&] { return appended == kThreads; });
  }
  EXPECT_EQ(log.ring_stats().cuts, cuts_before + 1)
      << "a waiter cut a block while a group commit was in flight";
  gate->Open();
  leader.join();
  for (std::thread& w : waiters) w.join();

  // Two groups: the first record, then everyone else's in one block.
  EXPECT_EQ(log.ring_stats().cuts, cuts_before + 2);
  // One fdatasync each. The second, issued once the first group's write
  // was complete, covers both groups; it may complete first and release
  // everyone before the first one's completion is reaped.
  const uint64_t syncs = log.appender_stats().syncs - syncs_before;
  EXPECT_GE(syncs, 1u);
  EXPECT_LE(syncs, 2u);
  EXPECT_EQ(log.ring_stats().seals, 0u) << "a group cost a flush buffer";
  ASSERT_TRUE(log.Close().ok());

  auto reopened = LogStructuredStore::Open(path, RealFileOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<LogRecord> r = (*reopened)->Read(at[t]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->payload, Payload(t, 0));
  }
}

// A ring one operation deep cannot take a write with its fdatasync linked
// behind it: group commits then write and sync one after the other (they
// used to wait for ever for room for the pair).
TEST(GroupCommitTest, AQueueOneDeepStillCommits) {
  StoreOptions o = RealFileOptions();
  o.queue_depth = 1;
  DurableAppendsReadBack(TempPath("depth1.log"), o, 3);
}

// A leader's cut block is written only once every copy into it has ended.
// Its waiter, with nothing in flight meanwhile, sleeps until the block is
// handed to the appender; that hand-off must wake it (or the test hangs).
TEST(GroupCommitTest, AWaiterWhoseBlockStillHasAWriterWakesWhenItIsWritten) {
  const std::string path = TempPath("copying.log");
  auto store = LogStructuredStore::Open(path, RealFileOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  LogStructuredStore& log = **store;
  const uint64_t cuts_before = log.ring_stats().cuts;

  const std::string held = Payload(1, 0);
  absl::StatusOr<StoreReservation> copying = log.Reserve(held.size());
  ASSERT_TRUE(copying.ok()) << copying.status();
  absl::StatusOr<uint64_t> mine = log.Append(Payload(2, 0));
  ASSERT_TRUE(mine.ok()) << mine.status();
  std::atomic<bool> stable{false};
  std::thread waiter([&] {
    EXPECT_TRUE(log.WaitStable(*mine).ok());
    stable = true;
  });
  // The waiter leads: it cuts, below a copy that has not ended.
  while (log.ring_stats().cuts == cuts_before) std::this_thread::yield();
  EXPECT_FALSE(stable) << "durable before the block holding it was written";
  std::memcpy(copying->payload().data(), held.data(), held.size());
  const uint64_t held_at = log.Commit(*std::move(copying));
  waiter.join();
  EXPECT_TRUE(stable);
  ASSERT_TRUE(log.Close().ok());

  auto reopened = LogStructuredStore::Open(path, RealFileOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  absl::StatusOr<LogRecord> r = (*reopened)->Read(held_at);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload, held);
  r = (*reopened)->Read(*mine);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload, Payload(2, 0));
}

// Every thread asleep in a group commit wakes when its fdatasync fails, and
// none of them is told its record is durable.
TEST(GroupCommitTest, AFailedFdatasyncWakesEveryWaiter) {
  const std::string path = TempPath("eio.log");
  GatedIoRing* gate = nullptr;
  StoreOptions o = RealFileOptions();
  o.io_ring_factory =
      [&gate](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    testing::FakeIoRingOptions f;
    f.capacity = depth;
    f.fsync_eio_once = true;
    auto ring = std::make_unique<GatedIoRing>(
        std::make_unique<testing::FakeIoRing>(f));
    if (gate == nullptr) gate = ring.get();  // the appender's, made first
    return ring;
  };
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  LogStructuredStore& log = **store;

  gate->Close();
  constexpr int kThreads = 8;
  std::atomic<int> appended{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<uint64_t> a = log.Append(Payload(t, 0));
      EXPECT_TRUE(a.ok()) << a.status();
      ++appended;
      if (!a.ok() || !log.WaitStable(*a).ok()) ++failed;
    });
  }
  while (appended < kThreads) std::this_thread::yield();
  gate->AwaitHeldReaper();
  gate->Open();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed, kThreads);
  EXPECT_FALSE(log.Sync().ok());
}

// Two sessions, so the second one's group commits run after a recovered
// log, which they must leave alone. Over zero-ahead windows: off, one
// block (zeros just ahead of every group's block, never over one), the
// default and the largest.
class ZeroAheadTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ZeroAheadTest, DurableSmallAppendsKeepFillingOneBuffer) {
  const std::string path = TempPath("small.log");
  StoreOptions options = RealFileOptions();
  options.zero_ahead_bytes = GetParam();
  constexpr int kSessions = 2;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::vector<std::vector<uint64_t>> at(kSessions * kThreads);
  for (int session = 0; session < kSessions; ++session) {
    auto store = LogStructuredStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    LogStructuredStore& log = **store;
    std::vector<std::thread> threads;
    for (int t = session * kThreads; t < (session + 1) * kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          absl::StatusOr<uint64_t> a = log.Append(Payload(t, i));
          ASSERT_TRUE(a.ok()) << a.status();
          // Every other wait is a Sync: both scale the same way.
          absl::Status s = i % 2 == 0 ? log.WaitStable(*a) : log.Sync();
          ASSERT_TRUE(s.ok()) << s;
          ASSERT_GT(log.HiStable(), *a);
          at[t].push_back(*a);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const FlushBufferRing::Stats ring = log.ring_stats();
    const Appender::Stats io = log.appender_stats();
    // Each group is a block of a few KiB inside a 64 KiB buffer: a buffer
    // is sealed only when about ten groups have filled it.
    EXPECT_GT(ring.cuts, 0u);
    EXPECT_LE(ring.seals * 8, ring.cuts + 8)
        << ring.seals << " seals for " << ring.cuts << " cuts";
    EXPECT_LE(io.syncs, uint64_t{kThreads * kPerThread});
    ASSERT_TRUE(log.Close().ok());
  }
  auto reopened = LogStructuredStore::Open(path, options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->recovery().cut);
  for (int t = 0; t < kSessions * kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      absl::StatusOr<LogRecord> r = (*reopened)->Read(at[t][i]);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->payload, Payload(t, i)) << "thread " << t << " record " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Windows, ZeroAheadTest,
                         ::testing::Values(0, 4096,
                                           StoreOptions().zero_ahead_bytes,
                                           1 << 20));

// A window below a block zeroes a block at a time: logs of large blocks
// open with the default window, and their group commits keep every record.
TEST(GroupCommitTest, AZeroWindowBelowABlockZeroesABlock) {
  for (const auto& [block, window] :
       {std::pair<uint32_t, uint64_t>{1 << 20, StoreOptions().zero_ahead_bytes},
        std::pair<uint32_t, uint64_t>{4096, 512}}) {
    SCOPED_TRACE(absl::StrCat("block_bytes ", block, " zero_ahead_bytes ",
                              window));
    StoreOptions o = RealFileOptions();
    o.block_bytes = block;
    o.buffer_bytes = 4 * size_t{block};
    o.preallocate_bytes = 8 * uint64_t{block};
    o.zero_ahead_bytes = window;
    DurableAppendsReadBack(TempPath(absl::StrCat("window", block, ".log")), o,
                           20);
  }
}

StoreOptions SimOptions(testing::SimDisk& disk, uint64_t seed) {
  testing::SimStoreKnobs knobs;
  knobs.ring.seed = seed;
  knobs.ring.reorder = true;
  knobs.ring.max_delay_reaps = 2;
  StoreOptions o = testing::SimStoreOptions(disk, knobs);
  o.durability = seed % 3 == 0 ? Durability::kSync : Durability::kOnWait;
  return o;
}

TEST(GroupCommitTest, EveryAcknowledgedRecordSurvivesPowerLoss) {
  constexpr int kCrashes = 150;
  constexpr int kThreads = 6;
  constexpr char kPath[] = "/sim/group.log";
  const uint64_t first_seed = std::random_device{}();
  uint64_t checked = 0;
  for (int crash = 0; crash < kCrashes; ++crash) {
    const uint64_t seed = first_seed + crash;
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    testing::SimDiskOptions disk_options;
    disk_options.direct_io_alignment = 512;
    testing::SimDisk disk(disk_options);
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> acked(kThreads);
    {
      auto store = LogStructuredStore::Open(kPath, SimOptions(disk, seed));
      ASSERT_TRUE(store.ok()) << store.status();
      LogStructuredStore& log = **store;
      // The power goes at a random mutation while the threads commit.
      disk.FailAfter(disk.mutations() + 1 + rng() % 120);
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          for (uint64_t i = 0;; ++i) {
            absl::StatusOr<uint64_t> a = log.Append(Payload(t, i));
            if (!a.ok()) return;
            if (!log.WaitStable(*a).ok()) return;
            acked[t].emplace_back(i, *a);
          }
        });
      }
      for (std::thread& t : threads) t.join();
    }
    disk.Crash(seed);
    auto reopened = LogStructuredStore::Open(kPath, SimOptions(disk, seed));
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    for (int t = 0; t < kThreads; ++t) {
      for (const auto& [i, address] : acked[t]) {
        absl::StatusOr<LogRecord> r = (*reopened)->Read(address);
        ASSERT_TRUE(r.ok()) << "acknowledged record " << t << "/" << i
                            << " at " << address << ": " << r.status();
        ASSERT_EQ(r->payload, Payload(t, i));
        ++checked;
      }
    }
  }
  // The crashes came after many groups, not before the first.
  EXPECT_GT(checked, uint64_t{kCrashes} * 10);
  std::printf("%d crashes, %llu acknowledged records read back\n", kCrashes,
              static_cast<unsigned long long>(checked));
}

}  // namespace
}  // namespace lss
