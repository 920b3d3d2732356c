#include "ring/flush_buffer_ring.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ring/check.h"

namespace lss {
namespace {

constexpr size_t kMinBufferBytes = 4096;
constexpr size_t kMinBlockBytes = 512;
constexpr size_t kMaxBlockBytes = size_t{1} << 20;
// Far more buffers than any number of writers can keep busy; the bound is
// there so that ring_size * buffer_bytes cannot overflow.
constexpr size_t kMaxRingSize = 1024;
static_assert(kMaxRingSize <= SIZE_MAX / BufferState::kMaxBufferBytes,
              "ring_size * buffer_bytes must fit size_t for valid options");
// Spins before a waiting thread starts helping the sink and yielding: most
// waits are for another thread's install or last commit, a few hundred ns.
constexpr int kSpinsBeforeHelping = 64;

bool IsPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

uint64_t RoundUp(uint64_t x, uint64_t block) {
  return (x + block - 1) / block * block;
}

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

absl::Status Validate(const FlushBufferRingOptions& o) {
  if (!IsPowerOfTwo(o.block_bytes) || o.block_bytes < kMinBlockBytes ||
      o.block_bytes > kMaxBlockBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("FlushBufferRing: block_bytes ", o.block_bytes,
                     " is not a power of two from ", kMinBlockBytes, " to ",
                     kMaxBlockBytes));
  }
  if (o.buffer_bytes < kMinBufferBytes ||
      o.buffer_bytes > BufferState::kMaxBufferBytes ||
      o.buffer_bytes % o.block_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FlushBufferRing: buffer_bytes ", o.buffer_bytes,
        " is not a multiple of block_bytes ", o.block_bytes, " from ",
        kMinBufferBytes, " to ", BufferState::kMaxBufferBytes));
  }
  if (o.header_bytes % 8 != 0 || o.header_bytes >= o.buffer_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FlushBufferRing: header_bytes ", o.header_bytes,
        " is not a multiple of 8 below buffer_bytes ", o.buffer_bytes));
  }
  if (o.ring_size == 0 || o.ring_size > kMaxRingSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("FlushBufferRing: ring_size ", o.ring_size,
                     " out of range; need 1 to ", kMaxRingSize));
  }
  if (o.start_address % o.block_bytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("FlushBufferRing: start_address ", o.start_address,
                     " is not a multiple of block_bytes ", o.block_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

Reservation::Reservation(Reservation&& other) noexcept
    : ring_(std::exchange(other.ring_, nullptr)),
      buffer_(std::exchange(other.buffer_, nullptr)),
      generation_(other.generation_),
      address_(other.address_),
      data_(std::exchange(other.data_, {})) {}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Abandon();
    ring_ = std::exchange(other.ring_, nullptr);
    buffer_ = std::exchange(other.buffer_, nullptr);
    generation_ = other.generation_;
    address_ = other.address_;
    data_ = std::exchange(other.data_, {});
  }
  return *this;
}

Reservation::~Reservation() { Abandon(); }

void Reservation::Abandon() {
  if (buffer_ == nullptr) return;
  // Zeros read as padding, never as a record, to every reader of the log.
  std::memset(data_.data(), 0, data_.size());
  ring_->abandoned_.fetch_add(1, std::memory_order_relaxed);
  FlushBuffer& buffer = *std::exchange(buffer_, nullptr);
  ring_->ReleaseWriter(buffer, address_ - buffer.base_address());
}

absl::StatusOr<std::unique_ptr<FlushBufferRing>> FlushBufferRing::Create(
    const FlushBufferRingOptions& options, SealedBufferSink* sink) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (sink == nullptr) {
    return absl::InvalidArgumentError("FlushBufferRing: sink is null");
  }
  absl::StatusOr<AlignedBuffer> memory = AlignedBuffer::Allocate(
      options.buffer_bytes * options.ring_size, options.block_bytes,
      options.pages);
  if (!memory.ok()) return memory.status();
  return std::unique_ptr<FlushBufferRing>(
      new FlushBufferRing(options, *std::move(memory), sink));
}

FlushBufferRing::FlushBufferRing(const FlushBufferRingOptions& options,
                                 AlignedBuffer memory, SealedBufferSink* sink)
    : options_(options), memory_(std::move(memory)), sink_(sink) {
  for (size_t i = 0; i < options_.ring_size; ++i) {
    buffers_.push_back(std::make_unique<FlushBuffer>(
        memory_.span().subspan(i * options_.buffer_bytes,
                               options_.buffer_bytes),
        i, options_.header_bytes));
    // Every buffer but the first starts out recycled: it holds the vote of
    // its (imaginary) previous generation's completion.
    if (i > 0) buffers_[i]->install_votes_.store(1, std::memory_order_relaxed);
  }
  buffers_[0]->Install(0, options_.start_address);
}

absl::StatusOr<Reservation> FlushBufferRing::Reserve(size_t len) {
  if (len == 0 || len > max_record_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FlushBufferRing::Reserve: record of ", len,
        " bytes; records must be 1 to ", max_record_bytes(),
        " bytes (the flush buffer size less its header)"));
  }
  int attempts = 0;
  for (;;) {
    FlushBuffer& buffer = Current();
    const FlushBuffer::ReserveResult r = buffer.TryReserve(len);
    switch (r.outcome) {
      case FlushBuffer::ReserveOutcome::kReserved: {
        // Holding a writer pins the buffer: generation and base are stable.
        const uint64_t base = buffer.base_address();
        return Reservation(this, &buffer, buffer.generation(), base + r.offset,
                           {buffer.data() + r.offset, len});
      }
      case FlushBuffer::ReserveOutcome::kDoesNotFit:
        // Seal, then retry in the next buffer. Losing the race to seal is
        // fine: someone else sealed it. `buffer` is not pinned here; the
        // seal re-checks that it is still at least as full as seen.
        if (std::optional<BufferState> before = buffer.TrySeal(r.offset)) {
          AfterSeal(buffer, *before);
        }
        break;
      case FlushBuffer::ReserveOutcome::kSealed:
      case FlushBuffer::ReserveOutcome::kTooManyWriters:
        if (absl::Status s = WaitForBuffer(attempts); !s.ok()) return s;
        break;
    }
  }
}

void FlushBufferRing::Commit(Reservation&& reservation) {
  LSS_CHECK(reservation.buffer_ != nullptr,
            "Commit of an empty or already committed reservation");
  FlushBuffer& buffer = *std::exchange(reservation.buffer_, nullptr);
  LSS_CHECK(buffer.generation() == reservation.generation_,
            "reservation outlived its buffer generation");
  ReleaseWriter(buffer, reservation.address_ - buffer.base_address());
}

absl::StatusOr<FlushBufferRing::Pin> FlushBufferRing::PinCurrent() {
  int attempts = 0;
  for (;;) {
    FlushBuffer& buffer = Current();
    const FlushBuffer::ReserveResult pin = buffer.TryReserve(0);
    if (pin.outcome == FlushBuffer::ReserveOutcome::kReserved) {
      return Pin{&buffer, pin.offset};
    }
    if (absl::Status s = WaitForBuffer(attempts); !s.ok()) return s;
  }
}

uint64_t FlushBufferRing::SealPinned(const Pin& pin) {
  if (std::optional<BufferState> before = pin.buffer->TrySeal(pin.offset)) {
    AfterSeal(*pin.buffer, *before);
    return pin.buffer->base_address() + before->offset();
  }
  return pin.buffer->base_address() + pin.buffer->state().offset();
}

absl::StatusOr<uint64_t> FlushBufferRing::SealCurrent() {
  absl::StatusOr<Pin> pin = PinCurrent();
  if (!pin.ok()) return pin.status();
  FlushBuffer& buffer = *pin->buffer;
  // An open block holding only its header has nothing to write: its start
  // is the end of everything reserved so far.
  const BufferState state = buffer.state();
  const uint64_t start = buffer.block_start();
  uint64_t end = buffer.base_address() + start;
  if (state.cut() || state.offset() > start + options_.header_bytes) {
    end = SealPinned(*pin);
  }
  ReleaseWriter(buffer, pin->offset);
  NoteEnd(end);
  return end;
}

absl::StatusOr<uint64_t> FlushBufferRing::Cut() {
  // Without a header, a block cut at an aligned offset would end exactly
  // where the next one starts, and a writer's offset could no longer tell
  // which of the two it belongs to.
  if (options_.header_bytes == 0) return SealCurrent();
  std::lock_guard<std::mutex> lock(cut_mu_);
  int attempts = 0;
  for (;;) {
    absl::StatusOr<Pin> pin = PinCurrent();
    if (!pin.ok()) return pin.status();
    FlushBuffer& buffer = *pin->buffer;
    const FlushBuffer::CutResult cut = buffer.TryCut(options_.block_bytes);
    uint64_t end = buffer.base_address() + cut.offset;
    switch (cut.outcome) {
      case FlushBuffer::CutOutcome::kCut:
        cuts_.fetch_add(1, std::memory_order_relaxed);
        break;
      case FlushBuffer::CutOutcome::kEmpty:
      case FlushBuffer::CutOutcome::kSealed:
        break;
      case FlushBuffer::CutOutcome::kNoRoom:
        end = SealPinned(*pin);
        break;
      case FlushBuffer::CutOutcome::kCutPending:
        // The previous cut's last copies are moments from done.
        ReleaseWriter(buffer, pin->offset);
        if (absl::Status s = WaitForBuffer(attempts); !s.ok()) return s;
        continue;
    }
    // The pin is a writer of the cut block: releasing it may hand it out.
    ReleaseWriter(buffer, pin->offset);
    NoteEnd(end);
    return end;
  }
}

uint64_t FlushBufferRing::SealedEnd() {
  return std::max(sealed_end_.load(std::memory_order_acquire),
                  Current().base_address());
}

absl::StatusOr<uint64_t> FlushBufferRing::ReservedEnd() {
  absl::StatusOr<Pin> pin = PinCurrent();
  if (!pin.ok()) return pin.status();
  const uint64_t end = pin->buffer->base_address() + pin->offset;
  ReleaseWriter(*pin->buffer, pin->offset);
  return end;
}

void FlushBufferRing::NoteEnd(uint64_t end) {
  uint64_t seen = sealed_end_.load(std::memory_order_relaxed);
  while (seen < end && !sealed_end_.compare_exchange_weak(
                           seen, end, std::memory_order_acq_rel)) {
  }
}

void FlushBufferRing::AfterSeal(FlushBuffer& buffer, BufferState before) {
  seals_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t generation = buffer.generation();
  FlushBuffer& next = BufferFor(generation + 1);
  next.pending_generation_ = generation + 1;
  next.pending_base_ =
      buffer.base_address() + RoundUp(before.offset(), options_.block_bytes);
  // With one buffer, `next` is `buffer`: the vote above cannot install it
  // before the dispatch below, since installing also needs its recycle.
  Vote(next);
  if (before.Sealed().flushable()) DispatchLast(buffer, before.offset());
}

void FlushBufferRing::Vote(FlushBuffer& next) {
  if (next.install_votes_.fetch_add(1, std::memory_order_acq_rel) == 0) {
    return;  // the other event has not happened yet; its thread installs
  }
  // Read the sealer's values before Install: once the buffer is current, a
  // writer may fill and seal it and write the next round's values.
  const uint64_t generation = next.pending_generation_;
  const uint64_t base = next.pending_base_;
  next.install_votes_.store(0, std::memory_order_relaxed);
  next.Install(generation, base);
  // Only ever forward: a thread holding a stale reference to `next` may
  // fill and seal it, and the install after it may publish a later
  // generation before this thread gets here.
  uint64_t current = current_generation_.load(std::memory_order_relaxed);
  while (current < generation &&
         !current_generation_.compare_exchange_weak(
             current, generation, std::memory_order_release,
             std::memory_order_relaxed)) {
  }
}

void FlushBufferRing::ReleaseWriter(FlushBuffer& buffer, uint64_t offset) {
  const FlushBuffer::Released released = buffer.ReleaseWriter(offset);
  // A cut block goes out before the buffer's last block, which waits for
  // the cut to end.
  if (released.cut) DispatchBlock(buffer, *released.cut, /*last=*/false);
  if (released.last_end) DispatchLast(buffer, *released.last_end);
}

void FlushBufferRing::DispatchLast(FlushBuffer& buffer, uint64_t end) {
  buffer.MarkFlushing();
  DispatchBlock(buffer, {buffer.block_start(), end}, /*last=*/true);
}

void FlushBufferRing::DispatchBlock(FlushBuffer& buffer,
                                    FlushBuffer::Block block, bool last) {
  const size_t used = block.end - block.start;
  // A buffer's first block always holds a record; a later one may hold only
  // its header (a cut just before the buffer was sealed).
  LSS_CHECK(used > options_.header_bytes ||
                (block.start > 0 && used == options_.header_bytes),
            "handing out an empty buffer");
  dispatches_.fetch_add(1, std::memory_order_relaxed);
  const size_t padded = RoundUp(used, options_.block_bytes);
  // Stale bytes from an earlier generation must never reach the log.
  std::memset(buffer.data() + block.end, 0, padded - used);
  SealedBuffer sealed;
  sealed.buffer = &buffer;
  sealed.generation = buffer.generation();
  sealed.address = buffer.base_address() + block.start;
  sealed.start = block.start;
  sealed.used = used;
  sealed.padded = padded;
  sealed.last = last;
  sink_->Dispatch(sealed);
}

void FlushBufferRing::Recycle(const SealedBuffer& sealed) {
  FlushBuffer& buffer = *sealed.buffer;
  LSS_CHECK(buffer.generation() == sealed.generation &&
                (!sealed.last || buffer.state().flushing()),
            "Recycle of a buffer that is not dispatched");
  recycles_.fetch_add(1, std::memory_order_relaxed);
  ReturnBlock(buffer);
}

void FlushBufferRing::ReturnBlock(FlushBuffer& buffer) {
  if (buffer.ReturnBlock()) Vote(buffer);
}

absl::Status FlushBufferRing::WaitForBuffer(int& attempts) {
  if (++attempts < kSpinsBeforeHelping) {
    CpuRelax();
    return absl::OkStatus();
  }
  waits_.fetch_add(1, std::memory_order_relaxed);
  absl::Status status = sink_->HelpDrain();
  std::this_thread::yield();
  return status;
}

FlushBufferRing::Stats FlushBufferRing::stats() const {
  return Stats{.seals = seals_.load(std::memory_order_relaxed),
               .cuts = cuts_.load(std::memory_order_relaxed),
               .dispatches = dispatches_.load(std::memory_order_relaxed),
               .recycles = recycles_.load(std::memory_order_relaxed),
               .waits = waits_.load(std::memory_order_relaxed),
               .abandoned = abandoned_.load(std::memory_order_relaxed)};
}

}  // namespace lss
