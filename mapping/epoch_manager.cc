#include "mapping/epoch_manager.h"

#include <utility>

#include "ring/check.h"

namespace lss {

// Per thread: the slot this thread holds in each manager it has entered.
// Usually one entry, so Enter's lookup is a short scan.
struct ThreadSlotCache {
  struct Held {
    uint64_t manager_id;
    std::shared_ptr<EpochManager::Slots> slots;
    EpochManager::Slot* slot;
  };
  std::vector<Held> held;

  ~ThreadSlotCache() {
    for (Held& h : held) Release(h);
  }
  static void Release(Held& h) {
    LSS_CHECK(h.slot->depth == 0, "thread exited inside a critical section");
    h.slot->claimed.store(false, std::memory_order_release);
  }
  // Drops slots of managers that no longer exist (a thread that outlives
  // many managers would otherwise keep their slot arrays).
  void Prune() {
    for (size_t i = 0; i < held.size();) {
      if (!held[i].slots->manager_alive.load(std::memory_order_acquire)) {
        held[i] = std::move(held.back());
        held.pop_back();
      } else {
        ++i;
      }
    }
  }
};

namespace {

thread_local ThreadSlotCache thread_slots;
std::atomic<uint64_t> next_manager_id{1};

}  // namespace

EpochManager::EpochManager()
    : id_(next_manager_id.fetch_add(1, std::memory_order_relaxed)),
      slots_(std::make_shared<Slots>()) {}

EpochManager::~EpochManager() {
  for (const Slot& s : slots_->slot) {
    LSS_CHECK(s.announced.load(std::memory_order_acquire) == 0,
              "EpochManager destroyed while a thread is inside it");
  }
  slots_->manager_alive.store(false, std::memory_order_release);
  std::vector<Retired> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(retired_);
  }
  for (const Retired& r : all) r.deleter(r.p);
}

EpochManager::Slot& EpochManager::MySlot() {
  for (const ThreadSlotCache::Held& h : thread_slots.held) {
    if (h.manager_id == id_) return *h.slot;
  }
  thread_slots.Prune();
  for (Slot& s : slots_->slot) {
    bool expected = false;
    if (!s.claimed.load(std::memory_order_relaxed) &&
        s.claimed.compare_exchange_strong(expected, true,
                                          std::memory_order_acquire)) {
      thread_slots.held.push_back({id_, slots_, &s});
      return s;
    }
  }
  LSS_CHECK(false, "more than EpochManager::kMaxThreads threads registered");
  __builtin_unreachable();
}

void EpochManager::Enter() {
  Slot& s = MySlot();
  if (s.depth++ > 0) return;
  uint64_t e = global_epoch_.load(std::memory_order_seq_cst);
  for (;;) {
    // seq_cst store then seq_cst load: the announcement and the re-read sit
    // in one total order with Reclaim's slot scan and epoch store, so either
    // Reclaim sees this announcement or this thread sees the new epoch.
    // (Plain fences would do too, but gcc's TSan does not support them.)
    s.announced.store(e, std::memory_order_seq_cst);
    const uint64_t now = global_epoch_.load(std::memory_order_seq_cst);
    if (now == e) return;
    e = now;  // the epoch moved while announcing; announce the new one
  }
}

void EpochManager::Exit() {
  Slot& s = MySlot();
  LSS_CHECK(s.depth > 0, "EpochManager::Exit without a matching Enter");
  if (--s.depth > 0) return;
  // Release: this thread's reads of retired objects happen before a
  // reclaimer that sees the slot empty frees them.
  s.announced.store(0, std::memory_order_release);
}

void EpochManager::Retire(void* p, void (*deleter)(void*)) {
  LSS_CHECK(deleter != nullptr, "EpochManager::Retire needs a deleter");
  // Read after the caller unlinked p (its CAS came first in program order).
  const uint64_t e = global_epoch_.load(std::memory_order_seq_cst);
  size_t pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.push_back({p, deleter, e});
    pending = retired_.size();
  }
  if (pending >= kReclaimThreshold && pending % kReclaimThreshold == 0) {
    Reclaim();
  }
}

size_t EpochManager::Reclaim() {
  std::vector<Retired> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t e = global_epoch_.load(std::memory_order_seq_cst);
    bool all_caught_up = true;
    for (const Slot& s : slots_->slot) {
      // seq_cst: see Enter. It also acquires, pairing with Exit's release,
      // so everything a reader did before leaving happens before the free.
      const uint64_t a = s.announced.load(std::memory_order_seq_cst);
      if (a != 0 && a != e) {
        all_caught_up = false;
        break;
      }
    }
    // Only Reclaim advances the epoch, and it holds mu_, so this store
    // cannot lose a concurrent advance.
    if (all_caught_up) {
      ++e;
      global_epoch_.store(e, std::memory_order_seq_cst);
    }
    size_t kept = 0;
    for (Retired& r : retired_) {
      if (r.epoch + 2 <= e) {
        ready.push_back(r);
      } else {
        retired_[kept++] = r;
      }
    }
    retired_.resize(kept);
  }
  // Outside the lock: a deleter may itself Retire.
  for (const Retired& r : ready) r.deleter(r.p);
  return ready.size();
}

size_t EpochManager::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return retired_.size();
}

}  // namespace lss
