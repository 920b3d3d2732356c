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

// A buffer that is sealed, has no writers left, and belongs to the sink until
// it passes it back with FlushBufferRing::Recycle.
struct SealedBuffer {
  FlushBuffer* buffer = nullptr;
  uint64_t generation = 0;
  uint64_t address = 0;  // LSS address of the buffer's first byte
  size_t used = 0;       // bytes of records, > 0
  size_t padded = 0;     // `used` rounded up to the block size; the bytes in
                         // [used, padded) are zero

  // The bytes to write at `address`.
  std::span<const std::byte> bytes() const { return {buffer->data(), padded}; }
};

class SealedBufferSink {
 public:
  virtual ~SealedBufferSink() = default;

  // Called exactly once per buffer generation, by the thread that made the
  // buffer "sealed with no writers" (a sealer or the last committer). It runs
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
