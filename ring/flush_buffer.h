// FlushBuffer: one buffer of the flush-buffer ring and its 64-bit state word.
//
// The state word packs everything a reserving thread must decide on into one
// atomic, so reserving is one compare-and-swap:
//
//    63                 32 31               8 7        2     1         0
//   +---------------------+------------------+----------+----------+--------+
//   | write offset (32 b) | writers (24 b)   | zero (6) | FLUSHING | SEALED |
//   +---------------------+------------------+----------+----------+--------+
//
//   offset    bytes reserved so far; the next record starts here.
//   writers   reservations made but not yet committed (copies in progress).
//   SEALED    no further reservation succeeds; the offset is final.
//   FLUSHING  the buffer has been handed to the sink for writing.
//
// The fields can never spill into each other:
//   - offsets stay below 2^31: a buffer holds at most kMaxBufferBytes (1 GiB)
//     and a reservation is accepted only if it ends inside the buffer;
//   - the writer count stays below 2^24 - 1: a reservation is refused (the
//     caller waits) while kMaxWriters copies are in flight;
//   - the count is decremented only by a commit, and each reservation is
//     committed exactly once, so it never goes below zero.
//
// Life of a buffer, one generation at a time:
//   installed (clean word, base address fixed) -> reservations and commits ->
//   SEALED (by a record that did not fit, or by SealCurrent) -> the thread
//   that makes "SEALED and writers == 0" true sets FLUSHING and hands the
//   buffer to the sink -> the sink writes it and calls Recycle -> the buffer
//   is installed again as a later generation.
// A buffer that is not current is always SEALED, so the only buffer that can
// accept a reservation is the current one.

#ifndef LSS_RING_FLUSH_BUFFER_H_
#define LSS_RING_FLUSH_BUFFER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace lss {

// A decoded copy of a state word. Pure value; does no atomics.
class BufferState {
 public:
  static constexpr uint64_t kSealedBit = uint64_t{1} << 0;
  static constexpr uint64_t kFlushingBit = uint64_t{1} << 1;
  static constexpr int kWriterShift = 8;
  static constexpr int kWriterBits = 24;
  static constexpr int kOffsetShift = 32;
  static constexpr int kOffsetBits = 32;
  static constexpr uint64_t kOneWriter = uint64_t{1} << kWriterShift;
  static constexpr uint64_t kMaxWriters = (uint64_t{1} << kWriterBits) - 1;
  static constexpr uint64_t kMaxBufferBytes = uint64_t{1} << 30;

  static_assert(kWriterShift + kWriterBits == kOffsetShift,
                "writer count must sit directly below the offset");
  static_assert(kOffsetShift + kOffsetBits == 64, "offset fills the top");
  static_assert((kSealedBit | kFlushingBit) < kOneWriter,
                "flag bits must sit below the writer count");
  static_assert(2 * kMaxBufferBytes <= (uint64_t{1} << kOffsetBits),
                "offset plus one record must fit the offset field");

  constexpr BufferState() = default;
  constexpr explicit BufferState(uint64_t word) : word_(word) {}

  constexpr uint64_t word() const { return word_; }
  constexpr uint64_t offset() const { return word_ >> kOffsetShift; }
  constexpr uint64_t writers() const {
    return (word_ >> kWriterShift) & kMaxWriters;
  }
  constexpr bool sealed() const { return (word_ & kSealedBit) != 0; }
  constexpr bool flushing() const { return (word_ & kFlushingBit) != 0; }

  // The word after one more reservation of `len` bytes.
  constexpr BufferState Reserved(uint64_t len) const {
    return BufferState(word_ + (len << kOffsetShift) + kOneWriter);
  }
  constexpr BufferState Sealed() const {
    return BufferState(word_ | kSealedBit);
  }

  // The word of a buffer that is not current: sealed and handed out, so no
  // reservation can succeed on it until it is installed again.
  static constexpr BufferState Retired() {
    return BufferState(kSealedBit | kFlushingBit);
  }

  friend constexpr bool operator==(BufferState, BufferState) = default;

 private:
  uint64_t word_ = 0;
};

class FlushBuffer {
 public:
  enum class ReserveOutcome {
    kReserved,       // `offset` is where the caller copies its record
    kDoesNotFit,     // the buffer is open but lacks room; seal it
    kSealed,         // the buffer is sealed; wait for the next one
    kTooManyWriters  // kMaxWriters copies in flight; wait
  };
  struct ReserveResult {
    ReserveOutcome outcome;
    // kReserved: where the record starts. kDoesNotFit: the offset that left
    // too little room (pass it to TrySeal).
    uint64_t offset = 0;
  };

  // `memory` must stay valid for the buffer's lifetime. Each generation's
  // first reservation starts at `header_bytes`.
  FlushBuffer(std::span<std::byte> memory, size_t index,
              size_t header_bytes = 0);
  FlushBuffer(const FlushBuffer&) = delete;
  FlushBuffer& operator=(const FlushBuffer&) = delete;

  // Reserves `len` bytes (0 pins the buffer without taking space): one CAS,
  // repeated only when another thread changed the word in between.
  ReserveResult TryReserve(uint64_t len);

  // Sets SEALED unless the buffer is already sealed or holds fewer than
  // `min_offset` bytes. Returns the word just before this thread's seal (its
  // offset is the buffer's final length), or nothing if it did not seal.
  // A caller passes the offset it saw: its view may be stale, the buffer
  // since handed out, recycled and installed again empty, and sealing that
  // generation would hand out a buffer with nothing in it.
  std::optional<BufferState> TrySeal(uint64_t min_offset = 0);

  // Ends one writer's copy. Returns the word before the decrement: when it
  // shows SEALED and exactly one writer, this caller made the buffer
  // flushable and must hand it out.
  BufferState ReleaseWriter();

  // Records that the buffer was handed to the sink. Returns the previous word.
  BufferState MarkFlushing();

  // Makes the buffer current as `generation` starting at LSS address `base`.
  // REQUIRES: exclusive ownership (the buffer is retired and recycled).
  void Install(uint64_t generation, uint64_t base);

  BufferState state() const {
    return BufferState(state_.load(std::memory_order_acquire));
  }
  // Stable while the caller holds a reservation or owns the sealed buffer.
  uint64_t generation() const {
    return generation_.load(std::memory_order_relaxed);
  }
  uint64_t base_address() const {
    return base_.load(std::memory_order_relaxed);
  }
  std::byte* data() const { return memory_.data(); }
  size_t capacity() const { return memory_.size(); }
  size_t index() const { return index_; }

 private:
  friend class FlushBufferRing;

  alignas(64) std::atomic<uint64_t> state_{BufferState::Retired().word()};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> base_{0};

  // Installing the next generation needs two events, in either order: the
  // previous buffer is sealed (its length fixes this buffer's base) and this
  // buffer is recycled. Each event adds a vote; the second voter installs.
  std::atomic<uint32_t> install_votes_{0};
  uint64_t pending_generation_ = 0;  // written by the sealer before it votes
  uint64_t pending_base_ = 0;

  const std::span<std::byte> memory_;
  const size_t index_;
  const size_t header_bytes_;
};

}  // namespace lss

#endif  // LSS_RING_FLUSH_BUFFER_H_
