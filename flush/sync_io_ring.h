// SyncIoRing: the portable IoRing. Submit runs the queued operations in
// order on the calling thread with pwrite, pread and fdatasync, one system
// call each: a short transfer is reported, not completed, exactly as
// io_uring reports it, and only EINTR is retried. Used where io_uring is
// disabled (see CreateIoRing) and as a second implementation in tests.

#ifndef LSS_FLUSH_SYNC_IO_RING_H_
#define LSS_FLUSH_SYNC_IO_RING_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss {

class SyncIoRing final : public IoRing {
 public:
  // At most `capacity` (> 0) operations pending at once.
  explicit SyncIoRing(size_t capacity);

  SyncIoRing(const SyncIoRing&) = delete;
  SyncIoRing& operator=(const SyncIoRing&) = delete;

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next = false) override;
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next = false) override;
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next = false) override;
  // Never fails: an operation's error is its completion's result.
  absl::Status Submit() override;
  // Blocks only while a concurrent Submit has yet to run what min_complete
  // counts on. Fails with InvalidArgument when min_complete exceeds
  // pending().
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override;
  size_t pending() const override {
    return pending_.load(std::memory_order_acquire);
  }
  size_t capacity() const override { return capacity_; }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override;

 private:
  enum class Kind { kWrite, kRead, kDataSync };
  struct Op {
    Kind kind;
    int fd;
    std::byte* data;
    size_t len;
    uint64_t offset;
    uint64_t tag;
    bool link_next;
  };
  bool Queue(const Op& op);
  // One system call (retried on EINTR): bytes transferred or -errno.
  static int32_t Execute(const Op& op);

  const size_t capacity_;
  // Queued + submitted - reaped. Prepare* adds, Reap subtracts.
  std::atomic<size_t> pending_{0};
  std::vector<Op> queued_;  // the submitter's alone
  // Submit hands completions to the reaper through done_.
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::vector<IoCompletion> done_;
};

}  // namespace lss

#endif  // LSS_FLUSH_SYNC_IO_RING_H_
