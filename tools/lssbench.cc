// lssbench: the main job. Appends to a real log file with several threads,
// syncs, closes, reopens (recovery), reads every record back (timed, cold)
// and verifies it byte for byte, reads records at random addresses, and puts
// each figure next to what the device does (the store's own I/O ring for
// writes, fio for reads) measured in the same run.
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
#include <random>
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
#include "tools/fio_job.h"
#include "tools/progress.h"

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
DEFINE_double(random_read_seconds, 3,
              "seconds of random reads by address at each depth (0: none)");
DEFINE_uint32(read_batch, 16, "addresses per ReadMany call");
DEFINE_int32(read_threads, 2,
             "threads calling ReadMany: read_threads x read_batch reads are "
             "outstanding at most, compared with fio at that depth");

namespace lss {
namespace {

using Clock = std::chrono::steady_clock;

// Draws a progress line on stderr (only when it is a terminal) twice a
// second until stopped, from a counter the appending threads bump.
class Progress {
 public:
  Progress(const char* what, const std::atomic<uint64_t>& done, uint64_t total)
      : line_(absl::StrCat("lssbench: ", what), total),
        thread_([this, &done] {
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, std::chrono::milliseconds(500),
                               [this] { return stop_; })) {
            line_.Update(done.load(std::memory_order_relaxed));
          }
          line_.Done();
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
  ProgressLine line_;
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

// Drops the log's pages from the page cache, so that a read-back is cold
// even if the store fell back to buffered I/O. Says what it did.
std::string DropCache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "not dropped (open failed)";
  const bool advised = fdatasync(fd) == 0 &&
                       posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  close(fd);
  const int drop = geteuid() == 0 ? open("/proc/sys/vm/drop_caches",
                                         O_WRONLY | O_CLOEXEC)
                                  : -1;
  const bool dropped = drop >= 0 && write(drop, "1", 1) == 1;
  if (drop >= 0) close(drop);
  if (dropped) return "dropped (drop_caches)";
  return advised ? "the log's pages dropped (POSIX_FADV_DONTNEED; not root)"
                 : "not dropped";
}

struct ReadBack {
  uint64_t records = 0;
  uint64_t payload_bytes = 0;
  double seconds = 0;
};

// Every record through a LogReader, touching each payload byte once.
ReadBack ReadEverything(LogStructuredStore& store) {
  ReadBack out;
  const auto start = Clock::now();
  std::unique_ptr<LogReader> reader = Check(store.NewLogReader());
  uint64_t sum = 0;
  while (Check(reader->Next())) {
    const absl::string_view p = reader->record().payload;
    ++out.records;
    out.payload_bytes += p.size();
    sum += static_cast<unsigned char>(p[p.size() / 2]);
  }
  out.seconds = Seconds(start, Clock::now());
  if (sum == 1) std::fprintf(stderr, " ");  // keeps the loads
  return out;
}

struct RandomReads {
  double reads_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Reads of records at random addresses for `seconds` from `threads`
// threads: one Read at a time, or ReadMany calls of `batch` addresses.
// Latencies are per call.
RandomReads ReadAtRandom(LogStructuredStore& store,
                         const std::vector<uint64_t>& addresses, size_t batch,
                         int threads, double seconds) {
  std::vector<std::vector<double>> latencies(threads);
  std::atomic<uint64_t> reads{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(batch * 1000 + t);
      std::uniform_int_distribution<size_t> pick(0, addresses.size() - 1);
      std::vector<uint64_t> chosen(batch);
      while (Seconds(start, Clock::now()) < seconds) {
        for (uint64_t& a : chosen) a = addresses[pick(rng)];
        const auto began = Clock::now();
        if (batch == 1) {
          Check(store.Read(chosen[0]));
        } else {
          for (absl::StatusOr<LogRecord>& r :
               store.ReadMany(chosen, FLAGS_record_bytes)) {
            Check(r.status());
          }
        }
        latencies[t].push_back(std::chrono::duration<double, std::micro>(
                                   Clock::now() - began)
                                   .count());
        reads.fetch_add(batch, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  std::vector<double> all;
  for (const std::vector<double>& l : latencies) {
    all.insert(all.end(), l.begin(), l.end());
  }
  RandomReads out;
  out.reads_per_s = reads.load() / Seconds(start, Clock::now());
  out.p50_us = Percentile(all, 0.50);
  out.p99_us = Percentile(all, 0.99);
  return out;
}

// fio's figure, or zeros and a line on stderr: a missing fio costs the
// comparison, not the run.
template <typename T>
T FioOrZero(absl::StatusOr<T> figure) {
  if (figure.ok()) return *figure;
  std::fprintf(stderr, "lssbench: fio failed: %s\n",
               figure.status().ToString().c_str());
  return T{};
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
  uint64_t log_end = 0;
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
    log_end = store->HiStable();  // every thread synced
    // The figure includes the final fdatasync: the host caches writes.
    Check(store->Close());
  }
  const double append_s = Seconds(append_start, Clock::now());
  const bool direct = store->direct_io();
  store.reset();

  // fio reads the log file itself, as the store is about to.
  double fio_read_mb = 0;
  if (FLAGS_device) {
    std::fprintf(stderr, "lssbench: fio sequential read of the log\n");
    fio_read_mb = FioOrZero(FioSequential(path, log_end, /*write=*/false));
  }

  // Recover and read every record back, cold.
  const std::string cache = DropCache(path);
  std::fprintf(stderr, "lssbench: reopening and reading back (cache %s)\n",
               cache.c_str());
  // Open's scan hands every record to a visitor: the log is read once.
  uint64_t visited = 0;
  uint64_t visited_sum = 0;
  StoreOptions replay = options;
  replay.on_recovered_record = [&](const RecordView& r) {
    ++visited;
    visited_sum += static_cast<unsigned char>(r.payload[r.payload.size() / 2]);
    return absl::OkStatus();
  };
  const auto recover_start = Clock::now();
  store = Check(LogStructuredStore::Open(path, replay));
  const double recover_s = Seconds(recover_start, Clock::now());
  if (visited_sum == 1) std::fprintf(stderr, " ");  // keeps the loads
  const RecoveryReport report = store->recovery();
  const uint64_t log_bytes = report.tail - store->data_start();
  const ReadBack read_back = ReadEverything(*store);

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
  // Random reads by address, next to fio's random 4 KiB reads.
  RandomReads one, many;
  FioRandomReads fio_one, fio_many;
  if (FLAGS_random_read_seconds > 0 && verified) {
    std::vector<uint64_t> all;
    for (const ThreadResult& r : results) {
      all.insert(all.end(), r.addresses.begin(), r.addresses.end());
    }
    std::fprintf(stderr, "lssbench: random reads by address (%.0f s each)\n",
                 FLAGS_random_read_seconds);
    one = ReadAtRandom(*store, all, 1, 1, FLAGS_random_read_seconds);
    many = ReadAtRandom(*store, all, FLAGS_read_batch, FLAGS_read_threads,
                        FLAGS_random_read_seconds);
    if (FLAGS_device) {
      fio_one = FioOrZero(
          FioRandomReadJob(path, log_end, 1, FLAGS_random_read_seconds));
      fio_many = FioOrZero(FioRandomReadJob(
          path, log_end,
          static_cast<int>(FLAGS_read_batch) * FLAGS_read_threads,
          FLAGS_random_read_seconds));
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
  const double reader_mb = log_bytes / 1e6 / read_back.seconds;
  const double read_back_mb = log_bytes / 1e6 / (recover_s + read_back.seconds);
  if ((read_back.records != per_thread * FLAGS_threads ||
       visited != per_thread * FLAGS_threads) &&
      failure.empty()) {
    verified = false;
    failure = absl::StrCat("the timed read-back found ", read_back.records,
                           " records, Open's visitor ", visited);
  }

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
  std::printf("  %-26s %9.1f MB/s %14s  (cache %s)\n",
              "Open visiting each record", recovery_mb,
              ratio(recovery_mb, fio_read_mb).c_str(), cache.c_str());
  std::printf("  %-26s %9.1f MB/s %14s\n", "Open, then LogReader",
              read_back_mb, ratio(read_back_mb, fio_read_mb).c_str());
  std::printf("  %-26s %9.1f MB/s %14s\n", "LogReader alone", reader_mb,
              ratio(reader_mb, fio_read_mb).c_str());
  if (one.reads_per_s > 0) {
    std::printf("  %-26s %10.0f /s %14s  p50 %.0f us (fio %.0f), p99 %.0f us "
                "(fio %.0f)\n",
                "Read, 1 at a time", one.reads_per_s,
                ratio(one.reads_per_s, fio_one.iops).c_str(), one.p50_us,
                fio_one.p50_us, one.p99_us, fio_one.p99_us);
    std::printf("  %-26s %10.0f /s %14s  p50 %.0f us per call\n",
                absl::StrCat("ReadMany, ", FLAGS_read_threads, " x ",
                             FLAGS_read_batch)
                    .c_str(),
                many.reads_per_s, ratio(many.reads_per_s, fio_many.iops).c_str(),
                many.p50_us);
  }
  std::printf("  %-26s %9.1f MB/s write, %.1f MB/s read (store's ring)\n",
              "device (same run)", device.write_mb_per_s, device.read_mb_per_s);
  std::printf("  %-26s %9.1f MB/s seq read (1 MiB x 8), 4 KiB randread "
              "%.0f /s at depth 1 (p50 %.0f us: %.0f us completion), %.0f /s "
              "at depth %d\n",
              "fio (same run, the log)", fio_read_mb, fio_one.iops,
              fio_one.p50_us, fio_one.clat_p50_us, fio_many.iops,
              FLAGS_read_batch * FLAGS_read_threads);
  std::printf("  %-26s %s\n", "verify",
              verified ? "OK: every record, byte for byte"
                       : ("FAILED: " + failure).c_str());
  if (FLAGS_json) {
    std::printf(
        "{\"append_mb_per_s\": %.1f, \"records_per_s\": %.0f, "
        "\"stable_latency_p50_us\": %.0f, \"stable_latency_p99_us\": %.0f, "
        "\"recovery_mb_per_s\": %.1f, \"read_back_mb_per_s\": %.1f, "
        "\"reader_mb_per_s\": %.1f, \"fio_read_mb_per_s\": %.1f, "
        "\"read_1_per_s\": %.0f, \"read_1_p50_us\": %.1f, "
        "\"read_1_p99_us\": %.1f, \"read_many_per_s\": %.0f, "
        "\"read_outstanding\": %d, \"fio_randread_1_iops\": %.0f, "
        "\"fio_randread_1_p50_us\": %.1f, \"fio_randread_1_p99_us\": %.1f, "
        "\"fio_randread_1_clat_p50_us\": %.1f, "
        "\"fio_randread_outstanding_iops\": %.0f, "
        "\"verified\": %s, "
        "\"device_write_mb_per_s\": %.1f, \"device_read_mb_per_s\": %.1f, "
        "\"threads\": %d, \"record_bytes\": %" PRIu64
        ", \"payload_bytes\": %" PRIu64 ", \"policy\": \"%s\", "
        "\"durability\": \"%s\"}\n",
        append_mb, records_per_s, p50, p99, recovery_mb, read_back_mb,
        reader_mb, fio_read_mb, one.reads_per_s, one.p50_us, one.p99_us,
        many.reads_per_s,
        static_cast<int>(FLAGS_read_batch) * FLAGS_read_threads, fio_one.iops,
        fio_one.p50_us, fio_one.p99_us, fio_one.clat_p50_us, fio_many.iops,
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
