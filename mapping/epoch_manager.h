// EpochManager: epoch-based reclamation for objects unlinked from latch-free
// structures (e.g. page images replaced in a MappingTable) that readers may
// still be looking at.
//
// Scheme: one global epoch E (starts at 2) plus one announced epoch per
// thread slot (0 = not inside a critical section).
//   - Enter() announces the current E in the thread's slot and re-reads E
//     until the two agree, so the announcement is never stale when the
//     thread starts reading shared pointers.
//   - Retire(p) tags p with E as read *after* p was unlinked.
//   - Reclaim() advances E to E + 1 only if every active slot announces E,
//     then frees everything tagged <= E - 2.
// Why two epochs: an object tagged e was unlinked before E reached e + 1.
// A thread announcing e + 1 or later entered after that, so it cannot hold
// the object; E reaches e + 2 only once every active thread announces e + 1.
// A thread that stays inside one critical section stalls reclamation (not
// other threads' progress): retired objects pile up until it exits.
//
// Slots: at most kMaxThreads threads can be registered with one manager at a
// time. A thread takes a slot on its first Enter() and gives it back when it
// exits; a thread past the limit is an LSS_CHECK failure.

#ifndef LSS_MAPPING_EPOCH_MANAGER_H_
#define LSS_MAPPING_EPOCH_MANAGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace lss {

// Thread safety: every method may be called from any thread at once. Enter
// and Exit are latch-free (no lock, no waiting); Retire and Reclaim take a
// mutex around the retired list. Enter/Exit nest per thread; the outermost
// pair delimits the critical section. The manager must outlive every
// critical section entered on it.
class EpochManager {
 public:
  static constexpr size_t kMaxThreads = 128;
  // Retire() calls Reclaim() itself once this many objects are pending, so
  // callers that never call Reclaim still have bounded garbage (given
  // progress by every reader).
  static constexpr size_t kReclaimThreshold = 1024;

  EpochManager();
  EpochManager(const EpochManager&) = delete;
  EpochManager& operator=(const EpochManager&) = delete;
  // Frees everything still retired. REQUIRES: no thread is inside a
  // critical section.
  ~EpochManager();

  void Enter();
  void Exit();

  // Hands `p` over: `deleter(p)` runs once no thread can still observe it.
  // REQUIRES: `p` is already unreachable for threads that enter from now on.
  void Retire(void* p, void (*deleter)(void*));

  // Tries to advance the epoch, then frees what is safe. Returns the number
  // of objects freed.
  size_t Reclaim();

  uint64_t epoch() const { return global_epoch_.load(std::memory_order_acquire); }
  size_t pending() const;

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> announced{0};  // 0: outside a critical section
    std::atomic<bool> claimed{false};
    uint32_t depth = 0;  // nesting; touched only by the owning thread
  };
  // Outlives the manager while a thread still holds one of its slots, so a
  // thread exiting after the manager died releases into live memory.
  struct Slots {
    Slot slot[kMaxThreads];
    std::atomic<bool> manager_alive{true};
  };
  struct Retired {
    void* p;
    void (*deleter)(void*);
    uint64_t epoch;
  };
  friend struct ThreadSlotCache;

  Slot& MySlot();

  const uint64_t id_;  // never reused, so a thread's cached slot stays valid
  const std::shared_ptr<Slots> slots_;
  alignas(64) std::atomic<uint64_t> global_epoch_{2};
  // std::mutex, not absl::Mutex: the system Abseil is not built with TSan,
  // so TSan would not see absl::Mutex order the retired list.
  mutable std::mutex mu_;
  std::vector<Retired> retired_;  // guarded by mu_
};

// RAII critical section.
class EpochGuard {
 public:
  explicit EpochGuard(EpochManager& m) : m_(m) { m_.Enter(); }
  ~EpochGuard() { m_.Exit(); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  EpochManager& m_;
};

}  // namespace lss

#endif  // LSS_MAPPING_EPOCH_MANAGER_H_
