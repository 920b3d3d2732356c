// MappingTable under concurrency: growth while reading, ABA on the free list,
// and a linearizability check of CAS installs with epoch reclamation.

#include <atomic>
#include <barrier>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "mapping/epoch_manager.h"
#include "mapping/mapping_table.h"

namespace lss {
namespace {

std::unique_ptr<MappingTable> MakeTable(uint64_t max_pages) {
  absl::StatusOr<std::unique_ptr<MappingTable>> t =
      MappingTable::Create({.max_pages = max_pages});
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

// Allocators race to grow the table across several chunk boundaries while
// readers check every PID they know to be installed.
TEST(MappingTableConcurrencyTest, GrowthAcrossChunksWhileReading) {
  constexpr uint64_t kPages = 3 * MappingTable::kChunkEntries + 100;
  constexpr int kAllocators = 2;
  constexpr int kReaders = 2;
  auto t = MakeTable(kPages);
  std::vector<std::atomic<bool>> installed(kPages);
  std::atomic<int> allocators_done{0};
  std::atomic<uint64_t> checked{0};
  std::barrier start(kAllocators + kReaders);

  std::vector<std::thread> threads;
  for (int a = 0; a < kAllocators; ++a) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (;;) {
        absl::StatusOr<uint64_t> pid = t->Allocate();
        if (!pid.ok()) {
          EXPECT_EQ(pid.status().code(), absl::StatusCode::kResourceExhausted);
          break;
        }
        EXPECT_TRUE(
            t->CompareAndSwap(*pid, PageState::Free(), PageState::OnLog(*pid)))
            << *pid;
        installed[*pid].store(true, std::memory_order_release);
      }
      allocators_done.fetch_add(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(r);
      start.arrive_and_wait();
      uint64_t local = 0;
      while (allocators_done.load() < kAllocators) {
        const uint64_t hw = t->high_water();
        if (hw == 0) continue;
        // Bias towards the growing end, where new chunks appear.
        const uint64_t pid =
            (rng() & 1) ? hw - 1 - rng() % std::min<uint64_t>(hw, 64)
                        : rng() % hw;
        if (!installed[pid].load(std::memory_order_acquire)) continue;
        absl::StatusOr<PageState> s = t->Read(pid);
        ASSERT_TRUE(s.ok()) << s.status();
        ASSERT_EQ(*s, PageState::OnLog(pid));
        ++local;
      }
      checked.fetch_add(local);
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(t->high_water(), kPages);
  for (uint64_t pid = 0; pid < kPages; ++pid) {
    ASSERT_EQ(*t->Read(pid), PageState::OnLog(pid));
  }
  EXPECT_EQ(t->Read(kPages).status().code(), absl::StatusCode::kOutOfRange);
  RecordProperty("reads_checked", static_cast<int>(checked.load()));
}

// Many threads allocate and free a handful of PIDs from a tiny table, so the
// free list is hammered and a stale pop would hand a PID out twice. Each
// owner claims the PID in a side array and installs a value only it writes.
TEST(MappingTableConcurrencyTest, FreeListIsAbaSafe) {
  constexpr uint64_t kMaxPages = 8;
  constexpr int kThreads = 4;
  constexpr int kHeldMax = 2;
  constexpr int kOps = 100000;
  auto t = MakeTable(kMaxPages);
  std::vector<std::atomic<int>> owner(kMaxPages);
  for (auto& o : owner) o.store(-1);
  std::atomic<uint64_t> double_handouts{0};
  std::barrier start(kThreads);

  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id) {
    threads.emplace_back([&, id] {
      std::mt19937 rng(id);
      std::vector<std::pair<uint64_t, PageState>> held;
      uint64_t seq = 0;
      start.arrive_and_wait();
      for (int op = 0; op < kOps; ++op) {
        const bool allocate =
            held.empty() || (held.size() < kHeldMax && (rng() & 1));
        if (allocate) {
          absl::StatusOr<uint64_t> pid = t->Allocate();
          ASSERT_TRUE(pid.ok()) << pid.status();
          int expected = -1;
          if (!owner[*pid].compare_exchange_strong(expected, id)) {
            double_handouts.fetch_add(1);
            ADD_FAILURE() << "PID " << *pid << " handed to " << id
                          << " while owned by " << expected;
            continue;
          }
          const PageState mine =
              PageState::OnLog((uint64_t(id) << 40) | ++seq);
          ASSERT_TRUE(t->CompareAndSwap(*pid, PageState::Free(), mine))
              << "PID " << *pid << " was not Free() when handed out";
          held.emplace_back(*pid, mine);
        } else {
          const size_t i = rng() % held.size();
          const auto [pid, mine] = held[i];
          held[i] = held.back();
          held.pop_back();
          ASSERT_EQ(*t->Read(pid), mine) << "PID " << pid << " overwritten";
          owner[pid].store(-1);
          ASSERT_TRUE(t->Free(pid).ok());
        }
      }
      for (const auto& [pid, mine] : held) {
        owner[pid].store(-1);
        ASSERT_TRUE(t->Free(pid).ok());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(double_handouts.load(), 0u);

  // The free list must still hold every PID exactly once.
  std::set<uint64_t> all;
  for (uint64_t i = 0; i < kMaxPages; ++i) {
    absl::StatusOr<uint64_t> pid = t->Allocate();
    ASSERT_TRUE(pid.ok()) << pid.status();
    EXPECT_EQ(*t->Read(*pid), PageState::Free());
    all.insert(*pid);
  }
  EXPECT_EQ(all.size(), kMaxPages);
  EXPECT_EQ(t->Allocate().status().code(),
            absl::StatusCode::kResourceExhausted);
}

// A page image stand-in: which writer installed it and the PID's version.
struct Image {
  uint64_t pid;
  uint64_t writer;
  uint64_t version;
};
void DeleteImage(void* p) { delete static_cast<Image*>(p); }

// Writers install (writer, version + 1) over whatever they read, by CAS, on a
// few PIDs; replaced images go to the EpochManager. Readers check every image
// they see (ASan catches one freed too early), that versions never go
// backwards, and afterwards that each observation was really installed and
// that no two CASes succeeded from the same old value.
TEST(MappingTableConcurrencyTest, CasInstallsAreLinearizable) {
  constexpr uint64_t kPids = 4;
  constexpr int kWriters = 2;
  constexpr int kReaders = 2;
  constexpr int kAttempts = 20000;
  constexpr uint64_t kInitialWriter = 999;
  auto t = MakeTable(kPids);
  EpochManager epochs;
  for (uint64_t i = 0; i < kPids; ++i) {
    const uint64_t pid = *t->Allocate();
    ASSERT_TRUE(t->CompareAndSwap(
        pid, PageState::Free(),
        PageState::InMemory(new Image{pid, kInitialWriter, 0})));
  }

  using Install = std::tuple<uint64_t, uint64_t, uint64_t>;  // pid, ver, who
  std::vector<std::vector<Install>> installs(kWriters);
  std::vector<std::vector<Install>> observed(kReaders);
  std::atomic<int> writers_done{0};
  std::barrier start(kWriters + kReaders);

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(w);
      start.arrive_and_wait();
      for (int i = 0; i < kAttempts; ++i) {
        const uint64_t pid = rng() % kPids;
        EpochGuard guard(epochs);
        const PageState cur = *t->Read(pid);
        const Image* old = static_cast<const Image*>(cur.pointer());
        auto* next = new Image{pid, uint64_t(w), old->version + 1};
        if (t->CompareAndSwap(pid, cur, PageState::InMemory(next))) {
          installs[w].emplace_back(pid, next->version, w);
          epochs.Retire(const_cast<Image*>(old), DeleteImage);
        } else {
          delete next;
        }
      }
      writers_done.fetch_add(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(100 + r);
      std::vector<uint64_t> last(kPids, 0);
      start.arrive_and_wait();
      while (writers_done.load() < kWriters) {
        const uint64_t pid = rng() % kPids;
        EpochGuard guard(epochs);
        const PageState s = *t->Read(pid);
        ASSERT_TRUE(s.in_memory());
        const Image* img = static_cast<const Image*>(s.pointer());
        ASSERT_EQ(img->pid, pid);
        ASSERT_GE(img->version, last[pid]) << "version went back on " << pid;
        if (img->version != last[pid]) {
          observed[r].emplace_back(pid, img->version, img->writer);
          last[pid] = img->version;
        }
      }
      epochs.Reclaim();
    });
  }
  for (std::thread& th : threads) th.join();

  std::map<std::pair<uint64_t, uint64_t>, uint64_t> writer_of;
  std::vector<uint64_t> count(kPids, 0);
  for (const auto& log : installs) {
    for (const auto& [pid, version, who] : log) {
      EXPECT_TRUE(writer_of.emplace(std::pair(pid, version), who).second)
          << "two installs of version " << version << " on PID " << pid;
      ++count[pid];
    }
  }
  uint64_t total = 0;
  for (uint64_t pid = 0; pid < kPids; ++pid) {
    total += count[pid];
    const Image* img = static_cast<const Image*>(t->Read(pid)->pointer());
    EXPECT_EQ(img->version, count[pid]) << "lost install on PID " << pid;
    for (uint64_t v = 1; v <= count[pid]; ++v) {
      EXPECT_TRUE(writer_of.contains({pid, v})) << pid << " v" << v;
    }
    delete img;
  }
  EXPECT_GT(total, 0u);
  for (const auto& log : observed) {
    for (const auto& [pid, version, who] : log) {
      auto it = writer_of.find({pid, version});
      ASSERT_NE(it, writer_of.end())
          << "read PID " << pid << " v" << version << " never installed";
      EXPECT_EQ(it->second, who) << "PID " << pid << " v" << version;
    }
  }
}

}  // namespace
}  // namespace lss
