// A log with a head: Truncate moves it up, the space below goes back to the
// file system, and Open scans from the head. Checked on a real file (disk
// usage, recovery cost) and on a simulated disk that loses power in the
// middle of a Truncate.

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"
#include "testing/sim_disk.h"
#include "testing/sim_store.h"
#include "testing/temp_path.h"
#include "testing/test_log.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

using ::lss::testing::FillLog;
using ::lss::testing::SmallLogOptions;
using ::lss::testing::TempPath;

// Record `index` of stream 0.
std::string Payload(uint64_t index, size_t bytes) {
  return lss::testing::Payload(0, index, bytes);
}

bool IsPayload(uint64_t index, absl::string_view payload) {
  return lss::testing::IsPayload(0, index, payload);
}


// The bytes of the file's extents, written or only allocated (FIEMAP): the
// file system's own metadata blocks, which st_blocks also counts, are not
// the log's doing.
uint64_t DiskBytes(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  constexpr uint32_t kExtents = 256;
  std::vector<std::byte> buf(sizeof(fiemap) +
                             kExtents * sizeof(fiemap_extent));
  uint64_t total = 0;
  uint64_t start = 0;
  for (;;) {
    auto* map = reinterpret_cast<fiemap*>(buf.data());
    std::memset(buf.data(), 0, buf.size());
    map->fm_start = start;
    map->fm_length = ~uint64_t{0} - start;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = kExtents;
    EXPECT_EQ(ioctl(fd, FS_IOC_FIEMAP, map), 0) << path;
    if (map->fm_mapped_extents == 0) break;
    bool last = false;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      const fiemap_extent& e = map->fm_extents[i];
      total += e.fe_length;
      start = e.fe_logical + e.fe_length;
      last = last || (e.fe_flags & FIEMAP_EXTENT_LAST) != 0;
    }
    if (last) break;
  }
  close(fd);
  return total;
}


// Every record from `from` on reads back, by address and through a reader;
// every one below the head is NotFound.
void ExpectLog(LogStructuredStore& store, const std::vector<uint64_t>& a,
               size_t from) {
  const uint64_t head = store.head();
  for (size_t i = 0; i < a.size(); ++i) {
    absl::StatusOr<LogRecord> r = store.Read(a[i]);
    if (a[i] < head) {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kNotFound) << i;
      ASSERT_THAT(r.status().message(), HasSubstr("truncated"));
      continue;
    }
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    ASSERT_TRUE(IsPayload(i, r->payload)) << i;
  }
  auto reader = store.NewLogReader(0);
  ASSERT_TRUE(reader.ok());
  size_t i = 0;
  while (i < a.size() && a[i] < head) ++i;
  ASSERT_LE(i, from);
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    ASSERT_LT(i, a.size());
    ASSERT_EQ((*reader)->record().address, a[i]);
    ASSERT_TRUE(IsPayload(i, (*reader)->record().payload));
    ++i;
  }
  EXPECT_EQ(i, a.size());
}

TEST(TruncateTest, TheSpaceGoesBackAndOpenScansFromTheHead) {
  const std::string path = TempPath("truncate.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a = FillLog(**store, 0, 3000, 4000);
  const uint64_t before = DiskBytes(path);
  ASSERT_TRUE((*store)->Truncate(a[2500]).ok());
  const uint64_t head = (*store)->head();
  EXPECT_LE(head, a[2500]);
  EXPECT_GT(head, a[2480]) << "the head is the block holding the address";
  EXPECT_THAT((*store)->Read(a[10]).status().message(), HasSubstr(path));
  EXPECT_LT(DiskBytes(path) + (head - a[0]) / 2, before)
      << "the truncated space was not given back";
  ExpectLog(**store, a, 2500);
  ASSERT_TRUE((*store)->Close().ok());

  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->recovery().head, head);
  EXPECT_EQ((*store)->head(), head);
  const uint64_t live = (*store)->recovery().tail - head;
  // The scan reads the live log and what lies past the tail (zeros a group
  // commit wrote ahead, preallocated space), never the 10 MB truncated.
  EXPECT_LE((*store)->recovery().bytes_scanned, live + (3 << 20))
      << "recovery read more than the live log";
  EXPECT_LT((*store)->recovery().bytes_scanned, (head - a[0]) / 2);
  ExpectLog(**store, a, 2500);
  // The log goes on, and truncates again, past this epoch's start.
  const std::vector<uint64_t> more = FillLog(**store, 3000, 500, 4000);
  a.insert(a.end(), more.begin(), more.end());
  ASSERT_TRUE((*store)->Truncate(a[3200]).ok());
  ExpectLog(**store, a, 3200);
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectLog(**store, a, 3200);
}

TEST(TruncateTest, WhatCannotBeTruncatedIsRefused) {
  const std::string path = TempPath("refused.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint64_t> a = FillLog(**store, 0, 100, 1000);
  absl::StatusOr<uint64_t> pending = (*store)->Append(Payload(100, 1000));
  ASSERT_TRUE(pending.ok());
  // Not durable yet.
  absl::Status past = (*store)->Truncate(*pending + 8);
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument) << past;
  EXPECT_THAT(past.message(), HasSubstr(path));
  ASSERT_TRUE((*store)->Truncate(a[60]).ok());
  const uint64_t head = (*store)->head();
  // Lower: nothing changes.
  ASSERT_TRUE((*store)->Truncate(a[10]).ok());
  EXPECT_EQ((*store)->head(), head);
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_EQ((*store)->Truncate(a[90]).code(),
            absl::StatusCode::kFailedPrecondition);

  StoreOptions ro = SmallLogOptions();
  ro.read_only = true;
  store = LogStructuredStore::Open(path, ro);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->head(), head);
  EXPECT_EQ((*store)->Truncate(a[90]).code(),
            absl::StatusCode::kFailedPrecondition);
}

// A bounded log written 10 times over: appends fail with ResourceExhausted
// when it is full, Truncate makes room, the file never holds more disk than
// the bound, and every record acknowledged and not truncated reads back.
TEST(CapacityTest, DiskUseNeverPassesTheBound) {
  const std::string path = TempPath("capacity.log");
  StoreOptions o = SmallLogOptions();
  o.capacity_bytes = 1 << 20;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a;
  uint64_t full = 0;
  uint64_t written = 0;
  while (written < 10 * o.capacity_bytes) {
    absl::StatusOr<uint64_t> r =
        (*store)->Append(Payload(a.size(), 1000 + a.size() % 3000));
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
          << r.status();
      ASSERT_THAT(r.status().message(), HasSubstr(path));
      ASSERT_LT(++full, 1000u) << "Truncate made no room: " << r.status();
      // Keep the newest quarter.
      ASSERT_TRUE((*store)->Sync().ok());
      size_t live = 0;
      while (a[live] < (*store)->head()) ++live;
      ASSERT_TRUE((*store)->Truncate(a[live + (a.size() - live) * 3 / 4]).ok());
      ASSERT_LE(DiskBytes(path), o.capacity_bytes);
      continue;
    }
    a.push_back(*r);
    written += 1000 + (a.size() - 1) % 3000;
    if (a.size() % 50 == 0) {
      ASSERT_TRUE((*store)->Sync().ok());
      ASSERT_LE(DiskBytes(path), o.capacity_bytes) << "after " << written;
    }
  }
  EXPECT_GE(full, 5u);
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_LE(DiskBytes(path), o.capacity_bytes);
  store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  const uint64_t head = (*store)->head();
  size_t kept = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] < head) continue;
    absl::StatusOr<LogRecord> r = (*store)->Read(a[i]);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    ASSERT_TRUE(IsPayload(i, r->payload)) << i;
    ++kept;
  }
  EXPECT_GT(kept, 100u);
}

TEST(CapacityTest, ManyThreadsNeverPassTheBound) {
  const std::string path = TempPath("capacity_threads.log");
  StoreOptions o = SmallLogOptions();
  o.capacity_bytes = 1 << 20;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::thread> threads;
  std::atomic<uint64_t> appended{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        absl::StatusOr<uint64_t> r =
            (*store)->Append(Payload(i, 500 + 700 * t));
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
              << r.status();
          return;
        }
        appended.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_GT(appended.load(), 200u);
  EXPECT_LE(DiskBytes(path), o.capacity_bytes);
}

TEST(CapacityTest, ABoundTooSmallIsRefused) {
  const std::string path = TempPath("too_small.log");
  StoreOptions o = SmallLogOptions();
  o.capacity_bytes = 4 * o.buffer_bytes;  // no room for the superblocks
  auto store = LogStructuredStore::Open(path, o);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("capacity_bytes"));
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0) << "a refused Open made a file";
}

StoreOptions SimOptions(lss::testing::SimDisk& disk) {
  return lss::testing::SimStoreOptions(disk, lss::testing::SimStoreKnobs());
}

// The power goes at every step of a Truncate (superblock write, its
// fdatasync, the hole punch): the log reopens with the old head or the new
// one, never anything else, and every record at or after the new head
// reads back.
TEST(TruncateTest, PowerLossDuringTruncateKeepsTheLogWhole) {
  constexpr char kPath[] = "/sim/truncate.log";
  for (int fail_after = 0; fail_after < 12; ++fail_after) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      SCOPED_TRACE(absl::StrCat("fail after ", fail_after, ", seed ", seed));
      lss::testing::SimDiskOptions disk_options;
      disk_options.direct_io_alignment = 512;
      lss::testing::SimDisk disk(disk_options);
      std::vector<uint64_t> a;
      uint64_t old_head = 0;
      uint64_t new_head = 0;
      {
        auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
        ASSERT_TRUE(store.ok()) << store.status();
        a = FillLog(**store, 0, 200, 1000);
        old_head = (*store)->head();
        disk.FailAfter(fail_after);
        absl::Status s = (*store)->Truncate(a[150]);
        new_head = s.ok() ? (*store)->head() : 0;
      }
      disk.Crash(seed);
      auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
      ASSERT_TRUE(store.ok()) << store.status();
      const uint64_t head = (*store)->head();
      if (new_head != 0) {
        EXPECT_EQ(head, new_head) << "an acknowledged Truncate was undone";
      }
      // The new head is the start of the block holding a[150]: within one
      // buffer below it.
      EXPECT_TRUE(head == old_head ||
                  (head <= a[150] && head + (8192 - 64) > a[150]))
          << head;
      ExpectLog(**store, a, 150);
    }
  }
}

}  // namespace
}  // namespace lss
