// Reserve + copy + commit through the ring, against two baselines doing the
// same copy: a std::mutex-protected append buffer and a plain memcpy.
//
//   ./bazelw run -c opt //ring:ring_bench
//
// The ring's sink recycles each sealed buffer at once, so this measures the
// ring and the copy, not I/O. The ring has one 1 MiB buffer so that all three
// copy into the same 1 MiB footprint: a larger ring spills out of the cache
// and would measure the cache, not the ring.

#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "benchmark/benchmark.h"
#include "ring/flush_buffer_ring.h"
#include "ring/check.h"

namespace lss {
namespace {

constexpr size_t kBufferBytes = size_t{1} << 20;
constexpr size_t kRingSize = 1;

class RecycleAtOnce : public SealedBufferSink {
 public:
  void set_ring(FlushBufferRing* ring) { ring_ = ring; }
  void Dispatch(const SealedBuffer& sealed) override { ring_->Recycle(sealed); }
  absl::Status HelpDrain() override { return absl::OkStatus(); }

 private:
  FlushBufferRing* ring_ = nullptr;
};

FlushBufferRing& SharedRing() {
  static RecycleAtOnce sink;
  static FlushBufferRing* ring = [] {
    FlushBufferRingOptions options;
    options.buffer_bytes = kBufferBytes;
    options.ring_size = kRingSize;
    auto created = FlushBufferRing::Create(options, &sink);
    LSS_CHECK(created.ok(), "cannot create the benchmark ring");
    sink.set_ring(created->get());
    return created->release();
  }();
  return *ring;
}

// The record every benchmark copies; its contents do not matter.
const std::byte* Source() {
  static const std::vector<std::byte> source(kBufferBytes, std::byte{0x5A});
  return source.data();
}

void SetCounters(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_RingReserveCommit(benchmark::State& state) {
  FlushBufferRing& ring = SharedRing();
  const size_t len = state.range(0);
  const std::byte* src = Source();
  for (auto _ : state) {
    absl::StatusOr<Reservation> r = ring.Reserve(len);
    std::memcpy(r->data().data(), src, len);
    ring.Commit(*std::move(r));
  }
  SetCounters(state);
}

// A single append buffer under one lock: the design a mutex-based log uses.
struct MutexLog {
  std::mutex mu;
  std::unique_ptr<std::byte[]> buffer{new std::byte[kBufferBytes]};
  size_t offset = 0;
};

void BM_MutexAppend(benchmark::State& state) {
  static MutexLog log;
  const size_t len = state.range(0);
  const std::byte* src = Source();
  for (auto _ : state) {
    std::lock_guard<std::mutex> lock(log.mu);
    if (log.offset + len > kBufferBytes) log.offset = 0;  // "flushed"
    std::memcpy(log.buffer.get() + log.offset, src, len);
    log.offset += len;
  }
  SetCounters(state);
}

void BM_Memcpy(benchmark::State& state) {
  const size_t len = state.range(0);
  const std::byte* src = Source();
  std::vector<std::byte> dst(kBufferBytes);
  size_t offset = 0;
  for (auto _ : state) {
    if (offset + len > kBufferBytes) offset = 0;
    std::memcpy(dst.data() + offset, src, len);
    benchmark::DoNotOptimize(dst.data());
    offset += len;
  }
  SetCounters(state);
}

#define LSS_RING_BENCH(fn) \
  BENCHMARK(fn)->Arg(64)->Arg(512)->Arg(4096)->Threads(1)->Threads(2)

LSS_RING_BENCH(BM_RingReserveCommit);
LSS_RING_BENCH(BM_MutexAppend);
LSS_RING_BENCH(BM_Memcpy);

}  // namespace
}  // namespace lss
