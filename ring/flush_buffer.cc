#include "ring/flush_buffer.h"

#include "ring/check.h"

namespace lss {
namespace {

// Contention management for the reservation CAS.
//
// When two threads reserve in the same buffer at once, each step of one
// (reserve CAS, copy, commit) steals the cache line from the other, and on
// two vCPUs that halved throughput below a mutex's. So a thread that has
// recently lost a CAS, and finds another writer mid-copy, waits for the word
// to change (typically: that writer's commit) before trying; the other
// thread finishes while it still holds the line. The wait is bounded, so no
// thread ever waits on another (a preempted writer cannot stall
// reservations), and a thread that has not lost a CAS lately never waits,
// so an uncontended caller holding several reservations pays nothing.
// Records of kMaxBackoffRecord bytes or more never wait: their copies take
// longer than the cache-line transfers the wait saves, and waiting for the
// other writer's commit would serialize the copies (4 KiB records at two
// threads ran at 3-6.5 M/s with the wait, 8 M/s without).
constexpr uint64_t kMaxBackoffRecord = 1024;

class Backoff {
 public:
  // Pauses and returns true, or returns false once the budget is spent.
  bool Pause() {
    if (spins_ > kMaxSpins) return false;
    for (int i = 0; i < spins_; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    spins_ *= 2;
    return true;
  }

 private:
  static constexpr int kMaxSpins = 1024;
  int spins_ = 1;
};

// Reservations for which this thread still behaves as contended after a lost
// CAS.
constexpr int kContendedReservations = 64;
thread_local int contended_for = 0;

}  // namespace

FlushBuffer::FlushBuffer(std::span<std::byte> memory, size_t index,
                         size_t header_bytes)
    : memory_(memory), index_(index), header_bytes_(header_bytes) {
  LSS_CHECK(memory.size() <= BufferState::kMaxBufferBytes,
            "buffer larger than the state word's offset field allows");
  LSS_CHECK(header_bytes < memory.size(), "header fills the whole buffer");
}

FlushBuffer::ReserveResult FlushBuffer::TryReserve(uint64_t len) {
  uint64_t word = state_.load(std::memory_order_acquire);
  Backoff backoff;
  for (;;) {
    const BufferState s(word);
    if (s.sealed()) return {ReserveOutcome::kSealed};
    if (s.offset() + len > capacity()) {
      return {ReserveOutcome::kDoesNotFit, s.offset()};
    }
    if (s.writers() == BufferState::kMaxWriters) {
      return {ReserveOutcome::kTooManyWriters};
    }
    if (contended_for > 0 && s.writers() > 0 && len < kMaxBackoffRecord) {
      const uint64_t seen = word;
      while (word == seen && backoff.Pause()) {
        word = state_.load(std::memory_order_acquire);
      }
      if (word != seen) continue;  // re-check the new word
    }
    if (state_.compare_exchange_weak(word, s.Reserved(len).word(),
                                     std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      if (contended_for > 0) --contended_for;
      return {ReserveOutcome::kReserved, s.offset()};
    }
    contended_for = kContendedReservations;
  }
}

std::optional<BufferState> FlushBuffer::TrySeal(uint64_t min_offset) {
  uint64_t word = state_.load(std::memory_order_acquire);
  for (;;) {
    const BufferState s(word);
    if (s.sealed() || s.offset() < min_offset) return std::nullopt;
    if (state_.compare_exchange_weak(word, s.Sealed().word(),
                                     std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      return s;
    }
  }
}

FlushBuffer::CutResult FlushBuffer::TryCut(uint64_t block_bytes) {
  uint64_t word = state_.load(std::memory_order_acquire);
  for (;;) {
    const BufferState s(word);
    LSS_CHECK(s.writers() > 0, "cut without a pin");
    if (s.sealed()) return {CutOutcome::kSealed, s.offset()};
    if (s.cut()) return {CutOutcome::kCutPending};
    // Only cutters move the block start, one at a time.
    const uint64_t start = block_start_.load(std::memory_order_relaxed);
    if (s.offset() == start + header_bytes_) {
      return {CutOutcome::kEmpty, start};
    }
    const uint64_t next = (s.offset() + block_bytes - 1) / block_bytes *
                          block_bytes;
    if (next + header_bytes_ + block_bytes > capacity()) {
      return {CutOutcome::kNoRoom, s.offset()};
    }
    cut_start_.store(start, std::memory_order_relaxed);
    cut_end_.store(s.offset(), std::memory_order_relaxed);
    if (state_.compare_exchange_weak(word,
                                     s.CutAt(next + header_bytes_).word(),
                                     std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      // Both happen before the caller's pin, a cut writer, is released, so
      // before the cut can end: only then may the last block go out (it
      // reads the start), be written and come back, and the buffer is
      // reused only once the cut block has come back too.
      blocks_out_.fetch_add(1, std::memory_order_relaxed);
      block_start_.store(next, std::memory_order_release);
      return {CutOutcome::kCut, s.offset()};
    }
  }
}

FlushBuffer::Released FlushBuffer::ReleaseWriter(uint64_t offset) {
  // Release publishes this writer's copy; acquire lets the thread that
  // hands a block out see every other writer's copy into it.
  uint64_t word = state_.load(std::memory_order_acquire);
  for (;;) {
    const BufferState s(word);
    Released released;
    BufferState next;
    // A writer reserved before the pending cut lies at or below its end;
    // every later one lies past the next block's header. The cut's fields
    // cannot change while this writer keeps the cut pending.
    if (s.cut() && offset <= cut_end_.load(std::memory_order_relaxed)) {
      LSS_CHECK(s.cut_writers() > 0, "cut writer count underflow");
      next = s.CutWriterDone();
      if (s.cut_writers() == 1) {
        released.cut = Block{cut_start_.load(std::memory_order_relaxed),
                             cut_end_.load(std::memory_order_relaxed)};
      }
    } else {
      LSS_CHECK(s.writers() > 0, "commit without a matching reservation");
      next = BufferState(word - BufferState::kOneWriter);
    }
    if (state_.compare_exchange_weak(word, next.word(),
                                     std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      if (next.flushable()) released.last_end = next.offset();
      return released;
    }
  }
}

BufferState FlushBuffer::MarkFlushing() {
  const BufferState prev(state_.fetch_or(BufferState::kFlushingBit,
                                         std::memory_order_acq_rel));
  LSS_CHECK(prev.flushable() && !prev.flushing(),
            "buffer handed out twice or while writers were copying");
  return prev;
}

void FlushBuffer::Install(uint64_t generation, uint64_t base) {
  LSS_CHECK(state().flushing(), "installing a buffer that was never retired");
  generation_.store(generation, std::memory_order_relaxed);
  base_.store(base, std::memory_order_relaxed);
  block_start_.store(0, std::memory_order_relaxed);
  blocks_out_.store(1, std::memory_order_relaxed);
  // Publishes generation and base to every thread whose CAS reads this word.
  state_.store(uint64_t{header_bytes_} << BufferState::kOffsetShift,
               std::memory_order_release);
}

}  // namespace lss
