// Regression tests for the defects of issue 10 ("Trust"), one or more per
// defect, each through the public API on real files (or FakeIoRing where
// the question is what reached the durable image). Every one of them fails
// on 2f9885b, the commit the issue was filed against.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

constexpr size_t kBuffer = 64 << 10;

using ::lss::testing::TempPath;

StoreOptions SmallOptions() {
  StoreOptions o;
  o.buffer_bytes = kBuffer;
  o.ring_size = 2;
  o.allow_buffered_fallback = true;
  o.preallocate_bytes = 1 << 20;
  return o;
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void FlipBit(const std::string& path, uint64_t offset, int bit) {
  std::string bytes = FileBytes(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ (1 << bit));
  WriteBytes(path, bytes);
}

std::vector<LogRecord> ReadAll(LogStructuredStore& store) {
  std::vector<LogRecord> out;
  auto reader = store.NewLogReader();
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return out;
  for (;;) {
    absl::StatusOr<bool> next = (*reader)->Next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !*next) return out;
    const RecordView& r = (*reader)->record();
    out.push_back(
        LogRecord{r.address, r.tag, std::string(r.payload)});
  }
}

// Defect 1: with the default options, Sync and WaitStable return only once
// an fdatasync covers the records: they are on the fake's durable image.
TEST(TrustTest, DefaultSyncAndWaitStableAreDurable) {
  const std::string path = TempPath("durable.log");
  testing::FakeIoRing* fake = nullptr;
  StoreOptions options = SmallOptions();
  options.io_ring_factory = [&](unsigned depth)
      -> absl::StatusOr<std::unique_ptr<IoRing>> {
    auto ring = std::make_unique<testing::FakeIoRing>(
        testing::FakeIoRingOptions{.capacity = depth});
    fake = ring.get();
    return std::unique_ptr<IoRing>(std::move(ring));
  };
  auto store = LogStructuredStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NE(fake, nullptr);
  const std::string first(1000, 'a');
  const std::string second(2000, 'b');
  auto a = (*store)->Append(first);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*store)->Sync().ok());
  auto b = (*store)->Append(second);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*store)->WaitStable(*b).ok());
  EXPECT_GT((*store)->HiStable(), *b);
  EXPECT_GE((*store)->appender_stats().syncs, 2u);
  const std::vector<testing::FakeIoRing::Event> events = fake->events();
  ASSERT_FALSE(events.empty());
  const std::string durable = fake->durable_image(events.front().fd);
  ASSERT_GE(durable.size(), *b + kRecordHeaderBytes + second.size());
  EXPECT_EQ(durable.substr(*a + kRecordHeaderBytes, first.size()), first);
  EXPECT_EQ(durable.substr(*b + kRecordHeaderBytes, second.size()), second);
  ASSERT_TRUE((*store)->Close().ok());
}

// Defect 2: three synced records in three blocks; one bit flipped in the
// second. The default open refuses (the third block proves the second was
// acknowledged) and changes nothing; the third block survives for salvage.
TEST(TrustTest, DamageBelowTheAcknowledgedWatermarkIsDataLossNotACut) {
  const std::string path = TempPath("acknowledged.log");
  StoreOptions options = SmallOptions();
  options.durability = Durability::kSync;
  std::vector<uint64_t> at;
  {
    auto store = LogStructuredStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    for (char c : {'x', 'y', 'z'}) {
      auto a = (*store)->Append(std::string(300, c));
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE((*store)->Sync().ok());
      at.push_back(*a);
    }
    // A crash, not a clean close: the proof is in the third block alone.
    ASSERT_TRUE((*store)->Close().ok());
  }
  ASSERT_NE(at[0] / 4096, at[1] / 4096) << "one block per synced record";
  // Remove the close marker (the block after the third), as after a crash.
  std::string bytes = FileBytes(path);
  const uint64_t marker = (at[2] - kBlockHeaderBytes) + 4096;
  std::fill(bytes.begin() + marker, bytes.begin() + marker + 4096, '\0');
  WriteBytes(path, bytes);
  FlipBit(path, at[1] + kRecordHeaderBytes + 100, 3);
  const std::string damaged = FileBytes(path);

  auto refused = LogStructuredStore::Open(path, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
      << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr(path));
  EXPECT_THAT(refused.status().message(), HasSubstr("acknowledged"));
  EXPECT_EQ(FileBytes(path), damaged) << "a refused open changed the file";

  StoreOptions salvage = options;
  salvage.recovery = RecoveryMode::kSkipCorrupted;
  auto store = LogStructuredStore::Open(path, salvage);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<LogRecord> records = ReadAll(**store);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].address, at[0]);
  EXPECT_EQ(records[0].payload, std::string(300, 'x'));
  EXPECT_EQ(records[1].address, at[2]);
  EXPECT_EQ(records[1].payload, std::string(300, 'z'));
}

// Defect 2, the clean-close case: the close marker proves every record
// durable, so damage in the last data block is DataLoss too.
TEST(TrustTest, DamageInACleanlyClosedLogIsDataLoss) {
  const std::string path = TempPath("closed.log");
  uint64_t last = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 50; ++i) {
      auto a = (*store)->Append(std::string(500, static_cast<char>('a' + i % 26)));
      ASSERT_TRUE(a.ok()) << a.status();
      last = *a;
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  FlipBit(path, last + kRecordHeaderBytes + 7, 0);
  const std::string damaged = FileBytes(path);
  auto refused = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FileBytes(path), damaged);
}

// Defect 3: opened twice, 20 + 20 synced records, closed cleanly; the low
// bit of the epoch of the current superblock slot flipped.
TEST(TrustTest, ADamagedCurrentSuperblockIsDataLossNamingTheSlot) {
  const std::string path = TempPath("superblock.log");
  for (int life = 0; life < 2; ++life) {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE((*store)->Append(absl::StrCat("life ", life, " #", i)).ok());
    }
    ASSERT_TRUE((*store)->Sync().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  // Two opens: sequences 1 (slot 1) and 2 (slot 0, current). Epoch at 40.
  FlipBit(path, 40, 0);
  const std::string damaged = FileBytes(path);
  auto refused = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
      << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("slot 0 at offset 0"));
  EXPECT_EQ(FileBytes(path), damaged) << "a refused open changed the file";
}

// Defect 3: a log opened once has one superblock slot; damage to it is
// DataLoss, not "not a log file".
TEST(TrustTest, DamageToTheOnlySuperblockSlotIsDataLoss) {
  const std::string path = TempPath("only-slot.log");
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Append("kept").ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  for (uint64_t offset : {uint64_t{4096}, uint64_t{4096 + 40}}) {
    SCOPED_TRACE(offset);
    FlipBit(path, offset, 1);
    auto refused = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
        << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr("offset 4096"));
    FlipBit(path, offset, 1);  // repaired: opens again (read-only, so the
                               // log keeps its single slot)
    StoreOptions read_only = SmallOptions();
    read_only.read_only = true;
    auto store = LogStructuredStore::Open(path, read_only);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(ReadAll(**store).size(), 1u);
  }
}

// Defect 4: a Read of an address in a resident block's header or padding
// must not leave the block pinned (Sync and Close used to hang).
TEST(TrustTest, ReadingAHeaderOrPaddingAddressLeavesNothingPinned) {
  const std::string path = TempPath("pinned.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->Append("hello");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*store)->Flush().ok());
  const uint64_t base = *a - kBlockHeaderBytes;
  for (uint64_t address : {base, base + 8, *a + 64, base + 4088}) {
    absl::StatusOr<LogRecord> r = (*store)->Read(address);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << address;
  }
  ASSERT_TRUE((*store)->Sync().ok());
  ASSERT_TRUE((*store)->Close().ok());
}

// Defect 5: bad options are refused before the file is touched: an existing
// log stays byte-identical and a new path is not created.
TEST(TrustTest, BadOptionsChangeNothingAndCreateNothing) {
  const std::string path = TempPath("options.log");
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Append("a record").ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::string before = FileBytes(path);
  std::vector<StoreOptions> bad;
  for (size_t ring : {size_t{0}, size_t{1} << 20}) {
    bad.push_back(SmallOptions());
    bad.back().ring_size = ring;
  }
  bad.push_back(SmallOptions());
  bad.back().buffer_bytes = size_t{1} << 31;
  for (unsigned depth : {0u, 1u << 20}) {
    bad.push_back(SmallOptions());
    bad.back().queue_depth = depth;
  }
  for (int64_t delay_us : {int64_t{-1}, int64_t{100'001}}) {
    bad.push_back(SmallOptions());
    bad.back().commit_delay = std::chrono::microseconds(delay_us);
  }
  // Not a power of two, below 512, above 1 MiB.
  for (uint64_t zero : {uint64_t{3} << 12, uint64_t{256}, uint64_t{2} << 20}) {
    bad.push_back(SmallOptions());
    bad.back().zero_ahead_bytes = zero;
  }
  bad.push_back(SmallOptions());
  bad.back().lock = false;  // a writer always locks
  const std::string fresh = TempPath("never-created.log");
  for (const StoreOptions& o : bad) {
    SCOPED_TRACE(absl::StrCat("ring_size ", o.ring_size, " buffer_bytes ",
                              o.buffer_bytes, " queue_depth ", o.queue_depth,
                              " commit_delay ", o.commit_delay.count(),
                              " zero_ahead_bytes ", o.zero_ahead_bytes,
                              " lock ", o.lock));
    auto store = LogStructuredStore::Open(path, o);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(store.status().message(), HasSubstr(path));
    EXPECT_EQ(FileBytes(path), before);
    auto created = LogStructuredStore::Open(fresh, o);
    ASSERT_FALSE(created.ok());
    struct stat st;
    EXPECT_NE(stat(fresh.c_str(), &st), 0) << "a failed Open left a file";
  }
  // A failure after the file was created (the I/O ring) removes it too.
  StoreOptions broken = SmallOptions();
  broken.io_ring_factory =
      [](unsigned) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    return absl::UnavailableError("no ring today");
  };
  auto store = LogStructuredStore::Open(fresh, broken);
  ASSERT_FALSE(store.ok());
  struct stat st;
  EXPECT_NE(stat(fresh.c_str(), &st), 0) << "a failed Open left a file";
}

// Defect 6: kSkipCorrupted keeps every record whose own checksum verifies,
// not only whole blocks.
TEST(TrustTest, SalvageKeepsEveryRecordThatVerifies) {
  const std::string path = TempPath("salvage.log");
  std::vector<uint64_t> at;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (char c : {'p', 'q', 'r'}) {
      auto a = (*store)->Append(std::string(200, c));
      ASSERT_TRUE(a.ok()) << a.status();
      at.push_back(*a);
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  ASSERT_EQ(at[0] / 4096, at[2] / 4096) << "one block";
  FlipBit(path, at[1] + kRecordHeaderBytes + 50, 6);
  StoreOptions salvage = SmallOptions();
  salvage.recovery = RecoveryMode::kSkipCorrupted;
  auto store = LogStructuredStore::Open(path, salvage);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->recovery().salvaged_records, 2u);
  const std::vector<LogRecord> records = ReadAll(**store);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].payload, std::string(200, 'p'));
  EXPECT_EQ(records[1].payload, std::string(200, 'r'));
  auto r = (*store)->Read(at[2]);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload, std::string(200, 'r'));
  EXPECT_EQ((*store)->Read(at[1]).status().code(),
            absl::StatusCode::kNotFound);
}

// Defect 7: odd files get clear errors and never hang.
TEST(TrustTest, OddFilesAreRefusedClearly) {
  const std::string fifo = TempPath("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  StoreOptions read_only = SmallOptions();
  read_only.read_only = true;
  for (const StoreOptions& o : {read_only, SmallOptions()}) {
    auto store = LogStructuredStore::Open(fifo, o);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(store.status().message(), HasSubstr("FIFO"));
  }
  const char* dir = std::getenv("TEST_TMPDIR");
  auto store = LogStructuredStore::Open(dir != nullptr ? dir : "/tmp",
                                        read_only);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("directory"));
  store = LogStructuredStore::Open("/dev/null", read_only);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("character device"));
}

// Defect 8: WaitStable of an address where no record can start is
// InvalidArgument, and a LogReader fails once its store is closed.
TEST(TrustTest, WaitStableOfNoRecordAndReadingAfterCloseFail) {
  const std::string path = TempPath("contract.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->Append("one");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*store)->Append("two").ok());
  for (uint64_t address : {uint64_t{1}, uint64_t{0}, *a + 1,
                           *a - kBlockHeaderBytes, *a + (uint64_t{1} << 30)}) {
    EXPECT_EQ((*store)->WaitStable(address).code(),
              absl::StatusCode::kInvalidArgument)
        << address;
  }
  ASSERT_TRUE((*store)->WaitStable(*a).ok());
  // Still refused once that block is durable.
  EXPECT_EQ((*store)->WaitStable(*a - kBlockHeaderBytes + 8).code(),
            absl::StatusCode::kInvalidArgument);
  auto reader = (*store)->NewLogReader();
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*store)->Close().ok());
  absl::StatusOr<bool> next = (*reader)->Next();
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lss
