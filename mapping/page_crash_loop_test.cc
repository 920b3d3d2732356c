// Process-crash loop (kill -9) for PageStore, after lss/crash_loop_test.cc.
//
// The promise under test (page_store.h): after a crash every page reads as
// the state of its last flush that became stable, or a later one; pages
// never flushed, or freed, are free after recovery.
//
// Flushes are incremental: each writer gets a max_flushed_pieces of 1
// (every flush a whole image), 2, 3 or 8, so pages are on the log as
// chains of delta pieces that are consolidated often, and recovery and
// every Read of an evicted page gather a page from its pieces. A missing,
// repeated or misordered piece shows as a chain whose deltas do not follow
// each other (below), so a page that checks is byte for byte a state that
// was installed, and the version bounds make it one that was flushed.
//
// A writer process works on a fixed set of kPids pages with two owner
// threads (thread t owns the PIDs with pid % 2 == t, so only one thread ever
// changes a page and its versions are unambiguous) and, in half the
// writers, a meddler thread that Reads, Flushes and Evicts any page, so
// owners lose CASes and the failed-flush path writes its records too.
// Half the writers (and every clean run) also run a cleaner thread that, at
// random times, calls Clean(to) with `to` an eighth of the way from head()
// to HiStable(): it relocates live pages as whole images at the tail,
// Syncs, writes the new head to the superblock and punches a hole below
// it, so kills land in every step of cleaning, and recovery starts from
// moved heads. Half of those turns it calls CleanNext instead, which (with
// CleaningPolicy::kCostBenefit, three writers in four) mostly releases a
// region in the middle of the log (tombstones for the frees there, a new
// hole list in the superblock, a hole punched), so recovery also steps
// over released ranges and meets delta pieces that link into them. A
// third of its turns it writes a checkpoint instead (PageStore::Checkpoint:
// the log since the last one read back, its record and the superblock), so
// kills land in checkpoints too, and later writers and the verifier
// resume from them.
// Owners UpdateR / UpdateD (always against the state a Read returned, whose
// content they check against their model), Flush, MkStable, Evict, and Free
// and re-Allocate pages.
//
// Page content is self-describing: the base and every delta carry a header
// (pid, version, prev, kind, length) and bytes that are a hash of all of
// them. Every UpdateR/UpdateD makes a new version of the page; a delta
// names the version it was put on (prev), so a chain reads as one history:
// base b, then deltas whose prev links b, v1, v2, ... . A version number is
// never used twice for a page (not across crashes either: a restarted
// writer goes on above every version any writer attempted), so a chain that
// checks byte for byte is exactly a state that was installed once.
//
// Each page has a history of positions: version v is 2v, "freed while at
// version f" is 2f + 1. The writer publishes, in shared memory that survives
// SIGKILL:
//   attempted   the highest version it passed to UpdateR/UpdateD (published
//               before the call);
//   free_pos    the position of the last Free it called (before the call);
//   flushed     the highest version an owner called Flush at (before the
//               call);
//   stable      a position known stable: version v once the address Flush
//               returned for v is below HiStable() (after MkStable, or
//               seen later), and a free once a log Sync() after it returned.
// The parent SIGKILLs the writer after a random delay and recovers in a
// fresh process, which Reads every PID and checks that each page
//   - shows a chain that matches, byte for byte, versions the writer wrote,
//     of this page, of this log file, at most the highest attempted and at
//     most the highest flushed (by an owner; any version a writer with a
//     meddler or a cleaner attempted: both flush any version); and at
//     least the page's floor (the stable position, and what every earlier
//     recovery of this log showed);
//   - or is free, allowed only if nothing is stable for it yet or a Free was
//     called at or after its floor.
// Then it restarts the writer on the recovered log, which must read the
// same states the verifier did before it goes on from them. The last cycle
// of each write policy closes cleanly: then every page must read exactly as
// the writer left it.
//
// Environment:
//   CRASH_LOOP_KILLS        kills per write policy (default 50)
//   CRASH_LOOP_SEED         seed of every random choice (default: time)
//   CRASH_LOOP_MAX_DELAY_MS longest delay before a kill (default 50)
//   CRASH_LOOP_MAX_LOG_MB   a log longer than this is replaced by a new
//                           file (default 16)
// e.g. ./bazelw test //mapping:page_crash_loop_test
//        --test_env=CRASH_LOOP_KILLS=1000 --test_env=CRASH_LOOP_SEED=42
// On failure the log is copied to $TEST_UNDECLARED_OUTPUTS_DIR.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
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
#include "mapping/page_store.h"
#include "testing/payload.h"
#include "testing/process.h"
#include "testing/test_log.h"

namespace lss {
namespace {

using ::lss::testing::ChildErrors;
using ::lss::testing::ChildRun;
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

constexpr int kPids = 64;
constexpr int kOwners = 2;
constexpr size_t kMaxDeltas = 24;
constexpr uint64_t kCleanOpsPerThread = 3000;

// ---------------------------------------------------------------------------
// Page content.
//
// An element (the base, or one delta): ElementHeader, then bytes that are
// FillPayload of a stream naming (pid, kind, prev) and index = version. Its
// length is a function of (pid, version, kind) too.

constexpr uint64_t kMagic = 0x5041474543524153ull;  // "SARCEGAP"
constexpr uint32_t kBase = 1;
constexpr uint32_t kDelta = 2;

struct ElementHeader {
  uint64_t magic;
  uint64_t pid;
  uint64_t version;
  uint64_t prev;  // the version a delta was put on; 0 for a base
  uint32_t kind;
  uint32_t length;  // of the whole element
};
static_assert(sizeof(ElementHeader) == 40);

size_t ElementLength(uint64_t pid, uint64_t version, uint32_t kind) {
  const uint64_t h = Mix(Mix(pid * 4 + kind) ^ version);
  const uint64_t r = h >> 8;
  if (kind == kDelta) return sizeof(ElementHeader) + 1 + r % 400;
  // Mostly small bases, some that cross blocks, a few of up to 16 KB.
  const uint64_t pick = h % 100;
  if (pick < 70) return sizeof(ElementHeader) + 1 + r % 600;
  if (pick < 95) return sizeof(ElementHeader) + 600 + r % 4000;
  return sizeof(ElementHeader) + 4600 + r % 11400;
}

uint64_t FillStream(uint64_t pid, uint32_t kind, uint64_t prev) {
  return Mix(pid * 4 + kind) ^ Mix(prev + 0x5a5a);
}

std::string MakeElement(uint64_t pid, uint64_t version, uint32_t kind,
                        uint64_t prev) {
  const size_t len = ElementLength(pid, version, kind);
  std::string out(len, '\0');
  const ElementHeader h{.magic = kMagic,
                        .pid = pid,
                        .version = version,
                        .prev = prev,
                        .kind = kind,
                        .length = static_cast<uint32_t>(len)};
  std::memcpy(out.data(), &h, sizeof(h));
  FillPayload(
      FillStream(pid, kind, prev), version,
      std::span<std::byte>(reinterpret_cast<std::byte*>(out.data()), len)
          .subspan(sizeof(h)));
  return out;
}

// Checks one element; returns its header, or an error.
absl::StatusOr<ElementHeader> CheckElement(uint64_t pid, uint32_t kind,
                                           absl::string_view bytes) {
  ElementHeader h;
  if (bytes.size() < sizeof(h)) {
    return absl::DataLossError(
        absl::StrCat(bytes.size(), " bytes: too short for an element"));
  }
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (h.magic != kMagic) return absl::DataLossError("no element magic");
  if (h.pid != pid) {
    return absl::DataLossError(absl::StrCat("element of page ", h.pid));
  }
  if (h.kind != kind) {
    return absl::DataLossError(
        absl::StrCat("element of kind ", h.kind, " where ", kind, " belongs"));
  }
  if (h.version == 0 || (kind == kBase && h.prev != 0) ||
      (kind == kDelta && h.prev >= h.version)) {
    return absl::DataLossError(
        absl::StrCat("version ", h.version, " prev ", h.prev));
  }
  const size_t len = ElementLength(pid, h.version, kind);
  if (h.length != len || bytes.size() != len) {
    return absl::DataLossError(
        absl::StrCat("version ", h.version, ": ", bytes.size(),
                     " bytes, header says ", h.length, ", written with ", len));
  }
  if (std::optional<size_t> bad = FirstPayloadMismatch(
          FillStream(pid, kind, h.prev), h.version,
          std::span<const std::byte>(
              reinterpret_cast<const std::byte*>(bytes.data()), len)
              .subspan(sizeof(h)))) {
    return absl::DataLossError(absl::StrCat("version ", h.version, ": byte ",
                                            *bad + sizeof(h), " differs"));
  }
  return h;
}

// Checks a whole page and returns the version it shows.
absl::StatusOr<uint64_t> CheckPage(uint64_t pid, const Page& page) {
  absl::StatusOr<ElementHeader> base = CheckElement(pid, kBase, page.base);
  if (!base.ok()) {
    return absl::DataLossError(
        absl::StrCat("page ", pid, " base: ", base.status().message()));
  }
  if (page.deltas.size() > kMaxDeltas) {
    return absl::DataLossError(
        absl::StrCat("page ", pid, ": ", page.deltas.size(),
                     " deltas, never more than ", kMaxDeltas, " were written"));
  }
  uint64_t version = base->version;
  for (size_t i = 0; i < page.deltas.size(); ++i) {
    absl::StatusOr<ElementHeader> d = CheckElement(pid, kDelta, page.deltas[i]);
    if (!d.ok()) {
      return absl::DataLossError(absl::StrCat("page ", pid, " delta #", i, ": ",
                                              d.status().message()));
    }
    if (d->prev != version) {
      return absl::DataLossError(absl::StrCat(
          "page ", pid, " delta #", i, " (version ", d->version,
          ") was put on version ", d->prev, ", but follows version ", version));
    }
    version = d->version;
  }
  return version;
}

// Positions in a page's history.
uint64_t VersionPos(uint64_t v) { return 2 * v; }
uint64_t FreePos(uint64_t v) { return 2 * v + 1; }
std::string PosString(uint64_t pos) {
  if (pos == 0) return "nothing";
  if (pos % 2 == 0) return absl::StrCat("version ", pos / 2);
  return absl::StrCat("free after version ", pos / 2);
}

// ---------------------------------------------------------------------------
// Memory shared with the children (MAP_SHARED, made before each fork).

static_assert(std::atomic<uint64_t>::is_always_lock_free);

struct PidShared {
  std::atomic<uint64_t> attempted;      // highest version passed to an update
  std::atomic<uint64_t> free_pos;       // position of the last Free called
  std::atomic<uint64_t> flushed;        // highest version an owner flushed
  std::atomic<uint64_t> stable;         // a position known stable
  std::atomic<uint64_t> final_version;  // clean run: what it ends with
};

struct WriterStats {
  std::atomic<uint64_t> updates_r, updates_d, flushes, mkstables, claims,
      evicts, frees, syncs, reads, aborted, meddler_ops, meddler_flushes,
      meddler_lost, meddler_evicts;
  // Clean calls begun and returned, and the pages relocated, of them by a
  // copy of their newest piece (the store's counts as last seen, so Cleans
  // cut short by the kill count too).
  std::atomic<uint64_t> cleans, cleans_done, relocated, moved;
  // Checkpoint calls begun and returned; whether the writer's Open resumed
  // from a checkpoint.
  std::atomic<uint64_t> checkpoints, checkpoints_done, resumed;
  // The store's flush_stats(), as last seen.
  std::atomic<uint64_t> delta_pieces, consolidations;
};

struct WriterShared {
  std::atomic<uint32_t> failed;
  std::atomic<uint32_t> opened;
  std::atomic<uint32_t> clean_close;
  std::atomic<uint64_t> recovered_pages;
  char message[4096];
  PidShared pids[kPids];
  WriterStats stats;
};

struct VerifyShared {
  uint32_t ok;
  uint64_t tail;
  uint64_t recovered_pages;
  uint64_t from_chains;  // pages whose newest piece is a delta piece
  uint64_t version[kPids];  // 0: free
  char message[16384];
};

// ---------------------------------------------------------------------------
// The writer (a child process; never returns).

struct WriterConfig {
  std::string path;
  PageStoreOptions options;
  uint64_t seed = 0;
  bool meddler = false;
  bool cleaner = false;
  bool clean = false;  // run kCleanOpsPerThread ops per owner, close, exit 0
  // Per PID: every version any earlier writer attempted is <= this; and
  // what the last recovery showed (0: free), which Open must show again.
  uint64_t attempted_before[kPids] = {};
  uint64_t recovered[kPids] = {};
};

[[noreturn]] void WriterFail(WriterShared* sh, const std::string& message) {
  FailChildOnce(sh->failed, sh->message, sizeof(sh->message), message);
}

class Writer {
 public:
  Writer(const WriterConfig& cfg, WriterShared* sh) : cfg_(cfg), sh_(sh) {}

  [[noreturn]] void Main(int ready_fd) {
    absl::StatusOr<std::unique_ptr<PageStore>> opened =
        PageStore::Open(cfg_.path, cfg_.options);
    if (!opened.ok()) {
      Fail(absl::StrCat("writer Open(",
                        DescribeStoreOptions(cfg_.options.store),
                        "): ", opened.status().ToString()));
    }
    store_ = std::move(*opened);
    sh_->recovered_pages.store(store_->recovered_pages());
    sh_->stats.resumed.store(store_->log().recovery().checkpoint != 0);
    Startup();
    sh_->opened.store(1, std::memory_order_release);
    const char byte = 'R';
    if (write(ready_fd, &byte, 1) != 1) _exit(4);

    std::vector<std::thread> owners;
    for (int t = 0; t < kOwners; ++t) {
      owners.emplace_back([this, t] { OwnerThread(t); });
    }
    std::thread meddler;
    if (cfg_.meddler) meddler = std::thread([this] { MeddlerThread(); });
    std::thread cleaner;
    if (cfg_.cleaner) cleaner = std::thread([this] { CleanerThread(); });
    for (std::thread& t : owners) t.join();
    // Only a clean run gets here.
    stop_meddler_.store(true);
    if (meddler.joinable()) meddler.join();
    if (cleaner.joinable()) cleaner.join();
    // Every page's last state was flushed by its owner; a Sync makes the
    // frees stable too. Then everything is exact.
    if (absl::Status s = store_->log().Sync(); !s.ok()) {
      Fail(absl::StrCat("final Sync: ", s.ToString()));
    }
    for (int pid = 0; pid < kPids; ++pid) {
      const Model& m = models_[pid];
      sh_->pids[pid].final_version.store(m.version);
      FetchMax(sh_->pids[pid].stable, m.pos());
    }
    if (absl::Status s = store_->log().Close(); !s.ok()) {
      Fail(absl::StrCat("Close: ", s.ToString()));
    }
    store_.reset();
    sh_->clean_close.store(1);
    _exit(0);
  }

 private:
  // What the owner knows of one page.
  struct Model {
    uint64_t version = 0;   // 0: free
    uint64_t freed_at = 0;  // the version a Free was called at, if free
    uint64_t next = 1;      // the next version to write
    std::string base;
    std::vector<std::string> delta_bytes;
    uint64_t pos() const {
      return version != 0 ? VersionPos(version)
                          : (freed_at != 0 ? FreePos(freed_at) : 0);
    }
  };
  struct Claim {
    uint64_t pid;
    uint64_t pos;
    uint64_t address;
  };

  [[noreturn]] void Fail(const std::string& m) { WriterFail(sh_, m); }

  // Open must show what the verifier saw; then every PID is allocated, so
  // that Free and re-Allocate hand back the same PID.
  void Startup() {
    int to_allocate = 0;
    std::vector<bool> unused(kPids, false);
    for (int pid = 0; pid < kPids; ++pid) {
      Model& m = models_[pid];
      m.next = cfg_.attempted_before[pid] + 1;
      absl::StatusOr<Page> page = store_->Read(pid);
      if (page.ok()) {
        absl::StatusOr<uint64_t> v = CheckPage(pid, *page);
        if (!v.ok()) Fail(absl::StrCat("writer Open: ", v.status().message()));
        m.version = *v;
        m.base = page->base;
        m.delta_bytes = page->deltas;
      } else if (page.status().code() ==
                     absl::StatusCode::kFailedPrecondition ||
                 page.status().code() == absl::StatusCode::kOutOfRange) {
        unused[pid] = true;
        ++to_allocate;
      } else {
        Fail(absl::StrCat("writer Open: Read(", pid,
                          "): ", page.status().ToString()));
      }
      if (m.version != cfg_.recovered[pid]) {
        Fail(absl::StrCat("writer Open: page ", pid, " reads as version ",
                          m.version, " (0: free); the verifier's open read ",
                          cfg_.recovered[pid]));
      }
    }
    for (int i = 0; i < to_allocate; ++i) {
      absl::StatusOr<uint64_t> pid = store_->Allocate();
      if (!pid.ok()) Fail(absl::StrCat("Allocate: ", pid.status().ToString()));
      if (*pid >= kPids || !unused[*pid]) {
        Fail(absl::StrCat("Allocate gave PID ", *pid,
                          ", which is not one of the free PIDs below ", kPids));
      }
      unused[*pid] = false;
    }
  }

  // Reads an owned page and checks it against the model. Returns the state
  // to update against (Free() for a free page).
  PageState ReadChecked(uint64_t pid, const char* why) {
    Model& m = models_[pid];
    absl::StatusOr<Page> page = store_->Read(pid);
    sh_->stats.reads.fetch_add(1, std::memory_order_relaxed);
    if (m.version == 0) {
      if (page.status().code() != absl::StatusCode::kFailedPrecondition) {
        Fail(absl::StrCat("Read(", pid, ") of a free page (", why,
                          "): ", page.status().ToString()));
      }
      return PageState::Free();
    }
    if (!page.ok()) {
      Fail(absl::StrCat("Read(", pid, ") (", why,
                        "): ", page.status().ToString()));
    }
    if (page->base != m.base || page->deltas != m.delta_bytes) {
      absl::StatusOr<uint64_t> v = CheckPage(pid, *page);
      Fail(absl::StrCat("Read(", pid, ") (", why, ") shows ",
                        v.ok() ? absl::StrCat("version ", *v)
                               : std::string(v.status().message()),
                        ", the owner wrote version ", m.version, " last"));
    }
    return page->state;
  }

  void Update(uint64_t pid, bool base) {
    Model& m = models_[pid];
    if (m.version == 0 || m.delta_bytes.size() >= kMaxDeltas) base = true;
    const uint64_t v = m.next++;
    const std::string bytes = base ? MakeElement(pid, v, kBase, 0)
                                   : MakeElement(pid, v, kDelta, m.version);
    sh_->pids[pid].attempted.store(v, std::memory_order_release);
    for (int attempt = 0;; ++attempt) {
      const PageState expected = ReadChecked(pid, "before an update");
      absl::StatusOr<PageState> s = base
                                        ? store_->UpdateR(pid, expected, bytes)
                                        : store_->UpdateD(pid, expected, bytes);
      if (s.ok()) break;
      if (s.status().code() != absl::StatusCode::kAborted || attempt > 1000) {
        Fail(absl::StrCat(base ? "UpdateR(" : "UpdateD(", pid, ") version ", v,
                          ": ", s.status().ToString()));
      }
      sh_->stats.aborted.fetch_add(1, std::memory_order_relaxed);
    }
    if (base) {
      m.base = bytes;
      m.delta_bytes.clear();
      sh_->stats.updates_r.fetch_add(1, std::memory_order_relaxed);
    } else {
      m.delta_bytes.push_back(bytes);
      sh_->stats.updates_d.fetch_add(1, std::memory_order_relaxed);
    }
    m.version = v;
  }

  // Flushes an owned page; returns the address that holds its current
  // version, or 0 for a free page.
  uint64_t FlushOwned(uint64_t pid) {
    Model& m = models_[pid];
    FetchMax(sh_->pids[pid].flushed, m.version);
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<uint64_t> a = store_->Flush(pid);
      if (m.version == 0) {
        if (a.status().code() != absl::StatusCode::kFailedPrecondition) {
          Fail(absl::StrCat("Flush(", pid,
                            ") of a free page: ", a.status().ToString()));
        }
        return 0;
      }
      if (a.ok()) {
        sh_->stats.flushes.fetch_add(1, std::memory_order_relaxed);
        NoteFlushStats();
        return *a;
      }
      if (a.status().code() != absl::StatusCode::kAborted || attempt > 1000) {
        Fail(absl::StrCat("Flush(", pid, ") at version ", m.version, ": ",
                          a.status().ToString()));
      }
      sh_->stats.aborted.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void NoteFlushStats() {
    const PageStore::FlushStats f = store_->flush_stats();
    FetchMax(sh_->stats.delta_pieces, f.delta_pieces);
    FetchMax(sh_->stats.consolidations, f.consolidations);
    FetchMax(sh_->stats.relocated, f.relocated);
    FetchMax(sh_->stats.moved, f.moved);
  }

  void Stable(uint64_t address, const std::string& what) {
    absl::Status s = store_->MkStable(address);
    if (!s.ok())
      Fail(absl::StrCat("MkStable(", address, ") ", what, ": ", s.ToString()));
    sh_->stats.mkstables.fetch_add(1, std::memory_order_relaxed);
  }

  void Publish(uint64_t pid, uint64_t pos) {
    FetchMax(sh_->pids[pid].stable, pos);
    sh_->stats.claims.fetch_add(1, std::memory_order_relaxed);
  }

  // Claims whose flush is below HiStable() now are stable.
  void PublishStableClaims(std::vector<Claim>& claims) {
    if (claims.empty()) return;
    const uint64_t hi = store_->HiStable();
    size_t keep = 0;
    for (const Claim& c : claims) {
      if (c.address < hi) {
        Publish(c.pid, c.pos);
      } else {
        claims[keep++] = c;
      }
    }
    claims.resize(keep);
  }

  void OwnerThread(int t) {
    std::mt19937_64 rng(Mix(cfg_.seed ^ Mix(t + 1)));
    std::vector<uint64_t> mine;
    for (int pid = t; pid < kPids; pid += kOwners) mine.push_back(pid);
    std::vector<Claim> claims;
    const uint64_t limit = cfg_.clean ? kCleanOpsPerThread : ~uint64_t{0};
    for (uint64_t op = 0; op < limit; ++op) {
      // A few pages get most of the work, so chains grow and get replaced.
      const uint64_t pid =
          rng() % 4 != 0 ? mine[rng() % 6] : mine[rng() % mine.size()];
      Model& m = models_[pid];
      const uint64_t r = rng() % 100;
      // UpdateR is rare, so chains of pieces grow long between the whole
      // images it forces.
      if (r < 45) {
        Update(pid, /*base=*/false);
      } else if (r < 50) {
        Update(pid, /*base=*/true);
      } else if (r < 75) {
        const uint64_t a = FlushOwned(pid);
        if (a != 0) {
          const Claim c{pid, VersionPos(m.version), a};
          if (rng() % 3 == 0) {
            Stable(a, absl::StrCat("of page ", pid, " version ", m.version));
            Publish(pid, c.pos);
          } else {
            claims.push_back(c);
          }
        }
      } else if (r < 83) {
        ReadChecked(pid, "read");
      } else if (r < 90) {
        // Flush, MkStable, Evict; the next Read loads it from the log.
        const uint64_t a = FlushOwned(pid);
        if (a != 0) {
          Stable(a, absl::StrCat("of page ", pid, " version ", m.version));
          Publish(pid, VersionPos(m.version));
          // With a cleaner, a relocation since the MkStable may have put a
          // flush on top that is not stable yet: FailedPrecondition.
          absl::Status s = store_->Evict(pid);
          if (s.ok()) {
            sh_->stats.evicts.fetch_add(1, std::memory_order_relaxed);
          } else if (s.code() != absl::StatusCode::kAborted &&
                     !(cfg_.cleaner &&
                       s.code() == absl::StatusCode::kFailedPrecondition)) {
            Fail(absl::StrCat("Evict(", pid,
                              ") after MkStable of its flush: ", s.ToString()));
          }
        }
      } else if (r < 94 && m.version != 0) {
        FreeAndReallocate(pid, rng);
      }
      PublishStableClaims(claims);
    }
    // Clean run: flush every page, so the close leaves it all stable.
    for (uint64_t pid : mine) FlushOwned(pid);
  }

  void FreeAndReallocate(uint64_t pid, std::mt19937_64& rng) {
    Model& m = models_[pid];
    const uint64_t pos = FreePos(m.version);
    sh_->pids[pid].free_pos.store(pos, std::memory_order_release);
    {
      // Only this thread frees or allocates meanwhile, and every other PID
      // is in use: the free list holds just `pid`.
      std::lock_guard<std::mutex> lock(free_mu_);
      if (absl::Status s = store_->Free(pid); !s.ok()) {
        Fail(absl::StrCat("Free(", pid, ") at version ", m.version, ": ",
                          s.ToString()));
      }
      absl::StatusOr<uint64_t> again = store_->Allocate();
      if (!again.ok() || *again != pid) {
        Fail(absl::StrCat(
            "Allocate after Free(", pid, ") gave ",
            again.ok() ? absl::StrCat(*again) : again.status().ToString()));
      }
    }
    sh_->stats.frees.fetch_add(1, std::memory_order_relaxed);
    m.freed_at = m.version;
    m.version = 0;
    m.base.clear();
    m.delta_bytes.clear();
    ReadChecked(pid, "after Free and Allocate");
    if (rng() % 2 == 0) {
      if (absl::Status s = store_->log().Sync(); !s.ok()) {
        Fail(absl::StrCat("Sync after Free(", pid, "): ", s.ToString()));
      }
      sh_->stats.syncs.fetch_add(1, std::memory_order_relaxed);
      Publish(pid, pos);
    }
  }

  // Reads, flushes and evicts any page while the owners change them: their
  // CASes lose, and flushes that lose leave failed-flush records.
  void MeddlerThread() {
    std::mt19937_64 rng(Mix(cfg_.seed ^ 0x3e44));
    while (!stop_meddler_.load(std::memory_order_relaxed)) {
      // Mostly the owners' hot pages (the first 6 of each).
      const uint64_t pid =
          rng() % 4 != 0 ? rng() % (6 * kOwners) : rng() % kPids;
      const uint64_t r = rng() % 10;
      sh_->stats.meddler_ops.fetch_add(1, std::memory_order_relaxed);
      if (r < 4) {
        absl::StatusOr<Page> page = store_->Read(pid);
        if (page.ok()) {
          absl::StatusOr<uint64_t> v = CheckPage(pid, *page);
          if (!v.ok())
            Fail(absl::StrCat("meddler Read: ", v.status().message()));
          // Either what Open recovered, or a version this writer attempted.
          const uint64_t attempted =
              sh_->pids[pid].attempted.load(std::memory_order_acquire);
          if (*v != cfg_.recovered[pid] &&
              (*v > attempted || *v <= cfg_.attempted_before[pid])) {
            Fail(absl::StrCat("meddler Read(", pid, ") shows version ", *v,
                              ", this writer attempted ",
                              cfg_.attempted_before[pid] + 1, "..", attempted,
                              ", Open recovered ", cfg_.recovered[pid]));
          }
        } else if (page.status().code() !=
                   absl::StatusCode::kFailedPrecondition) {
          Fail(absl::StrCat("meddler Read(", pid,
                            "): ", page.status().ToString()));
        }
      } else if (r < 8) {
        absl::StatusOr<uint64_t> a = store_->Flush(pid);
        if (a.ok()) {
          sh_->stats.meddler_flushes.fetch_add(1, std::memory_order_relaxed);
          if (rng() % 4 == 0) Stable(*a, "(meddler)");
        } else if (a.status().code() == absl::StatusCode::kAborted) {
          // Its space became a failed-flush record.
          sh_->stats.meddler_lost.fetch_add(1, std::memory_order_relaxed);
        } else if (a.status().code() != absl::StatusCode::kFailedPrecondition) {
          Fail(absl::StrCat("meddler Flush(", pid,
                            "): ", a.status().ToString()));
        }
      } else {
        absl::Status s = store_->Evict(pid);
        if (s.ok()) {
          sh_->stats.meddler_evicts.fetch_add(1, std::memory_order_relaxed);
        } else if (s.code() != absl::StatusCode::kAborted &&
                   s.code() != absl::StatusCode::kFailedPrecondition) {
          Fail(absl::StrCat("meddler Evict(", pid, "): ", s.ToString()));
        }
      }
    }
  }

  // Cleans an eighth of the live log at random times, while owners and the
  // meddler go on: pages it relocates lose their owners' CASes, and are
  // flushed at whatever version they have.
  void CleanerThread() {
    std::mt19937_64 rng(Mix(cfg_.seed ^ 0xc1ea));
    while (!stop_meddler_.load(std::memory_order_relaxed)) {
      // Pacing only: the Cleans come at random points of the owners' work.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
      if (rng() % 3 == 0) {
        sh_->stats.checkpoints.fetch_add(1, std::memory_order_relaxed);
        if (absl::Status s = store_->Checkpoint(); !s.ok()) {
          Fail(absl::StrCat("Checkpoint: ", s.ToString()));
        }
        sh_->stats.checkpoints_done.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (rng() % 2 == 0) {
        sh_->stats.cleans.fetch_add(1, std::memory_order_relaxed);
        // ResourceExhausted: no region is worth cleaning, an answer.
        if (absl::StatusOr<Hole> r = store_->CleanNext();
            !r.ok() &&
            r.status().code() != absl::StatusCode::kResourceExhausted) {
          Fail(absl::StrCat("CleanNext: ", r.status().ToString()));
        }
        sh_->stats.cleans_done.fetch_add(1, std::memory_order_relaxed);
        NoteFlushStats();
        continue;
      }
      const uint64_t head = store_->log().head();
      const uint64_t stable = store_->HiStable();
      if (stable <= head) continue;
      const uint64_t to = head + (stable - head) / 8;
      sh_->stats.cleans.fetch_add(1, std::memory_order_relaxed);
      if (absl::Status s = store_->Clean(to); !s.ok()) {
        Fail(absl::StrCat("Clean(", to, ") with head ", head, ", HiStable ",
                          stable, ": ", s.ToString()));
      }
      sh_->stats.cleans_done.fetch_add(1, std::memory_order_relaxed);
      NoteFlushStats();
    }
  }

  const WriterConfig& cfg_;
  WriterShared* sh_;
  std::unique_ptr<PageStore> store_;
  Model models_[kPids];  // models_[pid] is touched by its owner only
  std::mutex free_mu_;
  std::atomic<bool> stop_meddler_{false};
};

// ---------------------------------------------------------------------------
// The verifier (a fresh child process; never returns).

struct VerifyConfig {
  std::string path;
  PageStoreOptions options;
  bool clean = false;
  // Per PID, merged from every writer of this log:
  uint64_t floor[kPids] = {};      // the recovered state is at or after it
  uint64_t last_free[kPids] = {};  // position of the last Free called
  uint64_t attempted[kPids] = {};  // highest version ever attempted
  // Highest version a Flush can have written: what owners flushed, or all
  // a writer attempted if it had a meddler (which flushes any version).
  uint64_t flushable[kPids] = {};
  uint64_t log_first[kPids] = {};      // versions of this log are above it
  uint64_t final_version[kPids] = {};  // clean: exactly this (0: free)
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

  void Check() {
    absl::StatusOr<std::unique_ptr<PageStore>> opened =
        PageStore::Open(cfg_.path, cfg_.options);
    if (!opened.ok()) {
      Error(absl::StrCat("verifier Open(",
                         DescribeStoreOptions(cfg_.options.store),
                         "): ", opened.status().ToString()));
      return;
    }
    PageStore& store = **opened;
    out_->tail = store.log().recovery().tail;
    out_->recovered_pages = store.recovered_pages();
    if (store.table().high_water() > kPids) {
      Error(absl::StrCat("recovery handed out PIDs up to ",
                         store.table().high_water(), "; the writers used ",
                         kPids));
    }
    uint64_t in_use = 0;
    for (uint64_t pid = 0; pid < kPids; ++pid) {
      const uint64_t floor = cfg_.floor[pid];
      const std::string facts = absl::StrCat(
          "(floor: ", PosString(floor),
          "; last Free called: ", PosString(cfg_.last_free[pid]),
          "; highest version attempted ", cfg_.attempted[pid], ", flushed ",
          cfg_.flushable[pid], "; versions of this log are above ",
          cfg_.log_first[pid], ")");
      // Where recovery put the page, before Read loads it.
      const absl::StatusOr<PageState> recovered = store.table().Read(pid);
      absl::StatusOr<Page> page = store.Read(pid);
      if (!page.ok()) {
        if (page.status().code() != absl::StatusCode::kFailedPrecondition &&
            page.status().code() != absl::StatusCode::kOutOfRange) {
          Error(absl::StrCat("Read(", pid, "): ", page.status().ToString()));
          continue;
        }
        out_->version[pid] = 0;
        if (floor != 0 && cfg_.last_free[pid] < floor) {
          Error(absl::StrCat("page ", pid,
                             " is free, but no Free was called since ",
                             PosString(floor), " was stable ", facts));
        }
        if (cfg_.clean && cfg_.final_version[pid] != 0) {
          Error(absl::StrCat("page ", pid,
                             " is free after a clean close at "
                             "version ",
                             cfg_.final_version[pid], " ", facts));
        }
        continue;
      }
      ++in_use;
      if (recovered.ok() && recovered->on_log()) {
        absl::StatusOr<LogRecord> newest =
            store.log().Read(recovered->address());
        if (newest.ok() && newest->tag.type == kPageDeltaRecord) {
          ++out_->from_chains;
        }
      }
      absl::StatusOr<uint64_t> v = CheckPage(pid, *page);
      if (!v.ok()) {
        Error(absl::StrCat(v.status().message(), " ", facts));
        continue;
      }
      out_->version[pid] = *v;
      if (*v > cfg_.attempted[pid]) {
        Error(absl::StrCat("page ", pid, " shows version ", *v,
                           ", never attempted ", facts));
      } else if (*v > cfg_.flushable[pid]) {
        Error(absl::StrCat("page ", pid, " shows version ", *v,
                           ", never flushed ", facts));
      } else if (*v <= cfg_.log_first[pid]) {
        Error(absl::StrCat("page ", pid, " shows version ", *v,
                           ", written to an earlier log file ", facts));
      } else if (VersionPos(*v) < floor) {
        Error(absl::StrCat("page ", pid, " shows version ", *v,
                           ", older than its floor ", facts));
      }
      if (cfg_.clean && cfg_.final_version[pid] != *v) {
        Error(absl::StrCat("page ", pid, " shows version ", *v,
                           " after a clean close at version ",
                           cfg_.final_version[pid], " (0: free) ", facts));
      }
    }
    if (in_use != store.recovered_pages()) {
      Error(absl::StrCat(in_use, " pages in use, but recovery reported ",
                         store.recovered_pages()));
    }
    opened->reset();
  }

  const VerifyConfig& cfg_;
  VerifyShared* out_;
  ChildErrors errors_{16};
};

// ---------------------------------------------------------------------------
// The parent.

struct Totals {
  uint64_t kills = 0;
  uint64_t kills_before_open = 0;
  uint64_t logs = 0;
  uint64_t meddler_writers = 0;
  uint64_t cleaner_writers = 0;
  uint64_t sync_writers = 0;
  uint64_t updates = 0;
  uint64_t flushes = 0;
  uint64_t mkstables = 0;
  uint64_t claims = 0;
  uint64_t evicts = 0;
  uint64_t frees = 0;
  uint64_t aborted = 0;
  uint64_t meddler_flushes = 0;
  uint64_t meddler_lost = 0;  // meddler flushes that lost their CAS
  uint64_t cleans = 0;          // Clean calls begun
  uint64_t cleans_done = 0;     // of them, returned (not cut by the kill)
  uint64_t relocated = 0;       // pages they relocated
  uint64_t moved = 0;           // of them, by a copy of their newest piece
  uint64_t checkpoints = 0;     // Checkpoint calls begun
  uint64_t checkpoints_done = 0;  // of them, returned
  uint64_t resumed_opens = 0;   // writers' Opens that resumed from one
  // Written by the writers' flushes, and copies by their cleanings.
  uint64_t delta_pieces = 0;
  uint64_t consolidations = 0;  // whole images that restarted a chain
  uint64_t pages_from_chains = 0;  // recovered from a delta piece down
  uint64_t max_tail = 0;
  uint64_t pages_checked = 0;
  uint64_t pages_free = 0;
  uint64_t pages_above_floor = 0;  // recovered newer than known stable
  uint64_t pages_at_floor = 0;     // recovered exactly at a stable version
};

class PageCrashLoop {
 public:
  PageCrashLoop(WritePolicy policy, uint64_t seed)
      : policy_(policy),
        seed_(seed),
        rng_(Mix(seed ^ static_cast<uint64_t>(policy))) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/page_crash_loop_",
                        WritePolicyName(policy), "_", getpid());
    std::filesystem::create_directories(dir_);
    max_delay_us_ =
        std::max<int64_t>(2000, EnvU64("CRASH_LOOP_MAX_DELAY_MS", 50) * 1000);
    max_log_bytes_ = EnvU64("CRASH_LOOP_MAX_LOG_MB", 16) << 20;
  }
  ~PageCrashLoop() { std::filesystem::remove_all(dir_); }

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
    for (int pid = 0; pid < kPids; ++pid) {
      floor_[pid] = 0;
      last_free_[pid] = 0;
      flushable_[pid] = 0;
      recovered_[pid] = 0;
      log_first_[pid] = attempted_[pid];
    }
  }

  PageStoreOptions Options(bool writer) {
    PageStoreOptions o;
    o.store.policy = policy_;
    o.store.durability =
        writer && rng_() % 2 == 0 ? Durability::kSync : Durability::kOnWait;
    o.store.buffer_bytes = 64 << 10;
    o.store.ring_size = writer ? 2 + rng_() % 3 : 2;
    o.store.direct_io = rng_() % 4 != 0;
    o.store.allow_buffered_fallback = true;
    static constexpr uint64_t kPreallocate[] = {0, 1 << 20, 8 << 20};
    o.store.preallocate_bytes = writer ? kPreallocate[rng_() % 3] : 0;
    o.table.max_pages = 1 << 16;
    static constexpr uint32_t kMaxPieces[] = {1, 2, 3, 8};
    o.max_flushed_pieces = writer ? kMaxPieces[rng_() % 4] : 8;
    o.cleaner.policy = rng_() % 4 == 0 ? CleaningPolicy::kOldest
                                       : CleaningPolicy::kCostBenefit;
    return o;
  }

  std::string SaveLog(uint64_t k) const {
    const char* out = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
    if (out == nullptr) return absl::StrCat("log kept at ", path_);
    const std::string to =
        absl::StrCat(out, "/page_crash_loop_", WritePolicyName(policy_),
                     "_seed", seed_, "_kill", k, ".log");
    std::error_code ec;
    std::filesystem::copy_file(
        path_, to, std::filesystem::copy_options::overwrite_existing, ec);
    return ec ? absl::StrCat("copying the log failed: ", ec.message())
              : absl::StrCat("log copied to ", to);
  }

  std::string Cycle(uint64_t k, bool clean) {
    SharedMapping<WriterShared> shared;
    auto cfg = std::make_unique<WriterConfig>();
    cfg->path = path_;
    cfg->options = Options(/*writer=*/true);
    cfg->seed = Mix(seed_ + k);
    cfg->meddler = rng_() % 2 == 0;
    // The clean run always cleans, so every loop has Cleans that finish and
    // relocate, and the exact check after the clean close covers them.
    cfg->cleaner = rng_() % 2 == 0 || clean;
    cfg->clean = clean;
    // And chains of 3, so that it writes delta pieces and consolidates
    // however few the kills (the checks at the end want both).
    if (clean) cfg->options.max_flushed_pieces = 3;
    std::copy(attempted_, attempted_ + kPids, cfg->attempted_before);
    std::copy(recovered_, recovered_ + kPids, cfg->recovered);
    totals_.meddler_writers += cfg->meddler;
    totals_.cleaner_writers += cfg->cleaner;
    totals_.sync_writers += cfg->options.store.durability == Durability::kSync;

    // 1 in 8 kills comes 0-3 ms after the fork, so it can land in Open
    // (creating or recovering the log); the rest 1-50 ms after the writer
    // has opened the store and checked what it recovered.
    const bool from_fork = rng_() % 8 == 0;
    const int64_t delay_us =
        from_fork ? static_cast<int64_t>(rng_() % 3000)
                  : 1000 + static_cast<int64_t>(rng_() % (max_delay_us_ - 999));
    std::string context = absl::StrCat(
        "seed=", seed_, " (CRASH_LOOP_SEED) ", clean ? "clean run" : "kill",
        " #", k, " log ", path_, " ", DescribeStoreOptions(cfg->options.store),
        " max_flushed_pieces=", cfg->options.max_flushed_pieces,
        " meddler=", cfg->meddler, " cleaner=", cfg->cleaner, " kill after ",
        delay_us, " us from ", from_fork ? "fork" : "open");

    KillPlan plan;
    plan.clean = clean;
    plan.from_fork = from_fork;
    plan.delay_ns = delay_us * 1000;
    plan.watchdog_ns = int64_t{clean ? 300 : 60} * 1000000000;
    const absl::StatusOr<ChildRun> run = RunAndKill(
        [&](int ready_fd) { Writer(*cfg, shared.get()).Main(ready_fd); }, plan);
    if (!run.ok()) return run.status().ToString();
    if (run->hung) {
      return absl::StrCat(context,
                          clean ? ": clean writer did not finish"
                                : ": writer did not open the store",
                          " in ", plan.watchdog_ns / 1000000000, " s (hang?)");
    }
    const int status = run->status;
    if (clean) {
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
          shared->clean_close.load() != 1) {
        return absl::StrCat(context, ": clean writer ended with ",
                            WaitStatusString(status), ": ", shared->message,
                            "; ", SaveLog(k));
      }
    } else if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      return absl::StrCat(context, ": writer exited before it was killed, ",
                          WaitStatusString(status), ": ", shared->message,
                          "; ", SaveLog(k));
    }
    if (!clean) {
      ++totals_.kills;
      if (!shared->opened.load()) ++totals_.kills_before_open;
    }
    const WriterStats& st = shared->stats;
    totals_.updates += st.updates_r.load() + st.updates_d.load();
    totals_.flushes += st.flushes.load();
    totals_.mkstables += st.mkstables.load();
    totals_.claims += st.claims.load();
    totals_.evicts += st.evicts.load() + st.meddler_evicts.load();
    totals_.frees += st.frees.load();
    totals_.aborted += st.aborted.load();
    totals_.meddler_flushes += st.meddler_flushes.load();
    totals_.meddler_lost += st.meddler_lost.load();
    totals_.cleans += st.cleans.load();
    totals_.cleans_done += st.cleans_done.load();
    totals_.relocated += st.relocated.load();
    totals_.moved += st.moved.load();
    totals_.checkpoints += st.checkpoints.load();
    totals_.checkpoints_done += st.checkpoints_done.load();
    totals_.resumed_opens += st.resumed.load();
    totals_.delta_pieces += st.delta_pieces.load();
    totals_.consolidations += st.consolidations.load();
    absl::StrAppend(&context, "; writer: ", st.updates_r.load(), " UpdateR, ",
                    st.updates_d.load(), " UpdateD, ", st.flushes.load(),
                    " flushes, ", st.mkstables.load(), " MkStable, ",
                    st.frees.load(), " frees, ", st.evicts.load(),
                    " evictions, ", st.aborted.load(), " lost races, ",
                    st.meddler_ops.load(), " meddler ops, ", st.cleans.load(),
                    " Cleans (", st.cleans_done.load(), " returned) relocating ",
                    st.relocated.load(), " pages");

    // Merge what the writer published.
    auto vcfg = std::make_unique<VerifyConfig>();
    for (int p = 0; p < kPids; ++p) {
      const PidShared& w = shared->pids[p];
      attempted_[p] = std::max(attempted_[p], w.attempted.load());
      last_free_[p] = std::max(last_free_[p], w.free_pos.load());
      flushable_[p] = std::max(
          flushable_[p], cfg->meddler || cfg->cleaner ? w.attempted.load()
                                                      : w.flushed.load());
      floor_[p] = std::max(floor_[p], w.stable.load());
      vcfg->floor[p] = floor_[p];
      vcfg->last_free[p] = last_free_[p];
      vcfg->attempted[p] = attempted_[p];
      vcfg->flushable[p] = flushable_[p];
      vcfg->log_first[p] = log_first_[p];
      vcfg->final_version[p] = w.final_version.load();
    }

    // Recover in a fresh process.
    SharedMapping<VerifyShared> result;
    vcfg->path = path_;
    vcfg->options = Options(/*writer=*/false);
    vcfg->clean = clean;
    const absl::StatusOr<int> vstatus =
        RunChild([&] { Verifier(*vcfg, result.get()).Run(); });
    if (!vstatus.ok()) return vstatus.status().ToString();
    if (!WIFEXITED(*vstatus) || WEXITSTATUS(*vstatus) != 0 || result->ok != 1) {
      return absl::StrCat(context, "; verifier (",
                          DescribeStoreOptions(vcfg->options.store),
                          ") ended with ", WaitStatusString(*vstatus), ":\n",
                          result->message, SaveLog(k));
    }
    // What this recovery showed, later recoveries of this log must show
    // too, or something later. A free page may come back only as free or
    // as a version that no writer had attempted yet.
    for (int p = 0; p < kPids; ++p) {
      const uint64_t v = result->version[p];
      ++totals_.pages_checked;
      if (v == 0) {
        ++totals_.pages_free;
        floor_[p] = std::max(floor_[p], FreePos(attempted_[p]));
        last_free_[p] = std::max(last_free_[p], floor_[p]);
      } else {
        if (VersionPos(v) > floor_[p]) {
          ++totals_.pages_above_floor;
        } else {
          ++totals_.pages_at_floor;
        }
        floor_[p] = std::max(floor_[p], VersionPos(v));
      }
      recovered_[p] = v;
    }
    totals_.max_tail = std::max(totals_.max_tail, result->tail);
    totals_.pages_from_chains += result->from_chains;
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
  // Per PID: over every log; then of the current log.
  uint64_t attempted_[kPids] = {};
  uint64_t floor_[kPids] = {};
  uint64_t last_free_[kPids] = {};
  uint64_t flushable_[kPids] = {};
  uint64_t log_first_[kPids] = {};
  uint64_t recovered_[kPids] = {};
  Totals totals_;
};

class PageCrashLoopTest : public ::testing::TestWithParam<WritePolicy> {};

TEST_P(PageCrashLoopTest, EveryPageRecoversAtOrAfterItsLastStableState) {
  const uint64_t kills = EnvU64("CRASH_LOOP_KILLS", 50);
  const uint64_t seed =
      EnvU64("CRASH_LOOP_SEED", static_cast<uint64_t>(time(nullptr)));
  std::printf("page crash loop %s: seed %" PRIu64 " (CRASH_LOOP_SEED), %" PRIu64
              " kills\n",
              WritePolicyName(GetParam()).c_str(), seed, kills);
  std::fflush(stdout);
  const int64_t start = NowNanos();
  PageCrashLoop loop(GetParam(), seed);
  const std::string error = loop.Run(kills);
  const Totals& t = loop.totals();
  std::printf(
      "page crash loop %s: %" PRIu64 " kills (%" PRIu64
      " before the store was open) over %" PRIu64
      " log files in %.1f s; "
      "%" PRIu64 " writers with kSync, %" PRIu64 " with a meddler, %" PRIu64
      " with a cleaner; %" PRIu64 " updates, %" PRIu64 " flushes, %" PRIu64
      " MkStable, %" PRIu64 " stable claims, %" PRIu64 " evictions, %" PRIu64
      " frees, %" PRIu64 " lost races, %" PRIu64 " meddler flushes (%" PRIu64
      " lost), %" PRIu64 " Cleans (%" PRIu64 " returned) relocating %" PRIu64
      " pages (%" PRIu64 " by a copy of a piece), %" PRIu64
      " Checkpoints (%" PRIu64 " returned), %" PRIu64
      " opens resumed from one, %" PRIu64 " delta pieces, %" PRIu64
      " consolidations; longest log %.1f MiB; pages checked %" PRIu64
      ": %" PRIu64 " free, %" PRIu64 " at their stable version, %" PRIu64
      " newer, %" PRIu64 " recovered from a chain of pieces\n",
      WritePolicyName(GetParam()).c_str(), t.kills, t.kills_before_open, t.logs,
      (NowNanos() - start) / 1e9, t.sync_writers, t.meddler_writers,
      t.cleaner_writers, t.updates, t.flushes, t.mkstables, t.claims, t.evicts,
      t.frees, t.aborted, t.meddler_flushes, t.meddler_lost, t.cleans,
      t.cleans_done, t.relocated, t.moved, t.checkpoints, t.checkpoints_done,
      t.resumed_opens, t.delta_pieces, t.consolidations, t.max_tail / 1048576.0,
      t.pages_checked, t.pages_free, t.pages_at_floor, t.pages_above_floor,
      t.pages_from_chains);
  std::fflush(stdout);
  if (!error.empty()) {
    ADD_FAILURE() << error << "\nseed " << seed
                  << ": rerun with --test_env=CRASH_LOOP_SEED=" << seed
                  << " (the kill times differ from run to run)";
  }
  // A loop where nothing was ever claimed stable tests little.
  EXPECT_GT(t.claims, 0u);
  EXPECT_GT(t.pages_at_floor + t.pages_above_floor, 0u);
  // Nor one where flushes were never incremental, chains never consolidated
  // or never recovered.
  EXPECT_GT(t.delta_pieces, 0u);
  EXPECT_GT(t.consolidations, 0u);
  EXPECT_GT(t.pages_from_chains, 0u);
  // Nor one where cleaning never ran or never moved a page (most Cleans
  // are cut short by the kill: that is the point).
  EXPECT_GT(t.cleans, 0u);
  EXPECT_GT(t.relocated, 0u);
  // Nor one where no checkpoint was written or resumed from.
  EXPECT_GT(t.checkpoints_done, 0u);
  EXPECT_GT(t.resumed_opens, 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, PageCrashLoopTest,
                         ::testing::Values(WritePolicy::kTailLocalized,
                                           WritePolicy::kSerialized),
                         [](const ::testing::TestParamInfo<WritePolicy>& info) {
                           return WritePolicyName(info.param).substr(1);
                         });

}  // namespace
}  // namespace lss
