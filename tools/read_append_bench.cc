// Do reads hold appends back? One thread appends 4 KiB records as fast as
// it can while 0, 1 or 2 threads read records by address:
//   - disk: random records of a 256 MiB prefix written before the run (each
//     Read is one aligned read of the file, through a ring of its own);
//   - resident: records appended a buffer or two before, still in a flush
//     buffer (each Read looks the block index up, pins the buffer and copies
//     the record out: the reads that share the most with the appends).
//   - cpu: no store at all: each "read" copies a 4 KiB record out of the
//     thread's own memory and checksums it, as a resident Read does. The
//     control: on a machine with few cores, readers take CPU time from the
//     appender whatever they read.
// Append throughput with readers, next to the run without and next to the
// control, is the answer; reads/s says how hard the readers pushed.
//
//   ./bazelw run -c opt //tools:read_append_bench
//
// The log goes in $TMPDIR (default /var/tmp).

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "lss/crc32c.h"
#include "lss/log_structured_store.h"

namespace lss {
namespace {

constexpr size_t kRecordBytes = 4096;
constexpr uint64_t kPrefixBytes = uint64_t{256} << 20;
constexpr size_t kRecent = 1 << 16;  // the appender's newest addresses
// Resident readers stay this many records behind the newest append: two
// 4 MiB buffers, so they never read the buffer being filled (a Read there
// seals it early).
constexpr uint64_t kBehind = 2048;

enum class Kind { kDisk = 0, kResident = 1, kCpu = 2 };

void Fail(const absl::Status& s) {
  std::fprintf(stderr, "read_append_bench: %s\n", s.ToString().c_str());
  std::abort();
}

void BM_AppendWhileReading(benchmark::State& state) {
  const int readers = static_cast<int>(state.range(0));
  const Kind kind = static_cast<Kind>(state.range(1));
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/var/tmp") +
                           "/read_append_bench." + std::to_string(getpid());
  StoreOptions options;
  options.allow_buffered_fallback = true;
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> opened =
      LogStructuredStore::Open(path, options);
  if (!opened.ok()) Fail(opened.status());
  LogStructuredStore& store = **opened;
  const std::string record(kRecordBytes, 'r');
  std::vector<uint64_t> prefix;
  for (uint64_t b = 0; b < kPrefixBytes; b += kRecordBytes) {
    absl::StatusOr<uint64_t> a = store.Append(record);
    if (!a.ok()) Fail(a.status());
    prefix.push_back(*a);
  }
  if (absl::Status s = store.Sync(); !s.ok()) Fail(s);

  std::vector<std::atomic<uint64_t>> recent(kRecent);
  for (size_t i = 0; i < kRecent; ++i) recent[i] = prefix[i % prefix.size()];
  std::atomic<uint64_t> appended{0};
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(r + 1);
      while (kind == Kind::kCpu && !stop.load(std::memory_order_relaxed)) {
        const std::string copy = record;
        benchmark::DoNotOptimize(Crc32c(copy.data(), copy.size()));
        reads.fetch_add(1, std::memory_order_relaxed);
      }
      while (kind != Kind::kCpu && !stop.load(std::memory_order_relaxed)) {
        uint64_t address;
        if (kind == Kind::kDisk) {
          address = prefix[rng() % prefix.size()];
        } else {
          const uint64_t n = appended.load(std::memory_order_acquire);
          if (n < kBehind * 2) {
            address = prefix[rng() % prefix.size()];
          } else {
            const uint64_t i = n - kBehind - rng() % (kBehind / 2);
            address = recent[i % kRecent].load(std::memory_order_relaxed);
          }
        }
        absl::StatusOr<LogRecord> got = store.Read(address);
        if (!got.ok()) Fail(got.status());
        if (got->payload.size() != kRecordBytes) std::abort();
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  uint64_t n = 0;
  for (auto _ : state) {
    absl::StatusOr<uint64_t> a = store.Append(record);
    if (!a.ok()) Fail(a.status());
    recent[n % kRecent].store(*a, std::memory_order_relaxed);
    appended.store(++n, std::memory_order_release);
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  if (absl::Status s = store.Sync(); !s.ok()) Fail(s);
  state.SetBytesProcessed(state.iterations() * kRecordBytes);
  state.SetItemsProcessed(state.iterations());
  state.counters["reads_per_s"] =
      benchmark::Counter(reads.load(), benchmark::Counter::kIsRate);
  if (absl::Status s = store.Close(); !s.ok()) Fail(s);
  opened->reset();
  unlink(path.c_str());
}

BENCHMARK(BM_AppendWhileReading)
    ->ArgNames({"readers", "kind"})  // kind: 0 disk, 1 resident, 2 cpu
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({2, 0})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({1, 2})
    ->Args({2, 2})
    ->MinTime(2.0)
    ->UseRealTime();

}  // namespace
}  // namespace lss

BENCHMARK_MAIN();
