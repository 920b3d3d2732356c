// The narrow interface between the ring (which never does I/O) and whatever
// writes sealed buffers out (flush/'s Appender, or a test sink).

#ifndef LSS_RING_SEALED_BUFFER_SINK_H_
#define LSS_RING_SEALED_BUFFER_SINK_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "ring/flush_buffer.h"

namespace lss {

// One block of a flush buffer, complete (no writer copies into it any more),
// which belongs to the sink until it passes it back with
// FlushBufferRing::Recycle. A buffer is handed out as one block when it is
// sealed, or as several when Cut ended blocks while it stayed open.
struct SealedBuffer {
  FlushBuffer* buffer = nullptr;
  uint64_t generation = 0;
  uint64_t address = 0;  // LSS address of the block's first byte
  size_t start = 0;      // offset of that byte in the buffer
  size_t used = 0;       // bytes of the block, > 0
  size_t padded = 0;     // `used` rounded up to the block size; the bytes in
                         // [used, padded) are zero
  bool last = true;      // the buffer is sealed and this is its last block

  // The block's bytes: write them at `address`.
  std::span<std::byte> bytes() const {
    return {buffer->data() + start, padded};
  }
};

class SealedBufferSink {
 public:
  virtual ~SealedBufferSink() = default;

  // Called exactly once per block, by the thread that ended its last copy
  // (a sealer, a cutter or the last committer); blocks may come out of
  // address order, within a buffer too. It runs
  // inside the ring's Reserve, Commit or SealCurrent, so it must not wait for
  // ring space; it may call Recycle before returning.
  virtual void Dispatch(const SealedBuffer& sealed) = 0;

  // Called by threads that wait for a buffer to be recycled (back-pressure):
  // make progress on dispatched buffers, e.g. reap I/O completions, blocking
  // briefly if that is how completions arrive. Must return promptly when
  // nothing is in flight. An error (the sink has failed and will recycle
  // nothing more) ends the wait: Reserve and SealCurrent return it.
  virtual absl::Status HelpDrain() = 0;
};

// Takes back a dispatched buffer once its bytes are written (and durable, if
// required). FlushBufferRing is one; a store may stand in between to learn
// when a buffer's memory stops holding its block.
class BufferRecycler {
 public:
  virtual ~BufferRecycler() = default;
  virtual void Recycle(const SealedBuffer& sealed) = 0;
};

}  // namespace lss

#endif  // LSS_RING_SEALED_BUFFER_SINK_H_
