#include "flush/sync_io_ring.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "flush/direct_io_alignment.h"
#include "ring/check.h"

namespace lss {

SyncIoRing::SyncIoRing(size_t capacity) : capacity_(capacity) {
  LSS_CHECK(capacity > 0, "a SyncIoRing of capacity 0 could never queue");
}

bool SyncIoRing::Queue(const Op& op) {
  if (pending() >= capacity_) return false;
  queued_.push_back(op);
  pending_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

bool SyncIoRing::PrepareWrite(int fd, std::span<const std::byte> data,
                              uint64_t offset, uint64_t tag, bool link_next) {
  // pwrite only reads through the pointer; Op stores one pointer type.
  return Queue({Kind::kWrite, fd, const_cast<std::byte*>(data.data()),
                data.size(), offset, tag, link_next});
}

bool SyncIoRing::PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                             uint64_t tag, bool link_next) {
  return Queue(
      {Kind::kRead, fd, data.data(), data.size(), offset, tag, link_next});
}

bool SyncIoRing::PrepareDataSync(int fd, uint64_t tag, bool link_next) {
  return Queue({Kind::kDataSync, fd, nullptr, 0, 0, tag, link_next});
}

int32_t SyncIoRing::Execute(const Op& op) {
  ssize_t ret = 0;
  do {
    switch (op.kind) {
      case Kind::kWrite:
        ret = pwrite(op.fd, op.data, op.len, static_cast<off_t>(op.offset));
        break;
      case Kind::kRead:
        ret = pread(op.fd, op.data, op.len, static_cast<off_t>(op.offset));
        break;
      case Kind::kDataSync:
        ret = fdatasync(op.fd);
        break;
    }
  } while (ret < 0 && errno == EINTR);
  return ret < 0 ? -errno : static_cast<int32_t>(ret);
}

absl::Status SyncIoRing::Submit() {
  std::vector<IoCompletion> finished;
  finished.reserve(queued_.size());
  bool cancel_rest = false;  // an earlier member of this chain failed
  for (const Op& op : queued_) {
    int32_t result = -ECANCELED;
    if (!cancel_rest) {
      result = Execute(op);
      const bool short_transfer = op.kind != Kind::kDataSync && result >= 0 &&
                                  static_cast<size_t>(result) < op.len;
      cancel_rest = op.link_next && (result < 0 || short_transfer);
    }
    if (!op.link_next) cancel_rest = false;  // the chain ends here
    finished.push_back({op.tag, result});
  }
  queued_.clear();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.insert(done_.end(), finished.begin(), finished.end());
  }
  done_cv_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<size_t> SyncIoRing::Reap(size_t min_complete, size_t max,
                                        std::vector<IoCompletion>& out) {
  // Only this (serialised) caller lowers pending(), so the check cannot be
  // overtaken; waiting for more than that would block forever.
  if (const size_t now = pending(); min_complete > now) {
    return absl::InvalidArgumentError(
        absl::StrCat("SyncIoRing::Reap: min_complete ", min_complete,
                     " exceeds the ", now, " pending operations"));
  }
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [&] { return done_.size() >= min_complete; });
  const size_t n = std::min(max, done_.size());
  out.insert(out.end(), done_.begin(), done_.begin() + n);
  done_.erase(done_.begin(), done_.begin() + n);
  pending_.fetch_sub(n, std::memory_order_acq_rel);
  return n;
}

absl::StatusOr<size_t> SyncIoRing::DirectIoAlignment(int fd) const {
  return QueryDirectIoAlignment(fd);
}

}  // namespace lss
