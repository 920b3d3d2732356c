// Appender: writes sealed flush buffers to the log file and tracks how much
// of the log is stable.
//
// Lifecycle of one block
//   Dispatch: the ring hands over a complete block of a flush buffer (its
//     last block once sealed, or one a group commit's cut ended), exactly
//     once, possibly out of address order when a slow last writer commits
//     late. The appender queues a write of its padded bytes at its LSS
//     address (the address is the file offset).
//     - kTailLocalized: the write is submitted at once. Only ring_size buffers
//       exist, so every write in flight lies within ring_size x buffer_bytes
//       of the tail.
//     - kSerialized: writes reach the file in LSS order: a write is submitted
//       only after the previous buffer's write completed in full (no linked
//       chains: each write waits for its predecessor's completion).
//   Completion (reaped by whichever caller thread helps; one at a time;
//   matched by tag only):
//     - full length: the buffer's extent is complete.
//     - short (0 < res < len): the remainder is resubmitted. With O_DIRECT a
//       remainder that is not aligned cannot be written: DataLoss, never an
//       acknowledgement.
//     - -EAGAIN, -EINTR, -ECANCELED, or 0 bytes: not executed; resubmitted
//       after a back-off, at most max_retries times, and counted.
//     - anything else (EIO, ENOSPC, EFBIG, EINVAL, ...): the appender fails.
//   Stability: hi_stable is the end of the longest prefix of the log whose
//     writes have all completed and been covered by an fdatasync issued after
//     those completions were reaped: stable always means durable. At most
//     two fdatasyncs in flight, so one group's write and fdatasync overlap
//     the last group's fdatasync; each covers every write completed before
//     it was issued, whichever completes first, so syncs batch themselves
//     while writes keep flowing.
//     Durability only chooses when fdatasyncs are issued: kSync after every
//     written buffer, kOnWait only while someone waits (WaitStable) for an
//     address that is not yet durable.
//   Group commit: a block that a cut ended (someone waits for it), or any
//     block under kSync, that directly follows the written prefix while
//     fewer than two fdatasyncs are in flight is written with its fdatasync
//     linked behind it: one submission, executed back to back in the
//     kernel. A write that fails or is short cancels the linked fdatasync,
//     which is then dropped (not retried: it would run before the rest of
//     the write) and issued again once the write is complete. So is one
//     that io_uring failed with EFAULT without running it: the kernel
//     issues a linked operation from the submitting thread's task_work, and
//     that thread (any caller's that dispatched the block) may have exited.
//     A ring of depth 1 never links.
//   Recycling: under kSync a block goes back to the ring once an fdatasync
//     covers it, so the ring throttles writers to the sync rate; under
//     kOnWait once its write completed (its bytes are in the file).
// Failure is sticky: after the first permanent error, or an fdatasync that
//   fails (never retried: the kernel may have dropped the dirty pages), no
//   address becomes stable, no buffer is written or recycled, and every call
//   returns the first error, naming the file, offset and errno.
// Shutdown: Drain reaps every operation in flight; the destructor drains.
//   Destroy the appender before the ring whose memory it writes.
//
// Thread safety: all methods are safe for concurrent use.

#ifndef LSS_FLUSH_APPENDER_H_
#define LSS_FLUSH_APPENDER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "flush/io_ring.h"
#include "ring/flush_buffer_ring.h"
#include "ring/sealed_buffer_sink.h"

namespace lss {

enum class WritePolicy { kTailLocalized, kSerialized };
// When fdatasyncs are issued; never whether a wait is durable (see above).
enum class Durability { kOnWait, kSync };

struct AppenderOptions {
  int fd = -1;
  std::string path;  // for error messages
  WritePolicy policy = WritePolicy::kTailLocalized;
  Durability durability = Durability::kOnWait;
  // The file is open with O_DIRECT and writes must stay aligned to this.
  bool direct_io = true;
  size_t alignment = 4096;
  // hi_stable starts here: the first buffer's LSS address, which must be the
  // ring's FlushBufferRingOptions::start_address.
  uint64_t start_address = 0;
  // Resubmissions of one operation after EAGAIN, EINTR, ECANCELED or 0 bytes.
  int max_retries = 16;
};

class Appender final : public SealedBufferSink {
 public:
  struct Stats {
    uint64_t writes = 0;         // writes submitted, resubmissions included
    uint64_t short_writes = 0;   // completions shorter than asked
    uint64_t retries = 0;        // resubmissions after EAGAIN/EINTR/...
    uint64_t syncs = 0;          // fdatasyncs completed
    uint64_t reads = 0;          // reads submitted, resubmissions included
  };

  // `io` must outlive the appender.
  Appender(IoRing* io, AppenderOptions options);
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;
  ~Appender() override;

  // Where written buffers go back (the ring whose buffers this appender
  // writes, or a store standing in front of it); set before any dispatch.
  void set_ring(BufferRecycler* ring) { ring_ = ring; }

  void Dispatch(const SealedBuffer& sealed) override;
  absl::Status HelpDrain() override;

  // Every byte below HiStable() is durable (covered by an fdatasync).
  uint64_t HiStable() const {
    return hi_stable_.load(std::memory_order_acquire);
  }
  // Every byte below HiWritten() has been written (its write completed) but
  // may not survive a power loss yet.
  uint64_t HiWritten() const {
    return hi_written_.load(std::memory_order_acquire);
  }
  // Blocks, helping to reap and issuing fdatasyncs as needed, until
  // HiStable() >= address, or returns the sticky error. REQUIRES: every
  // record below `address` is in a buffer that has been sealed
  // (FlushBufferRing::SealCurrent).
  absl::Status WaitStable(uint64_t address);
  // Asks for HiStable() >= address without waiting: an fdatasync follows
  // once the writes below `address` complete. Same REQUIRES as WaitStable.
  void RequestStable(uint64_t address);
  // Blocks, helping to reap, until HiWritten() >= address, or returns the
  // sticky error; issues no fdatasync. Same REQUIRES as WaitStable.
  absl::Status WaitWritten(uint64_t address);
  // The end of the group commit in progress: the highest address someone
  // asked to become durable, or an fdatasync in flight covers, that is not
  // durable yet; 0 if there is none. A group commit leader waits for its
  // write before it forms the next group.
  uint64_t CommitInProgress() const;
  // Reads `out.size()` bytes at `offset` of the file through the same
  // IoRing (LogReader's sequential reads; reads by address have rings of
  // their own, flush/read_batch.h), in two halves so that a caller keeps
  // several reads in flight: StartRead queues and submits the read and
  // returns its ticket (or the sticky error: then nothing was queued);
  // FinishRead waits for it, helping to reap. With O_DIRECT, `out`'s
  // address and size and `offset` must be aligned. Short reads continue;
  // EAGAIN, EINTR and ECANCELED are retried. A read error is returned
  // (naming the file, offset and errno) but does not fail the appender;
  // reading past the end of the file is OutOfRange, with `*bytes_read` (if
  // given) the bytes read before the end. After a failure, returns the
  // sticky error. If the IoRing broke while the read was in the kernel,
  // `abandoned` is set: the kernel may still write into `out`, so its
  // memory must never be freed or reused (the caller leaks it). Every
  // ticket must be finished, in any order, before `out` is freed and
  // before the appender is destroyed.
  absl::StatusOr<uint64_t> StartRead(uint64_t offset, std::span<std::byte> out);
  absl::Status FinishRead(uint64_t ticket, bool& abandoned,
                          size_t* bytes_read = nullptr);

  // OK, or the first permanent error.
  absl::Status status() const;
  // Reaps every operation in flight (after a failure, queued writes are
  // dropped, not submitted). Returns status().
  absl::Status Drain();
  Stats stats() const;

 private:
  struct Op {
    enum class Kind { kWrite, kSync, kRead } kind = Kind::kWrite;
    SealedBuffer buffer;     // writes
    size_t done = 0;         // bytes already written (or read)
    uint64_t sync_end = 0;   // syncs: the written prefix it covers
    int retries = 0;
    // Reads: where to, from where, and the outcome once `finished`.
    std::span<std::byte> read_into;
    uint64_t read_offset = 0;
    bool in_flight = false;  // handed to the IoRing, not yet reaped
    // Writes: the next op in the backlog is this write's linked fdatasync.
    // Syncs: linked behind a write.
    bool linked = false;
    bool finished = false;
    absl::Status read_status;
  };

  // All REQUIRES mu_.
  void Enqueue(uint64_t tag);
  void PumpSerialized();
  void Submit();
  void OnCompletion(const IoCompletion& c);
  void OnWriteDone(Op& op);
  void OnSyncDone(const Op& op);
  void OnReadCompletion(uint64_t tag, Op& op, int32_t result);
  void MaybeSync();
  // The end of what the fdatasyncs in flight cover; 0 if none is.
  uint64_t Syncing() const;
  void SetStable(uint64_t end);
  void Fail(absl::Status status);
  bool Retry(uint64_t tag, Op& op, int error);

  // Submits queued work, then reaps one batch if no other thread is reaping
  // (blocking for at least one completion if `block`), or else waits for
  // that thread's batch. Returns false when there was nothing to reap.
  bool ReapOnce(bool block);
  // Reaps one batch as the reaper and processes it. REQUIRES: `lock` holds
  // mu_ and no thread is reaping; it holds mu_ again on return.
  void ReapBatch(std::unique_lock<std::mutex>& lock, bool block);
  void WakeStableWaiters();
  absl::Status WaitFor(const std::atomic<uint64_t>& mark, uint64_t address);

  IoRing* const io_;
  const AppenderOptions options_;
  BufferRecycler* ring_ = nullptr;

  std::atomic<uint64_t> hi_stable_;
  std::atomic<uint64_t> hi_written_;
  mutable std::mutex mu_;  // guards everything below and IoRing submission
  std::condition_variable progress_cv_;
  // One reaper at a time, calling IoRing::Reap without holding mu_.
  bool reaping_ = false;
  uint64_t progress_ = 0;  // batches of completions processed
  // What WaitStable's and WaitWritten's sleepers wait on: bumped (under
  // mu_) when HiStable() or HiWritten() moves, on failure, when a reaper
  // leaves and when a buffer is dispatched.
  std::atomic<uint32_t> stable_events_{0};
  bool io_broken_ = false;  // Submit or Reap failed: nothing more completes
  absl::Status failure_;
  std::atomic<bool> failed_{false};  // failure_ is set
  uint64_t next_tag_ = 1;
  std::unordered_map<uint64_t, Op> ops_;  // by tag: not yet finished
  std::deque<uint64_t> backlog_;          // tags waiting to be submitted
  std::map<uint64_t, uint64_t> serial_queue_;  // kSerialized: address -> tag
  uint64_t serial_next_ = 0;                   // address the next write starts
  bool serial_busy_ = false;                   // a serialized write in flight
  std::map<uint64_t, uint64_t> completed_;  // written extents past the prefix
  uint64_t written_end_ = 0;                // end of the written prefix
  std::vector<SealedBuffer> unsynced_;      // kSync: written, awaiting sync
  // Two: the next group's write and fdatasync go while the last group's
  // fdatasync runs. More gained nothing in peerbench's W3.
  static constexpr size_t kMaxSyncsInFlight = 2;
  // What each fdatasync in flight covers: the written prefix's end when it
  // was issued.
  std::multiset<uint64_t> syncs_in_flight_;
  uint64_t sync_wanted_ = 0;  // kOnWait: the highest address waited for
  int backoff_level_ = 0;  // highest retry count in the last batch
  Stats stats_;
};

}  // namespace lss

#endif  // LSS_FLUSH_APPENDER_H_
