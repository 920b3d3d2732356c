// EpochManager: nothing is freed while a thread that could see it is inside,
// everything is freed eventually, slots are recycled when threads exit.

#include "mapping/epoch_manager.h"

#include <atomic>
#include <barrier>
#include <cstdint>
#include <latch>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lss {
namespace {

std::atomic<int> freed{0};
void CountingDelete(void* p) {
  delete static_cast<int*>(p);
  freed.fetch_add(1);
}

class EpochManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { freed.store(0); }
};

TEST_F(EpochManagerTest, FreesAfterTwoAdvancesWithNoReaders) {
  EpochManager m;
  const uint64_t e0 = m.epoch();
  m.Retire(new int(1), CountingDelete);
  EXPECT_EQ(m.Reclaim(), 0u);  // e0 -> e0 + 1: not yet safe
  EXPECT_EQ(freed.load(), 0);
  EXPECT_EQ(m.Reclaim(), 1u);  // e0 + 2: safe
  EXPECT_EQ(freed.load(), 1);
  EXPECT_EQ(m.epoch(), e0 + 2);
  EXPECT_EQ(m.pending(), 0u);
}

TEST_F(EpochManagerTest, DestructorFreesEverythingPending) {
  {
    EpochManager m;
    for (int i = 0; i < 10; ++i) m.Retire(new int(i), CountingDelete);
    EXPECT_EQ(m.pending(), 10u);
  }
  EXPECT_EQ(freed.load(), 10);
}

TEST_F(EpochManagerTest, NestedGuardsKeepTheSectionOpen) {
  EpochManager m;
  std::latch entered(1), retired(1), done(1);
  std::thread reader([&] {
    EpochGuard outer(m);
    { EpochGuard inner(m); }  // must not end the outer section
    entered.count_down();
    retired.wait();
    for (int i = 0; i < 5; ++i) m.Reclaim();
    EXPECT_EQ(freed.load(), 0);
    done.count_down();
  });
  entered.wait();
  m.Retire(new int(1), CountingDelete);
  retired.count_down();
  done.wait();
  reader.join();
  for (int i = 0; i < 3; ++i) m.Reclaim();
  EXPECT_EQ(freed.load(), 1);
}

// A reader inside a critical section blocks reclamation of anything retired
// after it entered, however often Reclaim runs; once it exits, it is freed.
TEST_F(EpochManagerTest, ActiveReaderBlocksReclaim) {
  EpochManager m;
  std::latch entered(1), release(1);
  std::thread reader([&] {
    EpochGuard guard(m);
    entered.count_down();
    release.wait();
  });
  entered.wait();
  m.Retire(new int(1), CountingDelete);
  for (int i = 0; i < 10; ++i) m.Reclaim();
  EXPECT_EQ(freed.load(), 0);
  EXPECT_EQ(m.pending(), 1u);
  release.count_down();
  reader.join();
  for (int i = 0; i < 3; ++i) m.Reclaim();
  EXPECT_EQ(freed.load(), 1);
}

TEST_F(EpochManagerTest, ExitedThreadsGiveTheirSlotsBack) {
  EpochManager m;
  for (size_t i = 0; i < 2 * EpochManager::kMaxThreads; ++i) {
    std::thread([&] { EpochGuard guard(m); }).join();
  }
  // Several managers per thread, each with its own slot.
  EpochManager other;
  EpochGuard a(m);
  EpochGuard b(other);
}

TEST(EpochManagerDeathTest, ExitWithoutEnterFails) {
  EpochManager m;
  EXPECT_DEATH(m.Exit(), "without a matching Enter");
}

// Writers swap a shared node and retire the old one; readers dereference
// whatever they load and check it is intact. Freed too early shows up as a
// poisoned node here and as a use-after-free under ASan.
struct Node {
  static constexpr uint64_t kLive = 0x11FE11FE11FE11FE;
  static constexpr uint64_t kDead = 0xDEADDEADDEADDEAD;
  uint64_t magic = kLive;
  uint64_t value = 0;
  uint64_t check = 0;  // ~value
};
std::atomic<uint64_t> nodes_freed{0};
void DeleteNode(void* p) {
  Node* n = static_cast<Node*>(p);
  n->magic = Node::kDead;
  delete n;
  nodes_freed.fetch_add(1);
}

TEST(EpochManagerStressTest, ReadersNeverSeeFreedNodes) {
  constexpr int kWriters = 2;
  constexpr int kReaders = 3;
  constexpr int kSwaps = 20000;
  nodes_freed.store(0);
  uint64_t created = 1;
  {
    EpochManager m;
    std::atomic<Node*> shared{new Node{Node::kLive, 0, ~uint64_t{0}}};
    std::atomic<int> writers_done{0};
    std::barrier start(kWriters + kReaders);
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w) {
      threads.emplace_back([&, w] {
        start.arrive_and_wait();
        for (int i = 1; i <= kSwaps; ++i) {
          const uint64_t v = uint64_t(w) << 32 | i;
          Node* old = shared.exchange(new Node{Node::kLive, v, ~v},
                                      std::memory_order_acq_rel);
          m.Retire(old, DeleteNode);
          if (i % 64 == 0) m.Reclaim();
        }
        writers_done.fetch_add(1);
      });
    }
    for (int r = 0; r < kReaders; ++r) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        while (writers_done.load() < kWriters) {
          EpochGuard guard(m);
          const Node* n = shared.load(std::memory_order_acquire);
          ASSERT_EQ(n->magic, Node::kLive);
          ASSERT_EQ(n->check, ~n->value);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    created += uint64_t{kWriters} * kSwaps;
    m.Reclaim();
    m.Reclaim();
    EXPECT_LT(m.pending(), uint64_t{kWriters} * kSwaps)
        << "nothing was reclaimed while running";
    DeleteNode(shared.load());
  }
  EXPECT_EQ(nodes_freed.load(), created);
}

}  // namespace
}  // namespace lss
