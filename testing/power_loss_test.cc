// Simulated power loss (RELIABILITY.md section 3.E), after SQLite's crash
// VFS and CrashMonkey: the store runs on a SimDisk (testing/sim_disk.h)
// through its FileOpener and a FakeIoRing executing on the same disk, the
// power is cut at a random mutating operation, the disk loses a random part
// of what was not made durable (subsets, reordering, sector-atomic tears,
// files grown without their data, creations lost), and the log is reopened
// and checked against the promise:
//   - Open succeeds after a pure power loss (default options);
//   - every acknowledged record (its Sync or WaitStable returned OK, it lay
//     below HiStable(), a clean Close returned OK, or a successful open
//     recovered it) reads back byte for byte at its address, and is in the
//     NewLogReader replay;
//   - every replayed record was appended, with exactly that payload, key and
//     length, at exactly that address; nothing dropped by an earlier
//     recovery ever comes back;
//   - the replay is a prefix of the log: no appended record below the last
//     replayed one is missing;
//   - recovery destroys nothing that verifies: every block that passed its
//     header and CRC check in the raw crashed image (scanned here with
//     lss/format.h) is byte-identical after the reopen, in the recovered log
//     or past its tail (unacknowledged writes that landed beyond a hole).
//     The reopen's own appends come later and may overwrite those.
// Each seed picks a configuration (write policy, durability, ring size,
// buffer and block size, device alignment, ring reordering and retried
// faults, payload sizes) and runs 1 to 3 cycles of: appends with occasional
// Sync and WaitStable, the power cut, a crash, sometimes a second crash
// during recovery (the reopen itself is cut, then the disk crashes again),
// the checking reopen. The last cycle closes cleanly and reopens, which must
// find a clean log with everything in it.
//
// PowerLoss.Pages runs the same cycles over mapping/PageStore: every page
// reads as its last acknowledged flush or a later one, a page whose free was
// acknowledged stays free, a page never flushed is free. Its workload also
// cleans (PageStore::Clean of a random durable part of the log, and half
// the time CleanNext or CleanRange, which release regions from the middle
// and write tombstones), so cuts land in the relocation, its Sync, the
// superblock write and the hole punch, and later cycles recover from a
// moved head and over released ranges. It also checkpoints
// (PageStore::Checkpoint), so cuts land in a checkpoint's record and its
// superblock, and later reopens resume from a checkpoint.
// PowerLoss.ALyingDiskIsCaught checks the checks: on a disk whose fdatasync
// does nothing, both harnesses must report a failure.
//
// Flags (or environment, for --test_env):
//   --seed=N     (LSS_SEED)     run only seed N; a failure prints it
//   --crashes=N  (LSS_CRASHES)  simulated crashes per test (defaults:
//                               Records 10,000, about 40 s here; Pages
//                               8,000, about 15 s); a soak runs, e.g.,
//                               --crashes=200000
//   --first_seed=N (LSS_FIRST_SEED) where the seeds start (default 1)
//   --check_clean_reopen        check that the last, clean close reopens
//                               without a cut and opens under
//                               kAbsoluteConsistency (on by default)
// e.g. ./bazelw test //testing:power_loss_test --test_arg=--seed=1234
//      ./bazelw test //testing:power_loss_test --test_env=LSS_CRASHES=20000

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "flush/io_ring.h"
#include "gflags/gflags.h"
#include "gtest/gtest.h"
#include "lss/format.h"
#include "lss/log_reader.h"
#include "lss/log_structured_store.h"
#include "mapping/page_store.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"
#include "testing/sim_disk.h"

DEFINE_uint64(seed, 0, "run only this seed (0: --crashes worth of seeds)");
DEFINE_uint64(crashes, 0, "simulated crashes in all (0: $LSS_CRASHES or 3000)");
DEFINE_uint64(first_seed, 0, "the first seed (0: $LSS_FIRST_SEED or 1)");
DEFINE_bool(check_clean_reopen, true,
            "check that a log closed cleanly reopens clean, also under "
            "kAbsoluteConsistency");

namespace lss {
namespace {

using ::lss::testing::FakeIoRing;
using ::lss::testing::FakeIoRingOptions;
using ::lss::testing::FillPayload;
using ::lss::testing::Mix;
using ::lss::testing::SimDisk;
using ::lss::testing::SimDiskOptions;

constexpr char kPath[] = "/sim/log";

uint64_t EnvOr(const char* name, uint64_t flag, uint64_t fallback) {
  if (flag != 0) return flag;
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

struct Config {
  uint64_t seed = 0;
  WritePolicy policy = WritePolicy::kTailLocalized;
  Durability durability = Durability::kOnWait;
  size_t ring_size = 1;
  size_t buffer_bytes = 8192;
  uint32_t block_bytes = 512;
  size_t disk_alignment = 512;
  bool reorder = false;
  int max_delay_reaps = 0;
  bool retried_faults = false;  // EAGAIN, EINTR and short writes
  uint64_t preallocate_bytes = 0;
  int cycles = 1;
  int sync_percent = 10;  // chance per append of a Sync
  int wait_percent = 10;  // of a WaitStable of an earlier record
  int big_percent = 10;   // of a payload near a buffer's size
  bool lying_disk = false;  // fdatasync does nothing: the checks must fail
  // Set for a sweep: the first cycle's records and power cut (a FailAfter
  // count; past the workload's mutations, the cut comes after a clean close).
  std::optional<uint64_t> records;
  std::optional<uint64_t> cut;
  // Varies how the disk crashes without changing the workload.
  uint64_t crash_salt = 0;

  std::string ToString() const {
    return absl::StrCat(
        "seed=", seed, " policy=",
        policy == WritePolicy::kTailLocalized ? "kTailLocalized" : "kSerialized",
        " durability=", durability == Durability::kSync ? "kSync" : "kOnWait",
        " ring_size=", ring_size, " buffer_bytes=", buffer_bytes,
        " block_bytes=", block_bytes, " disk_alignment=", disk_alignment,
        " reorder=", reorder, " max_delay_reaps=", max_delay_reaps,
        " retried_faults=", retried_faults,
        " preallocate_bytes=", preallocate_bytes, " cycles=", cycles,
        " sync%=", sync_percent, " wait%=", wait_percent,
        " big%=", big_percent,
        cut.has_value() ? absl::StrCat(" records=", records.value_or(0),
                                       " cut=", *cut,
                                       " crash_salt=", crash_salt)
                        : "");
  }
};

Config PickConfig(uint64_t seed) {
  std::mt19937_64 rng(Mix(seed));
  Config c;
  c.seed = seed;
  c.policy = rng() % 2 ? WritePolicy::kSerialized : WritePolicy::kTailLocalized;
  c.durability = rng() % 2 ? Durability::kSync : Durability::kOnWait;
  c.ring_size = 1 + rng() % 4;
  c.block_bytes = rng() % 2 ? 4096 : 512;
  const size_t buffers[] = {8192, 16384, 65536};
  c.buffer_bytes = buffers[rng() % 3];
  c.disk_alignment = c.block_bytes == 4096 && rng() % 2 ? 4096 : 512;
  c.reorder = rng() % 2;
  c.max_delay_reaps = static_cast<int>(rng() % 4);
  c.retried_faults = rng() % 4 == 0;
  const uint64_t prealloc[] = {0, c.buffer_bytes, uint64_t{256} << 20};
  c.preallocate_bytes = prealloc[rng() % 3];
  c.cycles = 1 + static_cast<int>(rng() % 3);
  const int syncs[] = {2, 10, 30};
  c.sync_percent = syncs[rng() % 3];
  c.wait_percent = static_cast<int>(rng() % 20);
  c.big_percent = static_cast<int>(rng() % 25);
  return c;
}

SimDiskOptions DiskOptions(const Config& cfg) {
  return SimDiskOptions{.direct_io_alignment = cfg.disk_alignment,
                        .data_sync_is_a_no_op = cfg.lying_disk};
}

// Options that put a store on `disk` for `cfg`: the disk's FileOpener and
// a FakeIoRing executing on the disk (O_DIRECT, aligned to the block size);
// with `faults`, the ring reorders and delays as configured and injects the
// faults the appender retries.
StoreOptions OptionsOn(SimDisk& disk, const Config& cfg, uint64_t ring_seed,
                       bool faults) {
  FakeIoRingOptions ring;
  ring.seed = ring_seed;
  ring.direct_io_alignment = cfg.block_bytes;
  ring.disk = &disk;
  if (faults) {
    ring.reorder = cfg.reorder;
    ring.max_delay_reaps = cfg.max_delay_reaps;
    if (cfg.retried_faults) {
      ring.short_write_one_in = 8;
      ring.eagain_one_in = 16;
      ring.eintr_one_in = 16;
    }
  }
  StoreOptions o;
  o.buffer_bytes = cfg.buffer_bytes;
  o.block_bytes = cfg.block_bytes;
  o.file_opener = disk.opener();
  o.io_ring_factory =
      [ring](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    FakeIoRingOptions r = ring;
    r.capacity = std::max<size_t>(depth, 4);
    return std::make_unique<FakeIoRing>(r);
  };
  return o;
}

// A record the model expects, by address.
struct Expected {
  uint64_t stream = 0;
  uint64_t index = 0;
  size_t len = 0;
  bool acked = false;
};

struct Totals {
  uint64_t seeds = 0, crashes = 0, cut_recoveries = 0, cut_opens_ok = 0,
           acked_checked = 0, replayed = 0, verified_blocks = 0,
           verified_past_tail = 0, cuts_in_workload = 0,
           acked_by_hi_stable = 0, cut_reopens_seen = 0;
  // Pages: Clean calls, those the power cut, pages relocated by the rest;
  // Checkpoint calls, those the power cut, reopens that resumed from one.
  uint64_t cleans = 0, cleans_cut = 0, relocated = 0;
  uint64_t checkpoints = 0, checkpoints_cut = 0, resumed_reopens = 0;
};

class PowerLossRun {
 public:
  PowerLossRun(const Config& cfg, Totals& totals)
      : cfg_(cfg),
        totals_(totals),
        rng_(Mix(cfg.seed ^ 0x706f776572ull)),
        disk_(DiskOptions(cfg)) {}

  absl::Status Go() {
    std::unique_ptr<LogStructuredStore> store;
    for (int cycle = 0; cycle < cfg_.cycles; ++cycle) {
      const bool last = cycle + 1 == cfg_.cycles;
      // The power cut: anywhere in the workload, the open included.
      uint64_t records = rng_() % 160;
      uint64_t cut = rng_() % (8 + records / 2);
      bool no_cut = rng_() % 8 == 0;
      if (cycle == 0 && cfg_.cut.has_value()) {
        records = cfg_.records.value_or(records);
        cut = *cfg_.cut;
        no_cut = false;
      }
      if (!no_cut) disk_.FailAfter(cut);
      if (store == nullptr) {
        absl::StatusOr<std::unique_ptr<LogStructuredStore>> s =
            LogStructuredStore::Open(kPath, WorkloadOptions(cycle));
        if (!s.ok() && !disk_.failing()) {
          return Problem("Open of a fresh log failed", s.status());
        }
        if (s.ok()) store = *std::move(s);
      }
      if (store != nullptr) {
        if (absl::Status s = Workload(*store, cycle, records); !s.ok()) {
          return s;
        }
        if (last || rng_() % 8 == 0) {
          // A clean close acknowledges everything, unless the cut came.
          const absl::Status closed = store->Close();
          if (closed.ok()) {
            AckAll();
          } else if (!disk_.failing()) {
            return Problem("Close failed without a fault", closed);
          }
        }
      }
      totals_.cuts_in_workload += disk_.failing();
      if (cycle == 0) first_cycle_mutations_ = disk_.mutations();
      // Whatever has not failed yet loses power now.
      if (!disk_.failing()) disk_.FailAfter(0);
      store.reset();
      if (absl::Status s = Crash(); !s.ok()) return s;
      if (rng_() % 3 == 0) {
        if (absl::Status s = CutRecovery(); !s.ok()) return s;
      }
      absl::StatusOr<std::unique_ptr<LogStructuredStore>> reopened =
          ReopenAndCheck();
      if (!reopened.ok()) return reopened.status();
      store = *std::move(reopened);
    }
    // The last cycle closed cleanly before its "crash"; one more clean
    // close and reopen must find exactly the same log, clean.
    if (absl::Status s = store->Close(); !s.ok()) {
      return Problem("Close after the checks failed", s);
    }
    store.reset();
    // The close wrote a marker at the tail, maybe over a stale block.
    verified_ = ScanVerified();
    if (FLAGS_check_clean_reopen) {
      // A log closed cleanly opens under kAbsoluteConsistency, cutting
      // nothing (RELIABILITY.md H1).
      StoreOptions strict = ReopenOptions();
      strict.recovery = RecoveryMode::kAbsoluteConsistency;
      strict.read_only = true;
      absl::StatusOr<std::unique_ptr<LogStructuredStore>> s =
          LogStructuredStore::Open(kPath, strict);
      if (!s.ok()) {
        return Problem("a log closed cleanly fails kAbsoluteConsistency",
                       s.status());
      }
    }
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> again =
        ReopenAndCheck();
    if (!again.ok()) return again.status();
    if (FLAGS_check_clean_reopen && (*again)->recovery().cut) {
      return Problem("a log closed cleanly reopened with a cut",
                     absl::InternalError((*again)->recovery().end));
    }
    return (*again)->Close();
  }

  // Mutating disk operations the first cycle made before its power cut.
  uint64_t first_cycle_mutations() const { return first_cycle_mutations_; }

 private:
  absl::Status Problem(absl::string_view what, const absl::Status& status) {
    return absl::InternalError(absl::StrCat(what, ": ", status.ToString()));
  }

  StoreOptions BaseOptions(bool faults) {
    return OptionsOn(disk_, cfg_, rng_(), faults);
  }

  // The configuration under test. The first life of the file fixes its
  // geometry; every later open uses default options otherwise.
  StoreOptions WorkloadOptions(int cycle) {
    StoreOptions o = BaseOptions(/*faults=*/true);
    o.policy = cfg_.policy;
    o.durability = cfg_.durability;
    o.ring_size = cfg_.ring_size;
    o.preallocate_bytes = cfg_.preallocate_bytes;
    (void)cycle;
    return o;
  }

  StoreOptions ReopenOptions() { return BaseOptions(/*faults=*/false); }

  size_t PickLength(size_t max_payload) {
    const uint64_t r = rng_() % 100;
    if (r < static_cast<uint64_t>(cfg_.big_percent)) {
      return max_payload - rng_() % std::min<size_t>(max_payload, 512);
    }
    if (r < 60) return 1 + rng_() % 64;
    return 1 + rng_() % std::min<size_t>(max_payload, 2000);
  }

  absl::Status Workload(LogStructuredStore& store, int cycle,
                        uint64_t records) {
    const uint64_t stream = Mix(cfg_.seed) ^ (uint64_t(cycle) << 56) ^
                            (uint64_t(++lives_) << 48);
    std::vector<uint64_t> session;  // addresses appended here, ascending
    size_t by_stable = 0;           // session[0, by_stable) < HiStable()
    std::string payload;
    for (uint64_t i = 0; i < records; ++i) {
      const size_t len = PickLength(store.max_payload_bytes());
      payload.resize(len);
      FillPayload(stream, i,
                  {reinterpret_cast<std::byte*>(payload.data()), len});
      absl::StatusOr<uint64_t> a =
          store.Append(payload, RecordTag{.type = kDataRecordType, .key = i});
      if (!a.ok()) {
        if (disk_.failing()) return absl::OkStatus();
        return Problem(absl::StrCat("Append #", i, " failed without a fault"),
                       a.status());
      }
      if (model_.count(*a) != 0 && model_[*a].acked) {
        return absl::InternalError(absl::StrCat(
            "Append returned address ", *a,
            ", which holds an acknowledged record"));
      }
      model_[*a] = Expected{.stream = stream, .index = i, .len = len};
      session.push_back(*a);
      const int r = static_cast<int>(rng_() % 100);
      absl::Status waited;
      std::optional<uint64_t> acked_upto;  // exclusive index into session
      if (r < cfg_.sync_percent) {
        waited = store.Sync();
        acked_upto = session.size();
      } else if (r < cfg_.sync_percent + cfg_.wait_percent) {
        const uint64_t address = session[rng_() % session.size()];
        waited = store.WaitStable(address);
        if (waited.ok()) model_[address].acked = true;
      }
      if (!waited.ok()) {
        if (disk_.failing()) return absl::OkStatus();
        return Problem("Sync or WaitStable failed without a fault", waited);
      }
      if (acked_upto.has_value()) {
        for (size_t k = 0; k < *acked_upto; ++k) model_[session[k]].acked = true;
      }
      // Every record below HiStable() is durable, waited for or not.
      const uint64_t stable = store.HiStable();
      for (; by_stable < session.size() && session[by_stable] < stable;
           ++by_stable) {
        if (!model_[session[by_stable]].acked) ++totals_.acked_by_hi_stable;
        model_[session[by_stable]].acked = true;
      }
    }
    return absl::OkStatus();
  }

  void AckAll() {
    for (auto& [address, e] : model_) e.acked = true;
  }

  absl::Status Crash() {
    disk_.Crash(Mix(cfg_.seed ^ Mix(cfg_.crash_salt)) + ++crash_count_);
    ++totals_.crashes;
    verified_ = ScanVerified();
    return absl::OkStatus();
  }

  // Every block in the raw image that passes its header and CRC check and
  // whose padded extent lies inside the file (a block write covers its
  // padding, so a file ending inside one lost that write's end: FORMAT.md).
  std::map<uint64_t, std::string> ScanVerified() {
    std::map<uint64_t, std::string> out;
    const uint64_t size = disk_.FileSize(kPath);
    const uint64_t block = cfg_.block_bytes;
    uint64_t at = 2 * SuperblockSlotBytes(cfg_.block_bytes);
    while (at < size) {
      at = RoundUp(disk_.NextData(kPath, at), block);
      if (at >= size) break;
      const std::string head = disk_.Contents(kPath, at, kBlockHeaderBytes);
      BlockHeader h;
      if (head.size() == kBlockHeaderBytes &&
          ParseBlockHeader({reinterpret_cast<const std::byte*>(head.data()),
                            head.size()},
                           h) &&
          h.address == at && h.used >= kBlockHeaderBytes &&
          h.used <= cfg_.buffer_bytes && at + RoundUp(h.used, block) <= size) {
        const std::string bytes = disk_.Contents(kPath, at, h.used);
        if (BlockCrcMatches({reinterpret_cast<const std::byte*>(bytes.data()),
                             bytes.size()})) {
          out[at] = bytes;
          at += RoundUp(h.used, block);
          continue;
        }
      }
      at += block;
    }
    return out;
  }

  // The reopen itself loses power after a few operations, then the disk
  // crashes again.
  absl::Status CutRecovery() {
    ++totals_.cut_recoveries;
    disk_.FailAfter(rng_() % 12);
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> s =
        LogStructuredStore::Open(kPath, ReopenOptions());
    if (!s.ok() && !disk_.failing()) {
      return Problem("Open failed after a pure power loss", s.status());
    }
    if (s.ok()) {
      // The open made its recovered prefix durable and cut the rest off.
      ++totals_.cut_opens_ok;
      const uint64_t tail = (*s)->recovery().tail;
      for (auto it = model_.begin(); it != model_.end();) {
        if (it->first >= tail) {
          it = model_.erase(it);
        } else {
          it->second.acked = true;
          ++it;
        }
      }
      if (absl::Status w = Workload(**s, 7, rng_() % 20); !w.ok()) return w;
    }
    if (!disk_.failing()) disk_.FailAfter(0);
    s = absl::UnknownError("destroyed");  // the store goes
    return Crash();
  }

  absl::StatusOr<std::unique_ptr<LogStructuredStore>> ReopenAndCheck() {
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> s =
        LogStructuredStore::Open(kPath, ReopenOptions());
    if (!s.ok()) return Problem("Open failed after a pure power loss", s.status());
    LogStructuredStore& store = **s;
    const uint64_t tail = store.recovery().tail;
    totals_.cut_reopens_seen += store.recovery().cut;

    // Recovery destroyed nothing that verifies.
    for (const auto& [at, bytes] : verified_) {
      ++totals_.verified_blocks;
      totals_.verified_past_tail += at >= tail;
      if (disk_.Contents(kPath, at, bytes.size()) != bytes) {
        return absl::InternalError(absl::StrCat(
            "the block at ", at, " (", bytes.size(),
            " bytes) verified after the crash but differs after the reopen; "
            "recovered tail ",
            tail, "; ", store.recovery().end));
      }
    }

    // The replay: only what was appended, where it was appended.
    absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader(0);
    if (!reader.ok()) return Problem("NewLogReader", reader.status());
    std::map<uint64_t, bool> replayed;
    for (;;) {
      absl::StatusOr<bool> next = (*reader)->Next();
      if (!next.ok()) return Problem("replay", next.status());
      if (!*next) break;
      const RecordView& r = (*reader)->record();
      auto it = model_.find(r.address);
      if (it == model_.end()) {
        return absl::InternalError(absl::StrCat(
            "replay returned a record at ", r.address, " (", r.payload.size(),
            " bytes, key ", r.tag.key,
            ") where nothing was appended, or that an earlier recovery "
            "dropped"));
      }
      if (absl::Status m = Matches(it->first, it->second, r.tag, r.payload);
          !m.ok()) {
        return Problem("replay", m);
      }
      replayed[r.address] = true;
      ++totals_.replayed;
    }
    const uint64_t last_replayed =
        replayed.empty() ? 0 : replayed.rbegin()->first;
    for (auto& [address, e] : model_) {
      const bool in_replay = replayed.count(address) != 0;
      if (e.acked && !in_replay) {
        return absl::InternalError(absl::StrCat(
            "the acknowledged record at ", address, " (", e.len,
            " bytes) is not in the replay; recovered tail ", tail, "; ",
            store.recovery().end));
      }
      if (!in_replay && address < last_replayed) {
        return absl::InternalError(absl::StrCat(
            "a hole: the record at ", address,
            " is missing but the replay returned one at ", last_replayed));
      }
      if (e.acked) {
        ++totals_.acked_checked;
        absl::StatusOr<LogRecord> read = store.Read(address);
        if (!read.ok()) {
          return Problem(absl::StrCat("Read of acknowledged record ", address),
                         read.status());
        }
        if (absl::Status m = Matches(address, e, read->tag, read->payload);
            !m.ok()) {
          return Problem("Read", m);
        }
      }
    }
    // What was not recovered is gone for good; the rest is durable now.
    for (auto it = model_.begin(); it != model_.end();) {
      if (replayed.count(it->first) == 0) {
        it = model_.erase(it);
      } else {
        it->second.acked = true;
        ++it;
      }
    }
    return s;
  }

  absl::Status Matches(uint64_t address, const Expected& e, RecordTag tag,
                       absl::string_view payload) {
    if (payload.size() != e.len || tag.key != e.index ||
        tag.type != kDataRecordType) {
      return absl::InternalError(absl::StrCat(
          "the record at ", address, " has ", payload.size(), " bytes, key ",
          tag.key, ", type ", tag.type, "; appended: ", e.len, " bytes, key ",
          e.index));
    }
    std::optional<size_t> bad = ::lss::testing::FirstPayloadMismatch(
        e.stream, e.index,
        {reinterpret_cast<const std::byte*>(payload.data()), payload.size()});
    if (bad.has_value()) {
      return absl::InternalError(absl::StrCat("the record at ", address,
                                              " differs at payload byte ",
                                              *bad, " of ", e.len));
    }
    return absl::OkStatus();
  }

  const Config cfg_;
  Totals& totals_;
  std::mt19937_64 rng_;
  SimDisk disk_;
  std::map<uint64_t, Expected> model_;
  std::map<uint64_t, std::string> verified_;
  uint64_t crash_count_ = 0;
  uint64_t lives_ = 0;
  uint64_t first_cycle_mutations_ = 0;
};

// The page-level promise of mapping/PageStore over the same disk: after a
// crash every page reads as its last acknowledged flush (MkStable of its
// address, or a log Sync, returned OK) or a later flush; a page whose free
// was acknowledged reads as free unless a later flush of a reuse says
// otherwise; a page never flushed reads as free.
class PagePowerLossRun {
 public:
  PagePowerLossRun(const Config& cfg, Totals& totals)
      : cfg_(cfg),
        totals_(totals),
        rng_(Mix(cfg.seed ^ 0x7061676573ull)),
        disk_(DiskOptions(cfg)) {}

  absl::Status Go() {
    std::unique_ptr<PageStore> store;
    for (int cycle = 0; cycle < cfg_.cycles; ++cycle) {
      const uint64_t ops = rng_() % 160;
      if (rng_() % 8 != 0) disk_.FailAfter(rng_() % (8 + ops / 3));
      if (store == nullptr) {
        absl::StatusOr<std::unique_ptr<PageStore>> s =
            PageStore::Open(kPath, Options(/*faults=*/true));
        if (!s.ok() && !disk_.failing()) {
          return Problem("PageStore::Open of a fresh log failed", s.status());
        }
        if (s.ok()) store = *std::move(s);
      }
      if (store != nullptr) {
        if (absl::Status s = Workload(*store, ops); !s.ok()) return s;
      }
      totals_.cuts_in_workload += disk_.failing();
      if (!disk_.failing()) disk_.FailAfter(0);
      store.reset();
      Crash();
      if (rng_() % 3 == 0) {
        ++totals_.cut_recoveries;
        disk_.FailAfter(rng_() % 12);
        absl::StatusOr<std::unique_ptr<PageStore>> s =
            PageStore::Open(kPath, Options(/*faults=*/false));
        if (!s.ok() && !disk_.failing()) {
          return Problem("PageStore::Open failed after a pure power loss",
                         s.status());
        }
        totals_.cut_opens_ok += s.ok();
        if (!disk_.failing()) disk_.FailAfter(0);
        s = absl::UnknownError("destroyed");
        Crash();
      }
      absl::StatusOr<std::unique_ptr<PageStore>> reopened = ReopenAndCheck();
      if (!reopened.ok()) return reopened.status();
      store = *std::move(reopened);
    }
    // Everything flushed so far, synced, must come back exactly.
    if (absl::Status s = store->log().Sync(); !s.ok()) {
      return Problem("Sync after the checks failed", s);
    }
    for (auto& [pid, page] : pages_) {
      for (Event& e : page.events) e.acked = true;
    }
    store.reset();
    absl::StatusOr<std::unique_ptr<PageStore>> again = ReopenAndCheck();
    return again.ok() ? absl::OkStatus() : again.status();
  }

 private:
  using Content = std::vector<std::string>;  // base, then deltas oldest first
  struct Event {
    std::optional<Content> content;  // nullopt: freed
    uint64_t address = 0;            // flushes: the image's address
    bool acked = false;
  };
  struct PageModel {
    std::optional<Content> baseline;  // as the last checking reopen read it
    std::vector<Event> events;        // flushes and frees since
    bool live = false;                // allocated and not freed
    Content current;                  // in memory, flushed or not
  };

  absl::Status Problem(absl::string_view what, const absl::Status& status) {
    return absl::InternalError(absl::StrCat(what, ": ", status.ToString()));
  }

  PageStoreOptions Options(bool faults) {
    PageStoreOptions o;
    o.store = OptionsOn(disk_, cfg_, rng_(), faults);
    if (faults) {
      o.store.policy = cfg_.policy;
      o.store.durability = cfg_.durability;
      o.store.ring_size = cfg_.ring_size;
      o.store.preallocate_bytes = cfg_.preallocate_bytes;
    }
    o.table.max_pages = 4096;
    return o;
  }

  void Crash() {
    disk_.Crash(Mix(cfg_.seed ^ 0x7061676573ull) + ++crash_count_);
    ++totals_.crashes;
  }

  std::string NewBytes(uint64_t pid, size_t max_len) {
    const size_t len = 1 + rng_() % max_len;
    std::string out(len, '\0');
    FillPayload(Mix(cfg_.seed) ^ pid, ++version_,
                {reinterpret_cast<std::byte*>(out.data()), len});
    return out;
  }

  // A stop when the disk is failing (the power is going), else a problem.
  absl::Status Stop(absl::string_view what, const absl::Status& status) {
    if (disk_.failing()) return absl::CancelledError("the power went");
    return Problem(absl::StrCat(what, " failed without a fault"), status);
  }

  absl::Status Workload(PageStore& store, uint64_t ops) {
    absl::Status s = RunOps(store, ops);
    return s.code() == absl::StatusCode::kCancelled ? absl::OkStatus() : s;
  }

  absl::Status RunOps(PageStore& store, uint64_t ops) {
    const size_t max_base =
        std::min<size_t>(2000, store.log().max_payload_bytes() / 4);
    for (uint64_t i = 0; i < ops; ++i) {
      std::vector<uint64_t> live;
      for (const auto& [pid, page] : pages_) {
        if (page.live) live.push_back(pid);
      }
      if (rng_() % 60 == 0) {
        if (absl::Status s = Clean(store); !s.ok()) return s;
        continue;
      }
      if (rng_() % 40 == 0) {
        // A checkpoint says what the log says; it acknowledges nothing.
        ++totals_.checkpoints;
        if (absl::Status s = store.Checkpoint(); !s.ok()) {
          totals_.checkpoints_cut += disk_.failing();
          return Stop("Checkpoint", s);
        }
        continue;
      }
      const int op = static_cast<int>(rng_() % 100);
      if (op < 15 || live.empty()) {
        absl::StatusOr<uint64_t> pid = store.Allocate();
        if (!pid.ok()) return Stop("Allocate", pid.status());
        const std::string base = NewBytes(*pid, max_base);
        absl::StatusOr<PageState> st =
            store.UpdateR(*pid, PageState::Free(), base);
        if (!st.ok()) return Stop("UpdateR of a new page", st.status());
        PageModel& page = pages_[*pid];
        page.live = true;
        page.current = {base};
        continue;
      }
      const uint64_t pid = live[rng_() % live.size()];
      PageModel& page = pages_[pid];
      if (op < 50) {
        absl::StatusOr<Page> read = store.Read(pid);
        if (!read.ok()) return Stop("Read", read.status());
        if (Content{read->base} != Content{page.current[0]} ||
            read->deltas.size() + 1 != page.current.size()) {
          return absl::InternalError(
              absl::StrCat("page ", pid, " reads other than it was written"));
        }
        if (op < 38 || page.current.size() > 4) {
          const std::string base = NewBytes(pid, max_base);
          absl::StatusOr<PageState> st = store.UpdateR(pid, read->state, base);
          if (!st.ok()) return Stop("UpdateR", st.status());
          page.current = {base};
        } else {
          const std::string delta = NewBytes(pid, 64);
          absl::StatusOr<PageState> st = store.UpdateD(pid, read->state, delta);
          if (!st.ok()) return Stop("UpdateD", st.status());
          page.current.push_back(delta);
        }
      } else if (op < 75) {
        absl::StatusOr<uint64_t> address = store.Flush(pid);
        if (!address.ok()) return Stop("Flush", address.status());
        page.events.push_back(Event{.content = page.current,
                                    .address = *address});
      } else if (op < 80) {
        if (absl::Status st = store.Free(pid); !st.ok()) {
          return Stop("Free", st);
        }
        page.events.push_back(Event{});
        page.live = false;
      } else if (op < 88) {
        if (absl::Status st = store.log().Sync(); !st.ok()) {
          return Stop("Sync", st);
        }
        for (auto& [p, m] : pages_) {
          for (Event& e : m.events) e.acked = true;
        }
      } else if (op < 96) {
        for (auto it = page.events.rbegin(); it != page.events.rend(); ++it) {
          if (!it->content.has_value()) continue;
          if (absl::Status st = store.MkStable(it->address); !st.ok()) {
            return Stop("MkStable", st);
          }
          it->acked = true;
          break;
        }
      } else {
        const absl::Status st = store.Evict(pid);
        if (!st.ok() && st.code() != absl::StatusCode::kFailedPrecondition &&
            st.code() != absl::StatusCode::kAborted) {
          return Stop("Evict", st);
        }
      }
    }
    return absl::OkStatus();
  }

  // Cleans up to a random durable address. Clean Syncs before it truncates,
  // so once it returns OK every earlier flush and free is acknowledged, and
  // each page it relocated holds, acknowledged, what its last flush wrote
  // (or its state then, with no flush since its UpdateR): the images and
  // copies of pieces it wrote are the only records past the end sealed
  // before it. If the power goes meanwhile, any live page may have been
  // relocated.
  absl::Status Clean(PageStore& store) {
    ++totals_.cleans;
    const uint64_t head = store.log().head();
    const uint64_t stable = store.HiStable();
    const uint64_t to = head + rng_() % (std::max(stable, head) - head + 1);
    absl::StatusOr<uint64_t> before = store.log().Flush();
    // Half the time a region released from the middle of the log instead
    // (CleanNext, or a range by hand): tombstones, holes.
    const uint64_t boundary = store.log().CheckpointBoundary();
    const uint64_t kind = rng_() % 4;
    const uint64_t from = head + rng_() % (std::max(boundary, head) - head + 1);
    absl::Status s =
        !before.ok() ? before.status()
        : kind == 0  ? store.CleanNext().status()
        : kind == 1  ? store.CleanRange(from, std::max(from, boundary))
                     : store.Clean(to);
    if (!s.ok()) {
      totals_.cleans_cut += disk_.failing();
      for (auto& [pid, page] : pages_) {
        if (page.live) page.events.push_back(Event{.content = page.current});
      }
      return Stop(absl::StrCat("Clean(", to, ")"), s);
    }
    for (auto& [pid, page] : pages_) {
      for (Event& e : page.events) e.acked = true;
    }
    // Small reads: the log past `before` is a few blocks.
    absl::StatusOr<std::unique_ptr<LogReader>> reader =
        store.log().NewLogReader(
            *before, LogReaderOptions{.read_bytes = 4096, .reads_in_flight = 1});
    if (!reader.ok()) return Stop("NewLogReader", reader.status());
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      if (!more.ok()) return Stop("reading what Clean wrote", more.status());
      if (!*more) break;
      const RecordView& r = (*reader)->record();
      // Clean writes a checkpoint before it truncates past the newest, and
      // a tombstone for each free in a range it releases.
      if (r.tag.type == kCheckpointRecordType ||
          r.tag.type == kPageTombstoneRecord) {
        continue;
      }
      PageModel& page = pages_[r.tag.key];
      // What the page's flushes left: the newest event with an address (none
      // after a free), or what the last checking reopen read.
      std::optional<Content> flushed = page.baseline;
      for (auto e = page.events.rbegin(); e != page.events.rend(); ++e) {
        if (e->address != 0 || !e->content.has_value()) {
          flushed = e->content;
          break;
        }
      }
      std::optional<Content> image = DecodeImage(r.payload);
      // A copy of the newest piece holds what the last flush left; an image
      // holds that, or the page as it is if it has no flush since its
      // UpdateR.
      const std::optional<Content> holds =
          r.tag.type == kPageDeltaRecord ? flushed : image;
      if (!page.live || !holds.has_value() ||
          (r.tag.type != kPageDeltaRecord &&
           (r.tag.type != kPageImageRecord ||
            (holds != flushed && *holds != page.current)))) {
        return absl::InternalError(absl::StrCat(
            "Clean wrote a record of type ", r.tag.type, " for page ",
            r.tag.key, " at ", r.address, ", live: ", page.live,
            ", holding ", Describe(holds), ", its last flush ",
            Describe(flushed), ", in memory ", Describe(page.current)));
      }
      page.events.push_back(
          Event{.content = holds, .address = r.address, .acked = true});
      ++totals_.relocated;
    }
    return absl::OkStatus();
  }

  // A page image record's content (PageStore's format), nullopt if it does
  // not parse.
  static std::optional<Content> DecodeImage(absl::string_view in) {
    auto take = [&in](size_t n) -> std::optional<absl::string_view> {
      if (in.size() < n) return std::nullopt;
      absl::string_view out = in.substr(0, n);
      in.remove_prefix(n);
      return out;
    };
    auto u32 = [&]() -> std::optional<uint32_t> {
      std::optional<absl::string_view> b = take(4);
      if (!b.has_value()) return std::nullopt;
      uint32_t v = 0;
      std::memcpy(&v, b->data(), 4);
      return v;
    };
    Content content;
    std::optional<uint32_t> len = u32();
    std::optional<absl::string_view> base = len ? take(*len) : std::nullopt;
    std::optional<uint32_t> count = base ? u32() : std::nullopt;
    if (!count.has_value()) return std::nullopt;
    content.emplace_back(*base);
    for (uint32_t i = 0; i < *count; ++i) {
      std::optional<uint32_t> n = u32();
      std::optional<absl::string_view> d = n ? take(*n) : std::nullopt;
      if (!d.has_value()) return std::nullopt;
      content.emplace_back(*d);
    }
    if (!in.empty()) return std::nullopt;
    return content;
  }

  static std::string Describe(const std::optional<Content>& c) {
    if (!c.has_value()) return "free";
    std::string out = absl::StrCat("base of ", (*c)[0].size(), " bytes");
    if (c->size() > 1) absl::StrAppend(&out, " + ", c->size() - 1, " deltas");
    return out;
  }

  absl::StatusOr<std::unique_ptr<PageStore>> ReopenAndCheck() {
    absl::StatusOr<std::unique_ptr<PageStore>> s =
        PageStore::Open(kPath, Options(/*faults=*/false));
    if (!s.ok()) {
      return Problem("PageStore::Open failed after a pure power loss",
                     s.status());
    }
    totals_.cut_reopens_seen += (*s)->log().recovery().cut;
    totals_.resumed_reopens += (*s)->log().recovery().checkpoint != 0;
    uint64_t present = 0;
    for (auto& [pid, page] : pages_) {
      std::optional<Content> seen;
      absl::StatusOr<Page> read = (*s)->Read(pid);
      if (read.ok()) {
        Content c = {read->base};
        c.insert(c.end(), read->deltas.begin(), read->deltas.end());
        seen = std::move(c);
        ++present;
      } else if (read.status().code() != absl::StatusCode::kFailedPrecondition &&
                 read.status().code() != absl::StatusCode::kOutOfRange) {
        return Problem(absl::StrCat("Read of page ", pid), read.status());
      }
      // Allowed: the state after the last acknowledged event or any later
      // one; the baseline too if nothing since was acknowledged.
      size_t first = 0;
      for (size_t k = 0; k < page.events.size(); ++k) {
        if (page.events[k].acked) first = k;
      }
      const bool any_acked =
          std::any_of(page.events.begin(), page.events.end(),
                      [](const Event& e) { return e.acked; });
      bool allowed = !any_acked && seen == page.baseline;
      for (size_t k = any_acked ? first : 0; k < page.events.size(); ++k) {
        allowed |= seen == page.events[k].content;
      }
      ++totals_.acked_checked;
      if (!allowed) {
        std::string history = absl::StrCat("baseline ", Describe(page.baseline));
        for (const Event& e : page.events) {
          absl::StrAppend(&history, "; ", e.acked ? "acked " : "",
                          Describe(e.content), e.content ? " at " : "",
                          e.content ? absl::StrCat(e.address) : "");
        }
        return absl::InternalError(absl::StrCat(
            "page ", pid, " reads as ", Describe(seen),
            ", which is not its last acknowledged state or a later one (",
            history, "); log recovered to ", (*s)->log().recovery().tail,
            ": ", (*s)->log().recovery().end));
      }
      page.baseline = seen;
      page.events.clear();
      page.live = seen.has_value();
      if (seen.has_value()) page.current = *seen;
    }
    if ((*s)->recovered_pages() != present) {
      return absl::InternalError(absl::StrCat(
          "recovery restored ", (*s)->recovered_pages(), " pages; ", present,
          " were expected"));
    }
    return s;
  }

  const Config cfg_;
  Totals& totals_;
  std::mt19937_64 rng_;
  SimDisk disk_;
  std::map<uint64_t, PageModel> pages_;
  uint64_t crash_count_ = 0;
  uint64_t version_ = 0;
};

// Runs seeds until `crashes` are done (or only --seed); reports the first
// failure, with its configuration and how to rerun it, and returns it.
template <typename Run>
absl::Status RunSeeds(absl::string_view test, uint64_t default_crashes,
                      bool lying_disk = false, Totals* totals_out = nullptr) {
  const uint64_t only = EnvOr("LSS_SEED", FLAGS_seed, 0);
  const uint64_t crashes =
      EnvOr("LSS_CRASHES", FLAGS_crashes, default_crashes);
  const uint64_t first = EnvOr("LSS_FIRST_SEED", FLAGS_first_seed, 1);
  Totals totals;
  absl::Status failure;
  for (uint64_t seed = only != 0 ? only : first;; ++seed) {
    Config cfg = PickConfig(seed);
    cfg.lying_disk = lying_disk;
    Run run(cfg, totals);
    const absl::Status s = run.Go();
    ++totals.seeds;
    if (!s.ok()) {
      failure = absl::InternalError(absl::StrCat(
          s.message(), "\n  config: ", cfg.ToString(),
          "\n  rerun: ./bazelw test //testing:power_loss_test "
          "--test_arg=--gtest_filter=PowerLoss.",
          test, " --test_arg=--seed=", seed));
      break;
    }
    if (only != 0 || totals.crashes >= crashes) break;
  }
  std::printf(
      "%s: %" PRIu64 " seeds, %" PRIu64 " crashes (%" PRIu64
      " cut during recovery, of which %" PRIu64 " opened), %" PRIu64
      " workloads cut, %" PRIu64 " reopens cut a tail; checked %" PRIu64
      " acknowledged records or pages (%" PRIu64
      " acknowledged by HiStable alone), %" PRIu64 " replayed, %" PRIu64
      " verified blocks kept (%" PRIu64 " of them past the tail)%s\n",
      std::string(test).c_str(), totals.seeds, totals.crashes,
      totals.cut_recoveries, totals.cut_opens_ok, totals.cuts_in_workload,
      totals.cut_reopens_seen, totals.acked_checked,
      totals.acked_by_hi_stable, totals.replayed,
      totals.verified_blocks, totals.verified_past_tail,
      totals.cleans == 0
          ? ""
          : absl::StrCat("; ", totals.cleans, " Cleans (", totals.cleans_cut,
                         " cut by the power) relocated ", totals.relocated,
                         " pages; ", totals.checkpoints, " Checkpoints (",
                         totals.checkpoints_cut, " cut by the power); ",
                         totals.resumed_reopens,
                         " checking reopens resumed from one")
                .c_str());
  if (totals_out != nullptr) *totals_out = totals;
  return failure;
}

TEST(PowerLoss, Records) {
  const absl::Status s = RunSeeds<PowerLossRun>("Records", 10000);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(PowerLoss, Pages) {
  Totals totals;
  const absl::Status s = RunSeeds<PagePowerLossRun>(
      "Pages", 8000, /*lying_disk=*/false, &totals);
  EXPECT_TRUE(s.ok()) << s.message();
  // Cleaning ran, moved pages, and the power went in the middle of it;
  // so it did in checkpoints, and reopens resumed from them.
  if (EnvOr("LSS_SEED", FLAGS_seed, 0) == 0) {
    EXPECT_GT(totals.relocated, 0u);
    EXPECT_GT(totals.cleans_cut, 0u);
    EXPECT_GT(totals.checkpoints_cut, 0u);
    EXPECT_GT(totals.resumed_reopens, 0u);
  }
}

// A log closed cleanly must reopen without a cut and open under
// kAbsoluteConsistency. Seed 235's second life recovers to a tail where a
// stale block of the first epoch survived (recovery never clears a block
// that verifies), and its clean Close writes the 72-byte close marker over
// that block's head; the block's remaining bytes used to read as a torn
// block right after the marker, so the next open reported a cut and
// kAbsoluteConsistency refused the log. Close now clears them.
TEST(PowerLoss, CleanCloseReopensClean) {
  const bool was = FLAGS_check_clean_reopen;
  FLAGS_check_clean_reopen = true;
  Totals totals;
  PowerLossRun run(PickConfig(235), totals);
  const absl::Status s = run.Go();
  EXPECT_TRUE(s.ok()) << s.message();
  if (EnvOr("LSS_SEED", FLAGS_seed, 0) == 0) {
    const absl::Status more = RunSeeds<PowerLossRun>("Records", 3000);
    EXPECT_TRUE(more.ok()) << more.message();
  }
  FLAGS_check_clean_reopen = was;
}

// CrashMonkey's bounded sweep: a small workload (a dozen appends, Syncs and
// WaitStables, then Close) cut at every one of its mutating operations in
// turn, creation and the first superblock included, each cut crashed several
// ways; for both policies and both durabilities.
TEST(PowerLoss, EveryCutPointOfASmallWorkload) {
  if (EnvOr("LSS_SEED", FLAGS_seed, 0) != 0) GTEST_SKIP();
  Totals totals;
  uint64_t runs = 0;
  for (const WritePolicy policy :
       {WritePolicy::kTailLocalized, WritePolicy::kSerialized}) {
    for (const Durability durability :
         {Durability::kOnWait, Durability::kSync}) {
      Config base;
      base.policy = policy;
      base.durability = durability;
      base.ring_size = 2;
      base.buffer_bytes = 8192;
      base.block_bytes = 512;
      base.disk_alignment = 512;
      base.reorder = true;
      base.max_delay_reaps = 2;
      base.preallocate_bytes = 8192;
      base.cycles = 1;
      base.sync_percent = 25;
      base.wait_percent = 15;
      base.big_percent = 15;
      base.records = 12;
      base.cut = uint64_t{1} << 40;  // a dry run: no cut, count mutations
      base.seed = 1;
      PowerLossRun dry(base, totals);
      const absl::Status d = dry.Go();
      ASSERT_TRUE(d.ok()) << d.message() << "\n  config: " << base.ToString();
      const uint64_t mutations = dry.first_cycle_mutations();
      ASSERT_GT(mutations, 10u);
      for (uint64_t cut = 0; cut <= mutations; ++cut) {
        for (uint64_t crash = 0; crash < 4; ++crash) {
          Config cfg = base;
          cfg.cut = cut;
          cfg.crash_salt = crash + 1;
          PowerLossRun run(cfg, totals);
          const absl::Status s = run.Go();
          ++runs;
          ASSERT_TRUE(s.ok()) << s.message() << "\n  cut after " << cut
                              << " of " << mutations
                              << " mutations; config: " << cfg.ToString();
        }
      }
    }
  }
  std::printf("every cut point: %" PRIu64 " runs, %" PRIu64 " crashes, %" PRIu64
              " acknowledged records checked\n",
              runs, totals.crashes, totals.acked_checked);
}

// The checks can fail: on a disk whose fdatasync does nothing, acknowledged
// records and pages are lost, and both harnesses must say so.
TEST(PowerLoss, ALyingDiskIsCaught) {
  if (EnvOr("LSS_SEED", FLAGS_seed, 0) != 0) GTEST_SKIP();
  const absl::Status records =
      RunSeeds<PowerLossRun>("Records", 400, /*lying_disk=*/true);
  EXPECT_FALSE(records.ok()) << "400 crashes on a lying disk went unnoticed";
  std::printf("lying disk, records: %s\n",
              std::string(records.message()).c_str());
  const absl::Status pages =
      RunSeeds<PagePowerLossRun>("Pages", 400, /*lying_disk=*/true);
  EXPECT_FALSE(pages.ok()) << "400 crashes on a lying disk went unnoticed";
  std::printf("lying disk, pages: %s\n", std::string(pages.message()).c_str());
}

}  // namespace
}  // namespace lss

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return RUN_ALL_TESTS();
}
