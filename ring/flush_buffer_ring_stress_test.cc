// Many threads reserve, fill and commit records of random sizes (1 byte to a
// full buffer) through small rings, so seals, hand-outs, wrap-around and
// back-pressure happen constantly. A checking sink verifies, at the moment
// each buffer is handed out, that it is sealed with no writers, handed out
// once, contiguous with its predecessor, and holds exactly the records
// reserved in it, byte for byte, tiling its used length with no gap.

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ring/flush_buffer_ring.h"
#include "testing/payload.h"

namespace lss {
namespace {

using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;

struct Descriptor {
  uint64_t index;
  size_t len;
};

// One per writer thread: the records it reserved and has not yet seen
// verified, keyed by address. Filled before Commit, drained by the sink.
struct Shard {
  std::mutex mu;
  std::map<uint64_t, Descriptor> pending;
};

class CheckingSink : public SealedBufferSink {
 public:
  CheckingSink(std::vector<Shard>& shards, bool deferred, size_t header_bytes)
      : shards_(shards), deferred_(deferred), header_bytes_(header_bytes) {}
  void set_ring(FlushBufferRing* ring) { ring_ = ring; }

  void Dispatch(const SealedBuffer& sealed) override {
    // Copy first, before any lock, so that a race between this read and a
    // writer's copy is visible to ThreadSanitizer.
    const std::vector<std::byte> bytes(sealed.bytes().begin(),
                                       sealed.bytes().end());
    const BufferState state = sealed.buffer->state();
    if (sealed.last && (!state.sealed() || !state.flushing() ||
                        state.writers() != 0 || state.cut())) {
      Fail(sealed, absl::StrCat("handed out in state ", state.word()));
    }
    if (sealed.used == 0) Fail(sealed, "handed out empty");
    CheckSequence(sealed);
    CheckRecords(sealed, bytes);
    if (!deferred_) {
      ring_->Recycle(sealed);
      return;
    }
    std::lock_guard<std::mutex> lock(held_mu_);
    held_.push_back(sealed);
  }

  absl::Status HelpDrain() override {
    SealedBuffer sealed;
    {
      std::lock_guard<std::mutex> lock(held_mu_);
      if (held_.empty()) return absl::OkStatus();
      sealed = held_.front();
      held_.pop_front();
    }
    ring_->Recycle(sealed);
    return absl::OkStatus();
  }

  void DrainAll() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(held_mu_);
        if (held_.empty()) return;
      }
      ASSERT_TRUE(HelpDrain().ok());
    }
  }

  uint64_t verified() const { return verified_.load(); }

  // Hand-outs run concurrently and out of order (a slow last writer), so
  // the blocks are checked to tile the log once all are out.
  void CheckBlocksTile(uint64_t end) {
    std::lock_guard<std::mutex> lock(sequence_mu_);
    uint64_t expect = 0;
    for (const auto& [address, padded] : blocks_) {
      if (address != expect) {
        ADD_FAILURE() << "gap or overlap at " << expect << ": next block at "
                      << address;
        return;
      }
      expect = address + padded;
    }
    EXPECT_EQ(expect, (end + 4095) / 4096 * 4096) << "the last block";
  }
  std::vector<std::string> failures() {
    std::lock_guard<std::mutex> lock(failures_mu_);
    return failures_;
  }

 private:
  void Fail(const SealedBuffer& sealed, const std::string& what) {
    std::lock_guard<std::mutex> lock(failures_mu_);
    if (failures_.size() < 20) {
      failures_.push_back(absl::StrCat("buffer generation ", sealed.generation,
                                       " at ", sealed.address, ": ", what));
    }
  }

  void CheckSequence(const SealedBuffer& sealed) {
    std::lock_guard<std::mutex> lock(sequence_mu_);
    if (!blocks_.emplace(sealed.address, sealed.padded).second) {
      Fail(sealed, "handed out twice");
    }
  }

  void CheckRecords(const SealedBuffer& sealed,
                    const std::vector<std::byte>& bytes) {
    struct Found {
      uint64_t address;
      size_t stream;
      Descriptor d;
    };
    std::vector<Found> found;
    const uint64_t end = sealed.address + sealed.used;
    for (size_t s = 0; s < shards_.size(); ++s) {
      std::lock_guard<std::mutex> lock(shards_[s].mu);
      auto& pending = shards_[s].pending;
      auto it = pending.lower_bound(sealed.address);
      while (it != pending.end() && it->first < end) {
        found.push_back({it->first, s, it->second});
        it = pending.erase(it);
      }
    }
    std::sort(found.begin(), found.end(),
              [](const Found& a, const Found& b) { return a.address < b.address; });
    uint64_t expect = sealed.address + header_bytes_;
    for (const Found& f : found) {
      if (f.address != expect) {
        Fail(sealed, absl::StrCat("gap or overlap at ", expect, " (next record at ",
                                  f.address, ")"));
        return;
      }
      const std::span<const std::byte> rec(
          bytes.data() + (f.address - sealed.address), f.d.len);
      if (auto bad = FirstPayloadMismatch(f.stream, f.d.index, rec)) {
        Fail(sealed, absl::StrCat("record ", f.stream, "/", f.d.index, " at ",
                                  f.address, " differs at byte ", *bad));
      }
      expect += f.d.len;
    }
    if (expect != end) {
      Fail(sealed, absl::StrCat("records end at ", expect, ", used ends at ", end));
    }
    if (std::any_of(bytes.begin() + sealed.used, bytes.end(),
                    [](std::byte b) { return b != std::byte{0}; })) {
      Fail(sealed, "padding is not zero");
    }
    verified_.fetch_add(found.size());
  }

  std::vector<Shard>& shards_;
  const bool deferred_;
  const size_t header_bytes_;
  FlushBufferRing* ring_ = nullptr;
  std::mutex held_mu_;
  std::deque<SealedBuffer> held_;
  std::mutex sequence_mu_;
  std::map<uint64_t, size_t> blocks_;  // address -> padded length
  std::mutex failures_mu_;
  std::vector<std::string> failures_;
  std::atomic<uint64_t> verified_{0};
};

struct StressParams {
  int threads;
  size_t ring_size;
  size_t buffer_bytes;
  bool deferred;
  // Every thread cuts the open block every this many records (0: never),
  // as group-commit leaders do.
  int cut_every = 0;
};

class RingStressTest : public ::testing::TestWithParam<StressParams> {};

TEST_P(RingStressTest, EveryCommittedRecordIsHandedOutExactlyOnce) {
  const StressParams p = GetParam();
  constexpr int kRecordsPerThread = 100'000;
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed=", seed));

  std::vector<Shard> shards(p.threads);
  CheckingSink sink(shards, p.deferred, p.cut_every > 0 ? 64 : 0);
  FlushBufferRingOptions options;
  options.buffer_bytes = p.buffer_bytes;
  options.ring_size = p.ring_size;
  options.pages = AlignedBuffer::Pages::kOrdinary;
  // Cutting needs room for a header in front of each block.
  options.header_bytes = p.cut_every > 0 ? 64 : 0;
  auto ring = FlushBufferRing::Create(options, &sink);
  ASSERT_TRUE(ring.ok()) << ring.status();
  sink.set_ring(ring->get());

  std::barrier start(p.threads);
  std::vector<std::vector<uint64_t>> addresses(p.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < p.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      // Log-uniform sizes: as many 1-16 byte records as 2-4 KiB ones, and
      // some that fill a whole buffer.
      std::uniform_real_distribution<double> log_size(
          0.0, std::log2(static_cast<double>(p.buffer_bytes)));
      addresses[t].reserve(kRecordsPerThread);
      start.arrive_and_wait();
      for (int i = 0; i < kRecordsPerThread; ++i) {
        const size_t len = std::min<size_t>(
            (*ring)->max_record_bytes(),
            static_cast<size_t>(std::exp2(log_size(rng))));
        absl::StatusOr<Reservation> r = (*ring)->Reserve(len);
        ASSERT_TRUE(r.ok()) << r.status();
        FillPayload(t, i, r->data());
        {
          std::lock_guard<std::mutex> lock(shards[t].mu);
          shards[t].pending.emplace(r->address(), Descriptor{uint64_t(i), len});
        }
        addresses[t].push_back(r->address());
        (*ring)->Commit(*std::move(r));
        if (p.cut_every > 0 && i % p.cut_every == t % p.cut_every) {
          absl::StatusOr<uint64_t> end = (*ring)->Cut();
          ASSERT_TRUE(end.ok()) << end.status();
          ASSERT_GT(*end, addresses[t].back()) << "a cut missed a record";
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const absl::StatusOr<uint64_t> end = (*ring)->SealCurrent();
  ASSERT_TRUE(end.ok()) << end.status();
  sink.DrainAll();
  sink.CheckBlocksTile(*end);

  for (const std::string& f : sink.failures()) ADD_FAILURE() << f;
  EXPECT_EQ(sink.verified(), uint64_t(p.threads) * kRecordsPerThread);
  for (int t = 0; t < p.threads; ++t) {
    EXPECT_TRUE(shards[t].pending.empty())
        << shards[t].pending.size() << " records of thread " << t
        << " were committed but never handed out";
    EXPECT_TRUE(std::is_sorted(addresses[t].begin(), addresses[t].end()))
        << "a thread's addresses went backwards";
  }
  const FlushBufferRing::Stats stats = (*ring)->stats();
  // One block per seal and one per cut.
  EXPECT_EQ(stats.dispatches, stats.seals + stats.cuts);
  EXPECT_EQ(stats.dispatches, stats.recycles);
  if (p.cut_every > 0) {
    EXPECT_GT(stats.cuts, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rings, RingStressTest,
    ::testing::Values(StressParams{2, 1, 4096, true},
                      StressParams{8, 1, 4096, false},
                      StressParams{2, 4, 65536, false},
                      StressParams{4, 2, 16384, true},
                      StressParams{8, 3, 4096, false},
                      StressParams{16, 4, 4096, true},
                      StressParams{2, 1, 65536, true, 16},
                      StressParams{8, 2, 16384, false, 8},
                      StressParams{16, 4, 16384, true, 32}),
    [](const auto& info) {
      return absl::StrCat(info.param.threads, "threads_", info.param.ring_size,
                          "x", info.param.buffer_bytes,
                          info.param.deferred ? "_deferred" : "_inline",
                          info.param.cut_every > 0
                              ? absl::StrCat("_cut", info.param.cut_every)
                              : "");
    });

}  // namespace
}  // namespace lss
