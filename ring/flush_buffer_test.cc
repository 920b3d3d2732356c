// Every transition of the state word, one buffer at a time.

#include "ring/flush_buffer.h"

#include <algorithm>
#include <barrier>
#include <cstddef>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lss {
namespace {

using Outcome = FlushBuffer::ReserveOutcome;

class FlushBufferTest : public ::testing::Test {
 protected:
  static constexpr size_t kCapacity = 4096;

  FlushBufferTest() : buffer_(memory_, 0) {}
  void Install(uint64_t generation = 7, uint64_t base = 8192) {
    buffer_.Install(generation, base);  // a new buffer starts out retired
  }

  std::vector<std::byte> memory_ = std::vector<std::byte>(kCapacity);
  FlushBuffer buffer_;
};

TEST(BufferStateTest, FieldsDecodeIndependently) {
  const BufferState s =
      BufferState().Reserved(4000).Reserved(96).Reserved(0).Sealed();
  EXPECT_EQ(s.offset(), 4096u);
  EXPECT_EQ(s.writers(), 3u);
  EXPECT_TRUE(s.sealed());
  EXPECT_FALSE(s.flushing());
}

TEST(BufferStateTest, MaximalFieldsDoNotOverlap) {
  // The largest offset a buffer can reach plus the largest record, with the
  // writer count at its limit and both flags set.
  const uint64_t offset = 2 * BufferState::kMaxBufferBytes - 1;
  const BufferState s(
      (offset << BufferState::kOffsetShift) |
      (BufferState::kMaxWriters << BufferState::kCutWriterShift) |
      (BufferState::kMaxWriters << BufferState::kWriterShift) |
      BufferState::kSealedBit | BufferState::kFlushingBit |
      BufferState::kCutBit);
  EXPECT_EQ(s.offset(), offset);
  EXPECT_EQ(s.writers(), BufferState::kMaxWriters);
  EXPECT_EQ(s.cut_writers(), BufferState::kMaxWriters);
  EXPECT_TRUE(s.sealed());
  EXPECT_TRUE(s.flushing());
  EXPECT_TRUE(s.cut());
}

TEST(BufferStateTest, CutMovesWritersAndLastCutWriterEndsTheCut) {
  const BufferState s = BufferState().Reserved(100).Reserved(0).CutAt(4160);
  EXPECT_EQ(s.offset(), 4160u);
  EXPECT_EQ(s.writers(), 0u);
  EXPECT_EQ(s.cut_writers(), 2u);
  EXPECT_TRUE(s.cut());
  const BufferState one = s.CutWriterDone();
  EXPECT_EQ(one.cut_writers(), 1u);
  EXPECT_TRUE(one.cut());
  const BufferState none = one.CutWriterDone();
  EXPECT_EQ(none.cut_writers(), 0u);
  EXPECT_FALSE(none.cut());
  EXPECT_EQ(none.offset(), 4160u);
}

TEST_F(FlushBufferTest, NewBufferIsRetiredAndRefusesReservations) {
  EXPECT_EQ(buffer_.state(), BufferState::Retired());
  EXPECT_EQ(buffer_.TryReserve(1).outcome, Outcome::kSealed);
}

TEST_F(FlushBufferTest, InstallGivesCleanWordGenerationAndBase) {
  Install(7, 8192);
  EXPECT_EQ(buffer_.state(), BufferState());
  EXPECT_EQ(buffer_.generation(), 7u);
  EXPECT_EQ(buffer_.base_address(), 8192u);
}

TEST_F(FlushBufferTest, SequentialReservationsDoNotOverlap) {
  Install();
  const auto a = buffer_.TryReserve(100);
  const auto b = buffer_.TryReserve(100);
  ASSERT_EQ(a.outcome, Outcome::kReserved);
  ASSERT_EQ(b.outcome, Outcome::kReserved);
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(b.offset, 100u);
  EXPECT_EQ(buffer_.state().offset(), 200u);
  EXPECT_EQ(buffer_.state().writers(), 2u);
}

TEST_F(FlushBufferTest, ExactCapacityFitsAndOneMoreByteDoesNot) {
  Install();
  const auto full = buffer_.TryReserve(kCapacity);
  ASSERT_EQ(full.outcome, Outcome::kReserved);
  EXPECT_EQ(full.offset, 0u);
  const BufferState before = buffer_.state();
  EXPECT_EQ(buffer_.TryReserve(1).outcome, Outcome::kDoesNotFit);
  EXPECT_EQ(buffer_.state(), before) << "a failed reservation changed the word";
  // A zero-byte pin still fits a full buffer.
  EXPECT_EQ(buffer_.TryReserve(0).outcome, Outcome::kReserved);
}

TEST_F(FlushBufferTest, WriterCountIsSymmetric) {
  Install();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(buffer_.TryReserve(10).outcome, Outcome::kReserved);
  EXPECT_EQ(buffer_.state().writers(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(buffer_.ReleaseWriter(10 * i).last_end.has_value());
  }
  EXPECT_EQ(buffer_.state().writers(), 0u);
  EXPECT_EQ(buffer_.state().offset(), 30u) << "releasing moved the offset";
}

TEST_F(FlushBufferTest, SealReturnsFinalWordOnceAndStopsReservations) {
  Install();
  ASSERT_EQ(buffer_.TryReserve(300).outcome, Outcome::kReserved);
  const std::optional<BufferState> before = buffer_.TrySeal();
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->offset(), 300u);
  EXPECT_EQ(before->writers(), 1u);
  EXPECT_FALSE(before->sealed());
  EXPECT_FALSE(buffer_.TrySeal().has_value()) << "sealed twice";
  EXPECT_EQ(buffer_.TryReserve(1).outcome, Outcome::kSealed);
  EXPECT_EQ(buffer_.TryReserve(0).outcome, Outcome::kSealed);
}

TEST_F(FlushBufferTest, LastWriterOnSealedBufferSeesTheHandOffCondition) {
  Install();
  ASSERT_EQ(buffer_.TryReserve(10).outcome, Outcome::kReserved);
  ASSERT_EQ(buffer_.TryReserve(10).outcome, Outcome::kReserved);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  EXPECT_FALSE(buffer_.ReleaseWriter(0).last_end.has_value())
      << "not the last writer";
  const FlushBuffer::Released last = buffer_.ReleaseWriter(10);
  ASSERT_TRUE(last.last_end.has_value()) << "the last writer hands it out";
  EXPECT_EQ(*last.last_end, 20u);
  EXPECT_FALSE(last.cut.has_value());
}

TEST_F(FlushBufferTest, MarkFlushingAfterDrainedSeal) {
  Install();
  ASSERT_EQ(buffer_.TryReserve(10).outcome, Outcome::kReserved);
  buffer_.ReleaseWriter(0);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  const BufferState prev = buffer_.MarkFlushing();
  EXPECT_FALSE(prev.flushing());
  EXPECT_TRUE(buffer_.state().flushing());
  EXPECT_EQ(buffer_.TryReserve(1).outcome, Outcome::kSealed);
}

TEST_F(FlushBufferTest, ReinstallClearsEverything) {
  Install(1, 0);
  ASSERT_EQ(buffer_.TryReserve(kCapacity).outcome, Outcome::kReserved);
  buffer_.ReleaseWriter(0);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  buffer_.MarkFlushing();
  buffer_.Install(5, 4096 * 3);
  EXPECT_EQ(buffer_.state(), BufferState());
  EXPECT_EQ(buffer_.generation(), 5u);
  EXPECT_EQ(buffer_.TryReserve(1).offset, 0u);
}

// A thread that found the buffer too full may be preempted before it seals;
// meanwhile the buffer is sealed by another, handed out, recycled and
// installed again, empty. The late seal must not end that new generation.
TEST_F(FlushBufferTest, StaleSealDoesNotEndANewGeneration) {
  Install(1, 0);
  ASSERT_EQ(buffer_.TryReserve(4000).outcome, Outcome::kReserved);
  buffer_.ReleaseWriter(0);
  const auto stale = buffer_.TryReserve(200);
  ASSERT_EQ(stale.outcome, Outcome::kDoesNotFit);
  EXPECT_EQ(stale.offset, 4000u);

  ASSERT_TRUE(buffer_.TrySeal(stale.offset).has_value());
  buffer_.MarkFlushing();
  buffer_.Install(4, 4096);
  EXPECT_FALSE(buffer_.TrySeal(stale.offset).has_value());
  EXPECT_EQ(buffer_.state(), BufferState()) << "the new generation was sealed";

  // Once the new generation is as full as the stale view, sealing it is
  // right: it is the current buffer and the record still does not fit.
  ASSERT_EQ(buffer_.TryReserve(4000).outcome, Outcome::kReserved);
  buffer_.ReleaseWriter(0);
  const std::optional<BufferState> before = buffer_.TrySeal(stale.offset);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->offset(), 4000u);
}

TEST_F(FlushBufferTest, WriterLimitIsRefusedNotOverflowed) {
  Install();
  for (uint64_t i = 0; i < BufferState::kMaxWriters; ++i) {
    ASSERT_EQ(buffer_.TryReserve(0).outcome, Outcome::kReserved) << i;
  }
  const BufferState at_limit = buffer_.state();
  EXPECT_EQ(at_limit.writers(), BufferState::kMaxWriters);
  EXPECT_EQ(buffer_.TryReserve(1).outcome, Outcome::kTooManyWriters);
  EXPECT_EQ(buffer_.state(), at_limit);
  EXPECT_EQ(at_limit.offset(), 0u) << "writer count spilled into the offset";
}

using FlushBufferDeathTest = FlushBufferTest;

TEST_F(FlushBufferDeathTest, ReleaseWithoutWriterAborts) {
  Install();
  EXPECT_DEATH(buffer_.ReleaseWriter(0), "commit without a matching");
}

TEST_F(FlushBufferDeathTest, HandingOutWithWritersAborts) {
  Install();
  ASSERT_EQ(buffer_.TryReserve(10).outcome, Outcome::kReserved);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  EXPECT_DEATH(buffer_.MarkFlushing(), "while writers were copying");
}

TEST_F(FlushBufferDeathTest, HandingOutTwiceAborts) {
  Install();
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  buffer_.MarkFlushing();
  EXPECT_DEATH(buffer_.MarkFlushing(), "handed out twice");
}

// The original crate's unseal_unsealed_returns_error has no counterpart: a
// buffer is never unsealed. Install is the only way back to a clean word,
// and it refuses a buffer that was not retired.
TEST_F(FlushBufferDeathTest, InstallingACurrentBufferAborts) {
  Install();
  EXPECT_DEATH(buffer_.Install(8, 0), "never retired");
}

class CutTest : public ::testing::Test {
 protected:
  static constexpr size_t kCapacity = 4 * 4096;
  static constexpr size_t kHeader = 64;
  static constexpr uint64_t kBlock = 4096;

  CutTest() : buffer_(memory_, 0, kHeader) { buffer_.Install(3, 40960); }

  std::vector<std::byte> memory_ = std::vector<std::byte>(kCapacity);
  FlushBuffer buffer_;
};

TEST_F(CutTest, CutEndsTheBlockAndOpensTheNextAfterItsPadding) {
  const auto a = buffer_.TryReserve(100);  // [64, 164)
  ASSERT_EQ(a.outcome, Outcome::kReserved);
  const auto pin = buffer_.TryReserve(0);
  ASSERT_EQ(pin.offset, 164u);
  const FlushBuffer::CutResult cut = buffer_.TryCut(kBlock);
  ASSERT_EQ(cut.outcome, FlushBuffer::CutOutcome::kCut);
  EXPECT_EQ(cut.offset, 164u);
  EXPECT_EQ(buffer_.block_start(), kBlock);
  // A reservation after the cut goes after the next block's header.
  const auto b = buffer_.TryReserve(8);
  ASSERT_EQ(b.outcome, Outcome::kReserved);
  EXPECT_EQ(b.offset, kBlock + kHeader);
  // The writer after the cut ends nothing; the last writer before it hands
  // out the cut block, whichever order they commit in.
  const FlushBuffer::Released after = buffer_.ReleaseWriter(b.offset);
  EXPECT_FALSE(after.cut.has_value());
  EXPECT_FALSE(buffer_.ReleaseWriter(a.offset).cut.has_value());
  const FlushBuffer::Released last = buffer_.ReleaseWriter(pin.offset);
  ASSERT_TRUE(last.cut.has_value());
  EXPECT_EQ(last.cut->start, 0u);
  EXPECT_EQ(last.cut->end, 164u);
  EXPECT_FALSE(last.last_end.has_value()) << "the buffer is not sealed";
  EXPECT_FALSE(buffer_.state().cut());
  EXPECT_EQ(buffer_.state().writers(), 0u);
}

TEST_F(CutTest, TheLastBlockWaitsForThePendingCut) {
  const auto a = buffer_.TryReserve(100);
  const auto pin = buffer_.TryReserve(0);
  ASSERT_EQ(buffer_.TryCut(kBlock).outcome, FlushBuffer::CutOutcome::kCut);
  const auto b = buffer_.TryReserve(8);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  EXPECT_FALSE(buffer_.ReleaseWriter(b.offset).last_end.has_value())
      << "sealed with no writers, but the cut block is not out yet";
  EXPECT_FALSE(buffer_.ReleaseWriter(pin.offset).cut.has_value());
  const FlushBuffer::Released last = buffer_.ReleaseWriter(a.offset);
  ASSERT_TRUE(last.cut.has_value());
  ASSERT_TRUE(last.last_end.has_value());
  EXPECT_EQ(*last.last_end, kBlock + kHeader + 8);
  EXPECT_EQ(buffer_.block_start(), kBlock);
}

TEST_F(CutTest, EmptyPendingAndFullBuffersAreNotCut) {
  auto pin = buffer_.TryReserve(0);
  EXPECT_EQ(buffer_.TryCut(kBlock).outcome, FlushBuffer::CutOutcome::kEmpty)
      << "a block holding only its header";
  buffer_.ReleaseWriter(pin.offset);

  const auto a = buffer_.TryReserve(10);
  pin = buffer_.TryReserve(0);
  ASSERT_EQ(buffer_.TryCut(kBlock).outcome, FlushBuffer::CutOutcome::kCut);
  buffer_.ReleaseWriter(pin.offset);
  pin = buffer_.TryReserve(0);
  EXPECT_EQ(buffer_.TryCut(kBlock).outcome,
            FlushBuffer::CutOutcome::kCutPending)
      << "the cut's writer is still copying";
  buffer_.ReleaseWriter(a.offset);
  const FlushBuffer::CutResult empty = buffer_.TryCut(kBlock);
  EXPECT_EQ(empty.outcome, FlushBuffer::CutOutcome::kEmpty);
  EXPECT_EQ(empty.offset, kBlock);

  // Two blocks used, two left: a cut now would leave less than a block
  // after the next header.
  ASSERT_EQ(buffer_.TryReserve(kBlock).outcome, Outcome::kReserved);
  EXPECT_EQ(buffer_.TryCut(kBlock).outcome, FlushBuffer::CutOutcome::kNoRoom);
  ASSERT_TRUE(buffer_.TrySeal().has_value());
  EXPECT_EQ(buffer_.TryCut(kBlock).outcome, FlushBuffer::CutOutcome::kSealed);
}

// The original crate's concurrent_reserve_space_no_overlap, with the
// assertion it lacked: the reservations tile the buffer exactly.
TEST_F(FlushBufferTest, ConcurrentReservationsTileTheBuffer) {
  Install();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 32;
  constexpr uint64_t kLen = 16;
  std::vector<std::vector<uint64_t>> offsets(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        const auto r = buffer_.TryReserve(kLen);
        ASSERT_EQ(r.outcome, Outcome::kReserved);
        offsets[t].push_back(r.offset);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<uint64_t> all;
  for (const auto& v : offsets) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i * kLen);
  EXPECT_EQ(buffer_.state().offset(), kCapacity);
  EXPECT_EQ(buffer_.state().writers(), uint64_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace lss
