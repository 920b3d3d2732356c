// Releasing a range from the middle of the log (LogStructuredStore::Release):
// its records are gone, everything around it reads back (by address,
// through readers, after reopening), its space goes back to the file
// system, the superblock's hole list stays within bounds, checkpoints and
// the capacity bound take it into account, and a crash at any step leaves
// the log whole. On a real file, and on a simulated disk that loses power.

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "flush/file.h"
#include "lss/log_structured_store.h"
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

constexpr size_t kPayloadBytes = 1000;

std::string Payload(uint64_t index) {
  return lss::testing::Payload(0, index, kPayloadBytes);
}



bool Gone(const LogStructuredStore& store, const std::vector<Hole>& holes,
          uint64_t address) {
  if (address < store.head()) return true;
  return std::any_of(holes.begin(), holes.end(), [&](const Hole& h) {
    return address >= h.begin && address < h.end;
  });
}

// Every record below the head or in a hole is NotFound; every other one
// reads back, by address and (in order, none missing) through a reader.
// Returns how many are gone.
size_t ExpectLog(LogStructuredStore& store, const std::vector<uint64_t>& a) {
  const std::vector<Hole> holes = store.holes();
  size_t gone = 0;
  std::vector<uint64_t> live;
  for (size_t i = 0; i < a.size(); ++i) {
    absl::StatusOr<LogRecord> r = store.Read(a[i]);
    if (Gone(store, holes, a[i])) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << i;
      EXPECT_THAT(r.status().message(), HasSubstr(store.path()));
      ++gone;
      continue;
    }
    EXPECT_TRUE(r.ok()) << "record " << i << ": " << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->payload, Payload(i)) << "record " << i;
    }
    live.push_back(i);
  }
  absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader();
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return gone;
  size_t n = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    if ((*reader)->record().tag.type != kDataRecordType) continue;
    EXPECT_LT(n, live.size());
    if (n >= live.size()) break;
    EXPECT_EQ((*reader)->record().address, a[live[n]]) << "record " << live[n];
    EXPECT_EQ((*reader)->record().payload, Payload(live[n]));
    ++n;
  }
  EXPECT_EQ(n, live.size()) << "the reader missed records";
  return gone;
}

// Bytes of disk the file holds (st_blocks).
uint64_t DiskBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST(ReleaseTest, ARangeGoesAndEverythingElseStays) {
  const std::string path = TempPath("release.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a = FillLog(**store, 0, 12000, kPayloadBytes);
  const uint64_t before = DiskBytes(path);
  ASSERT_TRUE((*store)->Release(a[1000], a[11000]).ok());
  ASSERT_EQ((*store)->holes().size(), 1u);
  const Hole hole = (*store)->holes().front();
  // The blocks that start in [a[1000], a[2000]).
  EXPECT_GE(hole.begin, a[1000]);
  EXPECT_LT(hole.begin, a[1000] + SmallLogOptions().buffer_bytes);
  EXPECT_GE(hole.end, a[11000]);
  EXPECT_LT(hole.end, a[11000] + SmallLogOptions().buffer_bytes);
  EXPECT_EQ((*store)->head(), (*store)->data_start());
  absl::StatusOr<LogRecord> gone = (*store)->Read(a[5000]);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.status().message(), HasSubstr("released"));
  EXPECT_GT(ExpectLog(**store, a), 9900u);
  EXPECT_LT(DiskBytes(path) + (hole.end - hole.begin) / 2, before)
      << "the released space was not given back";
  ASSERT_TRUE((*store)->Close().ok());

  // Recovery steps over the hole, and reads none of it (it reads the live
  // log and what lies past the tail: zeros written ahead, preallocation).
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->holes(), std::vector<Hole>{hole});
  const uint64_t live = (*store)->recovery().tail - (*store)->head() -
                        (hole.end - hole.begin);
  EXPECT_LE((*store)->recovery().bytes_scanned, live + (3 << 20));
  ExpectLog(**store, a);
  // The log goes on; a second hole, then a Truncate into the first one
  // moves the head to its end.
  const std::vector<uint64_t> more = FillLog(**store, 12000, 1000, kPayloadBytes);
  a.insert(a.end(), more.begin(), more.end());
  ASSERT_TRUE((*store)->Release(a[12200], a[12400]).ok());
  ASSERT_EQ((*store)->holes().size(), 2u);
  ExpectLog(**store, a);
  ASSERT_TRUE((*store)->Truncate(a[5000]).ok());
  EXPECT_EQ((*store)->head(), hole.end);
  ASSERT_EQ((*store)->holes().size(), 1u);
  ExpectLog(**store, a);
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->head(), hole.end);
  ASSERT_EQ((*store)->holes().size(), 1u);
  ExpectLog(**store, a);
}

TEST(ReleaseTest, HolesMergeAndOneAtTheHeadMovesIt) {
  const std::string path = TempPath("merge.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint64_t> a = FillLog(**store, 0, 1000, kPayloadBytes);
  ASSERT_TRUE((*store)->Release(a[100], a[200]).ok());
  ASSERT_TRUE((*store)->Release(a[300], a[400]).ok());
  ASSERT_TRUE((*store)->Release(a[600], a[700]).ok());
  ASSERT_EQ((*store)->holes().size(), 3u);
  // Overlapping both of the first two: one hole from the first's start to
  // the second's end.
  const std::vector<Hole> three = (*store)->holes();
  ASSERT_TRUE((*store)->Release(a[150], a[350]).ok());
  ASSERT_EQ((*store)->holes().size(), 2u);
  EXPECT_EQ((*store)->holes()[0].begin, three[0].begin);
  EXPECT_EQ((*store)->holes()[0].end, three[1].end);
  // Touching it from the head: the head moves past it.
  ASSERT_TRUE((*store)->Release(0, a[120]).ok());
  EXPECT_EQ((*store)->head(), three[1].end);
  EXPECT_EQ((*store)->holes(), std::vector<Hole>{three[2]});
  // Within what is gone already: nothing changes.
  ASSERT_TRUE((*store)->Release(a[10], a[50]).ok());
  ASSERT_TRUE((*store)->Release(a[610], a[650]).ok());
  EXPECT_EQ((*store)->holes(), std::vector<Hole>{three[2]});
  ExpectLog(**store, a);
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->head(), three[1].end);
  EXPECT_EQ((*store)->holes(), std::vector<Hole>{three[2]});
  ExpectLog(**store, a);
}

TEST(ReleaseTest, WhatCannotBeReleasedIsRefused) {
  const std::string path = TempPath("refused.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  // Blocks of one record each, 2 * kMaxHoles + 4 of them.
  std::vector<uint64_t> a;
  for (uint64_t i = 0; i < 2 * kMaxHoles + 4; ++i) {
    absl::StatusOr<uint64_t> r = (*store)->Append(Payload(i));
    ASSERT_TRUE(r.ok()) << r.status();
    a.push_back(*r);
    ASSERT_TRUE((*store)->Flush().ok());
  }
  ASSERT_TRUE((*store)->Sync().ok());
  absl::StatusOr<uint64_t> pending = (*store)->Append(Payload(a.size()));
  ASSERT_TRUE(pending.ok());
  const absl::Status past = (*store)->Release(a[5], *pending + 8);
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument) << past;
  EXPECT_THAT(past.message(), HasSubstr(path));
  EXPECT_TRUE((*store)->holes().empty());
  // Empty and backwards ranges change nothing.
  ASSERT_TRUE((*store)->Release(a[5], a[5]).ok());
  ASSERT_TRUE((*store)->Release(a[9], a[5]).ok());
  EXPECT_TRUE((*store)->holes().empty());
  // Every other block: kMaxHoles holes fit, one more does not.
  for (size_t i = 0; i < kMaxHoles; ++i) {
    ASSERT_TRUE((*store)->Release(a[1 + 2 * i], a[2 + 2 * i]).ok()) << i;
  }
  EXPECT_EQ((*store)->holes().size(), kMaxHoles);
  EXPECT_EQ((*store)->HolesAfterRelease(a[2 * kMaxHoles + 1],
                                        a[2 * kMaxHoles + 2]),
            kMaxHoles + 1);
  EXPECT_EQ((*store)->HolesAfterRelease(a[2 * kMaxHoles], a[2 * kMaxHoles + 1]),
            kMaxHoles);
  EXPECT_EQ((*store)->HolesAfterRelease(a[5], a[5]), kMaxHoles);
  const absl::Status many =
      (*store)->Release(a[2 * kMaxHoles + 1], a[2 * kMaxHoles + 2]);
  EXPECT_EQ(many.code(), absl::StatusCode::kResourceExhausted) << many;
  EXPECT_THAT(many.message(), HasSubstr(path));
  // Next to a hole it merges, so it fits; at the head it moves the head.
  ASSERT_TRUE((*store)->Release(a[2 * kMaxHoles], a[2 * kMaxHoles + 1]).ok());
  EXPECT_EQ((*store)->holes().size(), kMaxHoles);
  ASSERT_TRUE((*store)->Release(0, a[0]).ok());
  EXPECT_EQ((*store)->head(), a[1] - kBlockHeaderBytes);
  EXPECT_EQ((*store)->holes().size(), kMaxHoles);
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_EQ((*store)->Release(a[0], a[1]).code(),
            absl::StatusCode::kFailedPrecondition);

  StoreOptions ro = SmallLogOptions();
  ro.read_only = true;
  store = LogStructuredStore::Open(path, ro);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->holes().size(), kMaxHoles);
  EXPECT_EQ((*store)->Release(a[0], a[1]).code(),
            absl::StatusCode::kFailedPrecondition);
  for (size_t i = 1; i < a.size(); ++i) {
    // Release(a[j], a[j + 1]) takes the block that starts in between:
    // record j + 1's.
    const bool released =
        (i >= 2 && i % 2 == 0 && i <= 2 * kMaxHoles) || i == 2 * kMaxHoles + 1;
    absl::StatusOr<LogRecord> r = (*store)->Read(a[i]);
    EXPECT_EQ(r.ok(), !released) << i << ": " << r.status();
  }
}

// A bounded log that is full: a Release in the middle makes room, and the
// file never holds more than the bound.
TEST(ReleaseTest, ReleaseMakesRoomInABoundedLog) {
  const std::string path = TempPath("bounded.log");
  StoreOptions o = SmallLogOptions();
  o.capacity_bytes = 2 << 20;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a;
  int released = 0;
  while (released < 6) {
    absl::StatusOr<uint64_t> r = (*store)->Append(Payload(a.size()));
    if (r.ok()) {
      a.push_back(*r);
      if (a.size() % 20 == 0) {
        ASSERT_TRUE((*store)->Flush().ok());
      }
      continue;
    }
    ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
        << r.status();
    ASSERT_TRUE((*store)->Sync().ok());
    ASSERT_LE(DiskBytes(path), o.capacity_bytes);
    // Keep the oldest and the newest quarter of what is live; release the
    // middle.
    std::vector<size_t> live;
    const std::vector<Hole> holes = (*store)->holes();
    for (size_t i = 0; i < a.size(); ++i) {
      if (!Gone(**store, holes, a[i])) live.push_back(i);
    }
    ASSERT_GT(live.size(), 8u);
    ASSERT_TRUE((*store)
                    ->Release(a[live[live.size() / 4]],
                              a[live[live.size() * 3 / 4]])
                    .ok());
    ++released;
    absl::StatusOr<uint64_t> again = (*store)->Append(Payload(a.size()));
    ASSERT_TRUE(again.ok()) << "Release made no room: " << again.status();
    a.push_back(*again);
  }
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_LE(DiskBytes(path), o.capacity_bytes);
  store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->holes().empty());
  ExpectLog(**store, a);
}

// A bounded log whose preallocation the capacity held back: appends then
// extend the file past what was preallocated, and a range released there
// is punched. When a later Release raises the bound, preallocation must
// start above every block handed out, or it fills that hole again and the
// file holds more than capacity_bytes.
TEST(ReleaseTest, PreallocationNeverFillsAHoleAgain) {
  const std::string path = TempPath("refill.log");
  StoreOptions o = SmallLogOptions();
  o.capacity_bytes = 2 << 20;
  o.preallocate_bytes = 512 << 10;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> a;
  // Appends until the log is full; returns the first record's index.
  auto fill = [&] {
    const size_t first = a.size();
    for (;;) {
      absl::StatusOr<uint64_t> r = (*store)->Append(Payload(a.size()));
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
            << r.status();
        break;
      }
      a.push_back(*r);
    }
    EXPECT_TRUE((*store)->Sync().ok());
    return first;
  };
  fill();
  // The middle of the first fill, so the next fill extends the file.
  ASSERT_TRUE((*store)->Release(a[a.size() / 4], a[a.size() / 2]).ok());
  const size_t second = fill();
  ASSERT_GT(a.size() - second, 100u);
  // A range in what the file grew by, then more appends: the first raises
  // the preallocation bound below that range.
  ASSERT_TRUE((*store)->Release(a[second + 20], a[a.size() - 40]).ok());
  fill();
  EXPECT_LE(DiskBytes(path), o.capacity_bytes);
  ASSERT_TRUE((*store)->Close().ok());
  EXPECT_LE(DiskBytes(path), o.capacity_bytes);
  store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectLog(**store, a);
}

// A checkpoint stays in force while releases leave its records alone (its
// block list then names released blocks, which Open passes over) and is
// dropped by one that takes them.
TEST(ReleaseTest, CheckpointsSurviveReleasesThatLeaveTheirRecords) {
  const std::string path = TempPath("checkpoint.log");
  std::vector<uint64_t> a;
  uint64_t resume = 0;
  uint64_t at = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 400, kPayloadBytes);
    resume = (*store)->CheckpointBoundary();
    absl::StatusOr<uint64_t> c = (*store)->WriteCheckpoint(resume, "state");
    ASSERT_TRUE(c.ok()) << c.status();
    at = *c;
    const std::vector<uint64_t> more = FillLog(**store, 400, 400, kPayloadBytes);
    a.insert(a.end(), more.begin(), more.end());
    // Below the resume address, and up to it.
    EXPECT_FALSE((*store)->ReleaseDropsCheckpoint(a[100], a[200]));
    ASSERT_TRUE((*store)->Release(a[100], a[200]).ok());
    EXPECT_FALSE((*store)->ReleaseDropsCheckpoint(a[300], resume));
    ASSERT_TRUE((*store)->Release(a[300], resume).ok());
    // At the head, the holes it reaches absorbed: still below the resume
    // address.
    EXPECT_FALSE(
        (*store)->ReleaseDropsCheckpoint((*store)->head(), a[300]));
    EXPECT_EQ((*store)->checkpoint_resume(), resume);
    ASSERT_TRUE((*store)->Close().ok());
  }
  const auto reopen = [&](bool& resumed) {
    StoreOptions o = SmallLogOptions();
    resumed = false;
    o.on_checkpoint = [&](const CheckpointView& c) {
      EXPECT_EQ(c.bytes, "state");
      resumed = true;
      return absl::OkStatus();
    };
    return LogStructuredStore::Open(path, o);
  };
  bool resumed = false;
  auto store = reopen(resumed);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(resumed);
  EXPECT_EQ((*store)->recovery().checkpoint, at);
  EXPECT_EQ((*store)->holes().size(), 2u);
  ExpectLog(**store, a);
  // Now one that takes the record: the checkpoint goes.
  EXPECT_FALSE((*store)->ReleaseDropsCheckpoint(a[500], a[700]));
  ASSERT_TRUE((*store)->Release(a[500], a[700]).ok());
  EXPECT_EQ((*store)->checkpoint_resume(), resume);
  // From the head to a block past the resume address, the holes between
  // absorbed: the head would pass it.
  EXPECT_TRUE((*store)->ReleaseDropsCheckpoint((*store)->head(), a[420]));
  EXPECT_TRUE((*store)->ReleaseDropsCheckpoint(resume, at + 8));
  ASSERT_TRUE((*store)->Release(resume, at + 8).ok());
  EXPECT_EQ((*store)->checkpoint_resume(), 0u);
  EXPECT_FALSE((*store)->ReleaseDropsCheckpoint(a[750], a[780]))
      << "no checkpoint is left to drop";
  ASSERT_TRUE((*store)->Close().ok());
  store = reopen(resumed);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(resumed);
  EXPECT_EQ((*store)->recovery().checkpoint, 0u);
  EXPECT_EQ((*store)->recovery().scan_from, (*store)->head());
  ExpectLog(**store, a);
}


// Damage below a hole: DataLoss, as the hole list proves the records below
// it acknowledged; cut by kPointInTime, the hole lies past the new tail, so
// it is no longer part of the log, and what the new epoch writes there
// reads back.
TEST(ReleaseTest, ACutBelowAHoleDropsIt) {
  const std::string path = TempPath("cut.log");
  std::vector<uint64_t> a;
  {
    auto store = LogStructuredStore::Open(path, SmallLogOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    a = FillLog(**store, 0, 600, kPayloadBytes);
    ASSERT_TRUE((*store)->Release(a[300], a[400]).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  FlipBitAt(path, a[100] + 40);
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> refused =
      LogStructuredStore::Open(path, SmallLogOptions());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
      << refused.status();
  StoreOptions o = SmallLogOptions();
  o.recovery = RecoveryMode::kPointInTime;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->recovery().lost_acknowledged);
  EXPECT_LE((*store)->recovery().tail, a[100]);
  EXPECT_TRUE((*store)->holes().empty());
  // The block of records 100 to 119 is the first one cut.
  a.resize(100);
  const std::vector<uint64_t> more = FillLog(**store, 100, 600, kPayloadBytes);
  a.insert(a.end(), more.begin(), more.end());
  ExpectLog(**store, a);
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->holes().empty());
  EXPECT_EQ(ExpectLog(**store, a), 0u);
}

// Releases while two threads append and read back: every read is the
// record appended there or NotFound for a range released by the end, and
// afterwards every record outside the holes reads back.
TEST(ReleaseTest, ReleasesWhileThreadsAppendAndRead) {
  const std::string path = TempPath("threads.log");
  auto store = LogStructuredStore::Open(path, SmallLogOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  LogStructuredStore& log = **store;
  constexpr uint64_t kPerThread = 3000;
  struct Written {
    std::mutex mu;
    std::vector<uint64_t> addresses;  // record i of the stream
  };
  Written written[2];
  std::atomic<int> running{2};
  std::vector<uint64_t> not_found[2];  // indexes of records read NotFound
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (uint64_t i = 0; i < kPerThread; ++i) {
        absl::StatusOr<uint64_t> a =
            log.Append(lss::testing::Payload(t, i, 500));
        ASSERT_TRUE(a.ok()) << a.status();
        {
          std::lock_guard<std::mutex> lock(written[t].mu);
          written[t].addresses.push_back(*a);
        }
        if (i % 50 == 49) {
          ASSERT_TRUE(log.Sync().ok());
        }
        const uint64_t j = rng() % (i + 1);
        uint64_t at = 0;
        {
          std::lock_guard<std::mutex> lock(written[t].mu);
          at = written[t].addresses[j];
        }
        absl::StatusOr<LogRecord> r = log.Read(at);
        if (r.ok()) {
          ASSERT_TRUE(lss::testing::IsPayload(t, j, r->payload)) << j;
        } else {
          ASSERT_EQ(r.status().code(), absl::StatusCode::kNotFound)
              << r.status();
          not_found[t].push_back(j);
        }
      }
      running.fetch_sub(1);
    });
  }
  // Release a slice of what is durable, over and over.
  int releases = 0;
  while (running.load() > 0) {
    const uint64_t boundary = log.CheckpointBoundary();
    const uint64_t span = boundary - log.head();
    if (span > (1 << 20)) {
      // Every fourth from the head, which moves it under the readers.
      const uint64_t from =
          releases % 4 == 3 ? log.head()
                            : log.head() + span / 8 * (1 + releases % 6);
      const absl::Status s = log.Release(from, from + span / 16);
      if (s.code() == absl::StatusCode::kResourceExhausted) break;
      ASSERT_TRUE(s.ok()) << s;
      ++releases;
    }
    std::this_thread::yield();
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GT(releases, 3);
  const std::vector<Hole> holes = log.holes();
  for (uint64_t t = 0; t < 2; ++t) {
    for (uint64_t j : not_found[t]) {
      EXPECT_TRUE(Gone(log, holes, written[t].addresses[j]))
          << "stream " << t << " record " << j << " was NotFound";
    }
    for (uint64_t i = 0; i < kPerThread; ++i) {
      const uint64_t at = written[t].addresses[i];
      absl::StatusOr<LogRecord> r = log.Read(at);
      if (Gone(log, holes, at)) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
      } else {
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_TRUE(lss::testing::IsPayload(t, i, r->payload));
      }
    }
  }
  ASSERT_TRUE(log.Close().ok());
}

// A block of one record at `address` whose `stable` claims nothing, in
// `file`.
void PutBlock(std::vector<std::byte>& file, uint64_t address) {
  constexpr size_t kPayload = 100;
  const size_t used = kBlockHeaderBytes + RecordFootprint(kPayload);
  const std::span<std::byte> block =
      std::span<std::byte>(file).subspan(address, 4096);
  const std::span<std::byte> record =
      block.subspan(kBlockHeaderBytes, RecordFootprint(kPayload));
  std::fill(record.begin() + kRecordHeaderBytes, record.end(), std::byte{7});
  SealRecord(address + kBlockHeaderBytes, RecordTag{}, kPayload, record);
  SealBlock(BlockHeader{.store_id = 99, .address = address, .epoch = 1,
                        .used = static_cast<uint32_t>(used), .stable = 0},
            block);
}

// Blocks that claim nothing durable, one of them damaged below a hole: the
// hole list alone proves the damage is below what was acknowledged (a
// range is released only once it is durable), so it is DataLoss, not a
// torn tail to cut.
TEST(ReleaseTest, TheHoleListProvesWhatLiesBelowItAcknowledged) {
  const std::string path = TempPath("proof.log");
  const StoreOptions o = SmallLogOptions();
  constexpr uint64_t kStart = 8192;
  std::vector<std::byte> file(kStart + 4 * 4096);
  Superblock sb;
  sb.block_bytes = o.block_bytes;
  sb.buffer_bytes = o.buffer_bytes;
  sb.store_id = 99;
  sb.epoch = 1;
  sb.epoch_start = kStart;
  sb.data_start = kStart;
  sb.head = kStart;
  sb.holes = {{.begin = kStart + 4096, .end = kStart + 3 * 4096}};
  EncodeSuperblock(sb, file);
  PutBlock(file, kStart);
  PutBlock(file, kStart + 3 * 4096);
  file[kStart + 100] ^= std::byte{1};  // in its record
  {
    absl::StatusOr<std::unique_ptr<File>> f = OpenPosixFile(
        path, FileOptions{.create = true, .direct_io = false, .lock = false});
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE((*f)->WriteAt(0, file).ok());
  }
  {
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> refused =
        LogStructuredStore::Open(path, o);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
        << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr("hole list"));
  }
  StoreOptions cut = o;
  cut.recovery = RecoveryMode::kPointInTime;
  auto store = LogStructuredStore::Open(path, cut);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->recovery().lost_acknowledged);
  EXPECT_EQ((*store)->recovery().tail, kStart);
  EXPECT_TRUE((*store)->holes().empty());
}

StoreOptions SimOptions(lss::testing::SimDisk& disk) {
  return lss::testing::SimStoreOptions(disk, lss::testing::SimStoreKnobs());
}

// The power goes at every step of a Release (superblock write, its
// fdatasync, the hole punch): the log reopens with the old hole list or the
// new one, an acknowledged Release stays, and every record outside the
// holes reads back.
TEST(ReleaseTest, PowerLossDuringReleaseKeepsTheLogWhole) {
  constexpr char kPath[] = "/sim/release.log";
  // The hole lists before and after, from a run without failures (the
  // addresses are the same in every run).
  std::vector<Hole> old_holes;
  std::vector<Hole> new_holes;
  {
    lss::testing::SimDiskOptions disk_options;
    disk_options.direct_io_alignment = 512;
    lss::testing::SimDisk disk(disk_options);
    auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
    ASSERT_TRUE(store.ok()) << store.status();
    const std::vector<uint64_t> a = FillLog(**store, 0, 200, kPayloadBytes);
    ASSERT_TRUE((*store)->Release(a[20], a[40]).ok());
    old_holes = (*store)->holes();
    ASSERT_TRUE((*store)->Release(a[100], a[150]).ok());
    new_holes = (*store)->holes();
    ASSERT_EQ(new_holes.size(), 2u);
  }
  for (int fail_after = 0; fail_after < 12; ++fail_after) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE(absl::StrCat("fail after ", fail_after, ", seed ", seed));
      lss::testing::SimDiskOptions disk_options;
      disk_options.direct_io_alignment = 512;
      lss::testing::SimDisk disk(disk_options);
      std::vector<uint64_t> a;
      bool acknowledged = false;
      {
        auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
        ASSERT_TRUE(store.ok()) << store.status();
        a = FillLog(**store, 0, 200, kPayloadBytes);
        ASSERT_TRUE((*store)->Release(a[20], a[40]).ok());
        ASSERT_EQ((*store)->holes(), old_holes);
        disk.FailAfter(fail_after);
        acknowledged = (*store)->Release(a[100], a[150]).ok();
      }
      disk.Crash(seed);
      auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
      ASSERT_TRUE(store.ok()) << store.status();
      const std::vector<Hole> holes = (*store)->holes();
      if (acknowledged) {
        EXPECT_EQ(holes, new_holes) << "an acknowledged Release was undone";
      } else {
        EXPECT_TRUE(holes == old_holes || holes == new_holes);
      }
      ExpectLog(**store, a);
    }
  }
}

// A punch that fails after the superblock listed the hole: the Release
// fails, the hole stays listed (it is durable), and the next Release, even
// of the same range, punches it.
TEST(ReleaseTest, AFailedPunchIsPunchedByTheNextRelease) {
  constexpr char kPath[] = "/sim/punch.log";
  lss::testing::SimDiskOptions disk_options;
  disk_options.direct_io_alignment = 512;
  lss::testing::SimDisk disk(disk_options);
  auto store = LogStructuredStore::Open(kPath, SimOptions(disk));
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<uint64_t> a = FillLog(**store, 0, 200, kPayloadBytes);
  // The superblock's write and fdatasync go through; the punch does not.
  disk.FailAfter(2);
  const absl::Status failed = (*store)->Release(a[100], a[150]);
  disk.ClearFailAfter();
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.message(), HasSubstr("punching"));
  ASSERT_EQ((*store)->holes().size(), 1u);
  const Hole hole = (*store)->holes().front();
  const auto zeros = [&] {
    const std::string bytes =
        disk.Contents(kPath, hole.begin, hole.end - hole.begin);
    return std::all_of(bytes.begin(), bytes.end(),
                       [](char c) { return c == 0; });
  };
  EXPECT_FALSE(zeros());
  ASSERT_TRUE((*store)->Release(a[100], a[150]).ok());
  EXPECT_TRUE(zeros()) << "not punched";
  ExpectLog(**store, a);
}

}  // namespace
}  // namespace lss
