// UringIoRing: IoRing over liburing.
//
// The completion queue is twice the submission queue and pending() never
// exceeds the submission queue's depth, so completions can never be dropped
// even without IORING_FEAT_NODROP. A full submission queue is reported as
// "false" from Prepare*, never asserted on.

#ifndef LSS_FLUSH_URING_IO_RING_H_
#define LSS_FLUSH_URING_IO_RING_H_

#include <liburing.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss {

class UringIoRing final : public IoRing {
 public:
  // Fails with the errno of io_uring_queue_init in the message; EPERM and
  // ENOSYS (io_uring disabled) map to PermissionDenied and Unimplemented.
  static absl::StatusOr<std::unique_ptr<UringIoRing>> Create(
      unsigned queue_depth);
  // Submits and reaps anything still pending first, so the kernel is done
  // with every buffer before the ring goes away.
  ~UringIoRing() override;

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next = false) override;
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next = false) override;
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next = false) override;
  absl::Status Submit() override;
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override;
  size_t pending() const override {
    return pending_.load(std::memory_order_acquire);
  }
  size_t capacity() const override { return capacity_; }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override;

 private:
  explicit UringIoRing(unsigned queue_depth) : capacity_(queue_depth) {}
  // A free SQE, or nullptr when the queue is full.
  io_uring_sqe* NextSqe();
  // Tags and links a prepared SQE and counts it as pending.
  void Queued(io_uring_sqe* sqe, uint64_t tag, bool link_next);
  // Moves every available CQE to `out`. REQUIRES cq_mu_.
  size_t Drain(size_t max, std::vector<IoCompletion>& out);

  io_uring ring_ = {};
  const size_t capacity_;
  std::atomic<size_t> pending_{0};
  // Guards the completion queue and stash_: Reap, and Submit when the kernel
  // answers EBUSY and completions must be moved out of its way.
  std::mutex cq_mu_;
  std::vector<IoCompletion> stash_;
};

}  // namespace lss

#endif  // LSS_FLUSH_URING_IO_RING_H_
