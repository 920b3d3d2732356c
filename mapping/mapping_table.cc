#include "mapping/mapping_table.h"

#include <new>

#include "absl/strings/str_cat.h"

namespace lss {

absl::StatusOr<std::unique_ptr<MappingTable>> MappingTable::Create(
    const MappingTableOptions& options) {
  if (options.max_pages == 0 || options.max_pages > kMaxPagesLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("MappingTable: max_pages ", options.max_pages,
                     " out of range; need 1 .. ", kMaxPagesLimit));
  }
  const uint64_t num_chunks =
      (options.max_pages + kChunkEntries - 1) / kChunkEntries;
  return std::unique_ptr<MappingTable>(
      new MappingTable(options.max_pages, num_chunks));
}

MappingTable::MappingTable(uint64_t max_pages, uint64_t num_chunks)
    : max_pages_(max_pages),
      num_chunks_(num_chunks),
      directory_(new std::atomic<Entry*>[num_chunks]) {
  for (uint64_t i = 0; i < num_chunks_; ++i) {
    directory_[i].store(nullptr, std::memory_order_relaxed);
  }
}

MappingTable::~MappingTable() {
  for (uint64_t i = 0; i < num_chunks_; ++i) {
    delete[] directory_[i].load(std::memory_order_acquire);
  }
}

MappingTable::Entry* MappingTable::EnsureChunk(uint64_t pid) {
  std::atomic<Entry*>& slot = directory_[pid >> kChunkBits];
  Entry* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    // Several threads may race to create the chunk; one CAS wins and the
    // others discard theirs. Value-initialised entries read Free() (word 0).
    Entry* fresh = new Entry[kChunkEntries]();
    if (slot.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      chunk = fresh;
    } else {
      delete[] fresh;
    }
  }
  return &chunk[pid & (kChunkEntries - 1)];
}

bool MappingTable::PopFree(uint64_t& pid) {
  uint64_t head = free_head_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t top = HeadIndex(head);
    if (top == 0) return false;
    // A stale head may point at an entry that was popped and reused since:
    // its link is then garbage, but the version makes the CAS below fail.
    Entry* entry = Find(top - 1);
    LSS_CHECK(entry != nullptr, "free-list PID outside allocated chunks");
    const PageState s(entry->load(std::memory_order_acquire));
    const uint64_t next = s.listed() ? s.link() : 0;
    if (free_head_.compare_exchange_weak(head, NextHead(head, next),
                                         std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
      // Only the winner owns the entry now; clear the link so it reads
      // Free() to the caller.
      const PageState owned(entry->exchange(PageState::Free().word(),
                                            std::memory_order_acq_rel));
      LSS_CHECK(owned.listed(), "popped a PID that was not on the free list");
      pid = top - 1;
      return true;
    }
  }
}

absl::Status MappingTable::FreeIfUnchanged(uint64_t pid, PageState expected) {
  LSS_CHECK(!expected.is_free(), "FreeIfUnchanged expects a location");
  Entry* entry = pid < high_water() ? Find(pid) : nullptr;
  if (entry == nullptr) {
    return absl::OutOfRangeError(absl::StrCat(
        "MappingTable::FreeIfUnchanged: PID ", pid, " was never allocated"));
  }
  uint64_t word = expected.word();
  if (!entry->compare_exchange_strong(word, PageState::Listed(0).word(),
                                      std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
    return absl::AbortedError(absl::StrCat(
        "MappingTable::FreeIfUnchanged: PID ", pid, " changed"));
  }
  PushFree(pid, *entry);
  return absl::OkStatus();
}

absl::Status MappingTable::Restore(const std::vector<PageState>& states) {
  if (states.size() > max_pages_) {
    return absl::InvalidArgumentError(
        absl::StrCat("MappingTable::Restore: ", states.size(),
                     " pages exceed max_pages ", max_pages_));
  }
  LSS_CHECK(high_water() == 0, "Restore of a table already in use");
  for (uint64_t pid = 0; pid < states.size(); ++pid) {
    if (states[pid].in_memory()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MappingTable::Restore: PID ", pid, " restored as in memory"));
    }
  }
  // Highest PID first, so the free list hands out low PIDs first.
  for (uint64_t pid = states.size(); pid-- > 0;) {
    Entry* entry = EnsureChunk(pid);
    if (states[pid].is_free()) {
      PushFree(pid, *entry);
    } else {
      entry->store(states[pid].word(), std::memory_order_relaxed);
    }
  }
  next_unused_.store(states.size(), std::memory_order_release);
  return absl::OkStatus();
}

void MappingTable::PushFree(uint64_t pid, Entry& entry) {
  uint64_t head = free_head_.load(std::memory_order_acquire);
  for (;;) {
    // The entry is LISTED and unreachable until the CAS below, so only this
    // thread writes it; stale poppers may read it, which is harmless.
    entry.store(PageState::Listed(HeadIndex(head)).word(),
                std::memory_order_relaxed);
    // Release publishes the link to whoever pops this PID.
    if (free_head_.compare_exchange_weak(head, NextHead(head, pid + 1),
                                         std::memory_order_release,
                                         std::memory_order_acquire)) {
      return;
    }
  }
}

absl::StatusOr<uint64_t> MappingTable::Allocate() {
  uint64_t pid;
  if (PopFree(pid)) return pid;
  uint64_t n = next_unused_.load(std::memory_order_relaxed);
  do {
    // Also reached when PIDs were freed after PopFree found the list empty;
    // the caller may retry, as with any racing Free.
    if (n >= max_pages_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("MappingTable: all ", max_pages_,
                       " PIDs (max_pages) are in use"));
    }
  } while (!next_unused_.compare_exchange_weak(n, n + 1,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed));
  // The chunk is published before the PID leaves this function, so anyone
  // told about the PID finds it.
  EnsureChunk(n);
  return n;
}

absl::Status MappingTable::Free(uint64_t pid) {
  Entry* entry = pid < high_water() ? Find(pid) : nullptr;
  if (entry == nullptr) {
    return absl::OutOfRangeError(
        absl::StrCat("MappingTable::Free: PID ", pid, " was never allocated"));
  }
  uint64_t word = entry->load(std::memory_order_acquire);
  do {
    if (PageState(word).is_free()) {
      return absl::FailedPreconditionError(
          absl::StrCat("MappingTable::Free: PID ", pid, " is already free"));
    }
    // Winning this CAS makes the entry ours: concurrent CompareAndSwaps
    // expecting its old value fail from here on.
  } while (!entry->compare_exchange_weak(word, PageState::Listed(0).word(),
                                         std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  PushFree(pid, *entry);
  return absl::OkStatus();
}

absl::StatusOr<PageState> MappingTable::Read(uint64_t pid) const {
  Entry* entry =
      pid < next_unused_.load(std::memory_order_relaxed) ? Find(pid) : nullptr;
  if (entry == nullptr) {
    return absl::OutOfRangeError(
        absl::StrCat("MappingTable::Read: PID ", pid, " was never allocated"));
  }
  return PageState(entry->load(std::memory_order_acquire));
}

bool MappingTable::CompareAndSwap(uint64_t pid, PageState expected,
                                  PageState desired) {
  LSS_CHECK(!desired.is_free(), "CompareAndSwap cannot free a PID; use Free");
  Entry* entry = pid < max_pages_ ? Find(pid) : nullptr;
  LSS_CHECK(entry != nullptr, "CompareAndSwap on a PID never allocated");
  uint64_t word = expected.word();
  return entry->compare_exchange_strong(word, desired.word(),
                                        std::memory_order_acq_rel,
                                        std::memory_order_acquire);
}

}  // namespace lss
