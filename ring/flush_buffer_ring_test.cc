// The ring's contract, one scenario at a time, against a sink that records
// what was handed out. Includes the original crate's 17 ring tests, each with
// the assertion it lacked (contents, addresses, exactly-once hand-out).

#include "ring/flush_buffer_ring.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/payload.h"
#include "testing/recording_sink.h"

namespace lss {
namespace {

using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;
using ::lss::testing::RecordingSink;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr size_t kBuffer = 4096;

using Record = ::lss::testing::AppendedRecord;

class RingTest : public ::testing::Test {
 protected:
  void Make(size_t ring_size, RecordingSink::Recycling recycling,
            size_t buffer_bytes = kBuffer, uint64_t start = 0) {
    sink_ = std::make_unique<RecordingSink>(recycling);
    FlushBufferRingOptions options;
    options.buffer_bytes = buffer_bytes;
    options.ring_size = ring_size;
    options.start_address = start;
    options.pages = AlignedBuffer::Pages::kOrdinary;
    auto ring = FlushBufferRing::Create(options, sink_.get());
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = *std::move(ring);
    sink_->set_ring(ring_.get());
  }

  // Reserves, fills with the payload of (stream, index) and commits.
  Record Put(uint64_t stream, uint64_t index, size_t len) {
    absl::StatusOr<Reservation> r = ring_->Reserve(len);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    FillPayload(stream, index, r->data());
    const Record rec{stream, index, r->address(), len};
    ring_->Commit(*std::move(r));
    return rec;
  }

  // Seals and recycles everything, then checks that each record sits at its
  // address byte for byte, that records never overlap, and that the sink saw
  // no contract violation.
  void ExpectAllPresent(const std::vector<Record>& records) {
    ASSERT_TRUE(ring_->SealCurrent().ok());
    sink_->RecycleAll();
    EXPECT_THAT(sink_->violations(), IsEmpty());
    std::vector<Record> sorted = records;
    std::sort(sorted.begin(), sorted.end(),
              [](const Record& a, const Record& b) { return a.address < b.address; });
    for (size_t i = 0; i < sorted.size(); ++i) {
      const Record& r = sorted[i];
      if (i > 0) {
        ASSERT_GE(r.address, sorted[i - 1].address + sorted[i - 1].len)
            << "records overlap at " << r.address;
      }
      const auto bytes = sink_->Read(r.address, r.len);
      ASSERT_TRUE(bytes.has_value())
          << "record " << r.stream << "/" << r.index << " at " << r.address
          << " (" << r.len << " bytes) never reached the sink";
      const auto bad = FirstPayloadMismatch(r.stream, r.index, *bytes);
      ASSERT_FALSE(bad.has_value())
          << "record " << r.stream << "/" << r.index << " differs at byte "
          << *bad;
    }
  }

  std::unique_ptr<RecordingSink> sink_;
  std::unique_ptr<FlushBufferRing> ring_;
};

TEST(RingOptionsTest, RejectsBadOptionsNamingTheValue) {
  RecordingSink sink(RecordingSink::Recycling::kInline);
  auto make = [&](FlushBufferRingOptions o) {
    o.pages = AlignedBuffer::Pages::kOrdinary;
    return FlushBufferRing::Create(o, &sink).status();
  };
  FlushBufferRingOptions o;
  o.buffer_bytes = 4096 + 512;
  EXPECT_THAT(make(o).message(), HasSubstr("buffer_bytes 4608"));
  o = {};
  o.buffer_bytes = 2048;
  EXPECT_THAT(make(o).message(), HasSubstr("buffer_bytes 2048"));
  o = {};
  o.buffer_bytes = size_t{2} << 30;
  EXPECT_THAT(make(o).message(), HasSubstr("buffer_bytes 2147483648"));
  o = {};
  o.ring_size = 0;
  EXPECT_THAT(make(o).message(), HasSubstr("ring_size 0"));
  o = {};
  o.block_bytes = 3000;
  EXPECT_THAT(make(o).message(), HasSubstr("block_bytes 3000"));
  o = {};
  o.start_address = 100;
  EXPECT_THAT(make(o).message(), HasSubstr("start_address 100"));
  EXPECT_EQ(FlushBufferRing::Create({}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ring_size * buffer_bytes sizes the one allocation: huge values must be
// refused by name before the product is taken, not wrap around to a small
// (or zero) size or reach mmap.
TEST(RingOptionsTest, RejectsRingSizesAndBufferSizesOutOfRange) {
  RecordingSink sink(RecordingSink::Recycling::kInline);
  auto make = [&](size_t ring_size, size_t buffer_bytes) {
    FlushBufferRingOptions o;
    o.ring_size = ring_size;
    o.buffer_bytes = buffer_bytes;
    o.pages = AlignedBuffer::Pages::kOrdinary;
    return FlushBufferRing::Create(o, &sink).status();
  };
  absl::Status s = make(0, 4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ring_size 0 "));
  s = make(size_t{1} << 20, 4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ring_size 1048576 "));
  s = make(1, size_t{1} << 31);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("buffer_bytes 2147483648 "));
  // 2^34 buffers of 1 GiB: the product is 2^64, which wraps to 0.
  s = make(size_t{1} << 34, size_t{1} << 30);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ring_size 17179869184 "));
  EXPECT_TRUE(make(1024, 4096).ok());
}

TEST(RingOptionsTest, AcceptsSixtyFourMebibyteBuffers) {
  RecordingSink sink(RecordingSink::Recycling::kInline);
  FlushBufferRingOptions o;
  o.buffer_bytes = size_t{64} << 20;
  o.ring_size = 1;
  auto ring = FlushBufferRing::Create(o, &sink);
  ASSERT_TRUE(ring.ok()) << ring.status();
  sink.set_ring(ring->get());
  auto r = (*ring)->Reserve(size_t{64} << 20);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data().size(), size_t{64} << 20);
}

TEST_F(RingTest, ZeroAndOversizedRecordsAreInvalid) {
  Make(2, RecordingSink::Recycling::kInline);
  const absl::Status zero = ring_->Reserve(0).status();
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("record of 0 bytes"));
  const absl::Status big = ring_->Reserve(kBuffer + 1).status();
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.message(), HasSubstr("4097"));
  EXPECT_THAT(big.message(), HasSubstr("4096"));
  EXPECT_EQ(ring_->stats().seals, 0u) << "a refused record sealed a buffer";
}

TEST_F(RingTest, AddressesStartAtTheConfiguredBase) {
  Make(2, RecordingSink::Recycling::kInline, kBuffer, /*start=*/8192);
  EXPECT_EQ(Put(1, 0, 10).address, 8192u);
  EXPECT_EQ(Put(1, 1, 10).address, 8202u);
}

// Original: sequential_reservations_no_overlap.
TEST_F(RingTest, SequentialReservationsGetConsecutiveAddresses) {
  Make(4, RecordingSink::Recycling::kInline);
  const Record a = Put(1, 0, 100);
  const Record b = Put(1, 1, 100);
  EXPECT_EQ(a.address, 0u);
  EXPECT_EQ(b.address, 100u);
  ExpectAllPresent({a, b});
}

// Original: reserve_exact_capacity and exact_fill_triggers_rotate. The
// record that does not fit goes into the next buffer; nothing is dropped.
TEST_F(RingTest, ExactFillThenOneMoreRecordMovesToTheNextBuffer) {
  Make(4, RecordingSink::Recycling::kInline);
  const Record full = Put(1, 0, kBuffer);
  EXPECT_EQ(sink_->written().size(), 0u) << "dispatched before it was sealed";
  const Record next = Put(1, 1, 16);
  EXPECT_EQ(next.address, kBuffer);
  ASSERT_EQ(sink_->written().size(), 1u);
  EXPECT_EQ(sink_->written()[0].used, kBuffer);
  ExpectAllPresent({full, next});
}

// Original: the seal path of put() dropped the payload that did not fit
// (17% of writes in single_threaded_stress).
TEST_F(RingTest, RecordThatTriggersTheSealIsWrittenInTheNextBuffer) {
  Make(2, RecordingSink::Recycling::kInline);
  const Record a = Put(1, 0, 3000);
  const Record b = Put(1, 1, 3000);  // does not fit: seals, then lands
  EXPECT_EQ(b.address, kBuffer);
  EXPECT_EQ(ring_->stats().seals, 1u);
  ExpectAllPresent({a, b});
}

// Original: manual_seal_causes_rotate.
TEST_F(RingTest, SealCurrentPadsToTheBlockAndRotates) {
  Make(4, RecordingSink::Recycling::kInline, 16384);
  const Record a = Put(1, 0, 5000);
  EXPECT_EQ(*ring_->SealCurrent(), 5000u);
  ASSERT_EQ(sink_->written().size(), 1u);
  EXPECT_EQ(sink_->written()[0].used, 5000u);
  EXPECT_EQ(sink_->written()[0].padded, 8192u);
  const Record b = Put(1, 1, 10);
  EXPECT_EQ(b.address, 8192u) << "the next buffer must start at the padded end";
  ExpectAllPresent({a, b});
}

TEST_F(RingTest, SealCurrentOnAnEmptyBufferDispatchesNothing) {
  Make(2, RecordingSink::Recycling::kInline);
  EXPECT_EQ(*ring_->SealCurrent(), 0u);
  EXPECT_EQ(sink_->written().size(), 0u);
  Put(1, 0, 100);
  EXPECT_EQ(*ring_->SealCurrent(), 100u);
  EXPECT_EQ(*ring_->SealCurrent(), 4096u) << "empty successor starts at 4096";
  EXPECT_EQ(sink_->written().size(), 1u);
}

TEST_F(RingTest, HeaderBytesAreLeftFreeAtTheStartOfEveryBuffer) {
  sink_ = std::make_unique<RecordingSink>(RecordingSink::Recycling::kInline);
  FlushBufferRingOptions options;
  options.buffer_bytes = kBuffer;
  options.ring_size = 2;
  options.header_bytes = 64;
  options.pages = AlignedBuffer::Pages::kOrdinary;
  auto ring = FlushBufferRing::Create(options, sink_.get());
  ASSERT_TRUE(ring.ok()) << ring.status();
  ring_ = *std::move(ring);
  sink_->set_ring(ring_.get());

  EXPECT_EQ(ring_->max_record_bytes(), kBuffer - 64);
  EXPECT_FALSE(ring_->Reserve(kBuffer - 63).ok());
  EXPECT_EQ(*ring_->SealCurrent(), 0u) << "a header-only buffer is empty";
  EXPECT_THAT(sink_->written(), IsEmpty());

  const Record a = Put(1, 0, 100);
  EXPECT_EQ(a.address, 64u);
  const Record b = Put(1, 1, kBuffer - 64);
  EXPECT_EQ(b.address, kBuffer + 64) << "the next buffer's header comes first";
  ASSERT_EQ(sink_->written().size(), 1u);
  EXPECT_EQ(sink_->written()[0].used, 164u);
  EXPECT_EQ(*ring_->SealCurrent(), 2 * kBuffer);
  ExpectAllPresent({a, b});
}

TEST(RingOptionsTest, RejectsHeaderBytesThatAreUnalignedOrFillTheBuffer) {
  RecordingSink sink(RecordingSink::Recycling::kInline);
  for (size_t header : {size_t{12}, kBuffer, kBuffer + 8}) {
    FlushBufferRingOptions options;
    options.buffer_bytes = kBuffer;
    options.header_bytes = header;
    options.pages = AlignedBuffer::Pages::kOrdinary;
    auto ring = FlushBufferRing::Create(options, &sink);
    ASSERT_FALSE(ring.ok()) << header;
    EXPECT_THAT(ring.status().message(), HasSubstr(std::to_string(header)));
  }
}

// The LLAMA rule the original broke: a buffer is handed out only when sealed
// and drained, by whichever thread makes that true.
TEST_F(RingTest, SealedBufferWaitsForItsLastWriter) {
  Make(2, RecordingSink::Recycling::kInline);
  absl::StatusOr<Reservation> open = ring_->Reserve(100);
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(*ring_->SealCurrent(), 100u);
  EXPECT_EQ(sink_->written().size(), 0u) << "dispatched with a writer copying";
  FillPayload(9, 9, open->data());
  const Record rec{9, 9, open->address(), 100};
  ring_->Commit(*std::move(open));
  ASSERT_EQ(sink_->written().size(), 1u) << "the last writer must dispatch";
  EXPECT_EQ(sink_->written()[0].state_at_dispatch.writers(), 0u);
  ExpectAllPresent({rec});
}

// Original: reserve_on_flush_in_progress_returns_error. A buffer whose write
// is in flight accepts nothing; new records go to the next buffer.
TEST_F(RingTest, BufferInFlightIsSkipped) {
  Make(2, RecordingSink::Recycling::kDeferred);
  const Record a = Put(1, 0, 100);
  ASSERT_TRUE(ring_->SealCurrent().ok());
  ASSERT_EQ(sink_->held(), 1u);
  const Record b = Put(1, 1, 100);
  EXPECT_EQ(b.address, kBuffer);
  EXPECT_EQ(sink_->written()[0].used, 100u) << "in-flight buffer was changed";
  ExpectAllPresent({a, b});
}

// Original: ring_exhaustion_returns_error, which left the sealed buffer
// orphaned and the ring stalled. Here a full ring is back-pressure: the
// reserver helps drain and then succeeds.
TEST_F(RingTest, FullRingWaitsHelpsDrainAndOrphansNothing) {
  Make(4, RecordingSink::Recycling::kDeferred);
  std::vector<Record> records;
  for (int i = 0; i < 4; ++i) {
    records.push_back(Put(1, i, 100));
    ASSERT_TRUE(ring_->SealCurrent().ok());
  }
  ASSERT_EQ(sink_->held(), 4u);
  records.push_back(Put(1, 4, 100));  // every buffer is in flight
  EXPECT_GT(ring_->stats().waits, 0u);
  EXPECT_EQ(records.back().address, 4 * kBuffer);
  const auto written = sink_->written();
  ASSERT_EQ(written.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(written[i].generation, uint64_t(i));
    EXPECT_EQ(written[i].address, i * kBuffer);
  }
  ExpectAllPresent(records);
}

TEST_F(RingTest, FailedSinkEndsTheWaitWithItsError) {
  Make(1, RecordingSink::Recycling::kDeferred);
  Put(1, 0, 100);
  ASSERT_TRUE(ring_->SealCurrent().ok());
  sink_->Fail(absl::DataLossError("disk gone"));
  const absl::Status reserve = ring_->Reserve(10).status();
  EXPECT_EQ(reserve.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reserve.message(), HasSubstr("disk gone"));
  EXPECT_EQ(ring_->SealCurrent().status().code(), absl::StatusCode::kDataLoss);
  sink_->RecycleAll();  // the test still owns the held buffer
}

TEST_F(RingTest, RingOfOneBufferCyclesThroughGenerations) {
  Make(1, RecordingSink::Recycling::kDeferred);
  std::vector<Record> records;
  for (int i = 0; i < 20; ++i) records.push_back(Put(2, i, 1500));
  ExpectAllPresent(records);
  const auto written = sink_->written();
  ASSERT_EQ(written.size(), 10u);
  EXPECT_EQ(written.back().generation, 9u);
}

// Reused memory never leaks an earlier generation's bytes into the log.
TEST_F(RingTest, PaddingOfAReusedBufferIsZero) {
  Make(1, RecordingSink::Recycling::kInline);
  Put(3, 0, kBuffer);  // fills generation 0 with payload bytes
  Put(3, 1, 10);       // seals it; generation 1 reuses the same memory
  ASSERT_TRUE(ring_->SealCurrent().ok());
  const auto written = sink_->written();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[1].used, 10u);
  EXPECT_EQ(written[1].padded, kBuffer);
  EXPECT_THAT(sink_->violations(), IsEmpty());  // checks the padding
}

TEST_F(RingTest, AbandonedReservationIsZeroedAndDoesNotStall) {
  Make(1, RecordingSink::Recycling::kInline);
  const Record a = Put(4, 0, 10);
  {
    absl::StatusOr<Reservation> dropped = ring_->Reserve(20);
    ASSERT_TRUE(dropped.ok());
    std::memset(dropped->data().data(), 0xAB, 20);
  }
  EXPECT_EQ(ring_->stats().abandoned, 1u);
  const Record b = Put(4, 1, 10);
  ExpectAllPresent({a, b});
  const auto hole = sink_->Read(10, 20);
  ASSERT_TRUE(hole.has_value());
  EXPECT_TRUE(std::all_of(hole->begin(), hole->end(),
                          [](std::byte x) { return x == std::byte{0}; }));
}

TEST_F(RingTest, ReservationKnowsItsGeneration) {
  Make(2, RecordingSink::Recycling::kInline);
  auto a = ring_->Reserve(kBuffer);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->generation(), 0u);
  ring_->Commit(*std::move(a));
  auto b = ring_->Reserve(1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->generation(), 1u);
  EXPECT_TRUE(b->valid());
  ring_->Commit(std::move(*b));
  EXPECT_FALSE(b->valid());
}

using RingDeathTest = RingTest;

TEST_F(RingDeathTest, DoubleCommitAborts) {
  Make(2, RecordingSink::Recycling::kInline);
  auto r = ring_->Reserve(10);
  ASSERT_TRUE(r.ok());
  ring_->Commit(std::move(*r));
  EXPECT_DEATH(ring_->Commit(std::move(*r)), "already committed");
}

// Original: single_threaded_offset_uniqueness (which printed counts and
// checked nothing) and single_threaded_stress (which passed while dropping
// 17% of payloads).
TEST_F(RingTest, SingleThreadedRandomSizesAllPresent) {
  for (size_t ring_size : {1, 4}) {
    Make(ring_size, RecordingSink::Recycling::kDeferred);
    std::mt19937_64 rng(ring_size);
    std::uniform_int_distribution<size_t> size(1, kBuffer);
    std::vector<Record> records;
    for (int i = 0; i < 2000; ++i) records.push_back(Put(5, i, size(rng)));
    for (size_t i = 1; i < records.size(); ++i) {
      ASSERT_GT(records[i].address, records[i - 1].address);
    }
    ExpectAllPresent(records);
  }
}

// Original: hammer_seal_concurrent_rotation. Two threads fill 4 KiB buffers
// with 2 KiB records, so nearly every record races a seal.
TEST_F(RingTest, TwoThreadsHammeringSeals) {
  Make(2, RecordingSink::Recycling::kInline);
  std::vector<Record> records[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) records[t].push_back(Put(t, i, 2048));
    });
  }
  for (auto& t : threads) t.join();
  std::vector<Record> all = records[0];
  all.insert(all.end(), records[1].begin(), records[1].end());
  ExpectAllPresent(all);
  for (const auto& w : sink_->written()) EXPECT_LE(w.used, kBuffer);
  EXPECT_EQ(ring_->stats().dispatches, ring_->stats().recycles);
}

}  // namespace
}  // namespace lss
