// Faults injected into Open and recovery through the File seam (issue 10
// section 2), on testing/'s in-memory disk: every read, write, fdatasync and
// fallocate that Open makes is failed in turn. Open then fails with the
// injected error mapped once (EIO is DataLoss, ENOSPC ResourceExhausted),
// naming the file; it changes nothing the next Open depends on; and the
// next Open, with nothing injected, recovers every record.

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/sim_disk.h"
#include "testing/sim_store.h"

namespace lss {
namespace {

using ::testing::HasSubstr;
using FileOp = testing::SimDisk::FileOp;

constexpr char kPath[] = "/sim/faults.log";

testing::SimDiskOptions DiskOptions() {
  testing::SimDiskOptions o;
  o.direct_io_alignment = 512;
  return o;
}

StoreOptions Options(testing::SimDisk& disk) {
  testing::SimStoreKnobs knobs;
  knobs.queue_depth = 8;
  return testing::SimStoreOptions(disk, knobs);
}

std::string Payload(int i) {
  return absl::StrCat("record ", i, " ", std::string(i * 37 % 900, 'x'));
}

// A log of `n` records over two lives, closed cleanly.
std::vector<uint64_t> MakeLog(testing::SimDisk& disk, int n) {
  std::vector<uint64_t> at;
  for (int life = 0; life < 2; ++life) {
    auto store = LogStructuredStore::Open(kPath, Options(disk));
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return at;
    for (int i = life * n / 2; i < (life + 1) * n / 2; ++i) {
      auto a = (*store)->Append(Payload(i));
      EXPECT_TRUE(a.ok()) << a.status();
      at.push_back(*a);
    }
    EXPECT_TRUE((*store)->Close().ok());
  }
  return at;
}

void ExpectEveryRecord(testing::SimDisk& disk,
                       const std::vector<uint64_t>& at) {
  auto store = LogStructuredStore::Open(kPath, Options(disk));
  ASSERT_TRUE(store.ok()) << store.status();
  for (size_t i = 0; i < at.size(); ++i) {
    auto r = (*store)->Read(at[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->payload, Payload(static_cast<int>(i)));
  }
  EXPECT_FALSE((*store)->recovery().cut);
  ASSERT_TRUE((*store)->Close().ok());
}

struct Fault {
  FileOp op;
  int error;
  absl::StatusCode code;
  const char* name;
};

// Each fault at each call of its kind that Open makes, until Open makes
// fewer calls than that.
TEST(OpenFaultsTest, EveryFileOperationOfOpenCanFailCleanly) {
  const Fault faults[] = {
      {FileOp::kRead, EIO, absl::StatusCode::kDataLoss, "read EIO"},
      {FileOp::kWrite, EIO, absl::StatusCode::kDataLoss, "write EIO"},
      {FileOp::kWrite, ENOSPC, absl::StatusCode::kResourceExhausted,
       "write ENOSPC"},
      {FileOp::kDataSync, EIO, absl::StatusCode::kDataLoss, "fdatasync EIO"},
  };
  int injected = 0;
  for (const Fault& f : faults) {
    for (uint64_t nth = 0;; ++nth) {
      SCOPED_TRACE(absl::StrCat(f.name, " at call ", nth));
      testing::SimDisk disk(DiskOptions());
      const std::vector<uint64_t> at = MakeLog(disk, 40);
      ASSERT_EQ(at.size(), 40u);
      const std::string before = disk.Contents(kPath, 0, ~uint64_t{0});
      disk.InjectFileError(f.op, nth, f.error);
      auto store = LogStructuredStore::Open(kPath, Options(disk));
      if (store.ok()) {
        // Open made fewer calls of this kind: the fault never fired.
        ASSERT_GT(nth, 0u) << "Open makes no call of this kind";
        break;
      }
      ++injected;
      EXPECT_EQ(store.status().code(), f.code) << store.status();
      EXPECT_THAT(store.status().message(), HasSubstr(kPath));
      if (f.op == FileOp::kRead) {
        EXPECT_EQ(disk.Contents(kPath, 0, ~uint64_t{0}), before)
            << "a failed read changed the file";
      }
      ExpectEveryRecord(disk, at);
    }
  }
  EXPECT_GT(injected, 5);
}

// A new log whose first superblock cannot be written or synced is removed.
TEST(OpenFaultsTest, ANewLogThatCannotStartIsRemoved) {
  for (FileOp op : {FileOp::kWrite, FileOp::kDataSync}) {
    testing::SimDisk disk(DiskOptions());
    disk.InjectFileError(op, 0, EIO);
    auto store = LogStructuredStore::Open(kPath, Options(disk));
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_FALSE(disk.Exists(kPath));
  }
}

// Preallocation failing (ENOSPC from fallocate) is not an error by itself:
// the store stops preallocating and the writes report what they meet.
TEST(OpenFaultsTest, PreallocationThatFailsLeavesTheWritesToReport) {
  testing::SimDisk disk(DiskOptions());
  disk.InjectFileError(FileOp::kAllocate, 0, ENOSPC);
  std::vector<uint64_t> at;
  {
    auto store = LogStructuredStore::Open(kPath, Options(disk));
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 40; ++i) {
      auto a = (*store)->Append(Payload(i));
      ASSERT_TRUE(a.ok()) << a.status();
      at.push_back(*a);
    }
    ASSERT_TRUE((*store)->Sync().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  ExpectEveryRecord(disk, at);
}

}  // namespace
}  // namespace lss
