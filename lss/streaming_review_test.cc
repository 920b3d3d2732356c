// Review of issue 12 (streaming reads): cases the change's own tests miss.
// Each test names the behaviour the headers promise.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
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

// Record `index` of stream 0.
std::string Payload(uint64_t index, size_t bytes) {
  return testing::Payload(0, index, bytes);
}

bool IsPayload(uint64_t index, absl::string_view payload) {
  return testing::IsPayload(0, index, payload);
}

StoreOptions SmallOptions() {
  StoreOptions o;
  o.block_bytes = 4096;
  o.buffer_bytes = 64 << 10;
  o.ring_size = 3;
  o.preallocate_bytes = 1 << 20;
  return o;
}

std::vector<uint64_t> Fill(LogStructuredStore& store, uint64_t count) {
  std::vector<uint64_t> addresses;
  for (uint64_t i = 0; i < count; ++i) {
    absl::StatusOr<uint64_t> a = store.Append(Payload(i, 3000));
    EXPECT_TRUE(a.ok()) << a.status();
    addresses.push_back(a.value_or(0));
    if (i % 5 == 4) {
      EXPECT_TRUE(store.Flush().ok());
    }
  }
  EXPECT_TRUE(store.Sync().ok());
  return addresses;
}

// Runs `f` on another thread; a call that does not return within `limit`
// is a hang: the test fails and the process ends (the thread cannot be
// stopped).
void ExpectReturnsWithin(std::chrono::seconds limit, const char* what,
                         std::function<void()> f) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread([f = std::move(f), done] {
    f();
    done->set_value();
  }).detach();
  if (finished.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << what << " did not return within " << limit.count()
                  << " s (hangs)";
    std::fflush(nullptr);
    std::_Exit(1);
  }
}

// log_structured_store.h: "The reader must not outlive the store; after
// Close its Next fails." A reader stopped part way has reads in flight (or
// finished but not yet collected); Close must still return.
TEST(StreamingReviewTest, CloseReturnsWhileAReaderHasReadsInFlight) {
  const std::string path = TempPath("close_reader.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  Fill(**store, 400);
  absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
      0, {.read_bytes = 4096, .reads_in_flight = 8});
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<bool> more = (*reader)->Next();
  ASSERT_TRUE(more.ok() && *more) << more.status();
  absl::Status closed;
  ExpectReturnsWithin(std::chrono::seconds(20), "Close",
                      [&] { closed = (*store)->Close(); });
  EXPECT_TRUE(closed.ok()) << closed;
  more = (*reader)->Next();
  EXPECT_EQ(more.status().code(), absl::StatusCode::kFailedPrecondition);
  reader->reset();
}

// The same for a read-only store, whose reads go through its own reads-only
// appender.
TEST(StreamingReviewTest, ReadOnlyCloseReturnsWhileAReaderHasReadsInFlight) {
  const std::string path = TempPath("close_reader_ro.log");
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    Fill(**store, 400);
  }
  StoreOptions o = SmallOptions();
  o.read_only = true;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
      0, {.read_bytes = 4096, .reads_in_flight = 8});
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<bool> more = (*reader)->Next();
  ASSERT_TRUE(more.ok() && *more) << more.status();
  absl::Status closed;
  ExpectReturnsWithin(std::chrono::seconds(20), "Close of a read-only store",
                      [&] { closed = (*store)->Close(); });
  EXPECT_TRUE(closed.ok()) << closed;
  reader->reset();
}

// "After Close, every call returns FailedPrecondition": ReadMany too.
TEST(StreamingReviewTest, ReadManyAfterCloseIsFailedPrecondition) {
  const std::string path = TempPath("readmany_closed.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint64_t> addresses = Fill(**store, 20);
  ASSERT_TRUE((*store)->Close().ok());
  std::vector<absl::StatusOr<LogRecord>> got =
      (*store)->ReadMany(std::span<const uint64_t>(addresses).subspan(0, 3));
  ASSERT_EQ(got.size(), 3u);
  for (const absl::StatusOr<LogRecord>& r : got) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
        << r.status();
  }
  EXPECT_TRUE((*store)->ReadMany({}).empty());
}

// A device whose O_DIRECT alignment (512) is finer than the block size
// (4096). A short read that the device's alignment allows (say 1536 bytes)
// is just short, not the end of the file (appender.h: "Short reads
// continue"), so every record still reads back, by address and streamed.
TEST(StreamingReviewTest, ShortReadsAlignedForTheDeviceAreNotTheEndOfFile) {
  testing::SimDiskOptions disk_options;
  disk_options.direct_io_alignment = 512;
  testing::SimDisk disk(disk_options);
  auto options = [&](int short_read_one_in) {
    testing::SimStoreKnobs knobs;
    knobs.block_bytes = 4096;
    knobs.buffer_bytes = 32768;
    knobs.preallocate_bytes = 256 << 10;
    knobs.ring.seed = 3;
    knobs.ring.short_read_one_in = short_read_one_in;
    return testing::SimStoreOptions(disk, knobs);
  };
  std::vector<uint64_t> addresses;
  {
    auto store = LogStructuredStore::Open("/sim/short.log", options(0));
    ASSERT_TRUE(store.ok()) << store.status();
    addresses = Fill(**store, 60);
  }
  auto store = LogStructuredStore::Open("/sim/short.log", options(2));
  ASSERT_TRUE(store.ok()) << store.status();
  for (size_t i = 0; i < addresses.size(); ++i) {
    absl::StatusOr<LogRecord> r = (*store)->Read(addresses[i]);
    ASSERT_TRUE(r.ok()) << "record " << i << ": " << r.status();
    EXPECT_TRUE(IsPayload(i, r->payload));
  }
  absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
      0, {.read_bytes = 16384, .reads_in_flight = 4});
  ASSERT_TRUE(reader.ok()) << reader.status();
  size_t i = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    ASSERT_TRUE(more.ok()) << "after " << i << " records: " << more.status();
    if (!*more) break;
    ASSERT_LT(i, addresses.size());
    EXPECT_EQ((*reader)->record().address, addresses[i]);
    EXPECT_TRUE(IsPayload(i, (*reader)->record().payload));
    ++i;
  }
  EXPECT_EQ(i, addresses.size());
}

// StoreOptions::on_recovered_record: "every record recovery keeps, in
// address order". For each RecoveryMode, over a log damaged in the middle
// and one damaged at the end: when Open succeeds, what the visitor saw is
// exactly what a LogReader of the opened store returns.
TEST(StreamingReviewTest, TheVisitorSeesWhatRecoveryKeepsInEveryMode) {
  for (bool damage_at_end : {false, true}) {
    const std::string path = TempPath("visit_modes.log");
    std::vector<uint64_t> addresses;
    {
      auto store = LogStructuredStore::Open(path, SmallOptions());
      ASSERT_TRUE(store.ok()) << store.status();
      addresses = Fill(**store, 60);
      ASSERT_TRUE((*store)->Close().ok());
    }
    // One byte of one record's payload.
    const uint64_t victim = addresses[damage_at_end ? 58 : 30] + 40;
    {
      FILE* f = std::fopen(path.c_str(), "r+b");
      ASSERT_NE(f, nullptr);
      ASSERT_EQ(std::fseek(f, static_cast<long>(victim), SEEK_SET), 0);
      const int c = std::fgetc(f);
      ASSERT_EQ(std::fseek(f, static_cast<long>(victim), SEEK_SET), 0);
      std::fputc(c ^ 0x5a, f);
      std::fclose(f);
    }
    for (RecoveryMode mode :
         {RecoveryMode::kTolerateCorruptedTail,
          RecoveryMode::kAbsoluteConsistency, RecoveryMode::kPointInTime,
          RecoveryMode::kSkipCorrupted}) {
      SCOPED_TRACE(absl::StrCat("mode ", static_cast<int>(mode),
                                damage_at_end ? ", damage at the end"
                                              : ", damage in the middle"));
      StoreOptions o = SmallOptions();
      o.recovery = mode;
      o.read_only = true;  // the same file for every mode
      std::vector<std::pair<uint64_t, std::string>> seen;
      o.on_recovered_record = [&](const RecordView& r) {
        seen.emplace_back(r.address, std::string(r.payload));
        return absl::OkStatus();
      };
      auto store = LogStructuredStore::Open(path, o);
      if (!store.ok()) {
        EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
            << store.status();
        EXPECT_TRUE(mode == RecoveryMode::kTolerateCorruptedTail ||
                    mode == RecoveryMode::kAbsoluteConsistency)
            << store.status();
        continue;
      }
      EXPECT_GT(seen.size(), 20u);
      std::vector<std::pair<uint64_t, std::string>> read;
      absl::StatusOr<std::unique_ptr<LogReader>> reader =
          (*store)->NewLogReader(0);
      ASSERT_TRUE(reader.ok()) << reader.status();
      for (;;) {
        absl::StatusOr<bool> more = (*reader)->Next();
        ASSERT_TRUE(more.ok()) << more.status();
        if (!*more) break;
        read.emplace_back((*reader)->record().address,
                          std::string((*reader)->record().payload));
      }
      EXPECT_EQ(seen.size(), read.size());
      EXPECT_TRUE(seen == read) << "the visitor and the reader disagree";
      EXPECT_EQ(seen.size(), (*store)->recovery().records);
      for (const auto& [address, payload] : seen) {
        EXPECT_NE(address, victim - 40) << "the damaged record was kept";
      }
    }
  }
}

}  // namespace
}  // namespace lss
