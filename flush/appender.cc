#include "flush/appender.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/io_error.h"
#include "ring/check.h"

namespace lss {
namespace {

// Completions handled per reaping round.
constexpr size_t kReapBatch = 64;

std::string WriteWhat(const SealedBuffer& b, size_t done) {
  return absl::StrCat("write of ", b.padded - done, " bytes at offset ",
                      b.address + done);
}

}  // namespace

Appender::Appender(IoRing* io, AppenderOptions options)
    : io_(io),
      options_(std::move(options)),
      hi_stable_(options_.start_address),
      hi_written_(options_.start_address),
      serial_next_(options_.start_address),
      written_end_(options_.start_address) {}

Appender::~Appender() { Drain().IgnoreError(); }

void Appender::Dispatch(const SealedBuffer& sealed) {
  std::lock_guard<std::mutex> lock(mu_);
  // After a failure the buffer is kept, unwritten and never recycled.
  if (!failure_.ok()) return;
  const uint64_t tag = next_tag_++;
  ops_[tag].buffer = sealed;
  if (options_.policy == WritePolicy::kSerialized) {
    serial_queue_[sealed.address] = tag;
    PumpSerialized();
  } else {
    Enqueue(tag);
    // A cut block is only ever ended for someone who waits for it.
    const bool wanted = !sealed.last ||
                        options_.durability == Durability::kSync ||
                        sync_wanted_ > std::max(HiStable(), Syncing());
    // A ring of depth 1 can never take a linked pair.
    if (wanted && syncs_in_flight_.size() < kMaxSyncsInFlight &&
        io_->capacity() >= 2 && backlog_.size() == 1 &&
        written_end_ == sealed.address) {
      ops_[tag].linked = true;
      const uint64_t sync_tag = next_tag_++;
      Op& sync = ops_[sync_tag];
      sync.kind = Op::Kind::kSync;
      sync.sync_end = sealed.address + sealed.padded;
      sync.linked = true;
      syncs_in_flight_.insert(sync.sync_end);
      Enqueue(sync_tag);
    }
  }
  Submit();
  WakeStableWaiters();
}

absl::Status Appender::HelpDrain() {
  if (absl::Status s = status(); !s.ok()) return s;
  if (!ReapOnce(/*block=*/true)) std::this_thread::yield();
  return status();
}

void Appender::RequestStable(uint64_t address) {
  if (HiStable() >= address) return;
  std::lock_guard<std::mutex> lock(mu_);
  sync_wanted_ = std::max(sync_wanted_, address);
  MaybeSync();
  Submit();
}

uint64_t Appender::CommitInProgress() const {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t end = std::max(sync_wanted_, Syncing());
  return end > HiStable() ? end : 0;
}

absl::Status Appender::WaitStable(uint64_t address) {
  if (HiStable() >= address) return absl::OkStatus();
  RequestStable(address);
  return WaitFor(hi_stable_, address);
}

absl::Status Appender::WaitWritten(uint64_t address) {
  if (HiWritten() >= address) return absl::OkStatus();
  return WaitFor(hi_written_, address);
}

absl::Status Appender::WaitFor(const std::atomic<uint64_t>& mark,
                               uint64_t address) {
  auto reached = [&] {
    return mark.load(std::memory_order_acquire) >= address;
  };
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (reached()) return absl::OkStatus();
    if (!failure_.ok()) return failure_;
    Submit();
    if (!failure_.ok()) return failure_;  // nothing it prepared will complete
    // Sleepers are woken when bytes become written or durable, on failure,
    // when the reaper leaves and when a buffer is dispatched, not by each
    // of the reaper's batches; and without mu_, which the many threads of a
    // group commit would otherwise take in turn.
    const uint32_t seen = stable_events_.load(std::memory_order_acquire);
    const bool backlog_empty = backlog_.empty();
    if (reaping_) {
      lock.unlock();
      stable_events_.wait(seen, std::memory_order_acquire);
      if (reached()) return absl::OkStatus();
      lock.lock();
    } else if (io_->pending() == 0) {
      lock.unlock();
      if (backlog_empty) {
        // The buffer holding `address` still has a writer: wait for its
        // Dispatch.
        stable_events_.wait(seen, std::memory_order_acquire);
      } else {
        std::this_thread::yield();  // a retry backs off
      }
      lock.lock();
    } else {
      // It leaves the reaper's place only once SetStable or Fail woke the
      // sleepers.
      ReapBatch(lock, /*block=*/true);
    }
  }
}

absl::StatusOr<uint64_t> Appender::StartRead(uint64_t offset,
                                             std::span<std::byte> out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failure_.ok()) return failure_;
  const uint64_t tag = next_tag_++;
  Op& op = ops_[tag];
  op.kind = Op::Kind::kRead;
  op.read_into = out;
  op.read_offset = offset;
  Enqueue(tag);
  Submit();
  return tag;
}

absl::Status Appender::FinishRead(uint64_t tag, bool& abandoned,
                                  size_t* bytes_read) {
  abandoned = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = ops_.find(tag);
      Op& op = it->second;
      if (op.finished) {
        absl::Status s = std::move(op.read_status);
        if (bytes_read != nullptr) *bytes_read = op.done;
        ops_.erase(it);
        return s;
      }
      // After a failure nothing is submitted: a read not in the kernel never
      // will be; one in the kernel must still be reaped before `out` goes.
      if (!failure_.ok() && !op.in_flight) {
        backlog_.erase(std::remove(backlog_.begin(), backlog_.end(), tag),
                       backlog_.end());
        ops_.erase(it);
        return failure_;
      }
      // The ring itself failed: nothing will complete, nothing can be
      // reaped; the read is abandoned where it is, and so is `out`.
      if (io_broken_) {
        abandoned = true;
        return failure_;
      }
    }
    if (!ReapOnce(/*block=*/true)) std::this_thread::yield();
  }
}

void Appender::OnReadCompletion(uint64_t tag, Op& op, int32_t result) {
  auto what = [&] {
    return absl::StrCat("read of ", op.read_into.size() - op.done,
                        " bytes at offset ", op.read_offset + op.done);
  };
  op.in_flight = false;
  const size_t want = op.read_into.size() - op.done;
  if (!failure_.ok() && (result <= 0 || static_cast<size_t>(result) < want)) {
    op.read_status = failure_;  // a resubmission would never be submitted
    op.finished = true;
    return;
  }
  if (result > 0 && static_cast<size_t>(result) <= want) {
    op.done += result;
    if (op.done == op.read_into.size()) {
      op.finished = true;
      return;
    }
    if (options_.direct_io && result % options_.alignment != 0) {
      // O_DIRECT stops short and unaligned only at the end of the file.
      op.read_status = absl::OutOfRangeError(absl::StrCat(
          what(), " of ", options_.path, ": the file ends ",
          op.read_into.size() - op.done, " bytes before its end"));
      op.finished = true;
      return;
    }
    Enqueue(tag);  // short read: the rest
    return;
  }
  if (result == 0) {
    op.read_status = absl::OutOfRangeError(
        absl::StrCat(what(), " of ", options_.path, ": past the end of file"));
    op.finished = true;
    return;
  }
  if (result > 0 || !Retry(tag, op, -result)) {
    op.read_status = result > 0 ? absl::InternalError(absl::StrCat(
                                      what(), " returned ", result, " bytes"))
                                : IoErrorStatus(-result, absl::StrCat(
                                                             what(), " of ",
                                                             options_.path));
    op.finished = true;
  }
}

absl::Status Appender::status() const {
  // Every append asks: no lock unless there is a failure to copy.
  if (!failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

absl::Status Appender::Drain() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failure_.ok()) {
        // Queued work is dropped; only what the kernel holds must be reaped.
        backlog_.clear();
        serial_queue_.clear();
        if (io_broken_ || io_->pending() == 0) return failure_;
      } else if (std::all_of(ops_.begin(), ops_.end(), [](const auto& e) {
                   // A finished read waits only for its FinishRead.
                   return e.second.kind == Op::Kind::kRead &&
                          e.second.finished;
                 })) {
        return absl::OkStatus();
      }
    }
    if (!ReapOnce(/*block=*/true)) std::this_thread::yield();
  }
}

Appender::Stats Appender::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool Appender::ReapOnce(bool block) {
  std::unique_lock<std::mutex> lock(mu_);
  Submit();
  if (reaping_) {
    // Wait for that thread's batch instead of spinning.
    const uint64_t seen = progress_;
    progress_cv_.wait(lock, [&] { return progress_ != seen || !reaping_; });
    return true;
  }
  if (io_broken_ || io_->pending() == 0) return false;
  ReapBatch(lock, block);
  WakeStableWaiters();  // they may need a new reaper
  return true;
}

void Appender::ReapBatch(std::unique_lock<std::mutex>& lock, bool block) {
  reaping_ = true;
  lock.unlock();
  std::vector<IoCompletion> batch;
  const absl::StatusOr<size_t> reaped =
      io_->Reap(block ? 1 : 0, kReapBatch, batch);
  lock.lock();
  reaping_ = false;
  if (!reaped.ok()) {
    io_broken_ = true;
    Fail(reaped.status());
  }
  for (const IoCompletion& c : batch) OnCompletion(c);
  ++progress_;
  progress_cv_.notify_all();
  const int backoff_level = std::exchange(backoff_level_, 0);
  if (backoff_level > 0) {
    // Retried operations wait a little (exponentially longer per retry) so
    // a transient condition can clear before they are resubmitted.
    lock.unlock();
    std::this_thread::sleep_for(
        std::chrono::microseconds(1 << std::min(backoff_level, 10)));
    lock.lock();
  }
  Submit();
}

void Appender::WakeStableWaiters() {
  stable_events_.fetch_add(1, std::memory_order_release);
  stable_events_.notify_all();
}

void Appender::Enqueue(uint64_t tag) { backlog_.push_back(tag); }

void Appender::PumpSerialized() {
  if (serial_busy_) return;
  auto next = serial_queue_.find(serial_next_);
  if (next == serial_queue_.end()) return;
  serial_busy_ = true;
  Enqueue(next->second);
  serial_queue_.erase(next);
}

void Appender::Submit() {
  if (!failure_.ok()) return;
  bool prepared = false;
  while (!backlog_.empty()) {
    const uint64_t tag = backlog_.front();
    Op& op = ops_.at(tag);
    // A chain never spans Submit calls: both of a linked pair, or neither.
    if (op.linked && op.kind == Op::Kind::kWrite &&
        io_->pending() + 2 > io_->capacity()) {
      break;
    }
    bool queued = false;
    switch (op.kind) {
      case Op::Kind::kSync:
        queued = io_->PrepareDataSync(options_.fd, tag);
        break;
      case Op::Kind::kWrite:
        queued =
            io_->PrepareWrite(options_.fd, op.buffer.bytes().subspan(op.done),
                              op.buffer.address + op.done, tag, op.linked);
        if (queued) {
          ++stats_.writes;
          // A resubmitted remainder goes alone; its sync was cancelled.
          op.linked = false;
        }
        break;
      case Op::Kind::kRead:
        queued = io_->PrepareRead(options_.fd, op.read_into.subspan(op.done),
                                  op.read_offset + op.done, tag);
        if (queued) {
          ++stats_.reads;
          ops_.at(tag).in_flight = true;
        }
        break;
    }
    if (!queued && op.kind == Op::Kind::kSync && op.linked) {
      // Its write went without it, so queued alone it could run first:
      // dropped like a cancelled one, and issued again once the write is
      // complete.
      syncs_in_flight_.erase(syncs_in_flight_.find(op.sync_end));
      ops_.erase(tag);
      backlog_.pop_front();
      MaybeSync();
      break;
    }
    if (!queued) break;  // queue full: resumes after the next completions
    prepared = true;
    backlog_.pop_front();
  }
  if (!prepared) return;
  if (absl::Status s = io_->Submit(); !s.ok()) {
    io_broken_ = true;
    Fail(absl::Status(s.code(), absl::StrCat("submitting I/O for ",
                                             options_.path, ": ",
                                             s.message())));
  }
}

void Appender::OnCompletion(const IoCompletion& c) {
  auto it = ops_.find(c.tag);
  LSS_CHECK(it != ops_.end(), "completion for an unknown tag");
  Op& op = it->second;
  if (op.kind == Op::Kind::kRead) {
    OnReadCompletion(c.tag, op, c.result);
    return;
  }
  if (!failure_.ok()) {
    ops_.erase(it);
    return;
  }
  if (op.kind == Op::Kind::kSync) {
    // A linked sync that did not run: ECANCELED, its write failed or was
    // short; EFAULT, io_uring issues it from the task_work of the thread
    // that submitted the pair and fails it unrun if that thread has exited
    // (an fdatasync reads no user memory: EFAULT means nothing else). It
    // goes again once the write is complete, never before.
    if (op.linked && (c.result == -ECANCELED || c.result == -EFAULT)) {
      syncs_in_flight_.erase(syncs_in_flight_.find(op.sync_end));
      ops_.erase(it);
      MaybeSync();
      return;
    }
    if (c.result == 0) {
      // May queue the next sync: an insert that can rehash, so `it` is not
      // used after it.
      OnSyncDone(op);
    } else if (!Retry(c.tag, op, -c.result)) {
      // Never retried: the kernel may already have dropped the pages.
      Fail(IoErrorStatus(-c.result,
                         absl::StrCat("fdatasync of ", options_.path,
                                      " covering offsets below ",
                                      op.sync_end)));
    } else {
      return;
    }
    ops_.erase(c.tag);
    return;
  }
  const size_t want = op.buffer.padded - op.done;
  if (c.result > 0 && static_cast<size_t>(c.result) == want) {
    OnWriteDone(op);  // may queue a sync: erase by key, not by `it`
    ops_.erase(c.tag);
    return;
  }
  if (c.result > 0 && static_cast<size_t>(c.result) < want) {
    ++stats_.short_writes;
    if (options_.direct_io && c.result % options_.alignment != 0) {
      Fail(absl::DataLossError(absl::StrCat(
          WriteWhat(op.buffer, op.done), " of ", options_.path, " wrote only ",
          c.result, " bytes; the remainder is not aligned to ",
          options_.alignment, " and cannot be written with O_DIRECT")));
      ops_.erase(it);
      return;
    }
    op.done += c.result;
    Enqueue(c.tag);
    return;
  }
  // A write of 0 bytes made no progress: retry it like EAGAIN.
  const int error = c.result == 0 ? EAGAIN : -c.result;
  if (error <= 0) {
    Fail(absl::InternalError(absl::StrCat(WriteWhat(op.buffer, op.done), " of ",
                                          options_.path, " reported ",
                                          c.result, " bytes")));
  } else if (Retry(c.tag, op, error)) {
    return;
  } else {
    Fail(IoErrorStatus(error, absl::StrCat(WriteWhat(op.buffer, op.done),
                                           " of ", options_.path)));
  }
  ops_.erase(it);
}

bool Appender::Retry(uint64_t tag, Op& op, int error) {
  if (!IsTransientIoError(error) || op.retries >= options_.max_retries) {
    return false;
  }
  ++op.retries;
  ++stats_.retries;
  backoff_level_ = std::max(backoff_level_, op.retries);
  // A linked fdatasync that ran and failed transiently ran after its write
  // completed: it goes again alone.
  if (op.kind == Op::Kind::kSync) op.linked = false;
  Enqueue(tag);
  return true;
}

void Appender::OnWriteDone(Op& op) {
  const uint64_t end = op.buffer.address + op.buffer.padded;
  completed_[op.buffer.address] = end;
  while (!completed_.empty() && completed_.begin()->first == written_end_) {
    written_end_ = completed_.begin()->second;
    completed_.erase(completed_.begin());
  }
  if (options_.policy == WritePolicy::kSerialized) {
    serial_next_ = end;
    serial_busy_ = false;
    PumpSerialized();
  }
  if (written_end_ > hi_written_.load(std::memory_order_relaxed)) {
    hi_written_.store(written_end_, std::memory_order_release);
    WakeStableWaiters();
  }
  if (options_.durability == Durability::kOnWait) {
    ring_->Recycle(op.buffer);
  } else {
    unsynced_.push_back(op.buffer);
  }
  MaybeSync();
}

void Appender::MaybeSync() {
  const uint64_t covered = std::max(HiStable(), Syncing());
  if (syncs_in_flight_.size() >= kMaxSyncsInFlight ||
      written_end_ <= covered) {
    return;
  }
  if (options_.durability == Durability::kOnWait && sync_wanted_ <= covered) {
    return;  // nobody waits for what is written but not durable
  }
  const uint64_t tag = next_tag_++;
  Op& sync = ops_[tag];
  sync.kind = Op::Kind::kSync;
  sync.sync_end = written_end_;
  syncs_in_flight_.insert(written_end_);
  Enqueue(tag);
}

void Appender::OnSyncDone(const Op& op) {
  syncs_in_flight_.erase(syncs_in_flight_.find(op.sync_end));
  ++stats_.syncs;
  SetStable(op.sync_end);
  // The synced buffers' bytes are durable: their memory can be reused.
  auto synced = std::partition(
      unsynced_.begin(), unsynced_.end(), [&](const SealedBuffer& b) {
        return b.address + b.padded > op.sync_end;
      });
  for (auto it = synced; it != unsynced_.end(); ++it) ring_->Recycle(*it);
  unsynced_.erase(synced, unsynced_.end());
  MaybeSync();
}

uint64_t Appender::Syncing() const {
  return syncs_in_flight_.empty() ? 0 : *syncs_in_flight_.rbegin();
}

void Appender::SetStable(uint64_t end) {
  // Never past the written prefix: if a linked fdatasync's completion is
  // reaped before its write's, the next fdatasync covers that write.
  end = std::min(end, written_end_);
  if (end > HiStable()) {
    hi_stable_.store(end, std::memory_order_release);
    WakeStableWaiters();
  }
}

void Appender::Fail(absl::Status status) {
  if (failure_.ok()) {
    failure_ = std::move(status);
    failed_.store(true, std::memory_order_release);
  }
  progress_cv_.notify_all();
  WakeStableWaiters();
}

}  // namespace lss
