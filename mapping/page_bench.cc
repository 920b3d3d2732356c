// PageStore: UpdateD with a periodic Flush on a 1 GiB working set (262,144
// pages of 4 KiB), the page-level figure of issue 5. Each thread prepends
// 64-byte deltas to random pages and flushes the page it just updated every
// kFlushEvery updates; the log is a real file (O_DIRECT) in $TMPDIR.
//
//   ./bazelw run -c opt //mapping:page_bench

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "mapping/page_store.h"

namespace lss {
namespace {

constexpr uint64_t kPages = 262144;
constexpr size_t kPageBytes = 4096;
constexpr size_t kDeltaBytes = 64;
constexpr int kFlushEvery = 16;

PageStore& Store() {
  static PageStore* store = [] {
    const char* tmp = std::getenv("TMPDIR");
    const std::string path = std::string(tmp ? tmp : "/var/tmp") +
                             "/page_bench." + std::to_string(getpid());
    PageStoreOptions options;
    options.store.allow_buffered_fallback = true;
    options.table.max_pages = kPages;
    PageStore* s = PageStore::Open(path, options).value().release();
    unlink(path.c_str());  // the open file lives on until exit
    const std::string base(kPageBytes, 'b');
    for (uint64_t i = 0; i < kPages; ++i) {
      const uint64_t pid = s->Allocate().value();
      s->UpdateR(pid, PageState::Free(), base).value();
    }
    return s;
  }();
  return *store;
}

void BM_UpdateDWithFlush(benchmark::State& state) {
  PageStore& store = Store();
  std::mt19937_64 rng(state.thread_index() + 1);
  const std::string delta(kDeltaBytes, 'd');
  uint64_t updates = 0, flushes = 0, aborted = 0;
  for (auto _ : state) {
    const uint64_t pid = rng() % kPages;
    const PageState expected = store.table().Read(pid).value();
    if (!store.UpdateD(pid, expected, delta).ok()) {
      ++aborted;  // another thread changed the page first
      continue;
    }
    ++updates;
    if (updates % kFlushEvery == 0) {
      if (store.Flush(pid).ok()) ++flushes;
    }
  }
  state.SetItemsProcessed(updates);
  state.SetBytesProcessed(updates * kDeltaBytes);
  state.counters["flushes_per_second"] =
      benchmark::Counter(flushes, benchmark::Counter::kIsRate);
  state.counters["aborted"] = aborted;
}
BENCHMARK(BM_UpdateDWithFlush)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace lss

BENCHMARK_MAIN();
