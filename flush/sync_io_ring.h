// SyncIoRing: the portable IoRing. Submit runs the queued operations in
// order on the calling thread with pwrite, pread and fdatasync, one system
// call each (a short transfer is reported, not completed, exactly as
// io_uring reports it). Used where io_uring is disabled (see
// CreateIoRing) and as a second implementation in tests.

#ifndef LSS_FLUSH_SYNC_IO_RING_H_
#define LSS_FLUSH_SYNC_IO_RING_H_

#include <atomic>
#include <mutex>
#include <vector>

#include "flush/io_ring.h"

namespace lss {

class SyncIoRing final : public IoRing {
 public:
  explicit SyncIoRing(size_t capacity) : capacity_(capacity) {}

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next = false) override;
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next = false) override;
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next = false) override;
  absl::Status Submit() override;
  // Never blocks: every submitted operation has already completed.
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
  static int32_t Execute(const Op& op);

  const size_t capacity_;
  std::atomic<size_t> pending_{0};
  std::vector<Op> queued_;  // touched by the submitter only
  std::mutex done_mu_;      // Submit hands completions to the reaper
  std::vector<IoCompletion> done_;
};

}  // namespace lss

#endif  // LSS_FLUSH_SYNC_IO_RING_H_
