// FlushBuffer: one buffer of the flush-buffer ring and its 64-bit state word.
//
// The state word packs everything a reserving thread must decide on into one
// atomic, so reserving is one compare-and-swap:
//
//    63              32 31          20 19          8 7     3   2     1      0
//   +------------------+--------------+-------------+-------+-----+-------+------+
//   | offset (32 b)    | cut writers  | writers     | zero  | CUT | FLUSH | SEAL |
//   +------------------+--------------+-------------+-------+-----+-------+------+
//
//   offset       bytes reserved so far; the next record starts here.
//   writers      reservations made but not yet committed (copies in progress).
//   cut writers  of those, the ones made before the pending cut (below).
//   SEALED       no further reservation succeeds; the offset is final.
//   FLUSHING     the buffer has been handed to the sink for writing.
//   CUT          a cut is pending: its block goes out when its writers end.
//
// A buffer holds one or more blocks. The first starts at offset 0 (its
// header, then records). A cut (group commit: someone needs what is in the
// buffer durable now) ends the open block where the records end, pads it to
// the block size, and opens the next block right after the padding in the
// same buffer, so making 128 bytes durable costs a block, not a buffer. The
// writers still copying into the cut block move to the cut-writer count;
// the one that ends the last of those copies hands the cut block out.
//
// The fields can never spill into each other:
//   - offsets stay below 2^31: a buffer holds at most kMaxBufferBytes (1 GiB)
//     and a reservation is accepted only if it ends inside the buffer;
//   - each writer count stays at most kMaxWriters: a reservation is refused
//     (the caller waits) while kMaxWriters copies are in flight, and a cut
//     moves the writer count into the (empty) cut-writer count;
//   - a count is decremented only by a commit, and each reservation is
//     committed exactly once, so it never goes below zero.
//
// Life of a buffer, one generation at a time:
//   installed (clean word, base address fixed) -> reservations, commits and
//   cuts -> SEALED (by a record that did not fit, or by SealCurrent) -> the
//   thread that makes "SEALED, no writers, no cut pending" true sets FLUSHING
//   and hands the last block to the sink -> the sink writes every block and
//   recycles each -> once all are back the buffer is installed again as a
//   later generation.
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
  static constexpr uint64_t kCutBit = uint64_t{1} << 2;
  static constexpr int kWriterShift = 8;
  static constexpr int kWriterBits = 12;
  static constexpr int kCutWriterShift = 20;
  static constexpr int kOffsetShift = 32;
  static constexpr int kOffsetBits = 32;
  static constexpr uint64_t kOneWriter = uint64_t{1} << kWriterShift;
  static constexpr uint64_t kOneCutWriter = uint64_t{1} << kCutWriterShift;
  static constexpr uint64_t kMaxWriters = (uint64_t{1} << kWriterBits) - 1;
  static constexpr uint64_t kMaxBufferBytes = uint64_t{1} << 30;

  static_assert(kWriterShift + kWriterBits == kCutWriterShift,
                "cut writers must sit directly above the writers");
  static_assert(kCutWriterShift + kWriterBits == kOffsetShift,
                "the offset must sit directly above the cut writers");
  static_assert(kOffsetShift + kOffsetBits == 64, "offset fills the top");
  static_assert((kSealedBit | kFlushingBit | kCutBit) < kOneWriter,
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
  constexpr uint64_t cut_writers() const {
    return (word_ >> kCutWriterShift) & kMaxWriters;
  }
  constexpr bool sealed() const { return (word_ & kSealedBit) != 0; }
  constexpr bool flushing() const { return (word_ & kFlushingBit) != 0; }
  constexpr bool cut() const { return (word_ & kCutBit) != 0; }
  // The state in which the buffer's last block can be handed out.
  constexpr bool flushable() const {
    return sealed() && writers() == 0 && !cut();
  }

  // The word after one more reservation of `len` bytes.
  constexpr BufferState Reserved(uint64_t len) const {
    return BufferState(word_ + (len << kOffsetShift) + kOneWriter);
  }
  constexpr BufferState Sealed() const {
    return BufferState(word_ | kSealedBit);
  }
  // The word after a cut that opens the next block's records at `offset`:
  // every writer so far becomes a cut writer.
  constexpr BufferState CutAt(uint64_t offset) const {
    return BufferState((offset << kOffsetShift) |
                       (writers() << kCutWriterShift) | kCutBit |
                       (word_ & (kSealedBit | kFlushingBit)));
  }
  // The word after one cut writer's commit; the last one ends the cut.
  constexpr BufferState CutWriterDone() const {
    return BufferState((word_ - kOneCutWriter) &
                       ~(cut_writers() == 1 ? kCutBit : 0));
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

  enum class CutOutcome {
    kCut,         // the open block ends at `offset`; the next one is open
    kEmpty,       // the open block holds no record; it starts at `offset`
    kSealed,      // the buffer is sealed at `offset`
    kCutPending,  // an earlier cut still has writers copying; try again
    kNoRoom       // too little room for another block; seal instead
  };
  struct CutResult {
    CutOutcome outcome;
    uint64_t offset = 0;
  };

  // Offsets [start, end) of one block in the buffer.
  struct Block {
    uint64_t start = 0;
    uint64_t end = 0;
  };
  // What a commit leaves for its thread to hand out.
  struct Released {
    // The commit ended the last copy into a cut block: hand this block out.
    std::optional<Block> cut;
    // The commit made the buffer flushable: hand its last block out, which
    // ends at this offset.
    std::optional<uint64_t> last_end;
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

  // Ends the open block at the current offset and opens the next one at the
  // following multiple of `block_bytes`, with `header_bytes` reserved for
  // its header, unless that leaves less than `block_bytes` of room.
  // REQUIRES: header_bytes > 0 (so that every writer after the cut starts
  // past its end); the caller holds a pin (a zero-byte reservation) and is
  // the only thread cutting this buffer; it releases the pin afterwards, and
  // the cut block is handed out by whoever ends its last copy.
  CutResult TryCut(uint64_t block_bytes);

  // Ends the copy of a writer whose reservation started at `offset`.
  Released ReleaseWriter(uint64_t offset);

  // Records that the buffer's last block was handed to the sink. Returns the
  // previous word.
  BufferState MarkFlushing();

  // Makes the buffer current as `generation` starting at LSS address `base`.
  // REQUIRES: exclusive ownership (the buffer is retired and recycled).
  void Install(uint64_t generation, uint64_t base);

  // Each block handed out comes back once (a cut counts its block out).
  // True when this was the last block outstanding and the buffer is free.
  bool ReturnBlock() {
    return blocks_out_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

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
  // Where the open block starts; exact once no cut is pending.
  uint64_t block_start() const {
    return block_start_.load(std::memory_order_acquire);
  }
  std::byte* data() const { return memory_.data(); }
  size_t capacity() const { return memory_.size(); }
  size_t index() const { return index_; }
  size_t header_bytes() const { return header_bytes_; }

 private:
  friend class FlushBufferRing;

  alignas(64) std::atomic<uint64_t> state_{BufferState::Retired().word()};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> base_{0};
  std::atomic<uint64_t> block_start_{0};
  // The pending cut's block; written by the cutter before the CAS that sets
  // CUT, so every thread that sees CUT sees them, and unchanged until the
  // cut ends.
  std::atomic<uint64_t> cut_start_{0};
  std::atomic<uint64_t> cut_end_{0};
  // Blocks handed out and not yet returned, plus one for the last block
  // until it is handed out.
  std::atomic<uint32_t> blocks_out_{0};

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
