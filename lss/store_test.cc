// LogStructuredStore on a real file: reads from resident buffers and from
// disk, padding, reopening, the epoch cut, and many threads appending,
// reading and syncing at once (a concurrency test: CI runs it under TSan and
// ASan).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::lss::testing::FillPayload;
using ::lss::testing::IsPayload;
using ::lss::testing::Payload;
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


std::vector<LogRecord> ReadAll(LogStructuredStore& store) {
  std::vector<LogRecord> out;
  auto reader = store.NewLogReader();
  EXPECT_TRUE(reader.ok()) << reader.status();
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    const RecordView& r = (*reader)->record();
    out.push_back({r.address, r.tag, std::string(r.payload)});
  }
  return out;
}

TEST(StoreTest, ReadsFromTheResidentBufferAndFromDisk) {
  const std::string path = TempPath("resident.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->Append(Payload(1, 0, 100), RecordTag{.type = 20, .key = 7});
  ASSERT_TRUE(a.ok()) << a.status();
  // Not yet sealed: Read must find it anyway.
  auto r = (*store)->Read(*a);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(IsPayload(1, 0, r->payload));
  EXPECT_EQ(r->tag.type, 20u);
  EXPECT_EQ(r->tag.key, 7u);
  ASSERT_TRUE((*store)->Close().ok());

  auto reopened = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  r = (*reopened)->Read(*a);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(IsPayload(1, 0, r->payload));
  EXPECT_EQ(r->tag.key, 7u);
}

// The original crate's "read several slots back from disk", with the
// assertions it lacked.
TEST(StoreTest, ManyBuffersReadBackFromDiskByAddressAndInOrder) {
  const std::string path = TempPath("many.log");
  std::vector<uint64_t> addresses;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (uint64_t i = 0; i < 2000; ++i) {
      auto a = (*store)->Append(Payload(2, i, 1 + (i * 7919) % 3000));
      ASSERT_TRUE(a.ok()) << a.status();
      addresses.push_back(*a);
    }
    ASSERT_TRUE((*store)->Sync().ok());
    EXPECT_GE((*store)->HiStable(), addresses.back());
    EXPECT_GT((*store)->ring_stats().dispatches, 10u);
  }
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->recovery().records, 2000u);
  EXPECT_FALSE((*store)->recovery().cut);
  // Every record: small ones come in one read, ones that cross into the
  // next aligned block in two.
  for (uint64_t i = 0; i < addresses.size(); ++i) {
    auto r = (*store)->Read(addresses[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(IsPayload(2, i, r->payload)) << i;
  }
  const std::vector<LogRecord> all = ReadAll(**store);
  ASSERT_EQ(all.size(), 2000u);
  for (uint64_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].address, addresses[i]);
    EXPECT_TRUE(IsPayload(2, i, all[i].payload)) << i;
  }
}

TEST(StoreTest, AddressesThatHoldNoRecordAreNotFound) {
  const std::string path = TempPath("notfound.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->Append(Payload(3, 0, 100));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*store)->Sync().ok());
  const uint64_t block = (*store)->data_start();
  for (uint64_t bad : {uint64_t{0}, block, *a + 4, *a + 8, *a + 4096,
                       uint64_t{1} << 40}) {
    auto r = (*store)->Read(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(path));
    EXPECT_THAT(r.status().message(), HasSubstr(std::to_string(bad)));
  }
}

TEST(StoreTest, AnAbandonedReservationIsSkippedByReaders) {
  const std::string path = TempPath("abandon.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Append(Payload(4, 0, 50)).ok());
  {
    auto r = (*store)->Reserve(500);
    ASSERT_TRUE(r.ok());
    FillPayload(4, 99, r->payload());
  }  // dropped uncommitted
  ASSERT_TRUE((*store)->Append(Payload(4, 1, 60)).ok());
  ASSERT_TRUE((*store)->Close().ok());
  auto reopened = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  const std::vector<LogRecord> all = ReadAll(**reopened);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(IsPayload(4, 0, all[0].payload));
  EXPECT_TRUE(IsPayload(4, 1, all[1].payload));
}

// tmpfs refuses O_DIRECT: a clear error, or buffered I/O when allowed.
TEST(StoreTest, AFileSystemWithoutODirectFailsClearlyOrFallsBack) {
  const std::string path = "/dev/shm/lss_store_test_" +
                           std::to_string(getpid()) + ".log";
  const int probe = open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644);
  const int error = errno;
  unlink(path.c_str());
  if (probe >= 0) close(probe);
  if (probe >= 0 || error != EINVAL) {
    GTEST_SKIP() << "/dev/shm is missing or accepts O_DIRECT here";
  }
  StoreOptions options = SmallOptions();
  options.allow_buffered_fallback = false;
  auto refused = LogStructuredStore::Open(path, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr(path));
  EXPECT_THAT(refused.status().message(), HasSubstr("O_DIRECT"));

  options.allow_buffered_fallback = true;
  {
    auto store = LogStructuredStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_FALSE((*store)->direct_io());
    ASSERT_TRUE((*store)->Append(Payload(9, 0, 333)).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = LogStructuredStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<LogRecord> all = ReadAll(**store);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(IsPayload(9, 0, all[0].payload));
  unlink(path.c_str());
}

// Each block holds exactly one record of this size.
constexpr size_t kFullRecord = kBuffer - 64 - 24;

// The epoch cut: a block a crash left past the tail must never rejoin the
// log, even when new blocks end exactly where it begins. Open clears the
// space past the tail, so the stale block is put back by hand afterwards,
// as if that clearing had never reached the disk.
TEST(StoreTest, ABlockLeftPastTheTailNeverRejoinsTheLog) {
  const std::string path = TempPath("epoch.log");
  std::vector<uint64_t> addresses;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (uint64_t i = 0; i < 3; ++i) {
      auto a = (*store)->Append(Payload(5, i, kFullRecord));
      ASSERT_TRUE(a.ok());
      addresses.push_back(*a);
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  // As if the writer died before any sync, block 1 never reached the disk
  // but block 2 did: no close marker (the block after block 2), block 1's
  // first page zero.
  const uint64_t block1 = addresses[1] - 64;
  const uint64_t block2 = addresses[2] - 64;
  std::string stale(kBuffer, '\0');
  {
    const int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pread(fd, stale.data(), stale.size(), block2),
              ssize_t(kBuffer));
    const std::string zeros(4096, '\0');
    ASSERT_EQ(pwrite(fd, zeros.data(), zeros.size(), block1), 4096);
    ASSERT_EQ(pwrite(fd, zeros.data(), zeros.size(), block2 + kBuffer), 4096);
    close(fd);
  }
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->recovery().tail, block1);
    EXPECT_EQ((*store)->recovery().records, 1u);
    EXPECT_FALSE((*store)->Read(addresses[2]).ok()) << "cleared past the tail";
    // One full block lands on block 1's place and ends where block 2 began.
    auto a = (*store)->Append(Payload(6, 0, kFullRecord));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a, addresses[1]);
    ASSERT_TRUE((*store)->Close().ok());
  }
  {
    const int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, stale.data(), stale.size(), block2),
              ssize_t(kBuffer));
    close(fd);
  }
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->recovery().tail, block2);
  EXPECT_THAT((*store)->recovery().end, HasSubstr("stale block"));
  const std::vector<LogRecord> all = ReadAll(**store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(IsPayload(5, 0, all[0].payload));
  EXPECT_TRUE(IsPayload(6, 0, all[1].payload));
  EXPECT_FALSE((*store)->Read(addresses[2]).ok());
}

TEST(StoreTest, ReopenAppendsAfterTheRecoveredTail) {
  const std::string path = TempPath("reopen.log");
  for (uint64_t life = 0; life < 3; ++life) {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->recovery().records, life * 100);
    for (uint64_t i = 0; i < 100; ++i) {
      ASSERT_TRUE((*store)->Append(Payload(life, i, 200 + i)).ok());
    }
  }
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<LogRecord> all = ReadAll(**store);
  ASSERT_EQ(all.size(), 300u);
  for (uint64_t k = 0; k < all.size(); ++k) {
    EXPECT_TRUE(IsPayload(k / 100, k % 100, all[k].payload)) << k;
  }
}

// The file's apparent size and its disk use.
struct FileSize {
  uint64_t apparent = 0;
  uint64_t on_disk = 0;
};

FileSize SizeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return {static_cast<uint64_t>(st.st_size),
          static_cast<uint64_t>(st.st_blocks) * 512};
}

// With the default preallocation (256 MiB) a session that appends a few
// bytes still leaves a small file: preallocation grows with the log.
TEST(StoreTest, ATinySessionLeavesASmallFile) {
  const std::string path = TempPath("tiny.log");
  StoreOptions o;
  o.allow_buffered_fallback = true;
  {
    auto store = LogStructuredStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    const std::string payload = "twenty-three bytes long";
    absl::StatusOr<uint64_t> a = (*store)->Append(payload);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE((*store)->Sync().ok());
    absl::StatusOr<LogRecord> r = (*store)->Read(*a);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->payload, payload);
    ASSERT_TRUE((*store)->Close().ok());
  }
  const FileSize size = SizeOf(path);
  EXPECT_LT(size.apparent, 1u << 20);
  EXPECT_LT(size.on_disk, 1u << 20);
}

// As the log grows the file stays allocated ahead of it: past half a step
// once the step is the full preallocate_bytes, and never runaway.
TEST(StoreTest, PreallocationRunsAheadOfAGrowingLog) {
  const std::string path = TempPath("growing.log");
  const StoreOptions o = SmallOptions();
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string record(4000, 'r');
  for (int i = 1; i <= 1024; ++i) {
    ASSERT_TRUE((*store)->Append(record).ok());
    if (i % 64 != 0) continue;
    ASSERT_TRUE((*store)->Sync().ok());
    const uint64_t end = (*store)->HiStable();
    const FileSize size = SizeOf(path);
    SCOPED_TRACE(::testing::Message() << "log end " << end << ", file "
                                      << size.apparent);
    EXPECT_GT(size.apparent, end);
    EXPECT_LE(size.apparent, end + 2 * o.preallocate_bytes);
    if (end >= o.preallocate_bytes) {
      EXPECT_GE(size.apparent, end + o.preallocate_bytes / 2);
    }
  }
  ASSERT_TRUE((*store)->Close().ok());
}

// The original crate's "out-of-order stability", with real assertions:
// buffers complete in random order (FakeIoRing reorders and delays them),
// and HiStable never covers a record that is not on the fake's durable
// image, under either durability setting, while appends and reads go on.
void StabilityUnderReordering(Durability durability, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  const std::string path = TempPath("reorder.log");
  StoreOptions options = SmallOptions();
  options.ring_size = 4;
  options.durability = durability;
  // The first ring is the appender's; reads by address get rings of their
  // own, which read what it wrote.
  ::lss::testing::FakeIoRing* fake = nullptr;
  options.io_ring_factory = [&](unsigned)
      -> absl::StatusOr<std::unique_ptr<IoRing>> {
    auto ring = std::make_unique<::lss::testing::FakeIoRing>(
        ::lss::testing::FakeIoRingOptions{.seed = seed,
                                          .direct_io_alignment = 4096,
                                          .reorder = true,
                                          .max_delay_reaps = 6,
                                          .reads_images_of = fake});
    if (fake == nullptr) fake = ring.get();
    return ring;
  };
  auto store = LogStructuredStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  struct Appended {
    uint64_t address, stream, index;
    size_t len;
  };
  std::mutex mu;
  std::vector<Appended> appended;
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; i < 1500; ++i) {
        const size_t len = 1 + (i * 2654435761u + t) % 4000;
        auto a = (*store)->Append(Payload(t, i, len));
        ASSERT_TRUE(a.ok()) << a.status();
        std::lock_guard<std::mutex> lock(mu);
        appended.push_back({*a, uint64_t(t), i, len});
      }
    });
  }
  int checks = 0;
  auto check_stable_prefix = [&] {
    const uint64_t stable = (*store)->HiStable();
    std::vector<Appended> snapshot;
    {
      std::lock_guard<std::mutex> lock(mu);
      snapshot = appended;
    }
    if (fake == nullptr || stable <= (*store)->data_start()) return;
    const std::vector<::lss::testing::FakeIoRing::Event> events =
        fake->events();
    if (events.empty()) return;
    const int fd = events.front().fd;
    // Stable means durable, whichever the durability setting.
    const std::string disk = fake->durable_image(fd);
    for (const Appended& r : snapshot) {
      if (r.address >= stable) continue;
      ++checks;
      ASSERT_LE(r.address + 24 + r.len, disk.size())
          << "stable record at " << r.address << " is not on disk";
      ASSERT_TRUE(IsPayload(r.stream, r.index,
                            disk.substr(r.address + 24, r.len)))
          << "stable record at " << r.address << " differs on disk";
    }
  };
  std::thread checker([&] {
    while (!done.load()) {
      // Under kOnWait nothing is made durable until someone waits.
      if (durability == Durability::kOnWait) {
        ASSERT_TRUE((*store)->Sync().ok());
      }
      check_stable_prefix();
    }
  });
  for (std::thread& w : writers) w.join();
  ASSERT_TRUE((*store)->Sync().ok());
  done = true;
  checker.join();
  check_stable_prefix();
  EXPECT_GT(checks, 3000);
  // The fake did run writes out of address order.
  uint64_t last = 0;
  bool reordered = false;
  for (const auto& e : fake->events()) {
    if (e.kind != ::lss::testing::FakeIoRing::Event::Kind::kWrite) continue;
    reordered |= e.offset < last;
    last = std::max(last, e.offset);
  }
  EXPECT_TRUE(reordered);
  // Reads go through fake rings too, reordered and delayed.
  for (size_t k = 0; k < appended.size(); k += 97) {
    auto r = (*store)->Read(appended[k].address);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(IsPayload(appended[k].stream, appended[k].index, r->payload));
  }
  ASSERT_TRUE((*store)->Close().ok());
}

TEST(StoreTest, StabilityNeverCoversAHoleWhenWritesCompleteOutOfOrder) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    StabilityUnderReordering(Durability::kOnWait, seed);
    StabilityUnderReordering(Durability::kSync, seed);
  }
}

// Threads append and immediately read their own records back (from resident
// buffers or the file, whichever holds them at that moment) while another
// thread keeps calling Sync and WaitStable. Every byte is checked, during
// the run and after reopening.
void AppendReadSync(WritePolicy policy, Durability durability) {
  const std::string path = TempPath("concurrent.log");
  StoreOptions options = SmallOptions();
  options.policy = policy;
  options.durability = durability;
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 1500;
  std::vector<std::vector<uint64_t>> addresses(kThreads);
  {
    auto store = LogStructuredStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    std::atomic<int> running{kThreads};
    std::atomic<uint64_t> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t i = 0; i < kPerThread; ++i) {
          const size_t len = 1 + (i * 131 + t * 17) % 5000;
          auto a = (*store)->Append(Payload(t, i, len));
          if (!a.ok()) {
            failures.fetch_add(1);
            break;
          }
          addresses[t].push_back(*a);
          if (i % 64 == 63 && !(*store)->WaitStable(*a).ok()) {
            failures.fetch_add(1);
          }
          const uint64_t k = (i * 7) % addresses[t].size();
          auto r = (*store)->Read(addresses[t][k]);
          if (!r.ok() || !IsPayload(t, k, r->payload)) failures.fetch_add(1);
        }
        running.fetch_sub(1);
      });
    }
    threads.emplace_back([&] {
      while (running.load() > 0) {
        if (!(*store)->Sync().ok()) failures.fetch_add(1);
      }
    });
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0u);
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto store = LogStructuredStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<LogRecord> all = ReadAll(**store);
  ASSERT_EQ(all.size(), kThreads * kPerThread);
  std::vector<uint64_t> next(kThreads, 0);
  for (const LogRecord& r : all) {
    bool found = false;
    for (int t = 0; t < kThreads && !found; ++t) {
      if (next[t] < kPerThread && addresses[t][next[t]] == r.address) {
        EXPECT_TRUE(IsPayload(t, next[t], r.payload)) << r.address;
        ++next[t];
        found = true;
      }
    }
    ASSERT_TRUE(found) << "record at " << r.address << " out of order";
  }
}

TEST(StoreConcurrencyTest, TailLocalizedNoSync) {
  AppendReadSync(WritePolicy::kTailLocalized, Durability::kOnWait);
}
TEST(StoreConcurrencyTest, TailLocalizedSync) {
  AppendReadSync(WritePolicy::kTailLocalized, Durability::kSync);
}
TEST(StoreConcurrencyTest, SerializedSync) {
  AppendReadSync(WritePolicy::kSerialized, Durability::kSync);
}

}  // namespace
}  // namespace lss
