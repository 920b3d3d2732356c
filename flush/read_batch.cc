#include "flush/read_batch.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/io_error.h"

namespace lss {

absl::StatusOr<std::unique_ptr<IoRing>> ReadRingPool::Lease() {
  std::unique_lock<std::mutex> lock(mu_);
  bool refused = false;  // the kernel refused a ring while others are out
  for (;;) {
    changed_.wait(lock, [&] {
      return !free_.empty() || (refused ? leased_ == 0 : rings_ < max_rings_);
    });
    if (!free_.empty()) {
      std::unique_ptr<IoRing> ring = std::move(free_.back());
      free_.pop_back();
      ++leased_;
      return ring;
    }
    ++rings_;
    ++leased_;
    lock.unlock();
    absl::StatusOr<std::unique_ptr<IoRing>> made = factory_(queue_depth_);
    lock.lock();
    if (made.ok()) return made;
    --rings_;
    --leased_;
    changed_.notify_all();  // a waiter may wait for leased_ == 0 or a slot
    if (!free_.empty()) continue;  // one came back while the kernel refused
    if (leased_ == 0) return made.status();
    refused = true;
  }
}

void ReadRingPool::Return(std::unique_ptr<IoRing> ring) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(std::move(ring));
  --leased_;
  changed_.notify_one();
}

void ReadRingPool::Leak(std::unique_ptr<IoRing> ring) {
  static_cast<void>(ring.release());
  std::lock_guard<std::mutex> lock(mu_);
  --rings_;
  --leased_;
  changed_.notify_all();
}

ReadBatch::ReadBatch(ReadRingPool& pool, ReadTarget target)
    : pool_(pool), target_(std::move(target)) {
  absl::StatusOr<std::unique_ptr<IoRing>> ring = pool_.Lease();
  if (ring.ok()) {
    ring_ = *std::move(ring);
  } else {
    broken_ = absl::Status(
        ring.status().code(),
        absl::StrCat(target_.path, ": no I/O ring to read with: ",
                     ring.status().message()));
  }
}

ReadBatch::~ReadBatch() {
  while (broken_.ok() && in_flight_ > 0) Reap();
  if (ring_ == nullptr) return;
  if (broken_.ok()) {
    pool_.Return(std::move(ring_));
  } else {
    pool_.Leak(std::move(ring_));  // the kernel may still use it
  }
}

void ReadBatch::Add(uint64_t offset, std::span<std::byte> out, uint64_t tag) {
  size_t slot = ops_.size();
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    ops_.emplace_back();
  }
  ops_[slot] = Op{.offset = offset, .out = out, .tag = tag};
  queued_.push_back(slot);
}

std::optional<ReadBatch::Done> ReadBatch::Next() {
  for (;;) {
    if (!finished_.empty()) {
      Done done = std::move(finished_.front());
      finished_.pop_front();
      return done;
    }
    if (!broken_.ok()) {
      // Nothing queued will ever be submitted.
      while (!queued_.empty()) {
        const size_t slot = queued_.front();
        queued_.pop_front();
        Finish(slot, broken_);
      }
      if (finished_.empty()) return std::nullopt;
      continue;
    }
    if (queued_.empty() && in_flight_ == 0) return std::nullopt;
    bool prepared = false;
    while (!queued_.empty()) {
      const size_t slot = queued_.front();
      Op& op = ops_[slot];
      if (!ring_->PrepareRead(target_.fd, op.out.subspan(op.done),
                              op.offset + op.done, slot)) {
        break;  // the ring is full: the rest wait for completions
      }
      op.in_flight = true;
      ++in_flight_;
      prepared = true;
      queued_.pop_front();
    }
    if (prepared) {
      if (absl::Status s = ring_->Submit(); !s.ok()) {
        Break(s);
        continue;
      }
    }
    if (in_flight_ > 0) Reap();  // else the ring took nothing: offer again
  }
}

void ReadBatch::Reap() {
  completions_.clear();
  absl::StatusOr<size_t> n = ring_->Reap(1, ring_->capacity(), completions_);
  if (!n.ok()) {
    Break(n.status());
    return;
  }
  for (const IoCompletion& c : completions_) OnCompletion(c);
}

void ReadBatch::OnCompletion(const IoCompletion& c) {
  const size_t slot = c.tag;
  Op& op = ops_[slot];
  op.in_flight = false;
  --in_flight_;
  const size_t want = op.out.size() - op.done;
  auto what = [&] {
    return absl::StrCat("read of ", want, " bytes at offset ",
                        op.offset + op.done, " of ", target_.path);
  };
  if (c.result > 0 && static_cast<size_t>(c.result) <= want) {
    op.done += c.result;
    if (op.done == op.out.size()) {
      Finish(slot, absl::OkStatus());
    } else if (target_.direct_io && c.result % target_.alignment != 0) {
      // O_DIRECT stops short and unaligned only at the end of the file.
      Finish(slot, absl::OutOfRangeError(absl::StrCat(
                       what(), ": the file ends ", op.out.size() - op.done,
                       " bytes before its end")));
    } else {
      queued_.push_back(slot);  // short: read the rest
    }
  } else if (c.result == 0) {
    Finish(slot, absl::OutOfRangeError(
                     absl::StrCat(what(), ": past the end of the file")));
  } else if (c.result < 0 && IsTransientIoError(-c.result) &&
             op.retries < target_.max_retries) {
    ++op.retries;
    queued_.push_back(slot);
  } else if (c.result > 0) {
    Finish(slot, absl::InternalError(
                     absl::StrCat(what(), " returned ", c.result, " bytes")));
  } else {
    Finish(slot, IoErrorStatus(-c.result, what()));
  }
}

void ReadBatch::Finish(size_t slot, absl::Status status, bool abandoned) {
  const Op& op = ops_[slot];
  finished_.push_back(Done{.tag = op.tag,
                           .status = std::move(status),
                           .bytes_read = op.done,
                           .abandoned = abandoned});
  free_slots_.push_back(slot);
}

void ReadBatch::Break(const absl::Status& status) {
  broken_ = absl::Status(
      status.code(), absl::StrCat(target_.path, ": the I/O ring reads go "
                                  "through failed: ", status.message()));
  for (size_t slot = 0; slot < ops_.size(); ++slot) {
    if (!ops_[slot].in_flight) continue;
    ops_[slot].in_flight = false;
    Finish(slot, broken_, /*abandoned=*/true);
  }
  in_flight_ = 0;
}

}  // namespace lss
