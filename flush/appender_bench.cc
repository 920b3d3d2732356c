// Sealed buffers written through the appender to a real file, O_DIRECT over
// io_uring, under both write policies and both durability settings.
//
//   ./bazelw run -c opt //flush:appender_bench
//
// Like fio, the file is laid out (written and synced once) before timing, so
// the figures are overwrite figures; compare them with fio on the same file
// system (see BENCHMARKS.md). One iteration writes the whole file through a
// fresh ring and appender and ends with an fdatasync, so the host's write
// cache cannot flatter the result. --file_mib sets the file size.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "flush/appender.h"
#include "flush/uring_io_ring.h"
#include "ring/check.h"
#include "ring/flush_buffer_ring.h"

namespace lss {
namespace {

constexpr size_t kRingSize = 8;  // writes in flight under kTailLocalized
constexpr unsigned kQueueDepth = 32;

size_t FileBytes() {
  const char* mib = std::getenv("APPENDER_BENCH_FILE_MIB");
  return size_t{mib != nullptr ? std::strtoul(mib, nullptr, 10) : 512} << 20;
}

// The benchmark file, laid out once per process.
int LaidOutFile() {
  static const int fd = [] {
    const char* dir = std::getenv("TMPDIR");
    const std::string path =
        absl::StrCat(dir != nullptr ? dir : "/tmp", "/appender_bench.",
                     getpid());
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT,
                        0644);
    LSS_CHECK(fd >= 0, "cannot open the benchmark file with O_DIRECT");
    unlink(path.c_str());  // gone when the process exits
    auto chunk = AlignedBuffer::Allocate(size_t{4} << 20);
    LSS_CHECK(chunk.ok(), "cannot allocate the layout buffer");
    for (size_t off = 0; off < FileBytes(); off += chunk->size()) {
      LSS_CHECK(pwrite(fd, chunk->data(), chunk->size(), off) ==
                    static_cast<ssize_t>(chunk->size()),
                "laying out the benchmark file failed");
    }
    LSS_CHECK(fdatasync(fd) == 0, "fdatasync of the benchmark file failed");
    return fd;
  }();
  return fd;
}

void RunAppender(benchmark::State& state, WritePolicy policy,
                 Durability durability) {
  const size_t buffer_bytes = state.range(0);
  const size_t file_bytes = FileBytes();
  const int fd = LaidOutFile();
  auto io = UringIoRing::Create(kQueueDepth);
  LSS_CHECK(io.ok(), "cannot create an io_uring");
  const absl::StatusOr<size_t> alignment = (*io)->DirectIoAlignment(fd);
  LSS_CHECK(alignment.ok(), "cannot query the O_DIRECT alignment");
  for (auto _ : state) {
    state.PauseTiming();
    AppenderOptions options;
    options.fd = fd;
    options.path = "appender_bench";
    options.policy = policy;
    options.durability = durability;
    options.alignment = *alignment;
    auto appender = std::make_unique<Appender>(io->get(), options);
    FlushBufferRingOptions ring_options;
    ring_options.buffer_bytes = buffer_bytes;
    ring_options.ring_size = kRingSize;
    auto ring = FlushBufferRing::Create(ring_options, appender.get());
    LSS_CHECK(ring.ok(), "cannot create the ring");
    appender->set_ring(ring->get());
    state.ResumeTiming();

    // One record per buffer: the appender and the device are measured,
    // not the copy (ring_bench measures that).
    for (size_t written = 0; written < file_bytes; written += buffer_bytes) {
      absl::StatusOr<Reservation> r = (*ring)->Reserve(buffer_bytes);
      LSS_CHECK(r.ok(), "Reserve failed");
      std::memset(r->data().data(), static_cast<int>(written >> 20), 64);
      (*ring)->Commit(*std::move(r));
    }
    const absl::StatusOr<uint64_t> end = (*ring)->SealCurrent();
    LSS_CHECK(end.ok(), "SealCurrent failed");
    LSS_CHECK(appender->WaitStable(*end).ok(), "WaitStable failed");
    LSS_CHECK(fdatasync(fd) == 0, "final fdatasync failed");

    state.PauseTiming();
    appender.reset();
    ring->reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(state.iterations() * file_bytes);
  state.counters["write_mib"] = static_cast<double>(file_bytes >> 20);
}

void BM_AppenderTailLocalized(benchmark::State& state) {
  RunAppender(state, WritePolicy::kTailLocalized, Durability::kOnWait);
}
void BM_AppenderSerialized(benchmark::State& state) {
  RunAppender(state, WritePolicy::kSerialized, Durability::kOnWait);
}
void BM_AppenderTailLocalizedSync(benchmark::State& state) {
  RunAppender(state, WritePolicy::kTailLocalized, Durability::kSync);
}
void BM_AppenderSerializedSync(benchmark::State& state) {
  RunAppender(state, WritePolicy::kSerialized, Durability::kSync);
}

#define LSS_APPENDER_BENCH(fn)                                        \
  BENCHMARK(fn)->Arg(65536)->Arg(1048576)->Arg(4194304)->UseRealTime() \
      ->Unit(benchmark::kMillisecond)

LSS_APPENDER_BENCH(BM_AppenderTailLocalized);
LSS_APPENDER_BENCH(BM_AppenderSerialized);
LSS_APPENDER_BENCH(BM_AppenderTailLocalizedSync);
LSS_APPENDER_BENCH(BM_AppenderSerializedSync);

}  // namespace
}  // namespace lss
