// ReadRingPool and ReadBatch: reads of a file that never meet the appender.
//
// A ReadBatch reads ranges of a file through an IoRing leased from a
// ReadRingPool for the batch's lifetime. Its reads share no lock and no ring
// with the writes, so a read never waits behind a dispatch or an fdatasync,
// and the thread that waits for a read reaps it itself: no other thread's
// reap has to wake it. The pool makes a ring when every ring it has is
// leased (so it holds as many as batches were ever alive at once, up to
// max_rings) and keeps it for the next batch. Past max_rings, or when the
// kernel refuses another ring (io_uring memory is limited) while some ring
// is leased, a batch waits for a ring to come back instead of failing.
//
// Thread safety: ReadRingPool is safe for concurrent use; a ReadBatch
// belongs to one thread at a time.

#ifndef LSS_FLUSH_READ_BATCH_H_
#define LSS_FLUSH_READ_BATCH_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss {

class ReadRingPool {
 public:
  using Factory = std::function<absl::StatusOr<std::unique_ptr<IoRing>>(
      unsigned queue_depth)>;
  static constexpr size_t kDefaultMaxRings = 64;
  ReadRingPool(Factory factory, unsigned queue_depth,
               size_t max_rings = kDefaultMaxRings)
      : factory_(std::move(factory)),
        queue_depth_(queue_depth),
        max_rings_(max_rings) {}
  // REQUIRES: every leased ring was returned or leaked.
  ~ReadRingPool() = default;

  // A ring with nothing pending, for the caller alone until Return or
  // Leak. An error only if no ring can be made and none is leased.
  absl::StatusOr<std::unique_ptr<IoRing>> Lease();
  // REQUIRES: `ring` has nothing pending.
  void Return(std::unique_ptr<IoRing> ring);
  // `ring` broke with operations the kernel may still hold: it is never
  // destroyed nor reused, and no longer counts against max_rings.
  void Leak(std::unique_ptr<IoRing> ring);

 private:
  const Factory factory_;
  const unsigned queue_depth_;
  const size_t max_rings_;
  std::mutex mu_;
  std::condition_variable changed_;  // a ring came back or was leaked
  std::vector<std::unique_ptr<IoRing>> free_;
  size_t rings_ = 0;   // made and not leaked
  size_t leased_ = 0;
};

// What a ReadBatch reads: `fd`, named `path` in errors. With `direct_io`,
// a transfer that ends short of a multiple of `alignment` ends the file.
struct ReadTarget {
  int fd = -1;
  std::string path;
  bool direct_io = false;
  size_t alignment = 512;
  // Transient failures (EAGAIN, EINTR, ECANCELED) of one read retried.
  int max_retries = 16;
};

class ReadBatch {
 public:
  ReadBatch(ReadRingPool& pool, ReadTarget target);
  // Waits for the reads still in flight (their memory must outlive the
  // batch), then returns the ring to the pool; a broken ring is leaked
  // instead, since the kernel may still hold its operations. A caller
  // drains Next before destroying the batch: a read abandoned here (the
  // ring broke while the destructor reaped) is seen by nobody.
  ~ReadBatch();
  ReadBatch(const ReadBatch&) = delete;
  ReadBatch& operator=(const ReadBatch&) = delete;

  // Queues a read of out.size() bytes at `offset` into `out`; Next hands it
  // to the kernel, with as many others as the ring holds. With O_DIRECT,
  // `out`'s address and size and `offset` must be aligned.
  void Add(uint64_t offset, std::span<std::byte> out, uint64_t tag);

  struct Done {
    uint64_t tag = 0;
    // OK once every byte was read. Short reads continue and transient
    // failures are retried; past the end of the file it is OutOfRange, with
    // `bytes_read` the bytes before the end; otherwise the error names the
    // file, offset and errno.
    absl::Status status;
    size_t bytes_read = 0;
    // The ring broke while this read was in the kernel: the kernel may
    // still write into its memory, which must never be freed or reused
    // (the caller leaks it).
    bool abandoned = false;
  };
  // The next read to finish, in completion order, blocking until one does;
  // nothing once every read added has been returned.
  std::optional<Done> Next();

 private:
  struct Op {
    uint64_t offset = 0;
    std::span<std::byte> out;
    uint64_t tag = 0;
    size_t done = 0;
    int retries = 0;
    bool in_flight = false;  // handed to the kernel, not reaped yet
  };

  // Waits for one completion or more and handles them; breaks the batch
  // if the ring fails. REQUIRES: a read in flight.
  void Reap();
  void OnCompletion(const IoCompletion& c);
  void Finish(size_t slot, absl::Status status, bool abandoned = false);
  // The ring failed: reads in the kernel are abandoned, the rest fail.
  void Break(const absl::Status& status);

  ReadRingPool& pool_;
  const ReadTarget target_;
  std::unique_ptr<IoRing> ring_;
  absl::Status broken_;  // why ring_ cannot be used (or could not be leased)
  std::vector<Op> ops_;  // by ring tag; finished slots are reused
  std::vector<size_t> free_slots_;
  std::deque<size_t> queued_;  // added or to continue, not yet in the kernel
  size_t in_flight_ = 0;
  std::deque<Done> finished_;
  std::vector<IoCompletion> completions_;
};

}  // namespace lss

#endif  // LSS_FLUSH_READ_BATCH_H_
