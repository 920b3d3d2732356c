// Process-crash loop (kill -9), RELIABILITY.md §3.D and the promise of §0.
//
// A writer process appends self-describing records from two threads and
// publishes, as it goes, the address of every record whose Append returned
// and how many of each thread's records a Sync or WaitStable acknowledged.
// The parent SIGKILLs it after a random delay, recovers the log in a fresh
// process, and checks that recovery yields exactly a prefix of what was
// appended:
//   - per writer thread, records 0..k-1 in order: no hole, no duplicate;
//   - by address, nothing appended is missing below the last record
//     recovered (a prefix of the log, not only of each thread);
//   - every acknowledged record is there, and every record below a
//     HiStable() the writer saw;
//   - every payload byte is the one appended, with the length, tag and
//     address it was appended with; nothing that was never appended;
//   - records recovered once stay recovered, unchanged, in every later
//     recovery (the writer restarts on the recovered log each time).
// Then it restarts the writer on the recovered log. Both write policies.
// The last cycle of each policy closes cleanly and is checked under
// kAbsoluteConsistency. One recovery in four is preceded by a read-only
// open, which must see the same records. The verifier opens the log for
// writing right after the writer is reaped, so a lock the dead writer kept
// for longer than StoreOptions::lock_wait fails the cycle.
//
// Writer and verifier are fork()ed from this single-threaded test process
// (the store is never opened here, so each child starts fresh). What the
// writer publishes lives in a MAP_SHARED mapping the parent created: it
// survives SIGKILL, and publishing never blocks the writer (a pipe would,
// once full). A pipe carries only the writer's "open" byte, and its EOF
// tells the parent that the writer died before it was killed.
//
// Environment:
//   CRASH_LOOP_KILLS        kills per write policy (default 100)
//   CRASH_LOOP_SEED         seed of every random choice (default: time)
//   CRASH_LOOP_MAX_DELAY_MS longest delay before a kill (default 50)
//   CRASH_LOOP_MAX_LOG_MB   a log longer than this is replaced by a new
//                           file (default 16)
// e.g. ./bazelw test //lss:crash_loop_test --test_env=CRASH_LOOP_KILLS=5000
// On failure the log is copied to $TEST_UNDECLARED_OUTPUTS_DIR.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "lss/log_structured_store.h"
#include "testing/payload.h"
#include "testing/process.h"
#include "testing/test_log.h"

namespace lss {
namespace {

using ::lss::testing::ChildErrors;
using ::lss::testing::ChildRun;
using ::lss::testing::CopyMessage;
using ::lss::testing::DescribeStoreOptions;
using ::lss::testing::EnvU64;
using ::lss::testing::FailChildOnce;
using ::lss::testing::FetchMax;
using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;
using ::lss::testing::KillPlan;
using ::lss::testing::Mix;
using ::lss::testing::NowNanos;
using ::lss::testing::RunAndKill;
using ::lss::testing::RunChild;
using ::lss::testing::SharedMapping;
using ::lss::testing::WaitStatusString;
using ::lss::testing::WritePolicyName;

// ---------------------------------------------------------------------------
// Records.
//
// Payload: u64 magic | u64 stream | u64 index | FillPayload(stream, index).
// The length and tag are functions of (stream, index) too, so the verifier
// knows everything about a record from its first 24 bytes, even one whose
// Append had not returned when the writer died.

constexpr uint64_t kMagic = 0x504F4F4C48534152ull;  // "RASHLOOP"
constexpr size_t kPayloadHeaderBytes = 24;
constexpr uint32_t kTestRecordType = kFirstUserRecordType + 1;
constexpr int kThreads = 2;
constexpr uint64_t kStreamsPerIncarnation = 16;
constexpr size_t kMaxPayloadBytes = 60000;  // fits a 64 KiB buffer
constexpr uint64_t kMaxRecordsPerThread = uint64_t{1} << 20;

// Mostly small records, some that cross sectors and blocks, a few that take
// most of a 64 KiB buffer.
size_t RecordLength(uint64_t stream, uint64_t index) {
  const uint64_t h = Mix(Mix(stream ^ 0x5eed) + index);
  const uint64_t pick = h % 100;
  const uint64_t r = h >> 8;
  if (pick < 70) return kPayloadHeaderBytes + 1 + r % 488;
  if (pick < 95) return 512 + r % 7681;
  return 8193 + r % (kMaxPayloadBytes - 8192);
}

RecordTag TagFor(uint64_t stream, uint64_t index) {
  return RecordTag{kTestRecordType, (stream << 40) | index};
}

void FillRecord(uint64_t stream, uint64_t index, std::span<std::byte> out) {
  const uint64_t header[3] = {kMagic, stream, index};
  std::memcpy(out.data(), header, kPayloadHeaderBytes);
  FillPayload(stream, index, out.subspan(kPayloadHeaderBytes));
}

uint64_t Incarnation(uint64_t stream) {
  return stream / kStreamsPerIncarnation;
}
uint64_t StreamOf(uint64_t incarnation, int thread) {
  return incarnation * kStreamsPerIncarnation + static_cast<uint64_t>(thread);
}

// ---------------------------------------------------------------------------
// Memory shared with the children (MAP_SHARED, made before each fork).

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

struct ThreadLog {
  // addresses[0, count) are published; count only grows.
  std::atomic<uint64_t> count;
  // Records 0..acked-1 of this thread are acknowledged stable.
  std::atomic<uint64_t> acked;
  std::atomic<uint64_t> syncs;
  uint64_t addresses[kMaxRecordsPerThread];
};

struct WriterShared {
  std::atomic<uint32_t> failed;
  std::atomic<uint32_t> opened;
  // The largest HiStable() the writer saw: every record below it is stable.
  std::atomic<uint64_t> hi_stable_seen;
  std::atomic<uint64_t> recovered_tail;
  std::atomic<uint64_t> clean_close;
  char message[4096];
  ThreadLog threads[kThreads];
};

struct VerifyShared {
  uint32_t ok;
  uint64_t recovered[kThreads];  // records of the current writer's threads
  uint64_t records;              // records in the log
  uint64_t tail;                 // recovery().tail
  uint64_t last_address;
  char report_end[1024];
  char message[16384];
};

// ---------------------------------------------------------------------------
// The writer (a child process; never returns).

struct WriterConfig {
  std::string path;
  StoreOptions options;
  uint64_t incarnation = 0;
  uint64_t seed = 0;
  // 0: append until killed. Otherwise append this many records per thread,
  // Sync, Close and exit 0.
  uint64_t clean_records = 0;
};

[[noreturn]] void WriterFail(WriterShared* sh, const std::string& message) {
  FailChildOnce(sh->failed, sh->message, sizeof(sh->message), message);
}

void WriterThread(LogStructuredStore* store, const WriterConfig& cfg,
                  WriterShared* sh, int t) {
  const uint64_t stream = StreamOf(cfg.incarnation, t);
  const bool sync_mode = cfg.options.durability == Durability::kSync;
  std::mt19937_64 rng(Mix(cfg.seed ^ Mix(stream + 1)));
  ThreadLog& log = sh->threads[t];
  std::vector<std::byte> buf;
  auto next_sync = [&] {
    // Mostly short runs between acknowledgements, some long ones.
    return rng() % 8 == 0 ? 1 + rng() % 512 : 1 + rng() % 24;
  };
  uint64_t until_sync = next_sync();
  const uint64_t limit =
      cfg.clean_records != 0 ? cfg.clean_records : kMaxRecordsPerThread;
  for (uint64_t i = 0; i < limit; ++i) {
    const size_t len = RecordLength(stream, i);
    const RecordTag tag = TagFor(stream, i);
    uint64_t address;
    if (rng() % 2 == 0) {
      buf.resize(len);
      FillRecord(stream, i, buf);
      absl::StatusOr<uint64_t> a = store->Append(
          absl::string_view(reinterpret_cast<const char*>(buf.data()), len),
          tag);
      if (!a.ok()) {
        WriterFail(
            sh, absl::StrCat("Append(stream ", stream, ", index ", i, ", ", len,
                             " bytes): ", a.status().ToString()));
      }
      address = *a;
    } else {
      absl::StatusOr<StoreReservation> r = store->Reserve(len, tag);
      if (!r.ok()) {
        WriterFail(sh,
                   absl::StrCat("Reserve(stream ", stream, ", index ", i, ", ",
                                len, " bytes): ", r.status().ToString()));
      }
      if (r->payload().size() != len) {
        WriterFail(sh, absl::StrCat("Reserve(", len, ") gave ",
                                    r->payload().size(), " payload bytes"));
      }
      FillRecord(stream, i, r->payload());
      const uint64_t reserved = r->address();
      address = store->Commit(*std::move(r));
      if (address != reserved) {
        WriterFail(sh, absl::StrCat("Commit returned ", address,
                                    ", Reserve said ", reserved));
      }
    }
    log.addresses[i] = address;
    log.count.store(i + 1, std::memory_order_release);

    if (--until_sync != 0 && i + 1 != limit) continue;
    until_sync = next_sync();
    const bool use_sync =
        i + 1 == limit || (sync_mode ? rng() % 10 < 3 : rng() % 10 < 8);
    if (use_sync) {
      // Sync covers everything whose Append returned before the call, in
      // every thread: take their counts first.
      uint64_t counts[kThreads];
      for (int j = 0; j < kThreads; ++j) {
        counts[j] = sh->threads[j].count.load(std::memory_order_acquire);
      }
      absl::Status s = store->Sync();
      if (!s.ok()) {
        WriterFail(sh, absl::StrCat("Sync after stream ", stream, " index ", i,
                                    ": ", s.ToString()));
      }
      for (int j = 0; j < kThreads; ++j) {
        FetchMax(sh->threads[j].acked, counts[j]);
      }
    } else {
      absl::Status s = store->WaitStable(address);
      if (!s.ok()) {
        WriterFail(sh, absl::StrCat("WaitStable(", address, ") stream ", stream,
                                    " index ", i, ": ", s.ToString()));
      }
      FetchMax(log.acked, i + 1);
    }
    log.syncs.fetch_add(1, std::memory_order_relaxed);
    FetchMax(sh->hi_stable_seen, store->HiStable());
  }
  if (cfg.clean_records == 0) {
    // 2^20 records in one life: wait to be killed.
    for (;;) pause();
  }
}

[[noreturn]] void WriterMain(const WriterConfig& cfg, WriterShared* sh,
                             int ready_fd) {
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
      LogStructuredStore::Open(cfg.path, cfg.options);
  if (!store.ok()) {
    WriterFail(sh,
               absl::StrCat("writer Open(", DescribeStoreOptions(cfg.options),
                            "): ", store.status().ToString()));
  }
  if ((*store)->max_payload_bytes() < kMaxPayloadBytes) {
    WriterFail(sh, absl::StrCat(
                       "max_payload_bytes() = ", (*store)->max_payload_bytes(),
                       " < ", kMaxPayloadBytes));
  }
  sh->recovered_tail.store((*store)->recovery().tail);
  sh->hi_stable_seen.store((*store)->HiStable());
  sh->opened.store(1, std::memory_order_release);
  const char byte = 'R';
  if (write(ready_fd, &byte, 1) != 1) _exit(4);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(WriterThread, store->get(), std::cref(cfg), sh, t);
  }
  for (std::thread& t : threads) t.join();
  // Only a clean run gets here.
  absl::Status s = (*store)->Close();
  if (!s.ok()) WriterFail(sh, absl::StrCat("Close: ", s.ToString()));
  sh->clean_close.store(1);
  _exit(0);
}

// ---------------------------------------------------------------------------
// The verifier (a fresh child process; never returns).

struct VerifyConfig {
  std::string path;
  StoreOptions options;
  uint64_t seed = 0;
  // The log's streams before the current writer, with how many records each
  // had when it was last verified: exactly that many must be there.
  const std::map<uint64_t, uint64_t>* frozen = nullptr;
  uint64_t first_incarnation = 0;  // of this log file
  uint64_t incarnation = 0;        // the writer just killed
  const WriterShared* writer = nullptr;
};

class Verifier {
 public:
  Verifier(const VerifyConfig& cfg, VerifyShared* out) : cfg_(cfg), out_(out) {}

  [[noreturn]] void Run() {
    Check();
    errors_.ExitWith(out_->ok, out_->message, sizeof(out_->message));
  }

 private:
  void Error(std::string e) { errors_.Add(std::move(e)); }

  // A read-only open (which cuts nothing) sees the records that the
  // recovering open below must see.
  void ReadOnlyScan() {
    StoreOptions o = cfg_.options;
    o.read_only = true;
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> opened =
        LogStructuredStore::Open(cfg_.path, o);
    if (!opened.ok()) {
      Error(absl::StrCat("read-only Open: ", opened.status().ToString()));
      return;
    }
    absl::StatusOr<std::unique_ptr<LogReader>> reader =
        (*opened)->NewLogReader(0);
    if (!reader.ok()) {
      Error(absl::StrCat("read-only NewLogReader(0): ",
                         reader.status().ToString()));
      return;
    }
    read_only_records_ = 0;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      if (!more.ok()) {
        Error(absl::StrCat("read-only LogReader::Next: ",
                           more.status().ToString()));
        return;
      }
      if (!*more) break;
      ++read_only_records_;
      read_only_last_ = (*reader)->record().address;
    }
    absl::Status s = (*opened)->Close();
    if (!s.ok()) Error(absl::StrCat("read-only Close: ", s.ToString()));
  }

  void Check() {
    // (A writer killed before the log's first superblock leaves an empty
    // file: both opens must take it for an empty log.)
    const bool read_only_first = cfg_.seed % 4 == 0 &&
                                 access(cfg_.path.c_str(), F_OK) == 0;
    if (read_only_first) {
      ReadOnlyScan();
      if (!errors_.empty()) return;
    }
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> opened =
        LogStructuredStore::Open(cfg_.path, cfg_.options);
    if (!opened.ok()) {
      Error(absl::StrCat("verifier Open(", DescribeStoreOptions(cfg_.options),
                         "): ", opened.status().ToString()));
      return;
    }
    LogStructuredStore& store = **opened;
    out_->tail = store.recovery().tail;
    CopyMessage(out_->report_end, sizeof(out_->report_end),
                absl::StrCat("records=", store.recovery().records,
                             " blocks=", store.recovery().blocks,
                             " cut=", store.recovery().cut,
                             " end=", store.recovery().end));
    Scan(store);
    if (read_only_first && errors_.empty() &&
        (read_only_records_ != records_ ||
         (records_ != 0 && read_only_last_ != out_->last_address))) {
      Error(absl::StrCat("a read-only open saw ", read_only_records_,
                         " records ending at ", read_only_last_,
                         "; the recovering open ", records_, " ending at ",
                         out_->last_address));
    }
    if (errors_.empty()) SpotReads(store);
    absl::Status s = store.Close();
    if (!s.ok()) Error(absl::StrCat("verifier Close: ", s.ToString()));
  }

  void Scan(LogStructuredStore& store) {
    absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader(0);
    if (!reader.ok()) {
      Error(absl::StrCat("NewLogReader(0): ", reader.status().ToString()));
      return;
    }
    const WriterShared& w = *cfg_.writer;
    uint64_t counts[kThreads];
    for (int t = 0; t < kThreads; ++t) {
      counts[t] = w.threads[t].count.load(std::memory_order_acquire);
    }
    uint64_t prev_address = 0;
    bool have_prev = false;
    uint64_t prev_incarnation = cfg_.first_incarnation;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      if (!more.ok()) {
        Error(absl::StrCat("LogReader::Next after ", records_,
                           " records: ", more.status().ToString()));
        return;
      }
      if (!*more) break;
      const RecordView& r = (*reader)->record();
      const std::string at =
          absl::StrCat("record #", records_, " at ", r.address, " (",
                       r.payload.size(), " bytes)");
      ++records_;
      if (have_prev && r.address <= prev_address) {
        Error(absl::StrCat(at, ": address not above the previous record's ",
                           prev_address));
        return;
      }
      have_prev = true;
      prev_address = r.address;
      if (r.address < store.data_start()) {
        Error(absl::StrCat(at, ": below data_start ", store.data_start()));
        return;
      }
      if (r.payload.size() < kPayloadHeaderBytes) {
        Error(absl::StrCat(at, ": too short to be a record the test wrote"));
        return;
      }
      uint64_t header[3];
      std::memcpy(header, r.payload.data(), kPayloadHeaderBytes);
      if (header[0] != kMagic) {
        Error(absl::StrCat(at, ": no record magic (never appended)"));
        return;
      }
      const uint64_t stream = header[1];
      const uint64_t index = header[2];
      const uint64_t inc = Incarnation(stream);
      const uint64_t thread = stream % kStreamsPerIncarnation;
      const std::string what =
          absl::StrCat(at, ", stream ", stream, " index ", index);
      if (inc < cfg_.first_incarnation || inc > cfg_.incarnation ||
          thread >= kThreads) {
        Error(absl::StrCat(what, ": no writer of this log had that stream"));
        return;
      }
      if (inc < prev_incarnation) {
        Error(absl::StrCat(what, ": a record of writer ", inc,
                           " after one of writer ", prev_incarnation));
        return;
      }
      prev_incarnation = inc;
      if (r.payload.size() != RecordLength(stream, index)) {
        Error(absl::StrCat(what, ": appended with ",
                           RecordLength(stream, index), " bytes"));
        return;
      }
      const RecordTag tag = TagFor(stream, index);
      if (r.tag.type != tag.type || r.tag.key != tag.key) {
        Error(absl::StrCat(what, ": tag {", r.tag.type, ", ", r.tag.key,
                           "}, appended with {", tag.type, ", ", tag.key, "}"));
        return;
      }
      const std::span<const std::byte> bytes(
          reinterpret_cast<const std::byte*>(r.payload.data()),
          r.payload.size());
      if (std::optional<size_t> bad = FirstPayloadMismatch(
              stream, index, bytes.subspan(kPayloadHeaderBytes))) {
        Error(absl::StrCat(what, ": payload byte ", *bad + kPayloadHeaderBytes,
                           " differs"));
        return;
      }
      uint64_t& next = next_index_[stream];
      if (index != next) {
        Error(absl::StrCat(what, ": expected index ", next,
                           index < next ? " (duplicate)" : " (hole)"));
        return;
      }
      ++next;
      if (inc == cfg_.incarnation) {
        // At most one record past what was published: the one whose Append
        // had not returned, or whose address was not yet published.
        if (index > counts[thread]) {
          Error(absl::StrCat(what, ": only ", counts[thread],
                             " records were published, so index ",
                             counts[thread], " is the last that can exist"));
          return;
        }
        if (index < counts[thread] &&
            w.threads[thread].addresses[index] != r.address) {
          Error(absl::StrCat(what, ": appended at ",
                             w.threads[thread].addresses[index]));
          return;
        }
        have_current_ = true;
        last_current_address_ = r.address;
      }
      sample_.push_back(r.address);
    }
    out_->records = records_;
    out_->last_address = have_prev ? prev_address : 0;

    // Streams of earlier writers: exactly what was recovered before.
    for (const auto& [stream, count] : *cfg_.frozen) {
      const uint64_t got = next_index_.count(stream) ? next_index_[stream] : 0;
      if (got != count) {
        Error(absl::StrCat("stream ", stream, " (writer ", Incarnation(stream),
                           "): ", got, " records, an earlier recovery had ",
                           count));
      }
    }
    for (const auto& [stream, count] : next_index_) {
      if (Incarnation(stream) != cfg_.incarnation &&
          cfg_.frozen->count(stream) == 0) {
        Error(absl::StrCat("stream ", stream, ": ", count,
                           " records of a writer that was never verified"));
      }
    }
    // The writer just killed.
    const uint64_t hi_stable = w.hi_stable_seen.load(std::memory_order_acquire);
    for (int t = 0; t < kThreads; ++t) {
      const uint64_t stream = StreamOf(cfg_.incarnation, t);
      const uint64_t got = next_index_.count(stream) ? next_index_[stream] : 0;
      out_->recovered[t] = got;
      const uint64_t acked = w.threads[t].acked.load(std::memory_order_acquire);
      if (got < acked) {
        Error(absl::StrCat("stream ", stream, ": ", got, " records, but ",
                           acked, " were acknowledged (Sync/WaitStable OK)"));
      }
      if (got < counts[t]) {
        // The first record of this thread that is missing was appended at
        // `missing`: every record recovered must lie below it...
        const uint64_t missing = w.threads[t].addresses[got];
        if (have_current_ && missing < last_current_address_) {
          Error(absl::StrCat(
              "stream ", stream, " index ", got, ", appended at ", missing,
              ", is missing, but the record at ", last_current_address_,
              " was recovered: not a prefix of the log"));
        }
        // ... and it cannot lie below a HiStable() the writer saw.
        if (missing < hi_stable) {
          Error(absl::StrCat("stream ", stream, " index ", got,
                             ", appended at ", missing,
                             ", is missing, but HiStable() was ", hi_stable));
        }
      }
    }
  }

  // Read(address) agrees with the log reader; a reader from the middle
  // starts at the record asked for.
  void SpotReads(LogStructuredStore& store) {
    if (sample_.empty()) return;
    std::mt19937_64 rng(cfg_.seed);
    for (int k = 0; k < 16; ++k) {
      const uint64_t address =
          k == 0 ? sample_.back() : sample_[rng() % sample_.size()];
      absl::StatusOr<LogRecord> r = store.Read(address);
      if (!r.ok()) {
        Error(absl::StrCat("Read(", address, "): ", r.status().ToString()));
        return;
      }
      uint64_t header[3] = {0, 0, 0};
      if (r->payload.size() >= kPayloadHeaderBytes) {
        std::memcpy(header, r->payload.data(), kPayloadHeaderBytes);
      }
      const std::span<const std::byte> bytes(
          reinterpret_cast<const std::byte*>(r->payload.data()),
          r->payload.size());
      if (r->address != address || header[0] != kMagic ||
          r->payload.size() != RecordLength(header[1], header[2]) ||
          FirstPayloadMismatch(header[1], header[2],
                               bytes.subspan(kPayloadHeaderBytes))) {
        Error(absl::StrCat("Read(", address,
                           ") returned a record that is "
                           "not the one the log reader found there"));
        return;
      }
    }
    const uint64_t from = sample_[rng() % sample_.size()];
    absl::StatusOr<std::unique_ptr<LogReader>> reader =
        store.NewLogReader(from);
    if (!reader.ok()) {
      Error(absl::StrCat("NewLogReader(", from,
                         "): ", reader.status().ToString()));
      return;
    }
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok() || !*more || (*reader)->record().address != from) {
      Error(absl::StrCat("NewLogReader(", from,
                         ") does not start at the record there"));
    }
  }

  const VerifyConfig& cfg_;
  VerifyShared* out_;
  ChildErrors errors_{8};
  std::map<uint64_t, uint64_t> next_index_;
  uint64_t records_ = 0;
  uint64_t read_only_records_ = 0;
  uint64_t read_only_last_ = 0;
  bool have_current_ = false;
  uint64_t last_current_address_ = 0;
  std::vector<uint64_t> sample_;
};

// ---------------------------------------------------------------------------
// The parent.

struct Totals {
  uint64_t kills = 0;
  uint64_t kills_before_open = 0;
  uint64_t logs = 0;
  uint64_t appended = 0;
  uint64_t acked = 0;
  uint64_t recovered = 0;  // records of killed writers that recovery kept
  uint64_t syncs = 0;
  uint64_t sync_writers = 0;
  uint64_t direct_writers = 0;
};

class CrashLoop {
 public:
  CrashLoop(WritePolicy policy, uint64_t seed)
      : policy_(policy),
        seed_(seed),
        rng_(Mix(seed ^ static_cast<uint64_t>(policy))) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/crash_loop_",
                        WritePolicyName(policy), "_", getpid());
    std::filesystem::create_directories(dir_);
    max_delay_us_ = EnvU64("CRASH_LOOP_MAX_DELAY_MS", 50) * 1000;
    max_log_bytes_ = EnvU64("CRASH_LOOP_MAX_LOG_MB", 16) << 20;
  }
  ~CrashLoop() { std::filesystem::remove_all(dir_); }

  // Runs `kills` kill/recover/restart cycles, then one clean close. Returns
  // an empty string, or what went wrong.
  std::string Run(uint64_t kills) {
    NewLog();
    for (uint64_t k = 0; k < kills; ++k) {
      if (std::string e = Cycle(k, /*clean=*/false); !e.empty()) return e;
    }
    return Cycle(kills, /*clean=*/true);
  }

  const Totals& totals() const { return totals_; }

 private:
  void NewLog() {
    if (!path_.empty()) std::filesystem::remove(path_);
    ++totals_.logs;
    path_ = absl::StrCat(dir_, "/log", totals_.logs);
    static constexpr size_t kBufferBytes[] = {64 << 10, 128 << 10, 256 << 10};
    buffer_bytes_ = kBufferBytes[rng_() % 3];
    first_incarnation_ = incarnation_;
    frozen_.clear();
  }

  StoreOptions WriterOptions() {
    StoreOptions o;
    o.policy = policy_;
    o.durability = rng_() % 2 == 0 ? Durability::kSync : Durability::kOnWait;
    o.buffer_bytes = buffer_bytes_;
    o.ring_size = 2 + rng_() % 3;
    o.direct_io = rng_() % 4 != 0;
    o.allow_buffered_fallback = true;
    static constexpr uint64_t kPreallocate[] = {0, 1 << 20, 8 << 20, 64 << 20};
    o.preallocate_bytes = kPreallocate[rng_() % 4];
    return o;
  }

  std::string Context(uint64_t k, const StoreOptions& o, int64_t delay_us,
                      bool from_fork) const {
    return absl::StrCat("seed=", seed_, " (CRASH_LOOP_SEED) kill #", k, " log ",
                        path_, " writer ", incarnation_, " (first of this log ",
                        first_incarnation_, ") ", DescribeStoreOptions(o),
                        " kill after ", delay_us, " us from ",
                        from_fork ? "fork" : "open");
  }

  std::string SaveLog(uint64_t k) const {
    const char* out = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
    if (out == nullptr) return absl::StrCat("log kept at ", path_);
    const std::string to =
        absl::StrCat(out, "/crash_loop_", WritePolicyName(policy_), "_seed",
                     seed_, "_kill", k, ".log");
    std::error_code ec;
    std::filesystem::copy_file(
        path_, to, std::filesystem::copy_options::overwrite_existing, ec);
    return ec ? absl::StrCat("copying the log failed: ", ec.message())
              : absl::StrCat("log copied to ", to);
  }

  std::string Cycle(uint64_t k, bool clean) {
    SharedMapping<WriterShared> shared;
    WriterConfig cfg;
    cfg.path = path_;
    cfg.options = WriterOptions();
    cfg.incarnation = incarnation_;
    cfg.seed = Mix(seed_ + k);
    cfg.clean_records = clean ? 2000 : 0;
    totals_.sync_writers += cfg.options.durability == Durability::kSync;
    totals_.direct_writers += cfg.options.direct_io;

    // 1 in 8 kills comes 0-3 ms after the fork, so it can land in Open
    // (creating or recovering the log); the rest 1-50 ms after the store
    // is open.
    const bool from_fork = rng_() % 8 == 0;
    const int64_t delay_us =
        from_fork ? static_cast<int64_t>(rng_() % 3000)
                  : 1000 + static_cast<int64_t>(rng_() % (max_delay_us_ - 999));
    std::string context = Context(k, cfg.options, delay_us, from_fork);

    KillPlan plan;
    plan.clean = clean;
    plan.from_fork = from_fork;
    plan.delay_ns = delay_us * 1000;
    plan.watchdog_ns = int64_t{clean ? 300 : 60} * 1000000000;
    const absl::StatusOr<ChildRun> run = RunAndKill(
        [&](int ready_fd) { WriterMain(cfg, shared.get(), ready_fd); }, plan);
    if (!run.ok()) return run.status().ToString();
    if (run->hung) {
      return absl::StrCat(context,
                          clean ? ": clean writer did not finish"
                                : ": writer did not open the log",
                          " in ", plan.watchdog_ns / 1000000000,
                          " s (hang?), published counts ",
                          shared->threads[0].count.load(), "/",
                          shared->threads[1].count.load());
    }
    const int status = run->status;
    if (clean) {
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
          shared->clean_close.load() != 1) {
        return absl::StrCat(context, ": clean writer ended with ",
                            WaitStatusString(status), ": ", shared->message);
      }
    } else if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      return absl::StrCat(context, ": writer exited before it was killed, ",
                          WaitStatusString(status), ": ", shared->message);
    }
    if (!clean) {
      ++totals_.kills;
      if (!shared->opened.load()) ++totals_.kills_before_open;
    }
    uint64_t appended = 0;
    uint64_t acked = 0;
    for (int t = 0; t < kThreads; ++t) {
      appended += shared->threads[t].count.load();
      acked += shared->threads[t].acked.load();
      totals_.syncs += shared->threads[t].syncs.load();
    }
    totals_.appended += appended;
    totals_.acked += acked;
    absl::StrAppend(&context, "; writer published ", appended, " appends, ",
                    acked, " acknowledged, recovered tail ",
                    shared->recovered_tail.load(), ", HiStable seen ",
                    shared->hi_stable_seen.load());

    // Recover in a fresh process.
    SharedMapping<VerifyShared> result;
    VerifyConfig vcfg;
    vcfg.path = path_;
    vcfg.options.policy = policy_;
    vcfg.options.buffer_bytes = buffer_bytes_;
    vcfg.options.ring_size = 2;
    vcfg.options.direct_io = rng_() % 4 != 0;
    vcfg.options.allow_buffered_fallback = true;
    vcfg.options.preallocate_bytes = 0;
    if (clean) vcfg.options.recovery = RecoveryMode::kAbsoluteConsistency;
    vcfg.seed = Mix(seed_ ^ (k + 0x1234));
    vcfg.frozen = &frozen_;
    vcfg.first_incarnation = first_incarnation_;
    vcfg.incarnation = incarnation_;
    vcfg.writer = shared.get();
    const absl::StatusOr<int> vstatus =
        RunChild([&] { Verifier(vcfg, result.get()).Run(); });
    if (!vstatus.ok()) return vstatus.status().ToString();
    if (!WIFEXITED(*vstatus) || WEXITSTATUS(*vstatus) != 0 || result->ok != 1) {
      return absl::StrCat(context, "; verifier (",
                          DescribeStoreOptions(vcfg.options), ") ended with ",
                          WaitStatusString(*vstatus),
                          "; recovery: ", result->report_end, "\n",
                          result->message, SaveLog(k));
    }
    for (int t = 0; t < kThreads; ++t) {
      frozen_[StreamOf(incarnation_, t)] = result->recovered[t];
      totals_.recovered += result->recovered[t];
      if (clean && (result->recovered[t] != 2000 ||
                    shared->threads[t].acked.load() != 2000)) {
        return absl::StrCat(context, ": clean run of 2000 records per thread: ",
                            result->recovered[t], " recovered, ",
                            shared->threads[t].acked.load(), " acknowledged");
      }
    }
    ++incarnation_;
    if (result->tail > max_log_bytes_) NewLog();
    return "";
  }

  const WritePolicy policy_;
  const uint64_t seed_;
  std::mt19937_64 rng_;
  std::string dir_;
  std::string path_;
  int64_t max_delay_us_ = 50000;
  uint64_t max_log_bytes_ = 16 << 20;
  size_t buffer_bytes_ = 64 << 10;
  uint64_t incarnation_ = 0;
  uint64_t first_incarnation_ = 0;
  std::map<uint64_t, uint64_t> frozen_;
  Totals totals_;
};

class CrashLoopTest : public ::testing::TestWithParam<WritePolicy> {};

TEST_P(CrashLoopTest, RecoveryYieldsAPrefixWithEveryAcknowledgedRecord) {
  const uint64_t kills = EnvU64("CRASH_LOOP_KILLS", 100);
  const uint64_t seed =
      EnvU64("CRASH_LOOP_SEED", static_cast<uint64_t>(time(nullptr)));
  std::printf("crash loop %s: seed %" PRIu64 " (CRASH_LOOP_SEED), %" PRIu64
              " kills\n",
              WritePolicyName(GetParam()).c_str(), seed, kills);
  const int64_t start = NowNanos();
  CrashLoop loop(GetParam(), seed);
  const std::string error = loop.Run(kills);
  const Totals& t = loop.totals();
  std::printf("crash loop %s: %" PRIu64 " kills (%" PRIu64
              " before the store was "
              "open) over %" PRIu64 " log files in %.1f s; %" PRIu64
              " records appended, %" PRIu64 " acknowledged, %" PRIu64
              " recovered; %" PRIu64 " Sync/WaitStable calls; %" PRIu64
              " writers with kSync, %" PRIu64 " with direct_io\n",
              WritePolicyName(GetParam()).c_str(), t.kills, t.kills_before_open,
              t.logs, (NowNanos() - start) / 1e9, t.appended, t.acked,
              t.recovered, t.syncs, t.sync_writers, t.direct_writers);
  std::fflush(stdout);
  if (!error.empty()) {
    ADD_FAILURE() << error << "\nseed " << seed
                  << ": rerun with --test_env=CRASH_LOOP_SEED=" << seed
                  << " (the kill times differ from run to run)";
  }
  // A loop where no writer ever got anything acknowledged tests nothing.
  EXPECT_GT(t.acked, 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, CrashLoopTest,
                         ::testing::Values(WritePolicy::kTailLocalized,
                                           WritePolicy::kSerialized),
                         [](const ::testing::TestParamInfo<WritePolicy>& info) {
                           return WritePolicyName(info.param).substr(1);
                         });

}  // namespace
}  // namespace lss
