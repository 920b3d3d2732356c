// Single-threaded behaviour of PageState and MappingTable: word layout,
// limits, allocation, reuse and errors.

#include "mapping/mapping_table.h"

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace lss {
namespace {

std::unique_ptr<MappingTable> MakeTable(uint64_t max_pages) {
  absl::StatusOr<std::unique_ptr<MappingTable>> t =
      MappingTable::Create({.max_pages = max_pages});
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

TEST(PageStateTest, FreeIsZeroWord) {
  EXPECT_EQ(PageState::Free().word(), 0u);
  EXPECT_TRUE(PageState::Free().is_free());
  EXPECT_FALSE(PageState::Free().in_memory());
  EXPECT_FALSE(PageState::Free().on_log());
}

TEST(PageStateTest, PointerRoundTrips) {
  alignas(8) static uint64_t object = 0;
  const PageState s = PageState::InMemory(&object);
  EXPECT_TRUE(s.in_memory());
  EXPECT_FALSE(s.is_free());
  EXPECT_FALSE(s.on_log());
  EXPECT_EQ(s.pointer(), &object);
  EXPECT_EQ(PageState(s.word()), s);
}

TEST(PageStateTest, HighestAlignedPointerRoundTrips) {
  void* p = reinterpret_cast<void*>(~uint64_t{7});
  EXPECT_EQ(PageState::InMemory(p).pointer(), p);
  EXPECT_TRUE(PageState::InMemory(p).in_memory());
}

TEST(PageStateTest, AddressRoundTripsAtLimits) {
  for (uint64_t a : {uint64_t{0}, uint64_t{1}, uint64_t{4096},
                     PageState::kMaxAddress - 1, PageState::kMaxAddress}) {
    const PageState s = PageState::OnLog(a);
    EXPECT_TRUE(s.on_log()) << a;
    EXPECT_FALSE(s.is_free()) << a;
    EXPECT_EQ(s.address(), a);
  }
  EXPECT_EQ(PageState::kMaxAddress, (uint64_t{1} << 56) - 1);
}

TEST(PageStateTest, KindsNeverCompareEqual) {
  alignas(8) static uint64_t object = 0;
  EXPECT_NE(PageState::OnLog(0), PageState::Free());
  EXPECT_NE(PageState::InMemory(&object), PageState::OnLog(
      reinterpret_cast<uintptr_t>(&object) >> PageState::kPayloadShift));
}

TEST(PageStateDeathTest, AddressPast56BitsFails) {
  EXPECT_DEATH(PageState::OnLog(PageState::kMaxAddress + 1), "56 bits");
  EXPECT_DEATH(PageState::OnLog(~uint64_t{0}), "56 bits");
}

TEST(PageStateDeathTest, MisalignedOrNullPointerFails) {
  alignas(8) static char bytes[16];
  EXPECT_DEATH(PageState::InMemory(bytes + 4), "aligned");
  EXPECT_DEATH(PageState::InMemory(nullptr), "non-null");
}

TEST(PageStateDeathTest, WrongAccessorFails) {
  EXPECT_DEATH(PageState::OnLog(8).pointer(), "not in memory");
  EXPECT_DEATH(PageState::Free().address(), "not on the log");
}

TEST(MappingTableTest, CreateRejectsBadMaxPages) {
  absl::StatusOr<std::unique_ptr<MappingTable>> t =
      MappingTable::Create({.max_pages = 0});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("max_pages 0"), std::string::npos);
  t = MappingTable::Create({.max_pages = MappingTable::kMaxPagesLimit + 1});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MappingTable::Create({.max_pages = MappingTable::kMaxPagesLimit})
                  .ok());
  EXPECT_TRUE(MappingTable::Create().ok()) << "the default max_pages is valid";
}

// The head's version must outlast any plausible delay of a stale pop
// between its load and its CAS: 2^20 operations on the same top PID never
// bring the head word back (a 16-bit version did after 2^16). At the end of
// its range the version wraps to 0 and leaves the PID field alone.
TEST(MappingTableTest, FreeListHeadVersionOutlastsAndWrapsCleanly) {
  constexpr uint64_t kIndex = 7;
  uint64_t head = kIndex;
  for (int i = 0; i < (1 << 20); ++i) {
    head = MappingTable::NextHead(head, kIndex);
    ASSERT_NE(head, kIndex) << "head repeated after " << i + 1 << " changes";
  }
  constexpr uint64_t kLastVersion = ~uint64_t{0}
                                    << MappingTable::kHeadIndexBits;
  constexpr uint64_t kTop = MappingTable::kMaxPagesLimit;  // largest PID + 1
  EXPECT_EQ(MappingTable::NextHead(kLastVersion | kTop, kTop), kTop);
  EXPECT_EQ(MappingTable::NextHead(kLastVersion, 0), 0u);
  EXPECT_EQ(MappingTable::HeadIndex(kLastVersion | kTop), kTop);
  EXPECT_EQ(MappingTable::HeadIndex(MappingTable::NextHead(kTop, 1)), 1u);
}

TEST(MappingTableTest, AllocatesSequentiallyAndStartsFree) {
  auto t = MakeTable(100);
  for (uint64_t i = 0; i < 10; ++i) {
    absl::StatusOr<uint64_t> pid = t->Allocate();
    ASSERT_TRUE(pid.ok()) << pid.status();
    EXPECT_EQ(*pid, i);
    absl::StatusOr<PageState> s = t->Read(*pid);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, PageState::Free());
  }
  EXPECT_EQ(t->high_water(), 10u);
}

TEST(MappingTableTest, CasInstallsOnlyOverExpected) {
  auto t = MakeTable(10);
  const uint64_t pid = *t->Allocate();
  EXPECT_TRUE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(5)));
  EXPECT_FALSE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(6)));
  EXPECT_EQ(*t->Read(pid), PageState::OnLog(5));
  alignas(8) static uint64_t image = 0;
  EXPECT_TRUE(t->CompareAndSwap(pid, PageState::OnLog(5),
                                PageState::InMemory(&image)));
  EXPECT_EQ(t->Read(pid)->pointer(), &image);
}

TEST(MappingTableTest, FreedPidsAreReusedLastInFirstOut) {
  auto t = MakeTable(100);
  std::vector<uint64_t> pids;
  for (int i = 0; i < 5; ++i) {
    pids.push_back(*t->Allocate());
    ASSERT_TRUE(t->CompareAndSwap(pids.back(), PageState::Free(),
                                  PageState::OnLog(100 + i)));
  }
  ASSERT_TRUE(t->Free(pids[1]).ok());
  ASSERT_TRUE(t->Free(pids[3]).ok());
  EXPECT_TRUE(t->Read(pids[1])->is_free());
  EXPECT_EQ(*t->Allocate(), pids[3]);
  EXPECT_EQ(*t->Allocate(), pids[1]);
  // A reused PID reads plain Free(), not a free-list word.
  EXPECT_EQ(*t->Read(pids[1]), PageState::Free());
  EXPECT_EQ(*t->Allocate(), 5u);  // list empty again: grows
  EXPECT_EQ(t->high_water(), 6u);
}

TEST(MappingTableTest, StaleCasOnFreedPidFails) {
  auto t = MakeTable(10);
  const uint64_t pid = *t->Allocate();
  ASSERT_TRUE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(1)));
  ASSERT_TRUE(t->Free(pid).ok());
  EXPECT_FALSE(t->CompareAndSwap(pid, PageState::OnLog(1), PageState::OnLog(2)));
  EXPECT_FALSE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(2)));
  EXPECT_EQ(*t->Allocate(), pid);
}

TEST(MappingTableTest, DoubleFreeAndEmptyFreeAreRejected) {
  auto t = MakeTable(10);
  const uint64_t pid = *t->Allocate();
  absl::Status s = t->Free(pid);  // nothing installed yet: already free
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(1)));
  ASSERT_TRUE(t->Free(pid).ok());
  s = t->Free(pid);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("PID 0 "), std::string::npos) << s;
}

TEST(MappingTableTest, UnallocatedPidsAreOutOfRange) {
  auto t = MakeTable(1000);
  ASSERT_TRUE(t->Allocate().ok());
  absl::StatusOr<PageState> s = t->Read(1);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.status().message().find("PID 1 "), std::string::npos)
      << s.status();
  EXPECT_EQ(t->Read(5000).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(t->Read(~uint64_t{0}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(t->Free(7).code(), absl::StatusCode::kOutOfRange);
}

TEST(MappingTableDeathTest, CasOnUnallocatedPidOrToFreeFails) {
  auto t = MakeTable(1000);
  const uint64_t pid = *t->Allocate();
  EXPECT_DEATH(t->CompareAndSwap(999999, PageState::Free(),
                                 PageState::OnLog(1)),
               "never allocated");
  EXPECT_DEATH(t->CompareAndSwap(pid, PageState::Free(), PageState::Free()),
               "use Free");
}

TEST(MappingTableTest, MaxPagesExhaustsThenRecoversAfterFree) {
  constexpr uint64_t kMax = 37;
  auto t = MakeTable(kMax);
  std::set<uint64_t> seen;
  for (uint64_t i = 0; i < kMax; ++i) {
    absl::StatusOr<uint64_t> pid = t->Allocate();
    ASSERT_TRUE(pid.ok()) << pid.status();
    seen.insert(*pid);
  }
  EXPECT_EQ(seen.size(), kMax);
  absl::StatusOr<uint64_t> over = t->Allocate();
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("37"), std::string::npos)
      << over.status();
  ASSERT_TRUE(t->CompareAndSwap(12, PageState::Free(), PageState::OnLog(3)));
  ASSERT_TRUE(t->Free(12).ok());
  EXPECT_EQ(*t->Allocate(), 12u);
  EXPECT_FALSE(t->Allocate().ok());
}

TEST(MappingTableTest, GrowsAcrossChunkBoundaries) {
  constexpr uint64_t kPages = 2 * MappingTable::kChunkEntries + 5;
  auto t = MakeTable(kPages);
  for (uint64_t i = 0; i < kPages; ++i) {
    absl::StatusOr<uint64_t> pid = t->Allocate();
    ASSERT_TRUE(pid.ok()) << pid.status();
    ASSERT_EQ(*pid, i);
    ASSERT_TRUE(t->CompareAndSwap(i, PageState::Free(), PageState::OnLog(i)));
  }
  for (uint64_t i = 0; i < kPages; ++i) {
    ASSERT_EQ(t->Read(i)->address(), i);
  }
  EXPECT_EQ(t->Allocate().status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(MappingTableTest, FreeIfUnchangedFreesOnlyTheExpectedState) {
  auto t = MakeTable(10);
  const uint64_t pid = *t->Allocate();
  ASSERT_TRUE(t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(8)));
  EXPECT_EQ(t->FreeIfUnchanged(pid, PageState::OnLog(16)).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(*t->Read(pid), PageState::OnLog(8));
  ASSERT_TRUE(t->FreeIfUnchanged(pid, PageState::OnLog(8)).ok());
  EXPECT_EQ(*t->Allocate(), pid) << "a freed PID is reused first";
  EXPECT_EQ(t->FreeIfUnchanged(7, PageState::OnLog(8)).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(MappingTableTest, RestoreSetsStatesAndListsTheFreePids) {
  auto t = MakeTable(MappingTable::kChunkEntries * 2);
  std::vector<PageState> states(MappingTable::kChunkEntries + 3);
  states[1] = PageState::OnLog(64);
  states[MappingTable::kChunkEntries + 1] = PageState::OnLog(128);
  ASSERT_TRUE(t->Restore(states).ok());
  EXPECT_EQ(t->high_water(), states.size());
  EXPECT_EQ(*t->Read(1), PageState::OnLog(64));
  EXPECT_EQ(*t->Read(MappingTable::kChunkEntries + 1), PageState::OnLog(128));
  // Free PIDs come back lowest first, then the table grows.
  EXPECT_EQ(*t->Allocate(), 0u);
  EXPECT_EQ(*t->Allocate(), 2u);
  for (uint64_t i = 0; i < states.size() - 4; ++i) ASSERT_TRUE(t->Allocate().ok());
  EXPECT_EQ(*t->Allocate(), states.size());
}

TEST(MappingTableTest, RestoreRejectsTooManyPagesAndMemoryPointers) {
  auto t = MakeTable(4);
  EXPECT_EQ(t->Restore(std::vector<PageState>(5)).code(),
            absl::StatusCode::kInvalidArgument);
  static uint64_t page;
  EXPECT_EQ(t->Restore({PageState::InMemory(&page)}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lss
