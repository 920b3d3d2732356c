// peerbench: the store next to its peers. Runs the same workloads against
// ours (LogStructuredStore), RocksDB, LevelDB and fio, interleaved (each
// round runs every workload on every system in turn), and prints each
// system's median over the rounds, the ratios, and issue 11's targets as
// PASS / MISS lines. BENCHMARKS.md ("Peer benchmark") says what each system
// is asked to do and what makes the comparisons unfair.
//
//   ./bazelw run -c opt //tools:peerbench -- --rounds=3 --json
//
//   W1  4 KiB records from 2 threads, one final sync: MB/s
//   W2  128 B records from 2 threads, one final sync: records/s
//   W3  durable 128 B appends (put, wait until durable): appends/s, p50, p99
//   W4  reopen W1's data with a cold page cache, read it all: MB/s

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "flush/io_error.h"
#include "gflags/gflags.h"
#include "nlohmann/json.hpp"
#include "tools/bench_support.h"
#include "tools/fio_job.h"
#include "tools/peer_store.h"
#include "tools/progress.h"

DEFINE_string(dir, "",
              "where to make the work directory (default: $TMPDIR or "
              "/var/tmp, as lssbench)");
DEFINE_int32(rounds, 3, "rounds; every figure is the median over them");
DEFINE_string(workloads, "W1,W2,W3,W4", "workloads to run");
DEFINE_string(peers, "ours,rocksdb,leveldb,fio", "systems to run");
DEFINE_uint64(w1_bytes, uint64_t{2} << 30,
              "W1 (and W4): bytes of 4 KiB records to write");
DEFINE_uint64(w2_bytes, uint64_t{512} << 20,
              "W2: bytes of 128 B records to write");
DEFINE_string(w3_threads, "1,2,8,32", "W3: thread counts");
DEFINE_double(w3_seconds, 10, "W3: seconds per thread count and system");
DEFINE_string(durability, "on_wait",
              "ours: on_wait (fdatasync when waited for) | sync (after every "
              "buffer as well)");
DEFINE_uint64(zero_ahead_bytes, lss::PeerOptions().zero_ahead_bytes,
              "ours: StoreOptions::zero_ahead_bytes (0, or a power of two "
              "from 512 to 1 MiB)");
DEFINE_bool(json, false, "print one JSON object as the last line of stdout");
DEFINE_bool(keep, false, "keep the work directory and every store in it");

namespace lss {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr size_t kW1RecordBytes = 4096;
constexpr size_t kSmallRecordBytes = 128;  // W2 and W3
constexpr int kWriters = 2;                // W1 and W2

// Only to a terminal: a piped or logged run keeps just the results.
void Progress(const std::string& line) {
  if (isatty(STDERR_FILENO))
    std::fprintf(stderr, "peerbench: %s\n", line.c_str());
}

// A record for writer `thread`: random (incompressible) bytes, of which
// SetKey rewrites the first kKeyBytes for every record.
std::string MakeRecord(size_t bytes, int thread) {
  std::string record(bytes, '\0');
  std::mt19937_64 random(thread + 1);
  for (char& c : record) c = static_cast<char>(random());
  return record;
}

// The key: writer, then counter, both big-endian, so each writer's keys
// ascend and no two writers' keys meet.
void SetKey(std::string& record, uint64_t thread, uint64_t i) {
  for (int b = 0; b < 8; ++b) {
    record[b] = static_cast<char>(thread >> (56 - 8 * b));
    record[8 + b] = static_cast<char>(i >> (56 - 8 * b));
  }
}

// Runs body(0..threads-1) on as many threads; the first error, if any.
absl::Status RunThreads(int threads,
                        const std::function<absl::Status(int)>& body) {
  std::vector<absl::Status> results(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] { results[t] = body(t); });
  }
  for (std::thread& w : workers) w.join();
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// W1, W2 and W4's data: kWriters threads put `per_thread` records each,
// then one Sync. Seconds from the first Put to the Sync's return.
absl::StatusOr<double> PutRecords(PeerStore& store, size_t record_bytes,
                                  uint64_t per_thread) {
  std::vector<std::string> records;
  for (int t = 0; t < kWriters; ++t)
    records.push_back(MakeRecord(record_bytes, t));
  // Drawn by writer 0 alone, for both writers, every 1024 records.
  ProgressLine progress("peerbench: writing",
                        per_thread * kWriters * record_bytes);
  const auto start = Clock::now();
  absl::Status s = RunThreads(kWriters, [&](int t) {
    for (uint64_t i = 0; i < per_thread; ++i) {
      SetKey(records[t], t, i);
      if (absl::Status s = store.Put(records[t], false); !s.ok()) return s;
      if (t == 0 && i % 1024 == 0) {
        progress.Update(i * kWriters * record_bytes);
      }
    }
    return absl::OkStatus();
  });
  progress.Done();
  if (!s.ok()) return s;
  if (s = store.Sync(); !s.ok()) return s;
  return Seconds(start, Clock::now());
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

struct DurableFigures {
  double per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// W3: each thread loops {put one record; wait until it is durable} until
// `seconds` have passed. Latency runs from before the put to the return of
// the wait.
absl::StatusOr<DurableFigures> DurablePuts(PeerStore& store, int threads,
                                           double seconds) {
  std::vector<std::vector<double>> latencies_us(threads);
  // Drawn by thread 0 alone: its durable bytes times the threads (the run
  // has a time limit, not a size, so no time left).
  ProgressLine progress("peerbench: durable appends", 0);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(seconds));
  absl::Status s = RunThreads(threads, [&](int t) {
    std::string record = MakeRecord(kSmallRecordBytes, t);
    std::vector<double> mine;  // moved out at the end: no false sharing
    for (uint64_t i = 0;; ++i) {
      const auto before = Clock::now();
      if (before >= deadline) break;
      SetKey(record, t, i);
      if (absl::Status s = store.Put(record, true); !s.ok()) return s;
      mine.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - before)
              .count());
      if (t == 0) progress.Update((i + 1) * threads * kSmallRecordBytes);
    }
    latencies_us[t] = std::move(mine);
    return absl::OkStatus();
  });
  progress.Done();
  if (!s.ok()) return s;
  const double elapsed = Seconds(start, Clock::now());
  std::vector<double> all;
  for (const std::vector<double>& l : latencies_us) {
    all.insert(all.end(), l.begin(), l.end());
  }
  DurableFigures figures;
  figures.per_s = all.size() / elapsed;
  figures.p50_us = Percentile(all, 0.50);
  figures.p99_us = Percentile(all, 0.99);
  return figures;
}

// Writes back and drops from the page cache every file in `dir`, so that a
// reopen reads from the device. (The host's cache below the VM stays.)
absl::Status DropPageCache(const std::string& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (!entry.is_regular_file(error)) continue;
    const std::string path = entry.path();
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoErrorStatus(errno, "open " + path);
    // fadvise drops only clean pages: write the dirty ones back first.
    const int failed = fdatasync(fd) != 0
                           ? errno
                           : posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    if (failed != 0) {
      return IoErrorStatus(failed, "drop the page cache of " + path);
    }
  }
  if (error) {
    return IoErrorStatus(error.value(), "list " + dir);
  }
  return absl::OkStatus();
}

// Removes a work directory; a failure only warns, as the figures stand.
void RemoveTree(const std::string& dir) {
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  if (error) {
    std::fprintf(stderr, "peerbench: could not remove %s: %s\n", dir.c_str(),
                 error.message().c_str());
  }
}

// Figures of every round, by metric and system, and their medians.
class Samples {
 public:
  void Add(const std::string& metric, const std::string& system, double v) {
    samples_[metric][system].push_back(v);
  }
  std::optional<double> Median(const std::string& metric,
                               const std::string& system) const {
    auto m = samples_.find(metric);
    if (m == samples_.end()) return std::nullopt;
    auto s = m->second.find(system);
    if (s == m->second.end()) return std::nullopt;
    std::vector<double> v = s->second;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  Json Medians() const {
    Json out = Json::object();
    for (const auto& [metric, systems] : samples_) {
      for (const auto& [system, values] : systems) {
        out[metric][system] = *Median(metric, system);
      }
    }
    return out;
  }

 private:
  std::map<std::string, std::map<std::string, std::vector<double>>> samples_;
};

std::string W3Metric(int threads, const char* what) {
  return absl::StrCat("w3_t", threads, "_", what);
}

class Bench {
 public:
  Bench(std::string work, std::set<std::string> workloads,
        std::vector<std::string> systems, std::vector<int> w3_threads,
        PeerOptions options)
      : work_(std::move(work)),
        workloads_(std::move(workloads)),
        systems_(std::move(systems)),
        w3_threads_(std::move(w3_threads)),
        options_(options) {}

  void Run() {
    for (int round = 1; round <= FLAGS_rounds; ++round) {
      round_ = round;
      if (Runs("W1") || Runs("W4")) {
        for (const std::string& s : systems_) WriteThenRead(s);
      }
      if (Runs("W2")) {
        for (const std::string& s : systems_) {
          if (s != "fio") SmallRecords(s);  // fio has no records
        }
      }
      if (Runs("W3")) {
        for (int threads : w3_threads_) {
          for (const std::string& s : systems_) {
            if (s != "fio") Durable(s, threads);
          }
        }
        if (Ran("fio")) DurableFio();
      }
    }
  }

  void Print() const;

 private:
  bool Runs(const std::string& workload) const {
    return workloads_.count(workload) > 0;
  }
  bool Ran(const std::string& system) const {
    return std::find(systems_.begin(), systems_.end(), system) !=
           systems_.end();
  }
  static Peer PeerOf(const std::string& system) {
    return system == "ours"      ? Peer::kOurs
           : system == "rocksdb" ? Peer::kRocksDb
                                 : Peer::kLevelDb;
  }

  // A fresh directory for one workload on one system in this round.
  std::string StepDir(const std::string& step, const std::string& system) {
    const std::string dir =
        absl::StrCat(work_, "/r", round_, "-", step, "-", system);
    if (mkdir(dir.c_str(), 0755) != 0) {
      Die(IoErrorStatus(errno, "mkdir " + dir));
    }
    Progress(absl::StrCat("round ", round_, "/", FLAGS_rounds, ": ", step, " ",
                          system));
    return dir;
  }
  void Done(const std::string& dir) {
    if (!FLAGS_keep) RemoveTree(dir);
  }

  // W1, then W4 on what W1 wrote (W1's write runs for W4 alone too).
  void WriteThenRead(const std::string& system) {
    const std::string dir = StepDir(Runs("W1") ? "W1" : "W4", system);
    if (system == "fio") {
      const std::string file = dir + "/fio";
      const uint64_t bytes =
          std::max<uint64_t>(1 << 20, FLAGS_w1_bytes >> 20 << 20);
      const double write = Check(FioSequential(file, bytes, true));
      if (Runs("W1")) samples_.Add("w1_mb_per_s", system, write);
      // O_DIRECT: the page cache is not involved.
      if (Runs("W4")) {
        samples_.Add("w4_mb_per_s", system,
                     Check(FioSequential(file, bytes, false)));
      }
      Done(dir);
      return;
    }
    const uint64_t per_thread =
        std::max<uint64_t>(1, FLAGS_w1_bytes / kW1RecordBytes / kWriters);
    const uint64_t records = per_thread * kWriters;
    std::unique_ptr<PeerStore> store =
        Check(OpenPeerStore(PeerOf(system), dir, options_));
    const double seconds =
        Check(PutRecords(*store, kW1RecordBytes, per_thread));
    Check(store->Close());
    store.reset();
    if (Runs("W1")) {
      samples_.Add("w1_mb_per_s", system,
                   records * kW1RecordBytes / 1e6 / seconds);
    }
    if (Runs("W4")) {
      if (absl::Status s = DropPageCache(dir); !s.ok()) {
        if (cold_) {
          std::fprintf(stderr,
                       "peerbench: W4 may read from the page cache: "
                       "%s\n",
                       s.ToString().c_str());
        }
        cold_ = false;
      }
      const auto start = Clock::now();
      store = Check(OpenPeerStore(PeerOf(system), dir, options_));
      const ScanTotals totals = Check(store->Scan());
      const double read_seconds = Seconds(start, Clock::now());
      Check(store->Close());
      if (totals.records != records) {
        Die(absl::DataLossError(absl::StrCat(dir, ": ", system, " read back ",
                                             totals.records, " records of ",
                                             records)));
      }
      samples_.Add("w4_mb_per_s", system, totals.bytes / 1e6 / read_seconds);
    }
    Done(dir);
  }

  void SmallRecords(const std::string& system) {
    const std::string dir = StepDir("W2", system);
    const uint64_t per_thread =
        std::max<uint64_t>(1, FLAGS_w2_bytes / kSmallRecordBytes / kWriters);
    std::unique_ptr<PeerStore> store =
        Check(OpenPeerStore(PeerOf(system), dir, options_));
    const double seconds =
        Check(PutRecords(*store, kSmallRecordBytes, per_thread));
    Check(store->Close());
    samples_.Add("w2_records_per_s", system, per_thread * kWriters / seconds);
    Done(dir);
  }

  void Durable(const std::string& system, int threads) {
    const std::string dir = StepDir(absl::StrCat("W3-t", threads), system);
    std::unique_ptr<PeerStore> store =
        Check(OpenPeerStore(PeerOf(system), dir, options_));
    const DurableFigures f =
        Check(DurablePuts(*store, threads, FLAGS_w3_seconds));
    Check(store->Close());
    samples_.Add(W3Metric(threads, "appends_per_s"), system, f.per_s);
    samples_.Add(W3Metric(threads, "p50_us"), system, f.p50_us);
    samples_.Add(W3Metric(threads, "p99_us"), system, f.p99_us);
    Done(dir);
  }

  void DurableFio() {
    const std::string dir = StepDir("W3", "fio");
    const FioSyncedWrites f =
        Check(FioSyncedWriteJob(dir + "/fio", FLAGS_w3_seconds));
    samples_.Add("w3_fio_ops_per_s", "fio", f.ops_per_s);
    samples_.Add("w3_fio_p50_us", "fio", f.p50_us());
    samples_.Add("w3_fio_write_p50_us", "fio", f.write_p50_us);
    samples_.Add("w3_fio_sync_p50_us", "fio", f.sync_p50_us);
    Done(dir);
  }

  // A PASS / MISS line: `value` against `bound`.
  struct Target {
    std::string name;
    double value;
    double bound;
    bool at_most;  // the value must not exceed the bound
    bool pass() const { return at_most ? value <= bound : value >= bound; }
  };
  std::vector<Target> Targets() const;
  void PrintSystems(const char* title, const std::string& metric,
                    const char* unit) const;
  void PrintW3() const;

  const std::string work_;
  const std::set<std::string> workloads_;
  const std::vector<std::string> systems_;
  const std::vector<int> w3_threads_;
  const PeerOptions options_;
  int round_ = 0;
  bool cold_ = true;  // every W4 reopen found its files dropped from cache
  Samples samples_;
};

// Issue 11's targets, where this run measured what they compare.
std::vector<Bench::Target> Bench::Targets() const {
  std::vector<Target> targets;
  for (int threads : {1, 2, 8, 32}) {
    const double factor = threads >= 8 ? 1.5 : 1.0;
    const std::string metric = W3Metric(threads, "appends_per_s");
    const std::optional<double> ours = samples_.Median(metric, "ours");
    for (const char* peer : {"rocksdb", "leveldb"}) {
      const std::optional<double> theirs = samples_.Median(metric, peer);
      if (!ours || !theirs) continue;
      targets.push_back(
          {absl::StrCat("W3 at ", threads,
                        threads == 1 ? " thread" : " threads",
                        ": ours >= ", factor, "x ", peer, " (appends/s)"),
           *ours, factor * *theirs, false});
    }
  }
  const std::optional<double> fio_ops =
      samples_.Median("w3_fio_ops_per_s", "fio");
  if (auto ours = samples_.Median(W3Metric(32, "appends_per_s"), "ours");
      ours && fio_ops) {
    targets.push_back(
        {"W3 at 32 threads: ours >= 40% of the ideal batch "
         "(32 x fio's write+fdatasync rate)",
         *ours, 0.4 * 32 * *fio_ops, false});
  }
  if (auto ours = samples_.Median(W3Metric(1, "p50_us"), "ours"),
      fio = samples_.Median("w3_fio_p50_us", "fio");
      ours && fio) {
    targets.push_back(
        {"W3 p50 at 1 thread: ours <= 1.2x fio's write+"
         "fdatasync p50 (us)",
         *ours, 1.2 * *fio, true});
  }
  if (auto ours = samples_.Median(W3Metric(32, "p99_us"), "ours"),
      rocksdb = samples_.Median(W3Metric(32, "p99_us"), "rocksdb");
      ours && rocksdb) {
    targets.push_back({"W3 p99 at 32 threads: ours <= rocksdb's (us)", *ours,
                       *rocksdb, true});
  }
  return targets;
}

// One row per system: its median and ours / it.
void Bench::PrintSystems(const char* title, const std::string& metric,
                         const char* unit) const {
  std::printf("\n%s\n  %-8s %14s %12s\n", title, "", unit, "ours/system");
  const std::optional<double> ours = samples_.Median(metric, "ours");
  for (const std::string& system : systems_) {
    const std::optional<double> v = samples_.Median(metric, system);
    if (!v) continue;
    std::string ratio;
    if (ours && system != "ours" && *v > 0) {
      ratio = absl::StrFormat("%.2fx", *ours / *v);
    }
    std::printf("  %-8s %14.1f %12s\n", system.c_str(), *v, ratio.c_str());
  }
}

void Bench::PrintW3() const {
  std::printf(
      "\nW3: durable 128 B appends, %g s per thread count "
      "(appends/s, p50 / p99 latency in us)\n  %-7s",
      FLAGS_w3_seconds, "threads");
  std::vector<std::string> stores;
  for (const std::string& s : systems_) {
    if (s != "fio") stores.push_back(s);
  }
  for (const std::string& s : stores) std::printf(" %26s", s.c_str());
  for (const std::string& s : stores) {
    if (s != "ours") std::printf(" %12s", ("ours/" + s).c_str());
  }
  std::printf("\n");
  for (int threads : w3_threads_) {
    std::printf("  %-7d", threads);
    const std::string metric = W3Metric(threads, "appends_per_s");
    for (const std::string& s : stores) {
      std::printf(
          " %26s",
          absl::StrFormat("%.0f/s %.0f / %.0f", *samples_.Median(metric, s),
                          *samples_.Median(W3Metric(threads, "p50_us"), s),
                          *samples_.Median(W3Metric(threads, "p99_us"), s))
              .c_str());
    }
    const std::optional<double> ours = samples_.Median(metric, "ours");
    for (const std::string& s : stores) {
      if (s == "ours" || !ours) continue;
      std::printf(" %11.2fx", *ours / *samples_.Median(metric, s));
    }
    std::printf("\n");
  }
  if (auto ops = samples_.Median("w3_fio_ops_per_s", "fio")) {
    std::printf(
        "  fio, 4 KiB O_DIRECT write + fdatasync at depth 1: %.0f/s, "
        "p50 %.0f us (write %.0f + fdatasync %.0f)\n",
        *ops, *samples_.Median("w3_fio_p50_us", "fio"),
        *samples_.Median("w3_fio_write_p50_us", "fio"),
        *samples_.Median("w3_fio_sync_p50_us", "fio"));
    std::printf("  ideal batch at 32 threads (32 x fio): %.0f/s\n", 32 * *ops);
    if (auto ours = samples_.Median(W3Metric(32, "appends_per_s"), "ours")) {
      std::printf("  ours at 32 threads / 40%% of the ideal batch: %.2fx\n",
                  *ours / (0.4 * 32 * *ops));
    }
  }
}

void Bench::Print() const {
  std::printf("peerbench: %s, median of %d round%s, work directory %s%s\n",
              absl::StrJoin(systems_, ", ").c_str(), FLAGS_rounds,
              FLAGS_rounds == 1 ? "" : "s", work_.c_str(),
              FLAGS_keep ? " (kept)" : "");
  std::printf("ours: durability %s, zero_ahead_bytes %" PRIu64 "\n",
              FLAGS_durability.c_str(), FLAGS_zero_ahead_bytes);
  if (Runs("W1")) {
    PrintSystems(absl::StrFormat("W1: 4 KiB records x %d threads, %d MiB, one "
                                 "final sync (fio: 1 MiB writes, depth 8)",
                                 kWriters, FLAGS_w1_bytes >> 20)
                     .c_str(),
                 "w1_mb_per_s", "MB/s");
  }
  if (Runs("W2")) {
    PrintSystems(absl::StrFormat("W2: 128 B records x %d threads, %d MiB, one "
                                 "final sync",
                                 kWriters, FLAGS_w2_bytes >> 20)
                     .c_str(),
                 "w2_records_per_s", "records/s");
  }
  if (Runs("W3")) PrintW3();
  if (Runs("W4")) {
    PrintSystems(
        absl::StrFormat("W4: reopen W1's data and read every record "
                        "(%s; fio: 1 MiB O_DIRECT reads, depth 8)",
                        cold_ ? "page cache dropped" : "page cache NOT dropped")
            .c_str(),
        "w4_mb_per_s", "MB/s");
  }
  const std::vector<Target> targets = Targets();
  if (!targets.empty()) std::printf("\nTargets (issue 11)\n");
  Json json_targets = Json::array();
  for (const Target& t : targets) {
    std::printf("  %s  %s: %.1f vs %.1f\n", t.pass() ? "PASS" : "MISS",
                t.name.c_str(), t.value, t.bound);
    json_targets.push_back({{"name", t.name},
                            {"value", t.value},
                            {"bound", t.bound},
                            {"pass", t.pass()}});
  }
  if (FLAGS_json) {
    Json out;
    out["rounds"] = FLAGS_rounds;
    out["systems"] = systems_;
    out["workloads"] = workloads_;
    out["durability"] = FLAGS_durability;
    out["zero_ahead_bytes"] = FLAGS_zero_ahead_bytes;
    out["w1_bytes"] = FLAGS_w1_bytes;
    out["w2_bytes"] = FLAGS_w2_bytes;
    out["w3_threads"] = w3_threads_;
    out["w3_seconds"] = FLAGS_w3_seconds;
    out["w4_page_cache_dropped"] = cold_;
    out["medians"] = samples_.Medians();
    if (auto ops = samples_.Median("w3_fio_ops_per_s", "fio")) {
      out["w3_ideal_batch_32_per_s"] = 32 * *ops;
    }
    out["targets"] = json_targets;
    std::printf("%s\n", out.dump().c_str());
  }
}

// Splits a comma-separated flag; every item must be one of `allowed`.
std::vector<std::string> ListFlag(const char* name, const std::string& value,
                                  const std::vector<std::string>& allowed) {
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    std::string lower = absl::AsciiStrToLower(item);
    if (std::find(allowed.begin(), allowed.end(), lower) == allowed.end()) {
      Die(absl::InvalidArgumentError(
          absl::StrCat("--", name, ": unknown '", item,
                       "' (one of: ", absl::StrJoin(allowed, ","), ")")));
    }
    items.push_back(lower);
  }
  if (items.empty()) {
    Die(absl::InvalidArgumentError(absl::StrCat("--", name, " is empty")));
  }
  return items;
}

int Main() {
  PeerOptions options;
  if (FLAGS_durability == "sync") {
    options.durability = Durability::kSync;
  } else if (FLAGS_durability != "on_wait") {
    Die(absl::InvalidArgumentError(
        "--durability must be on_wait or sync, not " + FLAGS_durability));
  }
  options.zero_ahead_bytes = FLAGS_zero_ahead_bytes;
  if (FLAGS_rounds < 1 || !(FLAGS_w3_seconds > 0)) {
    Die(absl::InvalidArgumentError("--rounds and --w3_seconds must be > 0"));
  }
  std::set<std::string> workloads;
  for (const std::string& w :
       ListFlag("workloads", FLAGS_workloads, {"w1", "w2", "w3", "w4"})) {
    workloads.insert(absl::AsciiStrToUpper(w));
  }
  // In this order, whatever the flag's: the rounds interleave them so.
  std::vector<std::string> systems;
  const std::vector<std::string> all = {"ours", "rocksdb", "leveldb", "fio"};
  const std::vector<std::string> asked = ListFlag("peers", FLAGS_peers, all);
  for (const std::string& s : all) {
    if (std::find(asked.begin(), asked.end(), s) != asked.end()) {
      systems.push_back(s);
    }
  }
  std::vector<int> w3_threads;
  for (absl::string_view item :
       absl::StrSplit(FLAGS_w3_threads, ',', absl::SkipEmpty())) {
    int threads = 0;
    if (!absl::SimpleAtoi(item, &threads) || threads < 1) {
      Die(absl::InvalidArgumentError(
          absl::StrCat("--w3_threads: '", item, "' is not a thread count")));
    }
    w3_threads.push_back(threads);
  }

  std::string parent = FLAGS_dir;
  if (parent.empty()) {
    const char* tmp = getenv("TMPDIR");
    parent = tmp != nullptr ? tmp : "/var/tmp";
  }
  std::string work = parent + "/peerbench.XXXXXX";
  if (mkdtemp(work.data()) == nullptr) {
    Die(IoErrorStatus(errno, "mkdtemp in " + parent));
  }

  Bench bench(work, std::move(workloads), std::move(systems),
              std::move(w3_threads), options);
  bench.Run();
  bench.Print();
  if (!FLAGS_keep) RemoveTree(work);
  return 0;
}

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "runs the same workloads against the store, RocksDB, LevelDB and fio; "
      "prints medians, ratios and issue 11's targets");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return lss::Main();
}
