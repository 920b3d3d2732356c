#include "flush/uring_io_ring.h"

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flush/direct_io_alignment.h"

namespace lss {

absl::StatusOr<std::unique_ptr<UringIoRing>> UringIoRing::Create(
    unsigned queue_depth) {
  if (queue_depth == 0) {
    return absl::InvalidArgumentError("UringIoRing: queue depth 0");
  }
  std::unique_ptr<UringIoRing> ring(new UringIoRing(queue_depth));
  io_uring_params params = {};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = 2 * queue_depth;
  const int ret = io_uring_queue_init_params(queue_depth, &ring->ring_, &params);
  if (ret < 0) {
    return absl::Status(absl::ErrnoToStatusCode(-ret),
                        absl::StrCat("io_uring_queue_init(", queue_depth,
                                     ") failed: ", std::strerror(-ret),
                                     " (errno ", -ret, ")"));
  }
  return ring;
}

UringIoRing::~UringIoRing() {
  if (pending() > 0) {
    Submit().IgnoreError();
    std::vector<IoCompletion> ignored;
    while (pending() > 0 && Reap(1, pending(), ignored).ok()) ignored.clear();
  }
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* UringIoRing::NextSqe() {
  if (pending() >= capacity_) return nullptr;
  return io_uring_get_sqe(&ring_);
}

void UringIoRing::Queued(io_uring_sqe* sqe, uint64_t tag, bool link_next) {
  io_uring_sqe_set_data64(sqe, tag);
  if (link_next) sqe->flags |= IOSQE_IO_LINK;
  pending_.fetch_add(1, std::memory_order_acq_rel);
}

bool UringIoRing::PrepareWrite(int fd, std::span<const std::byte> data,
                               uint64_t offset, uint64_t tag, bool link_next) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_write(sqe, fd, data.data(), data.size(), offset);
  Queued(sqe, tag, link_next);
  return true;
}

bool UringIoRing::PrepareRead(int fd, std::span<std::byte> data,
                              uint64_t offset, uint64_t tag, bool link_next) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_read(sqe, fd, data.data(), data.size(), offset);
  Queued(sqe, tag, link_next);
  return true;
}

bool UringIoRing::PrepareDataSync(int fd, uint64_t tag, bool link_next) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
  Queued(sqe, tag, link_next);
  return true;
}

absl::Status UringIoRing::Submit() {
  while (io_uring_sq_ready(&ring_) > 0) {
    const int ret = io_uring_submit(&ring_);
    if (ret >= 0 || ret == -EINTR) continue;
    if (ret == -EBUSY || ret == -EAGAIN) {
      // The kernel wants completions consumed (or memory) first: move what
      // is there aside for the next Reap, and give it a moment.
      {
        std::lock_guard<std::mutex> lock(cq_mu_);
        Drain(capacity_, stash_);
      }
      std::this_thread::yield();
      continue;
    }
    return absl::Status(absl::ErrnoToStatusCode(-ret),
                        absl::StrCat("io_uring_submit failed: ",
                                     std::strerror(-ret), " (errno ", -ret,
                                     ")"));
  }
  return absl::OkStatus();
}

size_t UringIoRing::Drain(size_t max, std::vector<IoCompletion>& out) {
  size_t n = 0;
  io_uring_cqe* cqe = nullptr;
  while (n < max && io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
    out.push_back({io_uring_cqe_get_data64(cqe), cqe->res});
    io_uring_cqe_seen(&ring_, cqe);
    ++n;
  }
  return n;
}

absl::StatusOr<size_t> UringIoRing::Reap(size_t min_complete, size_t max,
                                         std::vector<IoCompletion>& out) {
  std::lock_guard<std::mutex> lock(cq_mu_);
  size_t n = std::min(max, stash_.size());
  out.insert(out.end(), stash_.begin(), stash_.begin() + n);
  stash_.erase(stash_.begin(), stash_.begin() + n);
  if (n < min_complete) {
    io_uring_cqe* cqe = nullptr;
    int ret;
    do {
      ret = io_uring_wait_cqe_nr(&ring_, &cqe, min_complete - n);
    } while (ret == -EINTR);
    if (ret < 0) {
      return absl::Status(absl::ErrnoToStatusCode(-ret),
                          absl::StrCat("io_uring_wait_cqe failed: ",
                                       std::strerror(-ret), " (errno ", -ret,
                                       ")"));
    }
  }
  n += Drain(max - n, out);
  if (*ring_.cq.koverflow != 0) {
    return absl::InternalError(
        absl::StrCat("io_uring completion queue overflowed ",
                     *ring_.cq.koverflow, " times: completions were lost"));
  }
  pending_.fetch_sub(n, std::memory_order_acq_rel);
  return n;
}

absl::StatusOr<size_t> UringIoRing::DirectIoAlignment(int fd) const {
  return QueryDirectIoAlignment(fd);
}

}  // namespace lss
