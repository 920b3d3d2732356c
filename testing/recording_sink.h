// RecordingSink: a SealedBufferSink for tests of the ring. It copies every
// dispatched buffer (the "disk"), checks the hand-out contract on the way in,
// and recycles either at once or only when asked (to hold buffers "in flight"
// and exercise back-pressure).
//
// Thread safety: all methods are safe for concurrent use.

#ifndef LSS_TESTING_RECORDING_SINK_H_
#define LSS_TESTING_RECORDING_SINK_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ring/flush_buffer_ring.h"
#include "ring/sealed_buffer_sink.h"

namespace lss::testing {

class RecordingSink : public SealedBufferSink {
 public:
  enum class Recycling {
    kInline,    // recycle inside Dispatch, as if the write were instant
    kDeferred,  // hold until HelpDrain or RecycleAll
  };
  struct Written {
    uint64_t generation;
    uint64_t address;
    size_t used;
    size_t padded;
    BufferState state_at_dispatch;
    std::vector<std::byte> bytes;  // `padded` bytes, as handed out
  };

  explicit RecordingSink(Recycling recycling) : recycling_(recycling) {}

  // Must be called before the ring dispatches anything.
  void set_ring(FlushBufferRing* ring) { ring_ = ring; }

  void Dispatch(const SealedBuffer& sealed) override;
  // Deferred mode: recycles the oldest held buffer, if any. Returns the
  // error set by Fail, if any.
  absl::Status HelpDrain() override;

  // Makes every later HelpDrain return `status`, as a failed writer would.
  void Fail(absl::Status status);

  // Recycles every held buffer; returns how many.
  size_t RecycleAll();
  size_t held() const;
  // Everything handed out so far, in generation order.
  std::vector<Written> written() const;

  // The `len` bytes written at LSS address `address`, or nothing when they
  // do not lie inside the used part of one written buffer.
  std::optional<std::vector<std::byte>> Read(uint64_t address,
                                             size_t len) const;

  // Contract violations (empty when all is well): a buffer handed out with
  // writers, unsealed, or with non-zero padding; and, over everything handed
  // out so far, a generation handed out twice or skipped, or a gap between
  // consecutive generations' addresses. Call once dispatching has settled.
  std::vector<std::string> violations() const;

 private:
  const Recycling recycling_;
  FlushBufferRing* ring_ = nullptr;
  mutable std::mutex mu_;
  std::vector<Written> written_;
  std::deque<SealedBuffer> held_;
  std::vector<std::string> violations_;
  absl::Status failure_;
};

}  // namespace lss::testing

#endif  // LSS_TESTING_RECORDING_SINK_H_
