#include "flush/uring_io_ring.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "flush/io_error.h"
#include "flush/direct_io_alignment.h"

namespace lss {
namespace {

// EBUSY/EAGAIN answers to io_uring_submit in a row, with nothing in flight,
// before Submit gives up. With the back-off between them, about 6 ms.
constexpr int kMaxIdleRefusals = 16;

// EPERM and ENOSYS keep codes of their own so that CreateIoRing can tell
// "io_uring is disabled here" from other failures; the errnos that
// absl::ErrnoToStatusCode maps onto the same codes (EACCES, ENOTSUP, ...)
// become Internal instead.
absl::StatusCode InitErrorCode(int err) {
  if (err == EPERM) return absl::StatusCode::kPermissionDenied;
  if (err == ENOSYS) return absl::StatusCode::kUnimplemented;
  const absl::StatusCode code = absl::ErrnoToStatusCode(err);
  if (code == absl::StatusCode::kPermissionDenied ||
      code == absl::StatusCode::kUnimplemented) {
    return absl::StatusCode::kInternal;
  }
  return code;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UringIoRing>> UringIoRing::Create(
    unsigned queue_depth) {
  if (queue_depth == 0) {
    return absl::InvalidArgumentError("UringIoRing: queue depth 0");
  }
  io_uring ring = {};
  io_uring_params params = {};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = 2 * queue_depth;
  const int ret = io_uring_queue_init_params(queue_depth, &ring, &params);
  if (ret < 0) {
    return absl::Status(
        InitErrorCode(-ret),
        absl::StrCat("io_uring_queue_init(queue depth ", queue_depth,
                     ", cq entries ", params.cq_entries,
                     ") failed: ", std::strerror(-ret), " (errno ", -ret, ")"));
  }
  return std::unique_ptr<UringIoRing>(new UringIoRing(queue_depth, ring));
}

UringIoRing::~UringIoRing() {
  const size_t unsubmitted = io_uring_sq_ready(&ring_);
  std::vector<IoCompletion> discarded;
  while (pending() > unsubmitted &&
         Reap(pending() - unsubmitted, capacity_, discarded).ok()) {
    discarded.clear();
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
  // Refusals in a row that no completion could answer: the kernel is short
  // of memory for requests, or was when a concurrent Reap emptied the queue.
  int idle_refusals = 0;
  while (io_uring_sq_ready(&ring_) > 0) {
    const int ret = io_uring_submit(&ring_);
    if (ret >= 0) {
      idle_refusals = 0;
      continue;
    }
    if (ret == -EINTR) continue;
    if (ret == -EBUSY || ret == -EAGAIN) {
      const absl::StatusOr<size_t> moved = MakeRoom();
      if (!moved.ok()) return moved.status();
      if (*moved > 0) continue;
      if (++idle_refusals == kMaxIdleRefusals) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "io_uring_submit on ring fd ", ring_.ring_fd,
            " failed: ", std::strerror(-ret), " (errno ", -ret, ") ",
            idle_refusals,
            " times in a row with no operation in flight whose completion "
            "could make room"));
      }
      // Exponential, 1 us to 1 ms: time for the kernel to find memory.
      std::this_thread::sleep_for(
          std::chrono::microseconds(1 << std::min(idle_refusals - 1, 10)));
      continue;
    }
    return IoErrorStatus(
        -ret, absl::StrCat("io_uring_submit on ring fd ", ring_.ring_fd));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> UringIoRing::MakeRoom() {
  std::lock_guard<std::mutex> lock(cq_mu_);
  if (const size_t moved = Drain(capacity_, stash_); moved > 0) return moved;
  // Submitted, and neither reaped nor stashed: what can still complete. Only
  // Reap lowers pending(), and it needs cq_mu_, so this cannot go stale.
  const size_t in_flight =
      pending() - io_uring_sq_ready(&ring_) - stash_.size();
  if (in_flight == 0) return 0;
  if (absl::Status waited = WaitForCqes(1); !waited.ok()) return waited;
  return Drain(capacity_, stash_);
}

size_t UringIoRing::Drain(size_t max, std::vector<IoCompletion>& out) {
  size_t n = 0;
  io_uring_cqe* cqe = nullptr;
  while (n < max && io_uring_peek_cqe(&ring_, &cqe) == 0) {
    out.push_back({io_uring_cqe_get_data64(cqe), cqe->res});
    io_uring_cqe_seen(&ring_, cqe);
    ++n;
  }
  return n;
}

absl::Status UringIoRing::WaitForCqes(size_t n) {
  io_uring_cqe* cqe = nullptr;
  int ret;
  do {
    ret = io_uring_wait_cqe_nr(&ring_, &cqe, static_cast<unsigned>(n));
  } while (ret == -EINTR);
  if (ret < 0) {
    return IoErrorStatus(-ret, absl::StrCat("io_uring_wait_cqe_nr(", n,
                                            ") on ring fd ", ring_.ring_fd));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> UringIoRing::Reap(size_t min_complete, size_t max,
                                         std::vector<IoCompletion>& out) {
  // Only this (serialised) caller lowers pending(), so the check cannot be
  // overtaken; waiting for more than that would block forever.
  if (const size_t now = pending(); min_complete > now) {
    return absl::InvalidArgumentError(
        absl::StrCat("UringIoRing::Reap: min_complete ", min_complete,
                     " exceeds the ", now, " pending operations"));
  }
  std::lock_guard<std::mutex> lock(cq_mu_);
  if (min_complete > stash_.size()) {
    if (absl::Status waited = WaitForCqes(min_complete - stash_.size());
        !waited.ok()) {
      return waited;
    }
  }
  if (const unsigned lost = IO_URING_READ_ONCE(*ring_.cq.koverflow);
      lost != 0) {
    return absl::InternalError(absl::StrCat("io_uring ring fd ", ring_.ring_fd,
                                            ": completion queue overflowed, ",
                                            lost, " completions lost"));
  }
  const size_t from_stash = std::min(max, stash_.size());
  out.insert(out.end(), stash_.begin(), stash_.begin() + from_stash);
  stash_.erase(stash_.begin(), stash_.begin() + from_stash);
  const size_t n = from_stash + Drain(max - from_stash, out);
  pending_.fetch_sub(n, std::memory_order_acq_rel);
  return n;
}

absl::StatusOr<size_t> UringIoRing::DirectIoAlignment(int fd) const {
  return QueryDirectIoAlignment(fd);
}

}  // namespace lss
