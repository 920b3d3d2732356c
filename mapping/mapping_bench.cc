// MappingTable lookups and CAS installs against a mutex-guarded hash map, the
// obvious alternative. Both hold kPages entries; threads pick PIDs at random.

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "mapping/mapping_table.h"

namespace lss {
namespace {

constexpr uint64_t kPages = uint64_t{1} << 20;

MappingTable& Table() {
  static MappingTable* table = [] {
    MappingTable* t =
        MappingTable::Create({.max_pages = kPages}).value().release();
    for (uint64_t i = 0; i < kPages; ++i) {
      const uint64_t pid = t->Allocate().value();
      t->CompareAndSwap(pid, PageState::Free(), PageState::OnLog(pid));
    }
    return t;
  }();
  return *table;
}

struct MutexMap {
  absl::Mutex mu;
  absl::flat_hash_map<uint64_t, uint64_t> map ABSL_GUARDED_BY(mu);
};
MutexMap& Map() {
  static MutexMap* m = [] {
    auto* m = new MutexMap;
    absl::MutexLock lock(&m->mu);
    m->map.reserve(kPages);
    for (uint64_t i = 0; i < kPages; ++i) m->map[i] = PageState::OnLog(i).word();
    return m;
  }();
  return *m;
}

// Cheap per-thread PID stream (xorshift), so the generator costs little next
// to the operation measured.
struct Pids {
  explicit Pids(int thread) : x(0x9E3779B97F4A7C15ull * (thread + 1)) {}
  uint64_t Next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x & (kPages - 1);
  }
  uint64_t x;
};

void BM_TableLookup(benchmark::State& state) {
  MappingTable& t = Table();
  Pids pids(state.thread_index());
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.Read(pids.Next())->word());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TableLookup)->Threads(1)->Threads(2);

void BM_TableCasInstall(benchmark::State& state) {
  MappingTable& t = Table();
  Pids pids(state.thread_index());
  uint64_t n = 0;
  for (auto _ : state) {
    const uint64_t pid = pids.Next();
    const PageState cur = *t.Read(pid);
    benchmark::DoNotOptimize(
        t.CompareAndSwap(pid, cur, PageState::OnLog(++n & 0xFFFFFFFF)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TableCasInstall)->Threads(1)->Threads(2);

void BM_MutexMapLookup(benchmark::State& state) {
  MutexMap& m = Map();
  Pids pids(state.thread_index());
  for (auto _ : state) {
    const uint64_t pid = pids.Next();
    absl::MutexLock lock(&m.mu);
    benchmark::DoNotOptimize(m.map.find(pid)->second);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexMapLookup)->Threads(1)->Threads(2);

void BM_MutexMapInstall(benchmark::State& state) {
  MutexMap& m = Map();
  Pids pids(state.thread_index());
  uint64_t n = 0;
  for (auto _ : state) {
    const uint64_t pid = pids.Next();
    absl::MutexLock lock(&m.mu);
    m.map[pid] = PageState::OnLog(++n & 0xFFFFFFFF).word();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexMapInstall)->Threads(1)->Threads(2);

}  // namespace
}  // namespace lss
