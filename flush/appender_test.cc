// The appender against FakeIoRing: every fault the fake can inject, many
// seeds each (the seed is printed on failure). Records are self-describing,
// so "present byte for byte at its address" is checked for every record
// that the appender ever reported stable.

#include "flush/appender.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ring/flush_buffer_ring.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"

namespace lss {
namespace {

// Appender::StartRead and FinishRead on a working ring: the read is never
// abandoned.
absl::Status ReadAll(Appender& appender, uint64_t offset,
                     std::span<std::byte> out) {
  absl::StatusOr<uint64_t> ticket = appender.StartRead(offset, out);
  if (!ticket.ok()) return ticket.status();
  bool abandoned = true;
  absl::Status s = appender.FinishRead(*ticket, abandoned);
  EXPECT_FALSE(abandoned);
  return s;
}

using ::lss::testing::FakeIoRing;
using ::lss::testing::FakeIoRingOptions;
using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;
using ::testing::HasSubstr;

constexpr int kFd = 3;
constexpr uint64_t kStart = 4096;  // as if a superblock came first

using Record = ::lss::testing::AppendedRecord;

struct Workload {
  FakeIoRingOptions fake;
  WritePolicy policy = WritePolicy::kTailLocalized;
  Durability durability = Durability::kOnWait;
  size_t buffer_bytes = 16384;
  size_t ring_size = 3;
  int threads = 2;
  int records_per_thread = 400;
  size_t max_record = 3000;
};

// Ring + appender + fake, torn down in the right order (appender drains
// before the ring's memory goes away).
class Harness {
 public:
  explicit Harness(const Workload& setup) : setup_(setup) {
    fake_ = std::make_unique<FakeIoRing>(setup.fake);
    AppenderOptions options;
    options.fd = kFd;
    options.path = "/fake/log";
    options.policy = setup.policy;
    options.durability = setup.durability;
    options.direct_io = setup.fake.direct_io_alignment != 0;
    options.alignment =
        setup.fake.direct_io_alignment ? setup.fake.direct_io_alignment : 512;
    options.start_address = kStart;
    appender_ = std::make_unique<Appender>(fake_.get(), options);
    FlushBufferRingOptions ring;
    ring.buffer_bytes = setup.buffer_bytes;
    ring.ring_size = setup.ring_size;
    ring.start_address = kStart;
    ring.pages = AlignedBuffer::Pages::kOrdinary;
    auto created = FlushBufferRing::Create(ring, appender_.get());
    EXPECT_TRUE(created.ok()) << created.status();
    ring_ = *std::move(created);
    appender_->set_ring(ring_.get());
  }
  ~Harness() {
    appender_.reset();
    ring_.reset();
  }

  // Appends from setup.threads threads. Stops a thread at its first error.
  // While appending, checks that everything below HiStable() is on the
  // fake's disk (durable disk under kSync).
  void AppendAll(uint64_t seed) {
    std::vector<std::thread> threads;
    std::vector<std::vector<Record>> per_thread(setup_.threads);
    for (int t = 0; t < setup_.threads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 31 + t);
        std::uniform_int_distribution<size_t> size(1, setup_.max_record);
        for (int i = 0; i < setup_.records_per_thread; ++i) {
          const size_t len = size(rng);
          absl::StatusOr<Reservation> r = ring_->Reserve(len);
          if (!r.ok()) {
            std::lock_guard<std::mutex> lock(error_mu_);
            if (first_error_.ok()) first_error_ = r.status();
            return;
          }
          FillPayload(t, i, r->data());
          per_thread[t].push_back({uint64_t(t), uint64_t(i), r->address(), len});
          ring_->Commit(*std::move(r));
          if (i % 64 == 0) CheckStablePrefix(per_thread[t]);
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& v : per_thread) {
      records_.insert(records_.end(), v.begin(), v.end());
    }
  }

  // Seals the partial buffer and waits until all of it is stable.
  absl::Status SyncAll() {
    absl::StatusOr<uint64_t> end = ring_->SealCurrent();
    if (!end.ok()) return end.status();
    return appender_->WaitStable(*end);
  }

  // Every record that ends at or below HiStable() is on disk byte for byte.
  void CheckStablePrefix(const std::vector<Record>& records) {
    const uint64_t stable = appender_->HiStable();
    const std::string disk = Disk();
    for (const Record& r : records) {
      if (r.address + r.len > stable) continue;
      ASSERT_LE(r.address + r.len, disk.size())
          << "stable record " << r.stream << "/" << r.index << " at "
          << r.address << " is past the end of the disk";
      const auto bad = FirstPayloadMismatch(
          r.stream, r.index,
          std::as_bytes(std::span(disk.data() + r.address, r.len)));
      ASSERT_FALSE(bad.has_value())
          << "stable record " << r.stream << "/" << r.index << " at "
          << r.address << " differs at byte " << *bad << " (hi_stable "
          << stable << ")";
    }
  }

  std::string Disk() const {
    return setup_.durability == Durability::kSync ? fake_->durable_image(kFd)
                                                  : fake_->image(kFd);
  }

  const std::vector<Record>& records() const { return records_; }
  absl::Status first_error() {
    std::lock_guard<std::mutex> lock(error_mu_);
    return first_error_;
  }
  FakeIoRing& fake() { return *fake_; }
  Appender& appender() { return *appender_; }
  FlushBufferRing& ring() { return *ring_; }

 private:
  const Workload setup_;
  std::unique_ptr<FakeIoRing> fake_;
  std::unique_ptr<Appender> appender_;
  std::unique_ptr<FlushBufferRing> ring_;
  std::vector<Record> records_;
  std::mutex error_mu_;
  absl::Status first_error_;  // the first failed Reserve
};

// Runs the workload and expects every record stable and on disk.
void ExpectAllStable(Workload setup, uint64_t seed) {
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  setup.fake.seed = seed;
  Harness h(setup);
  h.AppendAll(seed);
  ASSERT_EQ(h.records().size(),
            size_t(setup.threads) * setup.records_per_thread)
      << h.first_error();
  ASSERT_TRUE(h.SyncAll().ok()) << h.appender().status();
  h.CheckStablePrefix(h.records());
  uint64_t end = 0;
  for (const Record& r : h.records()) end = std::max(end, r.address + r.len);
  EXPECT_GE(h.appender().HiStable(), end);
}

constexpr int kSeeds = 40;

// B1: completions in any order; hi_stable only ever covers a fully written
// (and under kSync, synced) prefix.
TEST(AppenderFaultTest, ReorderedDelayedCompletions) {
  for (auto durability : {Durability::kOnWait, Durability::kSync}) {
    for (int seed = 1; seed <= kSeeds; ++seed) {
      Workload s;
      s.durability = durability;
      s.fake.reorder = true;
      s.fake.max_delay_reaps = 3;
      ExpectAllStable(s, seed);
    }
  }
}

// B2: short writes continue with the remainder.
TEST(AppenderFaultTest, AlignedShortWritesComplete) {
  for (int one_in : {2, 16, 128}) {
    for (int seed = 1; seed <= kSeeds / 4; ++seed) {
      Workload s;
      s.fake.direct_io_alignment = 512;
      s.fake.short_write_one_in = one_in;
      s.fake.short_write_aligned = true;
      s.fake.reorder = true;
      ExpectAllStable(s, seed);
    }
  }
}

TEST(AppenderFaultTest, BufferedUnalignedShortWritesComplete) {
  for (int seed = 1; seed <= kSeeds / 4; ++seed) {
    Workload s;
    s.fake.short_write_one_in = 4;
    s.fake.short_write_aligned = false;
    ExpectAllStable(s, seed);
  }
}

TEST(AppenderFaultTest, UnalignedShortWriteUnderODirectIsDataLoss) {
  for (int seed = 1; seed <= kSeeds / 4; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    Workload s;
    s.fake.seed = seed;
    s.fake.direct_io_alignment = 512;
    s.fake.short_write_one_in = 2;
    s.fake.short_write_aligned = false;
    Harness h(s);
    h.AppendAll(seed);
    const absl::Status synced = h.SyncAll();
    EXPECT_EQ(synced.code(), absl::StatusCode::kDataLoss) << synced;
    EXPECT_THAT(synced.message(), HasSubstr("/fake/log"));
    EXPECT_EQ(h.appender().status(), synced) << "the error is not sticky";
    h.CheckStablePrefix(h.records());
  }
}

// B3: transient errors are retried, and counted.
TEST(AppenderFaultTest, TransientErrorsAreRetried) {
  for (int one_in : {4, 32}) {
    for (int seed = 1; seed <= kSeeds / 4; ++seed) {
      SCOPED_TRACE(absl::StrCat("seed=", seed, " one_in=", one_in));
      Workload s;
      s.fake.seed = seed;
      s.fake.eagain_one_in = one_in;
      s.fake.eintr_one_in = one_in;
      s.durability = Durability::kSync;
      Harness h(s);
      h.AppendAll(seed);
      ASSERT_TRUE(h.SyncAll().ok()) << h.appender().status();
      h.CheckStablePrefix(h.records());
      EXPECT_EQ(h.appender().stats().retries,
                h.fake().injected_eagain() + h.fake().injected_eintr());
    }
  }
}

struct FatalCase {
  std::string name;
  void (*configure)(FakeIoRingOptions&);
  absl::StatusCode code;
};

// B4: permanent errors make the appender fail, stickily, with the file,
// offset and errno in the message; nothing becomes stable after them.
TEST(AppenderFaultTest, PermanentErrorsAreStickyAndNeverAcknowledged) {
  const std::vector<FatalCase> cases = {
      {"EIO", [](FakeIoRingOptions& o) { o.eio_one_in = 5; },
       absl::StatusCode::kDataLoss},
      {"ENOSPC", [](FakeIoRingOptions& o) { o.enospc_after_bytes = 50000; },
       absl::StatusCode::kResourceExhausted},
      {"EFBIG", [](FakeIoRingOptions& o) { o.efbig_at_offset = 40960; },
       absl::StatusCode::kResourceExhausted},
      // The fake demands 8 KiB alignment; the ring pads to 4 KiB.
      {"EINVAL", [](FakeIoRingOptions& o) { o.direct_io_alignment = 8192; },
       absl::StatusCode::kInternal},
  };
  for (const FatalCase& c : cases) {
    for (int seed = 1; seed <= kSeeds / 4; ++seed) {
      SCOPED_TRACE(absl::StrCat(c.name, " seed=", seed));
      Workload s;
      s.fake.seed = seed;
      c.configure(s.fake);
      Harness h(s);
      h.AppendAll(seed);
      const absl::Status synced = h.SyncAll();
      ASSERT_EQ(synced.code(), c.code) << synced;
      EXPECT_THAT(synced.message(), HasSubstr("/fake/log"));
      EXPECT_THAT(synced.message(), HasSubstr("offset"));
      EXPECT_THAT(synced.message(), HasSubstr("errno"));
      const uint64_t stable = h.appender().HiStable();
      EXPECT_EQ(h.appender().WaitStable(stable + 1), synced);
      EXPECT_EQ(h.appender().HelpDrain(), synced);
      EXPECT_EQ(h.appender().HiStable(), stable) << "acknowledged after failure";
      h.CheckStablePrefix(h.records());
      EXPECT_EQ(h.appender().stats().retries, 0u) << "a permanent error was retried";
    }
  }
}

// B5: kSerialized writes reach the disk in LSS order even when the fake
// would execute independent operations in any order.
TEST(AppenderFaultTest, SerializedWritesExecuteInAddressOrder) {
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    Workload s;
    s.fake.seed = seed;
    s.fake.reorder = true;
    s.fake.max_delay_reaps = 2;
    s.fake.short_write_one_in = 8;
    s.fake.short_write_aligned = true;
    s.fake.direct_io_alignment = 512;
    s.policy = WritePolicy::kSerialized;
    Harness h(s);
    h.AppendAll(seed);
    ASSERT_TRUE(h.SyncAll().ok()) << h.appender().status();
    h.CheckStablePrefix(h.records());
    uint64_t next = kStart;
    for (const FakeIoRing::Event& e : h.fake().events()) {
      if (e.kind != FakeIoRing::Event::Kind::kWrite || e.result <= 0) continue;
      ASSERT_EQ(e.offset, next) << "write executed out of LSS order";
      next = e.offset + e.result;
    }
  }
}

// The same workload under kTailLocalized does reorder (so the test above
// could fail): at least one seed executes a write ahead of its predecessor.
TEST(AppenderFaultTest, TailLocalizedWritesDoRunOutOfOrder) {
  bool out_of_order = false;
  for (int seed = 1; seed <= kSeeds && !out_of_order; ++seed) {
    Workload s;
    s.fake.seed = seed;
    s.fake.reorder = true;
    s.fake.max_delay_reaps = 2;
    Harness h(s);
    h.AppendAll(seed);
    ASSERT_TRUE(h.SyncAll().ok()) << h.appender().status();
    uint64_t max_end = 0;
    for (const FakeIoRing::Event& e : h.fake().events()) {
      if (e.kind != FakeIoRing::Event::Kind::kWrite || e.result <= 0) continue;
      if (e.offset < max_end) out_of_order = true;
      max_end = std::max<uint64_t>(max_end, e.offset + e.result);
    }
  }
  EXPECT_TRUE(out_of_order);
}

// B6 (fsyncgate): a failed fdatasync is never retried and nothing it
// covered is acknowledged.
TEST(AppenderFaultTest, FailedDataSyncIsStickyAndNotRetried) {
  for (int seed = 1; seed <= kSeeds / 4; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    Workload s;
    s.fake.seed = seed;
    s.fake.fsync_eio_once = true;
    s.durability = Durability::kSync;
    Harness h(s);
    h.AppendAll(seed);
    const absl::Status synced = h.SyncAll();
    EXPECT_EQ(synced.code(), absl::StatusCode::kDataLoss) << synced;
    EXPECT_THAT(synced.message(), HasSubstr("fdatasync"));
    EXPECT_EQ(h.appender().HiStable(), kStart) << "acknowledged unsynced data";
    int syncs = 0;
    for (const FakeIoRing::Event& e : h.fake().events()) {
      if (e.kind == FakeIoRing::Event::Kind::kDataSync) ++syncs;
    }
    EXPECT_EQ(syncs, 1) << "the failed fdatasync was retried";
  }
}

// B7: a full or busy submission queue loses nothing.
TEST(AppenderFaultTest, FullAndBusyQueuesLoseNothing) {
  for (int seed = 1; seed <= kSeeds / 2; ++seed) {
    Workload s;
    s.fake.capacity = 2;
    s.fake.sq_full_one_in = 3;
    s.fake.ebusy_on_submit_one_in = 3;
    s.fake.reorder = true;
    s.durability = seed % 2 ? Durability::kSync : Durability::kOnWait;
    ExpectAllStable(s, seed);
  }
}

// B8: tearing down with writes in flight reaps them all first (ASan would
// catch the fake touching freed ring memory).
TEST(AppenderFaultTest, TeardownWithWritesInFlightDrains) {
  for (int seed = 1; seed <= kSeeds / 4; ++seed) {
    Workload s;
    s.fake.seed = seed;
    s.fake.max_delay_reaps = 8;
    s.ring_size = 4;
    Harness h(s);
    h.AppendAll(seed);
    ASSERT_TRUE(h.ring().SealCurrent().ok());
    // ~Harness destroys the appender (which drains) before the ring.
  }
}

// Reads through the appender's IoRing return exactly the file's bytes, with
// completions reordered and delayed, short reads, EAGAIN and EINTR.
TEST(AppenderReadTest, ReadsReturnTheFileBytesDespiteFaults) {
  for (int seed = 1; seed <= kSeeds / 4; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    Workload s;
    s.fake.seed = seed;
    s.fake.direct_io_alignment = 512;
    s.fake.reorder = true;
    s.fake.max_delay_reaps = 3;
    s.fake.short_read_one_in = 3;
    s.fake.eagain_one_in = 11;
    s.fake.eintr_one_in = 13;
    s.records_per_thread = 100;
    Harness h(s);
    h.AppendAll(seed);
    ASSERT_TRUE(h.SyncAll().ok());
    const std::string disk = h.fake().image(kFd);
    AlignedBuffer out = *AlignedBuffer::Allocate(
        8192, 512, AlignedBuffer::Pages::kOrdinary);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 50; ++i) {
      const uint64_t blocks = (disk.size() - kStart) / 512;
      const uint64_t offset = kStart + 512 * (rng() % (blocks - 16));
      const size_t len = 512 * (1 + rng() % 16);
      ASSERT_TRUE(ReadAll(h.appender(), offset, out.span().first(len)).ok());
      ASSERT_EQ(std::memcmp(out.data(), disk.data() + offset, len), 0)
          << "read of " << len << " at " << offset;
    }
    EXPECT_GT(h.fake().injected().short_reads, 0u);
  }
}

TEST(AppenderReadTest, AReadErrorIsReturnedButDoesNotFailTheAppender) {
  Workload s;
  s.fake.read_eio_one_in = 1;
  s.records_per_thread = 50;
  Harness h(s);
  h.AppendAll(1);
  ASSERT_TRUE(h.SyncAll().ok());
  AlignedBuffer out =
      *AlignedBuffer::Allocate(4096, 512, AlignedBuffer::Pages::kOrdinary);
  const absl::Status read = ReadAll(h.appender(), kStart, out.span());
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
  EXPECT_THAT(read.message(), HasSubstr("/fake/log"));
  EXPECT_THAT(read.message(), HasSubstr(absl::StrCat("offset ", kStart)));
  EXPECT_TRUE(h.appender().status().ok());
  h.AppendAll(2);
  EXPECT_TRUE(h.SyncAll().ok());
}

TEST(AppenderReadTest, ReadingPastTheEndIsOutOfRange) {
  Workload s;
  s.records_per_thread = 10;
  Harness h(s);
  h.AppendAll(1);
  ASSERT_TRUE(h.SyncAll().ok());
  const uint64_t end = h.fake().image(kFd).size();
  AlignedBuffer out =
      *AlignedBuffer::Allocate(4096, 512, AlignedBuffer::Pages::kOrdinary);
  const absl::Status read = ReadAll(h.appender(), end, out.span());
  EXPECT_EQ(read.code(), absl::StatusCode::kOutOfRange) << read;
}

TEST(AppenderReadTest, AfterAFailureReadsReturnTheStickyError) {
  Workload s;
  s.fake.eio_one_in = 1;
  s.records_per_thread = 50;
  Harness h(s);
  h.AppendAll(1);
  EXPECT_FALSE(h.SyncAll().ok());
  AlignedBuffer out =
      *AlignedBuffer::Allocate(4096, 512, AlignedBuffer::Pages::kOrdinary);
  EXPECT_EQ(ReadAll(h.appender(), kStart, out.span()), h.appender().status());
}

// An IoRing whose operations complete, in full, only when the test says so.
class ManualIoRing final : public IoRing {
 public:
  struct Op {
    bool sync;
    uint64_t tag;
    size_t bytes;
  };

  bool PrepareWrite(int, std::span<const std::byte> data, uint64_t,
                    uint64_t tag, bool) override {
    return Queue({.sync = false, .tag = tag, .bytes = data.size()});
  }
  bool PrepareRead(int, std::span<std::byte>, uint64_t, uint64_t,
                   bool) override {
    return false;
  }
  bool PrepareDataSync(int, uint64_t tag, bool) override {
    return Queue({.sync = true, .tag = tag, .bytes = 0});
  }
  absl::Status Submit() override { return absl::OkStatus(); }
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_.size() >= min_complete; });
    size_t n = 0;
    for (; n < max && !done_.empty(); ++n) {
      out.push_back(done_.front());
      done_.erase(done_.begin());
    }
    return n;
  }
  size_t pending() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_.size() + done_.size();
  }
  size_t capacity() const override { return 64; }
  absl::StatusOr<size_t> DirectIoAlignment(int) const override { return 512; }

  // The operations handed over and not completed yet, in order.
  std::vector<Op> in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  // Completes the in-flight operation `i` (of in_flight()) in full.
  void Complete(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    const Op& op = in_flight_.at(i);
    done_.push_back({.tag = op.tag, .result = int32_t(op.bytes)});
    in_flight_.erase(in_flight_.begin() + i);
    cv_.notify_all();
  }

 private:
  bool Queue(Op op) {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.push_back(op);
    return true;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Op> in_flight_;
  std::vector<IoCompletion> done_;
};

// Group commit pipelines: once a group's write completes, the next group's
// write and fdatasync go while the first group's fdatasync still runs, and
// the second fdatasync, which covers both writes, makes both durable even
// if it completes first.
TEST(AppenderGroupCommitTest, TheNextGroupSyncsWhileTheLastOneDoes) {
  ManualIoRing io;
  AppenderOptions options;
  options.fd = kFd;
  options.path = "/fake/log";
  options.direct_io = false;
  options.alignment = 512;
  options.start_address = kStart;
  Appender appender(&io, options);
  FlushBufferRingOptions ring_options;
  ring_options.buffer_bytes = 16384;
  ring_options.ring_size = 3;
  ring_options.start_address = kStart;
  ring_options.pages = AlignedBuffer::Pages::kOrdinary;
  auto ring = FlushBufferRing::Create(ring_options, &appender);
  ASSERT_TRUE(ring.ok()) << ring.status();
  appender.set_ring(ring->get());

  // One group: a record, waited for, its buffer sealed.
  auto group = [&](uint64_t index) -> uint64_t {
    absl::StatusOr<Reservation> r = (*ring)->Reserve(100);
    EXPECT_TRUE(r.ok()) << r.status();
    FillPayload(0, index, r->data());
    const uint64_t address = r->address();
    (*ring)->Commit(*std::move(r));
    appender.RequestStable(address + 100);
    absl::StatusOr<uint64_t> end = (*ring)->SealCurrent();
    EXPECT_TRUE(end.ok()) << end.status();
    return end.ok() ? *end : 0;
  };
  auto kinds = [&] {
    std::vector<bool> syncs;
    for (const ManualIoRing::Op& op : io.in_flight()) syncs.push_back(op.sync);
    return syncs;
  };

  const uint64_t first = group(0);
  ASSERT_THAT(kinds(), ::testing::ElementsAre(false, true));
  io.Complete(0);  // the first group's write, not its fdatasync
  ASSERT_TRUE(appender.WaitWritten(first).ok());
  EXPECT_LT(appender.HiStable(), first);

  const uint64_t second = group(1);
  ASSERT_THAT(kinds(), ::testing::ElementsAre(true, false, true))
      << "the second group waits for the first group's fdatasync";
  io.Complete(1);  // the second group's write, then its fdatasync,
  io.Complete(1);  // before the first group's fdatasync
  ASSERT_TRUE(appender.WaitStable(second).ok());
  EXPECT_GE(appender.HiStable(), second);
  EXPECT_EQ(io.in_flight().size(), 1u) << "the first fdatasync is done";

  io.Complete(0);
  EXPECT_TRUE(appender.Drain().ok());
  EXPECT_EQ(appender.stats().syncs, 2u);
  ring->reset();
}

}  // namespace
}  // namespace lss
