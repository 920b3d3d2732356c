// Log checkpoints (LogStructuredStore::WriteCheckpoint): an Open that asks
// for them hands the newest to the layer above and scans only from its
// resume address, while records below it still read back; one that does
// not apply any more (truncated past, cut, damaged, not a checkpoint) is
// not used, and the whole log is scanned. Checked on a real file and on a
// simulated disk that loses power in the middle of a checkpoint.

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "lss/superblock_io.h"
#include "testing/payload.h"
#include "testing/sim_disk.h"
#include "testing/sim_store.h"
#include "testing/temp_path.h"
#include "testing/test_log.h"

namespace lss {
namespace {

using ::lss::testing::FillLog;
using ::lss::testing::FlipBitAt;
using ::lss::testing::SmallLogOptions;
using ::lss::testing::TempPath;
using ::testing::HasSubstr;

constexpr size_t kPayloadBytes = 700;

std::string Payload(uint64_t index) {
  return lss::testing::Payload(0, index, kPayloadBytes);
}



// What an Open saw: the checkpoint handed over, and the records visited.
struct Seen {
  std::optional<std::string> bytes;
  uint64_t resume = 0;
  uint64_t address = 0;
  std::vector<uint64_t> visited;  // data records only
};

StoreOptions Resuming(Seen& seen, StoreOptions o = SmallLogOptions()) {
  o.on_checkpoint = [&seen](const CheckpointView& c) {
    EXPECT_FALSE(seen.bytes.has_value()) << "handed over twice";
    seen.bytes = std::string(c.bytes);
    seen.resume = c.resume;
    seen.address = c.address;
    return absl::OkStatus();
  };
  o.on_recovered_record = [&seen](const RecordView& r) {
    if (r.tag.type == kDataRecordType) seen.visited.push_back(r.address);
    return absl::OkStatus();
  };
  return o;
}

// Every record reads back by address and through a reader from the head.
void ExpectRecords(LogStructuredStore& store, const std::vector<uint64_t>& a) {
  for (uint64_t i = 0; i < a.size(); ++i) {
    absl::StatusOr<LogRecord> r = store.Read(a[i]);
    ASSERT_TRUE(r.ok()) << "record " << i << ": " << r.status();
    ASSERT_EQ(r->payload, Payload(i)) << "record " << i;
  }
  absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader();
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint64_t n = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    if ((*reader)->record().tag.type != kDataRecordType) continue;
    ASSERT_LT(n, a.size());
    ASSERT_EQ((*reader)->record().address, a[n]) << "record " << n;
    ++n;
  }
  EXPECT_EQ(n, a.size());
}

TEST(LogCheckpointTest, OpenResumesAtTheCheckpointAndReadsEverything) {
  const std::string path = TempPath("checkpoint.log");
  std::vector<uint64_t> a;
  uint64_t resume = 0;
  uint64_t at = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 300, kPayloadBytes);
    resume = (*store)->CheckpointBoundary();
    ASSERT_GT(resume, (*store)->head());
    absl::StatusOr<uint64_t> c = (*store)->WriteCheckpoint(resume, "state");
    ASSERT_TRUE(c.ok()) << c.status();
    at = *c;
    EXPECT_EQ((*store)->checkpoint_resume(), resume);
    std::vector<uint64_t> more = FillLog(**store, 300, 100, kPayloadBytes);
    a.insert(a.end(), more.begin(), more.end());
    ASSERT_TRUE((*store)->Close().ok());
  }
  Seen seen;
  auto store = LogStructuredStore::Open(path, Resuming(seen));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(seen.bytes.has_value());
  EXPECT_EQ(*seen.bytes, "state");
  EXPECT_EQ(seen.resume, resume);
  EXPECT_EQ(seen.address, at);
  const RecoveryReport& r = (*store)->recovery();
  EXPECT_EQ(r.scan_from, resume);
  EXPECT_EQ(r.checkpoint, at);
  EXPECT_TRUE(r.checkpoint_unused.empty()) << r.checkpoint_unused;
  // Exactly the records from the resume address on were visited.
  std::vector<uint64_t> want;
  for (uint64_t x : a) {
    if (x >= resume) want.push_back(x);
  }
  EXPECT_EQ(seen.visited, want);
  EXPECT_LT(want.size(), a.size());
  ExpectRecords(**store, a);
  // And the log goes on from there.
  std::vector<uint64_t> more = FillLog(**store, 400, 50, kPayloadBytes);
  a.insert(a.end(), more.begin(), more.end());
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectRecords(**store, a);
}

TEST(LogCheckpointTest, WithoutOnCheckpointEverythingIsScanned) {
  const std::string path = TempPath("checkpoint-unasked.log");
  std::vector<uint64_t> a;
  uint64_t resume = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 200, kPayloadBytes);
    resume = (*store)->CheckpointBoundary();
    ASSERT_TRUE((*store)->WriteCheckpoint(resume, "state").ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  Seen seen;
  StoreOptions o = Resuming(seen);
  o.on_checkpoint = nullptr;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(seen.visited, a);
  EXPECT_EQ((*store)->recovery().scan_from, (*store)->head());
  EXPECT_EQ((*store)->recovery().checkpoint, 0u);
  // The checkpoint still stands for a later open that asks for it.
  EXPECT_EQ((*store)->checkpoint_resume(), resume);
  ASSERT_TRUE((*store)->Close().ok());
  Seen again;
  store = LogStructuredStore::Open(path, Resuming(again));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(again.bytes.has_value());
}

TEST(LogCheckpointTest, ATruncatePastTheResumeAddressDropsIt) {
  const std::string path = TempPath("checkpoint-truncated.log");
  std::vector<uint64_t> a;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 300, kPayloadBytes);
    const uint64_t resume = (*store)->CheckpointBoundary();
    ASSERT_TRUE((*store)->WriteCheckpoint(resume, "state").ok());
    std::vector<uint64_t> more = FillLog(**store, 300, 100, kPayloadBytes);
    a.insert(a.end(), more.begin(), more.end());
    // Below the resume address: it stays.
    ASSERT_TRUE((*store)->Truncate(a[10]).ok());
    EXPECT_EQ((*store)->checkpoint_resume(), resume);
    // Past it: recovery could not start there any more.
    ASSERT_TRUE((*store)->Truncate(a[350]).ok());
    EXPECT_EQ((*store)->checkpoint_resume(), 0u);
    ASSERT_TRUE((*store)->Close().ok());
  }
  Seen seen;
  auto store = LogStructuredStore::Open(path, Resuming(seen));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(seen.bytes.has_value());
  EXPECT_EQ((*store)->recovery().scan_from, (*store)->head());
  for (uint64_t i = 0; i < a.size(); ++i) {
    absl::StatusOr<LogRecord> r = (*store)->Read(a[i]);
    if (a[i] >= (*store)->head()) {
      ASSERT_TRUE(r.ok()) << "record " << i << ": " << r.status();
      ASSERT_EQ(r->payload, Payload(i));
    }
  }
}

TEST(LogCheckpointTest, BadArgumentsAreRefusedNamingTheFile) {
  const std::string path = TempPath("checkpoint-args.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a = FillLog(**store, 0, 200, kPayloadBytes);
  const uint64_t resume = (*store)->CheckpointBoundary();
  for (uint64_t bad : {resume + 8, resume + 4096,
                       (*store)->HiStable() + (uint64_t{1} << 20)}) {
    absl::StatusOr<uint64_t> c = (*store)->WriteCheckpoint(bad, "x");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument)
        << bad << ": " << c.status();
    EXPECT_THAT(c.status().message(), HasSubstr(path));
  }
  ASSERT_TRUE((*store)->Truncate(a[150]).ok());
  absl::StatusOr<uint64_t> c =
      (*store)->WriteCheckpoint((*store)->data_start(), "x");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument)
      << c.status();
  ASSERT_TRUE((*store)->Close().ok());

  StoreOptions read_only = SmallLogOptions();
  read_only.read_only = true;
  store = LogStructuredStore::Open(path, read_only);
  ASSERT_TRUE(store.ok()) << store.status();
  c = (*store)->WriteCheckpoint((*store)->head(), "x");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition)
      << c.status();
}

// A checkpoint larger than a record goes in part records; it comes back
// whole, and one whose part is damaged is not used.
TEST(LogCheckpointTest, ALargeCheckpointSpansRecords) {
  const std::string path = TempPath("checkpoint-large.log");
  std::string big;
  uint64_t at = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    FillLog(**store, 0, 50, kPayloadBytes);
    for (size_t i = 0; big.size() < 3 * (*store)->max_payload_bytes() + 5;
         ++i) {
      big += absl::StrCat(i, ",");
    }
    absl::StatusOr<uint64_t> c =
        (*store)->WriteCheckpoint((*store)->CheckpointBoundary(), big);
    ASSERT_TRUE(c.ok()) << c.status();
    at = *c;
    FillLog(**store, 50, 50, kPayloadBytes);
    ASSERT_TRUE((*store)->Close().ok());
  }
  Seen seen;
  auto store = LogStructuredStore::Open(path, Resuming(seen));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(seen.bytes.has_value());
  EXPECT_EQ(*seen.bytes == big, true) << seen.bytes->size() << " bytes";
  // Its first part lies after the resume address: damage it.
  absl::StatusOr<LogRecord> last = (*store)->Read(at);
  ASSERT_TRUE(last.ok()) << last.status();
  uint64_t first_part = 0;
  std::memcpy(&first_part, last->payload.data() + 8, 8);
  ASSERT_GT(first_part, seen.resume);
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  {
    absl::StatusOr<std::unique_ptr<File>> file = OpenPosixFile(
        path, FileOptions{.direct_io = false, .lock = false});
    ASSERT_TRUE(file.ok()) << file.status();
    std::byte b{0};
    ASSERT_TRUE((*file)->ReadAt(first_part + 100, {&b, 1}).ok());
    b ^= std::byte{4};
    ASSERT_TRUE((*file)->WriteAt(first_part + 100, {&b, 1}).ok());
  }
  Seen again;
  StoreOptions o = Resuming(again);
  o.read_only = true;
  o.recovery = RecoveryMode::kPointInTime;
  store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(again.bytes.has_value());
  EXPECT_THAT((*store)->recovery().checkpoint_unused,
              HasSubstr("has part 0 damaged"));
}

// A superblock rewrite torn by a crash leaves the previous superblock, and
// with it the previous checkpoint, in force.
TEST(LogCheckpointTest, ADamagedNewestSuperblockLeavesThePreviousCheckpoint) {
  const std::string path = TempPath("checkpoint-torn.log");
  std::vector<uint64_t> a;
  uint64_t first = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 100, kPayloadBytes);
    first = (*store)->CheckpointBoundary();
    ASSERT_TRUE((*store)->WriteCheckpoint(first, "first").ok());
    std::vector<uint64_t> more = FillLog(**store, 100, 100, kPayloadBytes);
    a.insert(a.end(), more.begin(), more.end());
    ASSERT_TRUE(
        (*store)->WriteCheckpoint((*store)->CheckpointBoundary(), "second")
            .ok());
  }
  {
    absl::StatusOr<std::unique_ptr<File>> file = OpenPosixFile(
        path, FileOptions{.direct_io = false, .lock = false});
    ASSERT_TRUE(file.ok()) << file.status();
    absl::StatusOr<uint64_t> size = (*file)->Size();
    ASSERT_TRUE(size.ok());
    absl::StatusOr<LoadedSuperblock> sb = LoadSuperblock(**file, *size, 4096);
    ASSERT_TRUE(sb.ok()) << sb.status();
    // Damage the current slot's checksummed bytes.
    const uint64_t slot = (sb->sb.sequence % 2) * 4096;
    std::string byte(1, '\0');
    ASSERT_TRUE((*file)->ReadAt(slot + 40, {reinterpret_cast<std::byte*>(
                                                byte.data()), 1}).ok());
    byte[0] ^= 0x10;
    ASSERT_TRUE((*file)->WriteAt(slot + 40, {reinterpret_cast<std::byte*>(
                                                 byte.data()), 1}).ok());
  }
  Seen seen;
  auto store = LogStructuredStore::Open(path, Resuming(seen));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(seen.bytes.has_value());
  EXPECT_EQ(*seen.bytes, "first");
  EXPECT_EQ(seen.resume, first);
  ExpectRecords(**store, a);
}


// A log with a checkpoint and records on both sides of it, closed.
struct Checkpointed {
  uint64_t resume = 0;
  uint64_t at = 0;
};

Checkpointed WriteCheckpointedLog(const std::string& path) {
  Checkpointed c;
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return c;
  FillLog(**store, 0, 100, kPayloadBytes);
  c.resume = (*store)->CheckpointBoundary();
  absl::StatusOr<uint64_t> at = (*store)->WriteCheckpoint(c.resume, "state");
  EXPECT_TRUE(at.ok()) << at.status();
  c.at = at.value_or(0);
  FillLog(**store, 100, 100, kPayloadBytes);
  EXPECT_TRUE((*store)->Close().ok());
  return c;
}

// A checkpoint record that does not verify is not used: the whole log is
// scanned, and that scan finds the damage.
TEST(LogCheckpointTest, ADamagedCheckpointRecordIsNotUsed) {
  const std::string path = TempPath("checkpoint-damaged.log");
  const Checkpointed c = WriteCheckpointedLog(path);
  FlipBitAt(path, c.at + 30);
  Seen seen;
  StoreOptions o = Resuming(seen);
  o.read_only = true;
  o.recovery = RecoveryMode::kPointInTime;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(seen.bytes.has_value());
  const RecoveryReport& r = (*store)->recovery();
  EXPECT_THAT(r.checkpoint_unused, HasSubstr(path));
  EXPECT_THAT(r.checkpoint_unused, HasSubstr("not a checkpoint record"));
  EXPECT_EQ(r.scan_from, r.head);
  EXPECT_TRUE(r.lost_acknowledged);
  EXPECT_LE(r.tail, c.at);
}

// Damage between the resume address and the checkpoint: a resumed open
// refuses (the log ends below the checkpoint it resumed from); an open that
// cuts there drops the checkpoint, so the next one scans from the head.
TEST(LogCheckpointTest, ACutBelowTheCheckpointDropsIt) {
  const std::string path = TempPath("checkpoint-cut.log");
  const Checkpointed c = WriteCheckpointedLog(path);
  ASSERT_LT(c.resume + 100, c.at);
  FlipBitAt(path, c.resume + 100);
  {
    Seen seen;
    StoreOptions o = Resuming(seen);
    o.recovery = RecoveryMode::kPointInTime;
    auto store = LogStructuredStore::Open(path, o);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
        << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(path));
    EXPECT_THAT(store.status().message(),
                HasSubstr(absl::StrCat("checkpoint at offset ", c.at)));
  }
  {
    StoreOptions o = SmallLogOptions();
    o.recovery = RecoveryMode::kPointInTime;
    auto store = LogStructuredStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE((*store)->recovery().lost_acknowledged);
    EXPECT_EQ((*store)->checkpoint_resume(), 0u);
    ASSERT_TRUE((*store)->Close().ok());
  }
  Seen seen;
  auto store = LogStructuredStore::Open(path, Resuming(seen));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(seen.bytes.has_value());
  EXPECT_EQ((*store)->recovery().scan_from, (*store)->head());
}

// A superblock whose head lies past the end of the file is damaged (the
// head only moves to durable blocks, and the file never shrinks). Found by
// recovery_fuzzer: such a log opened, appended at the far head, and the next
// open's hole punch below it took the simulated disk's memory.
TEST(LogCheckpointTest, AHeadPastTheEndOfTheFileIsDataLoss) {
  const std::string path = TempPath("head-past-end.log");
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    FillLog(**store, 0, 10, kPayloadBytes);
    ASSERT_TRUE((*store)->Close().ok());
  }
  {
    absl::StatusOr<std::unique_ptr<File>> file = OpenPosixFile(
        path, FileOptions{.direct_io = false, .lock = false});
    ASSERT_TRUE(file.ok()) << file.status();
    absl::StatusOr<uint64_t> size = (*file)->Size();
    ASSERT_TRUE(size.ok());
    absl::StatusOr<LoadedSuperblock> sb = LoadSuperblock(**file, *size, 4096);
    ASSERT_TRUE(sb.ok()) << sb.status();
    Superblock next = sb->sb;
    next.head = *size + (uint64_t{1} << 40);
    ++next.sequence;
    ASSERT_TRUE(WriteSuperblock(**file, next).ok());
  }
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("past the end of the file"));
}

// The power goes at every step of a checkpoint (its record's write and
// fdatasync, the superblock's): the log reopens with the old checkpoint or
// the new one, never anything else, and every record reads back.
TEST(LogCheckpointTest, PowerLossDuringACheckpointLeavesOneThatApplies) {
  constexpr char kPath[] = "/sim/checkpoint.log";
  for (int fail_after = 0; fail_after < 12; ++fail_after) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE(absl::StrCat("fail after ", fail_after, ", seed ", seed));
      lss::testing::SimDiskOptions disk_options;
      disk_options.direct_io_alignment = 512;
      lss::testing::SimDisk disk(disk_options);
      const StoreOptions sim =
          lss::testing::SimStoreOptions(disk, lss::testing::SimStoreKnobs());
      std::vector<uint64_t> a;
      uint64_t first = 0;
      uint64_t second = 0;
      bool acknowledged = false;
      {
        auto store = LogStructuredStore::Open(kPath, sim);
        ASSERT_TRUE(store.ok()) << store.status();
        a = FillLog(**store, 0, 100, kPayloadBytes);
        first = (*store)->CheckpointBoundary();
        ASSERT_TRUE((*store)->WriteCheckpoint(first, "first").ok());
        std::vector<uint64_t> more = FillLog(**store, 100, 100, kPayloadBytes);
        a.insert(a.end(), more.begin(), more.end());
        second = (*store)->CheckpointBoundary();
        disk.FailAfter(fail_after);
        acknowledged = (*store)->WriteCheckpoint(second, "second").ok();
      }
      disk.Crash(seed);
      Seen seen;
      StoreOptions o = Resuming(seen, sim);
      auto store = LogStructuredStore::Open(kPath, o);
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE(seen.bytes.has_value());
      if (acknowledged) {
        EXPECT_EQ(*seen.bytes, "second");
      }
      EXPECT_TRUE((*seen.bytes == "first" && seen.resume == first) ||
                  (*seen.bytes == "second" && seen.resume == second))
          << *seen.bytes << " at " << seen.resume;
      ExpectRecords(**store, a);
    }
  }
}

}  // namespace
}  // namespace lss
