#include "testing/fake_io_ring.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "ring/check.h"
#include "testing/sim_disk.h"

namespace lss::testing {

FakeIoRing::FakeIoRing(FakeIoRingOptions options)
    : options_(options), rng_(options.seed) {}

bool FakeIoRing::OneIn(int n) {
  return n > 0 && std::uniform_int_distribution<int>(1, n)(rng_) == 1;
}

size_t FakeIoRing::Alignment() const {
  if (options_.direct_io_alignment != 0) return options_.direct_io_alignment;
  return options_.disk != nullptr ? options_.disk->direct_io_alignment() : 512;
}

bool FakeIoRing::Queue(const Op& op) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_ >= options_.capacity) return false;
  if (OneIn(options_.sq_full_one_in)) {
    ++injected_.sq_full;
    return false;
  }
  queued_.push_back(op);
  ++pending_;
  return true;
}

bool FakeIoRing::PrepareWrite(int fd, std::span<const std::byte> data,
                              uint64_t offset, uint64_t tag, bool link_next) {
  // Writes only read through the pointer; Op stores one pointer type.
  return Queue({Event::Kind::kWrite, fd, const_cast<std::byte*>(data.data()),
                data.size(), offset, tag, link_next});
}

bool FakeIoRing::PrepareRead(int fd, std::span<std::byte> data,
                             uint64_t offset, uint64_t tag, bool link_next) {
  return Queue({Event::Kind::kRead, fd, data.data(), data.size(), offset, tag,
                link_next});
}

bool FakeIoRing::PrepareDataSync(int fd, uint64_t tag, bool link_next) {
  return Queue({Event::Kind::kDataSync, fd, nullptr, 0, 0, tag, link_next});
}

absl::Status FakeIoRing::Submit() {
  std::lock_guard<std::mutex> lock(mu_);
  // EBUSY is retried inside Submit, as the interface promises; the caller
  // cannot tell, so only count it.
  if (!queued_.empty() && OneIn(options_.ebusy_on_submit_one_in)) {
    ++injected_.ebusy;
  }
  std::uniform_int_distribution<int> delay(0, options_.max_delay_reaps);
  Unit unit;
  for (const Op& op : queued_) {
    unit.ops.push_back(op);
    if (op.link_next) continue;  // the chain goes on
    unit.delay = delay(rng_);
    submitted_.push_back(std::move(unit));
    unit = Unit();
  }
  // A chain never spans Submit calls: a trailing link_next ends here.
  if (!unit.ops.empty()) {
    unit.delay = delay(rng_);
    submitted_.push_back(std::move(unit));
  }
  queued_.clear();
  return absl::OkStatus();
}

absl::StatusOr<size_t> FakeIoRing::Reap(size_t min_complete, size_t max,
                                        std::vector<IoCompletion>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Unit& unit : submitted_) --unit.delay;
  if (options_.reorder) std::shuffle(submitted_.begin(), submitted_.end(), rng_);
  // Run what is due; if that is not enough for min_complete, time moves on
  // and the next units run too.
  auto next = submitted_.begin();
  for (; next != submitted_.end(); ++next) {
    if (next->delay > 0 && ready_.size() >= min_complete) break;
    ExecuteUnit(*next);
  }
  submitted_.erase(submitted_.begin(), next);
  LSS_CHECK(ready_.size() >= min_complete,
            "Reap waits for operations that were never submitted");
  if (options_.reorder) std::shuffle(ready_.begin(), ready_.end(), rng_);
  const size_t n = std::min(max, ready_.size());
  out.insert(out.end(), ready_.begin(), ready_.begin() + n);
  ready_.erase(ready_.begin(), ready_.begin() + n);
  pending_ -= n;
  return n;
}

void FakeIoRing::ExecuteUnit(Unit& unit) {
  const bool chain = unit.ops.size() > 1;
  bool cancel_rest = false;
  for (const Op& op : unit.ops) {
    int32_t result = -ECANCELED;
    if (cancel_rest) {
      ++injected_.cancelled;
    } else {
      result = Execute(op, chain);
      const bool short_transfer = op.kind != Event::Kind::kDataSync &&
                                  result >= 0 &&
                                  static_cast<size_t>(result) < op.len;
      cancel_rest = result < 0 || short_transfer;
    }
    events_.push_back({op.kind, op.fd, op.offset, op.len, result, op.tag});
    ready_.push_back({op.tag, result});
  }
}

int32_t FakeIoRing::Execute(const Op& op, bool in_chain) {
  if (in_chain && op.link_next && OneIn(options_.link_break_one_in)) {
    ++injected_.link_breaks;
    return -EIO;
  }
  if (OneIn(options_.eagain_one_in)) {
    ++injected_.eagain;
    return -EAGAIN;
  }
  if (OneIn(options_.eintr_one_in)) {
    ++injected_.eintr;
    return -EINTR;
  }
  switch (op.kind) {
    case Event::Kind::kWrite:
      return ExecuteWrite(op);
    case Event::Kind::kRead:
      return ExecuteRead(op);
    case Event::Kind::kDataSync:
      if (options_.fsync_eio_once && !fsync_failed_) {
        fsync_failed_ = true;
        ++injected_.fsync_eio;
        return -EIO;
      }
      if (options_.disk != nullptr) return options_.disk->Fdatasync(op.fd);
      durable_[op.fd] = images_[op.fd];
      return 0;
  }
  return -EINVAL;
}

bool FakeIoRing::Misaligned(const Op& op) const {
  const size_t a = options_.direct_io_alignment;
  return a != 0 && (reinterpret_cast<uintptr_t>(op.data) % a != 0 ||
                    op.len % a != 0 || op.offset % a != 0);
}

int32_t FakeIoRing::ExecuteRead(const Op& op) {
  if (Misaligned(op)) {
    ++injected_.einval;
    return -EINVAL;
  }
  if (OneIn(options_.read_eio_one_in)) {
    ++injected_.read_eio;
    return -EIO;
  }
  size_t n = op.len;
  if (n / Alignment() > 1 && OneIn(options_.short_read_one_in)) {
    n = Alignment() *
        std::uniform_int_distribution<size_t>(1, n / Alignment() - 1)(rng_);
    ++injected_.short_reads;
  }
  if (options_.disk != nullptr) {
    const int64_t size = options_.disk->SizeOf(op.fd);
    if (size < 0) return static_cast<int32_t>(size);
    if (op.offset >= static_cast<uint64_t>(size)) return 0;
    n = std::min<size_t>(n, size - op.offset);
    return static_cast<int32_t>(
        options_.disk->PRead(op.fd, op.offset, {op.data, n}));
  }
  if (options_.reads_images_of != nullptr) {
    return static_cast<int32_t>(
        options_.reads_images_of->ReadImage(op.fd, op.offset, {op.data, n}));
  }
  return static_cast<int32_t>(CopyImage(op.fd, op.offset, {op.data, n}));
}

size_t FakeIoRing::CopyImage(int fd, uint64_t offset,
                             std::span<std::byte> out) const {
  auto it = images_.find(fd);
  if (it == images_.end() || offset >= it->second.size()) return 0;
  const size_t n = std::min<size_t>(out.size(), it->second.size() - offset);
  std::memcpy(out.data(), it->second.data() + offset, n);
  return n;
}

size_t FakeIoRing::ReadImage(int fd, uint64_t offset,
                             std::span<std::byte> out) const {
  std::lock_guard<std::mutex> lock(mu_);
  return CopyImage(fd, offset, out);
}

int32_t FakeIoRing::ExecuteWrite(const Op& op) {
  if (Misaligned(op)) {
    ++injected_.einval;
    return -EINVAL;
  }
  size_t n = op.len;
  if (options_.efbig_at_offset != 0) {
    if (op.offset >= options_.efbig_at_offset) {
      ++injected_.efbig;
      return -EFBIG;
    }
    n = std::min<size_t>(n, options_.efbig_at_offset - op.offset);
  }
  if (OneIn(options_.eio_one_in)) {
    ++injected_.eio;
    return -EIO;
  }
  if (options_.enospc_after_bytes != 0) {
    if (bytes_written_ >= options_.enospc_after_bytes) {
      ++injected_.enospc;
      return -ENOSPC;
    }
    n = std::min<size_t>(n, options_.enospc_after_bytes - bytes_written_);
  }
  if (n == op.len && n > 1 && OneIn(options_.short_write_one_in)) {
    if (options_.short_write_aligned) {
      const size_t blocks = n / Alignment();
      if (blocks > 1) {
        n = Alignment() *
            std::uniform_int_distribution<size_t>(1, blocks - 1)(rng_);
      }
    } else {
      n = std::uniform_int_distribution<size_t>(1, n - 1)(rng_);
    }
    if (n < op.len) ++injected_.short_writes;
  }
  if (options_.disk != nullptr) {
    const int64_t r = options_.disk->PWrite(op.fd, op.offset, {op.data, n});
    if (r < 0) return static_cast<int32_t>(r);
    bytes_written_ += n;
    return static_cast<int32_t>(n);
  }
  std::string& image = images_[op.fd];
  if (image.size() < op.offset + n) image.resize(op.offset + n, '\0');
  std::memcpy(image.data() + op.offset, op.data, n);
  bytes_written_ += n;
  return static_cast<int32_t>(n);
}

size_t FakeIoRing::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

absl::StatusOr<size_t> FakeIoRing::DirectIoAlignment(int) const {
  return Alignment();
}

std::vector<FakeIoRing::Event> FakeIoRing::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::string FakeIoRing::image(int fd) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = images_.find(fd);
  return it == images_.end() ? std::string() : it->second;
}

std::string FakeIoRing::durable_image(int fd) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = durable_.find(fd);
  return it == durable_.end() ? std::string() : it->second;
}

FakeIoRing::Injected FakeIoRing::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

}  // namespace lss::testing
