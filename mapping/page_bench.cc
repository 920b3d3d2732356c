// PageStore: UpdateD with a periodic Flush on a 1 GiB working set (262,144
// pages of 4 KiB), the page-level figure of issue 5. The pages are loaded
// and flushed once (a working set that is already on the log); then each
// thread prepends 64-byte deltas to random pages and flushes the page it
// just updated every kFlushEvery updates; the log is a real file (O_DIRECT)
// in $TMPDIR. log_bytes_per_flush is what those flushes put on the log
// (records with their headers, failed-flush markers included) per flush.
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
      s->Flush(pid).value();
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
  // Every thread is outside the loop here and after it (Google Benchmark
  // starts and stops the threads of a run together).
  const PageStore::FlushStats before = store.flush_stats();
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
  if (state.thread_index() == 0) {
    const PageStore::FlushStats after = store.flush_stats();
    const uint64_t bytes = after.bytes - before.bytes;
    const uint64_t written = after.images + after.delta_pieces -
                             before.images - before.delta_pieces;
    state.counters["log_bytes_per_second"] =
        benchmark::Counter(bytes, benchmark::Counter::kIsRate);
    state.counters["log_bytes_per_flush"] =
        written == 0 ? 0.0 : double(bytes) / double(written);
  }
}
BENCHMARK(BM_UpdateDWithFlush)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace lss

BENCHMARK_MAIN();
