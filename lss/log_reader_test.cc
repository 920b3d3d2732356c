// Streaming reads: LogReader with several reads in flight, ReadMany, and
// Open's record visitor. Every payload is self-describing (testing/payload.h)
// and checked byte for byte. The fault cases run over a simulated disk whose
// I/O ring reorders completions and injects short reads, EAGAIN and EIO.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
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

using ::lss::testing::IsPayload;
using ::lss::testing::Payload;

// Sizes from 1 byte to past several blocks, so that blocks of every length
// meet reads of every length.
size_t SizeOf(uint64_t i) {
  constexpr size_t kSizes[] = {1, 8, 100, 511, 512, 3000, 4096, 9000, 20000};
  return kSizes[i % (sizeof(kSizes) / sizeof(kSizes[0]))];
}

struct Written {
  std::vector<uint64_t> addresses;
};

// `count` records of stream 0, with a Flush every `flush_every` records so
// that the log holds blocks of many sizes.
Written Fill(LogStructuredStore& store, uint64_t count, uint64_t flush_every) {
  Written w;
  for (uint64_t i = 0; i < count; ++i) {
    absl::StatusOr<uint64_t> a = store.Append(Payload(0, i, SizeOf(i)));
    EXPECT_TRUE(a.ok()) << a.status();
    w.addresses.push_back(a.value_or(0));
    if (i % flush_every == flush_every - 1) {
      EXPECT_TRUE(store.Flush().ok());
    }
  }
  EXPECT_TRUE(store.Sync().ok());
  return w;
}

// Reads from `from_index` on and checks every record, in order.
void ExpectStream(LogStructuredStore& store, const Written& w,
                  size_t from_index, const LogReaderOptions& options) {
  SCOPED_TRACE(absl::StrCat("read_bytes ", options.read_bytes,
                            ", reads_in_flight ", options.reads_in_flight,
                            ", from record ", from_index));
  absl::StatusOr<std::unique_ptr<LogReader>> reader =
      store.NewLogReader(w.addresses[from_index], options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  size_t i = from_index;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    ASSERT_LT(i, w.addresses.size());
    const RecordView& r = (*reader)->record();
    ASSERT_EQ(r.address, w.addresses[i]);
    ASSERT_EQ(r.payload.size(), SizeOf(i));
    ASSERT_TRUE(IsPayload(0, i, r.payload)) << "record " << i;
    ++i;
  }
  EXPECT_EQ(i, w.addresses.size());
}

StoreOptions SmallOptions() {
  StoreOptions o;
  o.block_bytes = 4096;
  o.buffer_bytes = 64 << 10;
  o.ring_size = 3;
  o.preallocate_bytes = 1 << 20;
  return o;
}

TEST(LogReaderTest, StreamsEveryRecordWhateverTheReadSizeAndDepth) {
  const std::string path = TempPath("stream.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const Written w = Fill(**store, 600, 7);
  ASSERT_TRUE((*store)->Close().ok());
  store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  for (size_t read_bytes : {size_t{4096}, size_t{12288}, size_t{1} << 20}) {
    for (size_t depth : {size_t{1}, size_t{3}, size_t{64}}) {
      ExpectStream(**store, w, 0, {.read_bytes = read_bytes,
                                   .reads_in_flight = depth});
    }
  }
  // From the middle of a block.
  ExpectStream(**store, w, 301, {.read_bytes = 8192, .reads_in_flight = 2});
}

// With `to`, a reader reads the blocks that start below it: every record
// below `to` in order, then at most the rest of the block that holds it.
TEST(LogReaderTest, AReaderWithAnEndStopsAtItsBlock) {
  const std::string path = TempPath("to.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const Written w = Fill(**store, 400, 7);
  for (size_t end_index : {size_t{1}, size_t{150}, size_t{399}}) {
    const uint64_t to = w.addresses[end_index];
    absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
        w.addresses[0], {.read_bytes = 8192, .reads_in_flight = 2, .to = to});
    ASSERT_TRUE(reader.ok()) << reader.status();
    size_t i = 0;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      ASSERT_TRUE(more.ok()) << more.status();
      if (!*more) break;
      ASSERT_EQ((*reader)->record().address, w.addresses[i]);
      ++i;
    }
    // Records past `to` come only from its block: at most the records of
    // one flush (a Flush every 7 records ends a block).
    EXPECT_GE(i, end_index) << "to = " << to;
    EXPECT_LE(i, end_index + 8) << "to = " << to;
  }
  // An end below the start reads nothing.
  absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
      w.addresses[300], {.to = w.addresses[100]});
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<bool> more = (*reader)->Next();
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_FALSE(*more);
}

TEST(LogReaderTest, ReadOnlyStoresStreamToo) {
  const std::string path = TempPath("read_only.log");
  Written w;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    w = Fill(**store, 200, 5);
  }
  StoreOptions o = SmallOptions();
  o.read_only = true;
  auto store = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectStream(**store, w, 0, {.read_bytes = 8192, .reads_in_flight = 4});
}

TEST(LogReaderTest, OptionsOutOfRangeAreRefused) {
  const std::string path = TempPath("options.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  for (LogReaderOptions bad : {
           LogReaderOptions{.read_bytes = 0, .reads_in_flight = 8},
           LogReaderOptions{.read_bytes = 4095, .reads_in_flight = 8},
           LogReaderOptions{.read_bytes = (size_t{64} << 20) + 1,
                            .reads_in_flight = 8},
           LogReaderOptions{.read_bytes = 4096, .reads_in_flight = 0},
           LogReaderOptions{.read_bytes = 4096, .reads_in_flight = 1025},
       }) {
    absl::StatusOr<std::unique_ptr<LogReader>> r =
        (*store)->NewLogReader(0, bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.read_bytes << " " << bad.reads_in_flight;
    EXPECT_NE(r.status().message().find(path), absl::string_view::npos);
  }
}

TEST(LogReaderTest, ReadManyAnswersEachAddressAsReadDoes) {
  const std::string path = TempPath("many.log");
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const Written w = Fill(**store, 300, 11);
  // Some records stay in the open flush buffer: read from memory.
  std::vector<uint64_t> resident;
  for (uint64_t i = 300; i < 310; ++i) {
    absl::StatusOr<uint64_t> a = (*store)->Append(Payload(0, i, SizeOf(i)));
    ASSERT_TRUE(a.ok());
    resident.push_back(*a);
  }
  std::vector<uint64_t> ask;
  std::vector<int64_t> index;  // the record expected, or -1 for NotFound
  for (uint64_t i = 0; i < 300; i += 7) {
    ask.push_back(w.addresses[i]);
    index.push_back(static_cast<int64_t>(i));
  }
  for (uint64_t i = 0; i < resident.size(); ++i) {
    ask.push_back(resident[i]);
    index.push_back(static_cast<int64_t>(300 + i));
  }
  for (uint64_t bad : {w.addresses[3] + 8, uint64_t{3}, (*store)->data_start(),
                       resident.back() + (1 << 20)}) {
    ask.push_back(bad);
    index.push_back(-1);
  }
  for (size_t expected : {size_t{0}, size_t{64}, size_t{20000}}) {
    std::vector<absl::StatusOr<LogRecord>> got =
        (*store)->ReadMany(ask, expected);
    ASSERT_EQ(got.size(), ask.size());
    for (size_t k = 0; k < ask.size(); ++k) {
      SCOPED_TRACE(absl::StrCat("address ", ask[k], ", guess ", expected));
      if (index[k] < 0) {
        EXPECT_EQ(got[k].status().code(), absl::StatusCode::kNotFound)
            << got[k].status();
        continue;
      }
      ASSERT_TRUE(got[k].ok()) << got[k].status();
      EXPECT_EQ(got[k]->address, ask[k]);
      EXPECT_TRUE(IsPayload(0, static_cast<uint64_t>(index[k]),
                            got[k]->payload));
    }
  }
}

TEST(LogReaderTest, OpenVisitsEveryKeptRecordOnceInOrder) {
  const std::string path = TempPath("visit.log");
  Written w;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    w = Fill(**store, 250, 9);
  }
  StoreOptions o = SmallOptions();
  size_t seen = 0;
  bool in_order = true;
  o.on_recovered_record = [&](const RecordView& r) {
    in_order = in_order && seen < w.addresses.size() &&
               r.address == w.addresses[seen] && IsPayload(0, seen, r.payload);
    ++seen;
    return absl::OkStatus();
  };
  {
    auto store = LogStructuredStore::Open(path, o);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(seen, w.addresses.size());
    EXPECT_TRUE(in_order);
  }
  // The visitor's error is Open's.
  o.on_recovered_record = [](const RecordView& r) {
    return absl::AbortedError(absl::StrCat("stop at ", r.address));
  };
  auto store = LogStructuredStore::Open(path, o);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kAborted);
}

StoreOptions SimOptions(testing::SimDisk& disk,
                        const testing::FakeIoRingOptions& faults) {
  testing::SimStoreKnobs knobs;
  knobs.buffer_bytes = 32768;
  knobs.preallocate_bytes = 256 << 10;
  knobs.ring = faults;
  return testing::SimStoreOptions(disk, knobs);
}

TEST(LogReaderTest, ShortReadsRetriesAndReorderingLoseNothing) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    testing::SimDiskOptions disk_options;
    disk_options.direct_io_alignment = 512;
    testing::SimDisk disk(disk_options);
    testing::FakeIoRingOptions faults;
    faults.seed = seed;
    faults.reorder = true;
    faults.max_delay_reaps = 3;
    Written w;
    {
      auto store = LogStructuredStore::Open("/sim/faults.log",
                                            SimOptions(disk, faults));
      ASSERT_TRUE(store.ok()) << store.status();
      w = Fill(**store, 120, 4);
    }
    faults.short_read_one_in = 3;
    faults.eagain_one_in = 5;
    faults.eintr_one_in = 7;
    auto store =
        LogStructuredStore::Open("/sim/faults.log", SimOptions(disk, faults));
    ASSERT_TRUE(store.ok()) << store.status();
    ExpectStream(**store, w, 0, {.read_bytes = 4096, .reads_in_flight = 5});
    std::vector<absl::StatusOr<LogRecord>> got = (*store)->ReadMany(
        std::span<const uint64_t>(w.addresses).subspan(0, 40));
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << got[i].status();
      EXPECT_TRUE(IsPayload(0, i, got[i]->payload));
    }
  }
}

TEST(LogReaderTest, AReadErrorNamesTheFileAndStaysAnError) {
  testing::SimDiskOptions disk_options;
  disk_options.direct_io_alignment = 512;
  testing::SimDisk disk(disk_options);
  testing::FakeIoRingOptions faults;
  {
    auto store =
        LogStructuredStore::Open("/sim/eio.log", SimOptions(disk, faults));
    ASSERT_TRUE(store.ok()) << store.status();
    Fill(**store, 200, 3);
  }
  faults.read_eio_one_in = 4;
  faults.seed = 7;
  auto store = LogStructuredStore::Open("/sim/eio.log", SimOptions(disk, faults));
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<LogReader>> reader = (*store)->NewLogReader(
      0, {.read_bytes = 4096, .reads_in_flight = 6});
  ASSERT_TRUE(reader.ok());
  absl::Status error;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) {
      error = more.status();
      break;
    }
    ASSERT_TRUE(*more) << "200 records read with one read in four failing";
  }
  EXPECT_NE(error.message().find("/sim/eio.log"), absl::string_view::npos)
      << error;
  absl::StatusOr<bool> again = (*reader)->Next();
  EXPECT_EQ(again.status(), error);
  // Destroying the reader with reads in flight waits for them (ASan checks
  // that no read lands in freed memory).
  reader->reset();
}

// Readers stream and read by address while writers append, flush and sync:
// every record a reader sees is one a writer appended, whole, and each
// reader sees at least what was durable when it started. Flush buffers are
// recycled under the readers all along (TSan and ASan run this).
TEST(LogReaderTest, ReadersRaceAppendsAndBufferRecycling) {
  const std::string path = TempPath("race.log");
  StoreOptions o = SmallOptions();
  o.ring_size = 2;
  auto opened = LogStructuredStore::Open(path, o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  LogStructuredStore& store = **opened;
  constexpr int kWriters = 2;
  constexpr uint64_t kPerWriter = 400;
  std::vector<std::vector<std::atomic<uint64_t>>> addresses(kWriters);
  for (auto& a : addresses) {
    a = std::vector<std::atomic<uint64_t>>(kPerWriter);
  }
  std::atomic<int> writers_left{kWriters};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerWriter; ++i) {
        absl::StatusOr<uint64_t> a = store.Append(Payload(t, i, SizeOf(i)));
        ASSERT_TRUE(a.ok()) << a.status();
        if (i % 16 == 0) {
          ASSERT_TRUE(store.WaitStable(*a).ok());
        }
        addresses[t][i].store(*a + 1, std::memory_order_release);
      }
      ASSERT_TRUE(store.Sync().ok());
      writers_left.fetch_sub(1);
    });
  }
  std::atomic<uint64_t> checked{0};
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<uint64_t> next(kWriters, 0);
      for (;;) {
        // The last pass starts after every writer synced: it sees all.
        const bool writers_done = writers_left.load() == 0;
        const uint64_t durable = store.HiStable();
        absl::StatusOr<std::unique_ptr<LogReader>> reader =
            store.NewLogReader(0, {.read_bytes = size_t{4096} << r,
                                   .reads_in_flight = 3});
        ASSERT_TRUE(reader.ok()) << reader.status();
        std::fill(next.begin(), next.end(), 0);
        uint64_t last = 0;
        uint64_t seen = 0;
        for (;;) {
          absl::StatusOr<bool> more = (*reader)->Next();
          ASSERT_TRUE(more.ok()) << more.status();
          if (!*more) break;
          const RecordView& rec = (*reader)->record();
          last = rec.address;
          // Records of one writer come in its order.
          bool found = false;
          for (int t = 0; t < kWriters && !found; ++t) {
            const uint64_t i = next[t];
            if (i < kPerWriter &&
                addresses[t][i].load(std::memory_order_acquire) ==
                    rec.address + 1) {
              ASSERT_TRUE(IsPayload(t, i, rec.payload));
              ++next[t];
              found = true;
            }
          }
          // A record may be read before its writer stored its address.
          if (!found) {
            bool is_some_payload = false;
            for (int t = 0; t < kWriters && !is_some_payload; ++t) {
              is_some_payload = IsPayload(t, next[t], rec.payload);
              if (is_some_payload) ++next[t];
            }
            ASSERT_TRUE(is_some_payload) << "at " << rec.address;
          }
          ++seen;
        }
        checked.fetch_add(seen, std::memory_order_relaxed);
        // Its last block may hold one buffer of records (64 KiB).
        EXPECT_GE(last + (64 << 10), durable)
            << "the reader stopped well short of what was durable";
        // By address, what is known so far.
        std::vector<uint64_t> ask;
        std::vector<std::pair<int, uint64_t>> who;
        for (int t = 0; t < kWriters; ++t) {
          for (uint64_t i = 0; i < kPerWriter; i += 13) {
            const uint64_t a = addresses[t][i].load(std::memory_order_acquire);
            if (a == 0) break;
            ask.push_back(a - 1);
            who.emplace_back(t, i);
          }
        }
        std::vector<absl::StatusOr<LogRecord>> got = store.ReadMany(ask);
        for (size_t k = 0; k < got.size(); ++k) {
          ASSERT_TRUE(got[k].ok()) << got[k].status();
          ASSERT_TRUE(IsPayload(who[k].first, who[k].second, got[k]->payload));
        }
        if (writers_done) {
          EXPECT_EQ(seen, uint64_t{kWriters * kPerWriter});
          break;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GE(checked.load(), uint64_t{2 * kWriters * kPerWriter});
  ASSERT_TRUE(store.Close().ok());
}

}  // namespace
}  // namespace lss
