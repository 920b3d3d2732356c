// Recovery of a page log, cold: PageStore::Open (the log's recovery scan
// rebuilds the mapping table in the same pass) next to what it is measured
// against, LogStructuredStore::Open and LogStructuredStore::Open followed by
// one LogReader pass over every record, on the same log of 4 KiB page
// images. The page cache is dropped before each open.
//
//   ./bazelw run -c opt //tools:open_bench
//
// OPEN_BENCH_MB sets the size of the log (default 1024).

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "lss/log_structured_store.h"
#include "mapping/page_store.h"

namespace lss {
namespace {

constexpr size_t kPageBytes = 4096;

struct Log {
  std::string path;
  uint64_t pages = 0;
  uint64_t bytes = 0;  // of the log, data_start to tail
};

PageStoreOptions Options(uint64_t pages) {
  PageStoreOptions o;
  o.store.allow_buffered_fallback = true;
  o.table.max_pages = pages;
  return o;
}

// Written once per process: every page flushed once, then closed.
const Log& TheLog() {
  static const Log* log = [] {
    const char* mb = std::getenv("OPEN_BENCH_MB");
    const uint64_t bytes = (mb != nullptr ? std::strtoull(mb, nullptr, 10)
                                          : 1024) << 20;
    const char* tmp = std::getenv("TMPDIR");
    auto* out = new Log;
    out->path = std::string(tmp != nullptr ? tmp : "/var/tmp") +
                "/open_bench." + std::to_string(getpid());
    out->pages = bytes / kPageBytes;
    std::fprintf(stderr, "open_bench: writing %llu pages to %s\n",
                 static_cast<unsigned long long>(out->pages),
                 out->path.c_str());
    std::unique_ptr<PageStore> s =
        PageStore::Open(out->path, Options(out->pages)).value();
    const std::string base(kPageBytes, 'b');
    for (uint64_t i = 0; i < out->pages; ++i) {
      const uint64_t pid = s->Allocate().value();
      s->UpdateR(pid, PageState::Free(), base).value();
      s->Flush(pid).value();
    }
    if (!s->log().Close().ok()) std::abort();
    s.reset();
    std::unique_ptr<LogStructuredStore> store =
        LogStructuredStore::Open(out->path, Options(out->pages).store).value();
    out->bytes = store->recovery().tail - store->data_start();
    return out;
  }();
  return *log;
}

void DropCache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

// Each iteration opens cold; `open` does the work timed and returns what
// must be destroyed untimed.
template <typename Open>
void Run(benchmark::State& state, Open open) {
  const Log& log = TheLog();
  for (auto _ : state) {
    state.PauseTiming();
    DropCache(log.path);
    state.ResumeTiming();
    auto opened = open(log);
    state.PauseTiming();
    opened.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(state.iterations() * log.bytes);
  state.counters["log_mb"] = log.bytes / 1e6;
}

void BM_StoreOpen(benchmark::State& state) {
  Run(state, [](const Log& log) {
    return LogStructuredStore::Open(log.path, Options(log.pages).store)
        .value();
  });
}

void BM_StoreOpenThenLogReader(benchmark::State& state) {
  Run(state, [](const Log& log) {
    std::unique_ptr<LogStructuredStore> store =
        LogStructuredStore::Open(log.path, Options(log.pages).store).value();
    std::unique_ptr<LogReader> reader = store->NewLogReader().value();
    uint64_t records = 0;
    while (reader->Next().value()) ++records;
    if (records != log.pages) std::abort();
    return store;
  });
}

void BM_PageStoreOpen(benchmark::State& state) {
  Run(state, [](const Log& log) {
    std::unique_ptr<PageStore> store =
        PageStore::Open(log.path, Options(log.pages)).value();
    if (store->recovered_pages() != log.pages) std::abort();
    return store;
  });
}

BENCHMARK(BM_StoreOpen)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_StoreOpenThenLogReader)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_PageStoreOpen)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  unlink(lss::TheLog().path.c_str());
  return 0;
}
