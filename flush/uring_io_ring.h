// UringIoRing: IoRing over liburing.
//
// The completion queue holds twice as many entries as the submission queue,
// and pending() never exceeds capacity() (the submission queue's depth), so
// the kernel never has more completions to post than the completion queue
// holds: none can be dropped, whether or not the kernel offers
// IORING_FEAT_NODROP. A full queue makes Prepare* return false; it is never
// asserted on.

#ifndef LSS_FLUSH_URING_IO_RING_H_
#define LSS_FLUSH_URING_IO_RING_H_

#include <liburing.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss {

class UringIoRing final : public IoRing {
 public:
  // A ring for `queue_depth` pending operations. Errors name the depth and the
  // errno. EPERM and ENOSYS from io_uring_queue_init (io_uring disabled, as in
  // many containers) are PermissionDenied and Unimplemented; no other failure
  // has either code, so CreateIoRing can tell "disabled" from "broken".
  static absl::StatusOr<std::unique_ptr<UringIoRing>> Create(
      unsigned queue_depth);

  // Destroying a ring with operations pending is the owner's bug (see
  // IoRing), but the destructor still reaps every operation in flight before
  // io_uring_queue_exit: the kernel finishes them after the ring is closed,
  // so their buffers could be freed under it. Operations queued and never
  // submitted are dropped unrun; the kernel never saw them. Only a ring that
  // already failed (Reap returned an error) can be left with operations in
  // flight.
  ~UringIoRing() override;

  UringIoRing(const UringIoRing&) = delete;
  UringIoRing& operator=(const UringIoRing&) = delete;

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next = false) override;
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next = false) override;
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next = false) override;
  // Retries EINTR. On EBUSY/EAGAIN it makes room by taking completions off
  // the queue (returned by the next Reap) and retries; with nothing in
  // flight it retries after a back-off, and fails with ResourceExhausted
  // after 16 such refusals in a row (about 6 ms).
  absl::Status Submit() override;
  // Also fails, with Internal, once the kernel reports completion-queue
  // overflow (completions were lost; the ring is unusable), and with
  // InvalidArgument when min_complete exceeds pending().
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override;
  size_t pending() const override {
    return pending_.load(std::memory_order_acquire);
  }
  size_t capacity() const override { return capacity_; }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override;

 private:
  // Takes over a ring io_uring_queue_init_params set up; the struct holds
  // only the fd and pointers into the kernel's mappings, so a copy is the
  // ring.
  UringIoRing(unsigned queue_depth, const io_uring& ring)
      : ring_(ring), capacity_(queue_depth) {}

  // A free SQE, or nullptr when pending() == capacity() or the SQ is full.
  io_uring_sqe* NextSqe();
  // Tags and links a prepared SQE and counts it as pending.
  void Queued(io_uring_sqe* sqe, uint64_t tag, bool link_next);
  // Submit's answer to EBUSY/EAGAIN: moves the completions that are ready
  // into stash_, or waits for one if none is; returns how many it moved.
  // 0 means nothing was in flight (a concurrent Reap may have taken it all
  // since the refusal), so there is nothing to wait for and Submit retries.
  absl::StatusOr<size_t> MakeRoom();
  // Moves up to `max` ready CQEs to `out`; returns how many. REQUIRES cq_mu_.
  size_t Drain(size_t max, std::vector<IoCompletion>& out);
  // Waits until at least `n` CQEs are ready, retrying EINTR. REQUIRES cq_mu_.
  absl::Status WaitForCqes(size_t n);

  io_uring ring_;
  const size_t capacity_;
  // Queued + submitted - reaped. Prepare* (the submitter) adds, Reap (the
  // reaper) subtracts.
  std::atomic<size_t> pending_{0};
  // Guards the completion queue and stash_: Reap, and Submit when the kernel
  // answers EBUSY and completions must be moved out of its way.
  std::mutex cq_mu_;
  // Completions taken off the CQ by Submit, returned first by the next Reap.
  std::vector<IoCompletion> stash_;
};

}  // namespace lss

#endif  // LSS_FLUSH_URING_IO_RING_H_
