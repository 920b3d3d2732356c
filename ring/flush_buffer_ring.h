// FlushBufferRing: latch-free reservation of log space in a ring of flush
// buffers (LLAMA, Levandoski, Lomet and Sengupta, VLDB 2013, section 4.2).
//
// Writers call Reserve(len), copy their record into the returned span, and
// Commit. Each reservation learns its final LSS address at once: a buffer's
// base address is fixed when it becomes current (the previous buffer's base
// plus its sealed length rounded up to the block size, so the log has no
// holes). A record that does not fit seals the current buffer and goes into
// the next one; it is never dropped. The thread that makes a buffer "sealed
// with no writers" hands it to the SealedBufferSink exactly once; the sink
// writes it and returns it with Recycle. When every buffer is sealed or being
// written, Reserve waits and helps the sink drain (back-pressure); nothing is
// orphaned and a ring of one buffer works.
//
// Group commit: Cut ends the current buffer's open block where its records
// end and hands that block out as soon as its writers commit, while the
// buffer stays current and keeps filling after the block's padding. Making a
// few records durable thus costs one block-size write, not a flush buffer,
// and durable small appends cannot exhaust the ring.
//
// Thread safety: Reserve, Commit, SealCurrent and Recycle are safe to call
// concurrently. A thread must not call Reserve or SealCurrent while it holds
// an uncommitted reservation: with every buffer full, it would wait on itself.
// Lifetime: the owner must have every dispatched buffer recycled (its I/O
// reaped) before destroying the ring.

#ifndef LSS_RING_FLUSH_BUFFER_RING_H_
#define LSS_RING_FLUSH_BUFFER_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "ring/aligned_buffer.h"
#include "ring/flush_buffer.h"
#include "ring/sealed_buffer_sink.h"

namespace lss {

struct FlushBufferRingOptions {
  // Bytes per buffer: a multiple of block_bytes, from 4 KiB to 1 GiB.
  // LLAMA used 4 MiB flush buffers.
  size_t buffer_bytes = size_t{4} << 20;
  // Number of buffers, 1 to 1024.
  size_t ring_size = 4;
  // Sealed lengths are padded to this (a power of two, 512 to 1 MiB) so every
  // write and every buffer base is aligned for O_DIRECT.
  size_t block_bytes = 4096;
  // LSS address of the first buffer; a multiple of block_bytes.
  uint64_t start_address = 0;
  // Bytes at the start of every buffer that no reservation gets: room for a
  // block header the sink fills in at Dispatch. A multiple of 8, below
  // buffer_bytes. A buffer holding only its header is never dispatched.
  size_t header_bytes = 0;
  AlignedBuffer::Pages pages = AlignedBuffer::Pages::kHugeIfAvailable;
};

class FlushBufferRing;

// Space in a flush buffer, owned by one writer until committed. Move-only.
// Destroying an uncommitted reservation zero-fills and commits it, so a
// forgotten reservation can never stall the ring.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept;
  Reservation& operator=(Reservation&& other) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation();

  // Where to copy the record; valid until Commit.
  std::span<std::byte> data() const { return data_; }
  // The record's final LSS address.
  uint64_t address() const { return address_; }
  // The buffer generation the space belongs to.
  uint64_t generation() const { return generation_; }
  // False once committed or moved from.
  bool valid() const { return buffer_ != nullptr; }

 private:
  friend class FlushBufferRing;
  Reservation(FlushBufferRing* ring, FlushBuffer* buffer, uint64_t generation,
              uint64_t address, std::span<std::byte> data)
      : ring_(ring),
        buffer_(buffer),
        generation_(generation),
        address_(address),
        data_(data) {}
  void Abandon();

  FlushBufferRing* ring_ = nullptr;
  FlushBuffer* buffer_ = nullptr;
  uint64_t generation_ = 0;
  uint64_t address_ = 0;
  std::span<std::byte> data_;
};

class FlushBufferRing final : public BufferRecycler {
 public:
  struct Stats {
    uint64_t seals = 0;       // buffers sealed
    uint64_t cuts = 0;        // blocks ended by Cut, buffer left open
    uint64_t dispatches = 0;  // blocks handed to the sink
    uint64_t recycles = 0;    // blocks returned by the sink
    uint64_t waits = 0;       // times a caller waited for a free buffer
    uint64_t abandoned = 0;   // reservations destroyed without Commit
  };

  // `sink` must outlive the ring.
  static absl::StatusOr<std::unique_ptr<FlushBufferRing>> Create(
      const FlushBufferRingOptions& options, SealedBufferSink* sink);

  FlushBufferRing(const FlushBufferRing&) = delete;
  FlushBufferRing& operator=(const FlushBufferRing&) = delete;

  // Reserves `len` bytes, 1 <= len <= max_record_bytes(); otherwise
  // InvalidArgument naming both sizes. Waits while the ring is full, and
  // returns the sink's error if the sink fails meanwhile.
  absl::StatusOr<Reservation> Reserve(size_t len);

  // Ends the copy into `reservation`. Aborts if it is empty or was already
  // committed.
  void Commit(Reservation&& reservation);

  // Seals the current buffer if it holds any record, so that it will be
  // written. Returns an LSS address E such that every record reserved before
  // the call lies below E and sits in a buffer that has been or will be
  // dispatched (once its writers commit). Waits while the ring is full, and
  // returns the sink's error if the sink fails meanwhile.
  absl::StatusOr<uint64_t> SealCurrent();

  // Like SealCurrent, but the current buffer stays current: its open block
  // ends (padded to block_bytes) and the next block opens after it. Seals
  // instead when too little room would be left, or when header_bytes is 0.
  // Cuts are serialized.
  absl::StatusOr<uint64_t> Cut();

  // An address below which every record is in a block that has been or
  // will be handed out (once its writers commit): a lower bound of
  // everything Cut and SealCurrent returned and of what filled buffers
  // sealed. Never waits.
  uint64_t SealedEnd();
  // An address above every record reserved before the call. Waits while
  // the ring is full, like Reserve.
  absl::StatusOr<uint64_t> ReservedEnd();

  // Returns a dispatched block whose write is complete; its buffer is
  // reused once every block of it is back.
  void Recycle(const SealedBuffer& sealed) override;

  const FlushBufferRingOptions& options() const { return options_; }
  size_t max_record_bytes() const {
    return options_.buffer_bytes - options_.header_bytes;
  }
  bool huge_pages_advised() const { return memory_.huge_pages_advised(); }
  Stats stats() const;

 private:
  FlushBufferRing(const FlushBufferRingOptions& options, AlignedBuffer memory,
                  SealedBufferSink* sink);

  FlushBuffer& BufferFor(uint64_t generation) {
    return *buffers_[generation % buffers_.size()];
  }
  // The current buffer, as far as this thread can tell.
  FlushBuffer& Current() {
    return BufferFor(current_generation_.load(std::memory_order_acquire));
  }
  // A zero-byte reservation in the current buffer: its base cannot change
  // under the holder, and a seal while it is held leaves the hand-out to
  // the holder's release.
  struct Pin {
    FlushBuffer* buffer;
    uint64_t offset;
  };
  // Waits while the ring is full, like Reserve.
  absl::StatusOr<Pin> PinCurrent();
  // Seals the pinned buffer (unless someone else did); returns where its
  // records end.
  uint64_t SealPinned(const Pin& pin);
  // Called by the thread whose TrySeal succeeded; `before` is the word its
  // seal replaced.
  void AfterSeal(FlushBuffer& buffer, BufferState before);
  void Vote(FlushBuffer& next);
  // Hands out the last block of a flushable buffer, which ends at `end`.
  void DispatchLast(FlushBuffer& buffer, uint64_t end);
  void DispatchBlock(FlushBuffer& buffer, FlushBuffer::Block block,
                     bool last);
  void ReturnBlock(FlushBuffer& buffer);
  // Ends the copy of the writer at `offset` and hands out whatever that
  // completes: a cut block, the buffer's last block, or both.
  void ReleaseWriter(FlushBuffer& buffer, uint64_t offset);
  void NoteEnd(uint64_t end);
  absl::Status WaitForBuffer(int& attempts);

  friend class Reservation;  // abandons through ReleaseWriter

  const FlushBufferRingOptions options_;
  AlignedBuffer memory_;
  SealedBufferSink* const sink_;
  std::vector<std::unique_ptr<FlushBuffer>> buffers_;

  // The generation of the current buffer; it lives in BufferFor(generation).
  alignas(64) std::atomic<uint64_t> current_generation_{0};
  // The highest end Cut or SealCurrent returned.
  std::atomic<uint64_t> sealed_end_{0};
  std::mutex cut_mu_;  // one cutter at a time

  alignas(64) std::atomic<uint64_t> seals_{0};
  std::atomic<uint64_t> cuts_{0};
  std::atomic<uint64_t> dispatches_{0};
  std::atomic<uint64_t> recycles_{0};
  std::atomic<uint64_t> waits_{0};
  std::atomic<uint64_t> abandoned_{0};
};

}  // namespace lss

#endif  // LSS_RING_FLUSH_BUFFER_RING_H_
