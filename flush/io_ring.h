// IoRing: the narrow I/O seam between the appender and the kernel.
//
// Operations are queued with Prepare*, handed over with Submit, and finish
// as IoCompletions reaped in any order; a completion is matched to its
// operation by the caller's tag alone (completion order means nothing).
// Implementations: UringIoRing (liburing), SyncIoRing (pwrite/fdatasync on
// the calling thread, for hosts where io_uring is disabled) and, for tests,
// testing/FakeIoRing.
//
// Thread safety: Prepare* and Submit must be serialised among themselves
// (one submitter at a time); Reap must be serialised among its callers (one
// reaper at a time); a submitter and a reaper may run concurrently.
// pending() and capacity() may be called from any thread.
//
// Lifetime: the memory an operation reads or writes must stay valid until its
// completion has been reaped. Destroying a ring with operations pending is a
// bug: the owner reaps everything first (the kernel may still be using the
// memory).

#ifndef LSS_FLUSH_IO_RING_H_
#define LSS_FLUSH_IO_RING_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lss {

// One finished operation.
struct IoCompletion {
  uint64_t tag;    // the tag given to Prepare*
  int32_t result;  // bytes transferred (>= 0; may be short) or -errno
};

class IoRing {
 public:
  virtual ~IoRing() = default;

  // Queue one operation for the next Submit. Returns false, and queues
  // nothing, when pending() == capacity(): reap, then try again.
  //
  // `link_next` chains the next queued operation to this one: it starts only
  // after this one has completed in full. If this one fails or is short, the
  // rest of the chain completes with -ECANCELED without running. A chain
  // ends at the first operation queued without `link_next` and never spans
  // Submit calls.
  //
  // With O_DIRECT, `data`'s address and size and `offset` must be multiples
  // of DirectIoAlignment(fd); otherwise the operation completes with -EINVAL.
  virtual bool PrepareWrite(int fd, std::span<const std::byte> data,
                            uint64_t offset, uint64_t tag,
                            bool link_next = false) = 0;
  virtual bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                           uint64_t tag, bool link_next = false) = 0;
  // fdatasync(fd): covers only writes whose completions were reaped before
  // it was queued, or that are linked ahead of it in one chain.
  virtual bool PrepareDataSync(int fd, uint64_t tag,
                               bool link_next = false) = 0;

  // Hands every queued operation to the kernel, retrying EINTR and EBUSY
  // (EBUSY: completions must be reaped first; the ring keeps them for the
  // next Reap). An error means the ring itself is unusable.
  virtual absl::Status Submit() = 0;

  // Appends up to `max` completions to `out`, first blocking until at least
  // `min_complete` are available (0: never block; it must not exceed the
  // number of submitted operations). Returns how many were appended.
  // Retries EINTR.
  virtual absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                                      std::vector<IoCompletion>& out) = 0;

  // Operations queued or submitted whose completions have not been reaped.
  virtual size_t pending() const = 0;
  // The most operations that can be pending at once (the queue depth).
  virtual size_t capacity() const = 0;

  // What O_DIRECT I/O on `fd` must align memory, offsets and lengths to:
  // statx(STATX_DIOALIGN) where the kernel reports it, else the device's
  // logical block size. Never assumed.
  virtual absl::StatusOr<size_t> DirectIoAlignment(int fd) const = 0;
};

}  // namespace lss

#endif  // LSS_FLUSH_IO_RING_H_
