// lssbench: the main job. Appends to a real log file with several threads,
// syncs, closes, reopens (recovery), reads every record back and verifies it
// byte for byte, and puts each throughput next to what the device does at
// the same request size and queue depth, measured in the same run.
//
//   ./bazelw run -c opt //tools:lssbench -- --threads=2 --record_bytes=4096

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flush/io_error.h"
#include "flush/io_ring_factory.h"
#include "gflags/gflags.h"
#include "lss/log_structured_store.h"
#include "ring/aligned_buffer.h"
#include "testing/payload.h"
#include "tools/bench_support.h"

DEFINE_string(dir, "", "directory for the log (default: $TMPDIR or /var/tmp)");
DEFINE_uint64(record_bytes, 4096, "payload bytes per record");
DEFINE_uint64(total_bytes, uint64_t{1} << 30, "payload bytes to append");
DEFINE_int32(threads, 2, "appending threads");
DEFINE_string(policy, "tail_localized", "tail_localized | serialized");
DEFINE_string(durability, "on_wait",
              "on_wait (fdatasync when waited for) | sync (after every "
              "buffer as well)");
DEFINE_uint64(buffer_bytes, uint64_t{4} << 20, "flush buffer bytes");
DEFINE_uint64(ring_size, 4, "flush buffers in the ring");
DEFINE_uint32(queue_depth, 64, "io_uring queue depth");
DEFINE_bool(json, false, "print one JSON object as the last line of stdout");
DEFINE_bool(keep, false, "keep the log file");
DEFINE_bool(device, true, "measure the device's raw bandwidth too");

namespace lss {
namespace {

using Clock = std::chrono::steady_clock;

// Prints progress on stderr once a second until stopped.
class Progress {
 public:
  Progress(const char* what, const std::atomic<uint64_t>& done, uint64_t total)
      : thread_([this, what, &done, total] {
          const auto start = Clock::now();
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, std::chrono::seconds(1),
                               [this] { return stop_; })) {
            const double mb = done.load() / 1e6;
            std::fprintf(stderr, "  %s: %.0f / %.0f MB, %.0f MB/s\n", what, mb,
                         total / 1e6, mb / Seconds(start, Clock::now()));
          }
        }) {}
  ~Progress() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

struct DeviceFigures {
  double write_mb_per_s = 0;
  double read_mb_per_s = 0;
};

// Sequential O_DIRECT writes (then one fdatasync) and reads of `bytes` in
// requests of `request` bytes, `depth` at a time, through the same IoRing
// the store uses. The file is allocated first, as the store's is.
DeviceFigures MeasureDevice(const std::string& path, uint64_t bytes,
                            size_t request, size_t depth) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC,
                      0644);
  if (fd < 0) {
    const int error = errno;
    Die(IoErrorStatus(error, absl::StrCat("open ", path)));
  }
  if (fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) {
    const int error = errno;
    Die(IoErrorStatus(error, absl::StrCat("fallocate ", path)));
  }
  std::unique_ptr<IoRing> io = Check(CreateIoRing(static_cast<unsigned>(
      std::max<size_t>(depth, 1))));
  AlignedBuffer memory = Check(AlignedBuffer::Allocate(request * depth, 4096));
  std::memset(memory.data(), 0x5a, memory.size());
  auto run = [&](bool write) {
    const auto start = Clock::now();
    uint64_t next = 0;
    uint64_t done = 0;
    std::vector<IoCompletion> completions;
    while (done < bytes) {
      while (next < bytes && io->pending() < depth) {
        const size_t slot = (next / request) % depth;
        std::span<std::byte> buf(memory.data() + slot * request, request);
        const bool queued = write ? io->PrepareWrite(fd, buf, next, next)
                                  : io->PrepareRead(fd, buf, next, next);
        if (!queued) break;
        next += request;
      }
      Check(io->Submit());
      completions.clear();
      Check(io->Reap(1, depth, completions));
      for (const IoCompletion& c : completions) {
        if (c.result != static_cast<int32_t>(request)) {
          Die(absl::InternalError(absl::StrCat(
              "device ", write ? "write" : "read", " at ", c.tag,
              " returned ", c.result)));
        }
        done += request;
      }
    }
    if (write && fdatasync(fd) != 0) {
      const int error = errno;
      Die(IoErrorStatus(error, absl::StrCat("fdatasync ", path)));
    }
    return bytes / 1e6 / Seconds(start, Clock::now());
  };
  DeviceFigures figures;
  figures.write_mb_per_s = run(true);
  figures.read_mb_per_s = run(false);
  close(fd);
  unlink(path.c_str());
  return figures;
}

struct ThreadResult {
  std::vector<uint64_t> addresses;  // of record i of this thread
  std::vector<double> stable_us;    // sampled append-to-stable latencies
};

// Every kSampleEvery-th record's append-to-stable latency is measured, by
// polling HiStable on later appends (no waiting, so appends keep flowing).
// Stable means durable: under --durability=on_wait nothing is synced until
// the final Sync, so the figure is the time to that sync; --durability=sync
// shows the latency of the per-buffer fdatasyncs.
constexpr uint64_t kSampleEvery = 16;

void AppendRecords(LogStructuredStore& store, uint64_t stream, uint64_t count,
                   std::atomic<uint64_t>& appended, ThreadResult& out) {
  out.addresses.reserve(count);
  std::deque<std::pair<uint64_t, Clock::time_point>> pending;
  auto settle = [&](Clock::time_point now) {
    const uint64_t stable = store.HiStable();
    while (!pending.empty() && pending.front().first < stable) {
      out.stable_us.push_back(
          std::chrono::duration<double, std::micro>(now - pending.front().second)
              .count());
      pending.pop_front();
    }
  };
  for (uint64_t i = 0; i < count; ++i) {
    StoreReservation r = Check(store.Reserve(FLAGS_record_bytes));
    testing::FillPayload(stream, i, r.payload());
    const uint64_t address = store.Commit(std::move(r));
    out.addresses.push_back(address);
    appended.fetch_add(FLAGS_record_bytes, std::memory_order_relaxed);
    const auto now = Clock::now();
    if (i % kSampleEvery == 0) pending.emplace_back(address, now);
    settle(now);
  }
  Check(store.Sync());
  settle(Clock::now());
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

int Main() {
  std::string dir = FLAGS_dir;
  if (dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    dir = tmp != nullptr ? tmp : "/var/tmp";
  }
  std::string pattern = dir + "/lssbench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    const int error = errno;
    Die(IoErrorStatus(error, absl::StrCat("mkdtemp in ", dir)));
  }
  const std::string work = pattern;
  const std::string path = work + "/log";

  StoreOptions options;
  options.buffer_bytes = FLAGS_buffer_bytes;
  options.ring_size = FLAGS_ring_size;
  options.queue_depth = FLAGS_queue_depth;
  options.allow_buffered_fallback = true;
  if (FLAGS_policy == "serialized") {
    options.policy = WritePolicy::kSerialized;
  } else if (FLAGS_policy != "tail_localized") {
    Die(absl::InvalidArgumentError("--policy must be tail_localized or "
                                   "serialized, not " + FLAGS_policy));
  }
  if (FLAGS_durability == "sync") {
    options.durability = Durability::kSync;
  } else if (FLAGS_durability != "on_wait") {
    Die(absl::InvalidArgumentError("--durability must be on_wait or sync, not " +
                                   FLAGS_durability));
  }
  if (FLAGS_threads < 1 || FLAGS_record_bytes == 0) {
    Die(absl::InvalidArgumentError("--threads and --record_bytes must be > 0"));
  }
  const uint64_t per_thread =
      std::max<uint64_t>(1, FLAGS_total_bytes / FLAGS_record_bytes /
                                FLAGS_threads);
  const uint64_t payload_total = per_thread * FLAGS_threads * FLAGS_record_bytes;

  DeviceFigures device;
  if (FLAGS_device) {
    std::fprintf(stderr, "lssbench: measuring the device (%" PRIu64
                         " MB, %zu-byte requests, depth %zu)\n",
                 std::min<uint64_t>(payload_total, uint64_t{1} << 30) >> 20,
                 options.buffer_bytes, options.ring_size);
    device = MeasureDevice(
        work + "/device",
        std::max<uint64_t>(options.buffer_bytes,
                           std::min<uint64_t>(payload_total, uint64_t{1} << 30) /
                               options.buffer_bytes * options.buffer_bytes),
        options.buffer_bytes, options.ring_size);
  }

  // Append.
  std::fprintf(stderr, "lssbench: appending %" PRIu64 " MB to %s\n",
               payload_total >> 20, path.c_str());
  std::unique_ptr<LogStructuredStore> store =
      Check(LogStructuredStore::Open(path, options));
  std::vector<ThreadResult> results(FLAGS_threads);
  std::atomic<uint64_t> appended{0};
  const auto append_start = Clock::now();
  {
    Progress progress("appended", appended, payload_total);
    std::vector<std::thread> threads;
    for (int t = 0; t < FLAGS_threads; ++t) {
      threads.emplace_back([&, t] {
        AppendRecords(*store, t, per_thread, appended, results[t]);
      });
    }
    for (std::thread& t : threads) t.join();
    // The figure includes the final fdatasync: the host caches writes.
    Check(store->Close());
  }
  const double append_s = Seconds(append_start, Clock::now());
  const bool direct = store->direct_io();
  store.reset();

  // Recover.
  const auto recover_start = Clock::now();
  store = Check(LogStructuredStore::Open(path, options));
  const double recover_s = Seconds(recover_start, Clock::now());
  const RecoveryReport report = store->recovery();
  const uint64_t log_bytes = report.tail - store->data_start();

  // Verify: every record present exactly once, byte for byte, in order.
  std::fprintf(stderr, "lssbench: verifying %" PRIu64 " records\n",
               report.records);
  bool verified = report.records == per_thread * FLAGS_threads && !report.cut;
  std::string failure;
  {
    std::vector<uint64_t> next_index(FLAGS_threads, 0);
    std::unique_ptr<LogReader> reader = Check(store->NewLogReader());
    uint64_t seen = 0;
    while (verified && Check(reader->Next())) {
      const RecordView& r = reader->record();
      ++seen;
      bool matched = false;
      for (int t = 0; t < FLAGS_threads && !matched; ++t) {
        const uint64_t i = next_index[t];
        if (i < per_thread && results[t].addresses[i] == r.address) {
          const std::span<const std::byte> bytes(
              reinterpret_cast<const std::byte*>(r.payload.data()),
              r.payload.size());
          matched = r.payload.size() == FLAGS_record_bytes &&
                    !testing::FirstPayloadMismatch(t, i, bytes).has_value();
          ++next_index[t];
        }
      }
      if (!matched) {
        verified = false;
        failure = absl::StrCat("record at ", r.address,
                               " is not the one appended there");
      }
    }
    if (verified && seen != per_thread * FLAGS_threads) {
      verified = false;
      failure = absl::StrCat("read back ", seen, " records of ",
                             per_thread * FLAGS_threads);
    }
    // Point reads of a sample, through Read.
    for (int t = 0; t < FLAGS_threads && verified; ++t) {
      for (uint64_t i = 0; i < per_thread; i += 997) {
        LogRecord rec = Check(store->Read(results[t].addresses[i]));
        const std::span<const std::byte> bytes(
            reinterpret_cast<const std::byte*>(rec.payload.data()),
            rec.payload.size());
        if (testing::FirstPayloadMismatch(t, i, bytes).has_value()) {
          verified = false;
          failure = absl::StrCat("Read(", results[t].addresses[i],
                                 ") returned other bytes");
        }
      }
    }
  }
  Check(store->Close());
  if (!report.cut && report.records != per_thread * FLAGS_threads &&
      failure.empty()) {
    failure = absl::StrCat("recovery found ", report.records, " records of ",
                           per_thread * FLAGS_threads);
  }
  if (report.cut) failure = "recovery cut the log: " + report.end;

  std::vector<double> latencies;
  for (ThreadResult& r : results) {
    latencies.insert(latencies.end(), r.stable_us.begin(), r.stable_us.end());
  }
  const double append_mb = payload_total / 1e6 / append_s;
  const double records_per_s = per_thread * FLAGS_threads / append_s;
  const double p50 = Percentile(latencies, 0.50);
  const double p99 = Percentile(latencies, 0.99);
  const double recovery_mb = log_bytes / 1e6 / recover_s;

  std::printf("lssbench: %d threads x %" PRIu64 " records of %" PRIu64
              " B, policy %s, durability %s, %s I/O, buffers %zu x %zu KiB\n",
              FLAGS_threads, per_thread, FLAGS_record_bytes,
              FLAGS_policy.c_str(), FLAGS_durability.c_str(),
              direct ? "O_DIRECT" : "buffered", options.ring_size,
              options.buffer_bytes >> 10);
  std::printf("  %-26s %12s %14s\n", "", "measured", "of device");
  auto ratio = [](double ours, double dev) {
    return dev > 0 ? absl::StrCat(static_cast<int>(100 * ours / dev + 0.5), "%")
                   : std::string("-");
  };
  std::printf("  %-26s %9.1f MB/s %14s\n", "append (to final sync)", append_mb,
              ratio(append_mb, device.write_mb_per_s).c_str());
  std::printf("  %-26s %10.0f /s\n", "records", records_per_s);
  std::printf("  %-26s %9.0f us / %.0f us\n", "append-to-stable p50/p99", p50,
              p99);
  std::printf("  %-26s %9.1f MB/s %14s\n", "recovery scan", recovery_mb,
              ratio(recovery_mb, device.read_mb_per_s).c_str());
  std::printf("  %-26s %9.1f MB/s write, %.1f MB/s read\n",
              "device (same run)", device.write_mb_per_s, device.read_mb_per_s);
  std::printf("  %-26s %s\n", "verify",
              verified ? "OK: every record, byte for byte"
                       : ("FAILED: " + failure).c_str());
  if (FLAGS_json) {
    std::printf(
        "{\"append_mb_per_s\": %.1f, \"records_per_s\": %.0f, "
        "\"stable_latency_p50_us\": %.0f, \"stable_latency_p99_us\": %.0f, "
        "\"recovery_mb_per_s\": %.1f, \"verified\": %s, "
        "\"device_write_mb_per_s\": %.1f, \"device_read_mb_per_s\": %.1f, "
        "\"threads\": %d, \"record_bytes\": %" PRIu64
        ", \"payload_bytes\": %" PRIu64 ", \"policy\": \"%s\", "
        "\"durability\": \"%s\"}\n",
        append_mb, records_per_s, p50, p99, recovery_mb,
        verified ? "true" : "false", device.write_mb_per_s,
        device.read_mb_per_s, FLAGS_threads, FLAGS_record_bytes, payload_total,
        FLAGS_policy.c_str(), FLAGS_durability.c_str());
  }
  if (!FLAGS_keep) {
    unlink(path.c_str());
    rmdir(work.c_str());
  }
  return verified ? 0 : 1;
}

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "append, sync, recover and verify a log; prints throughput next to the "
      "device's");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return lss::Main();
}
