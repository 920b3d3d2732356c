// FakeIoRing: an in-memory IoRing for tests, deterministic from a seed, that
// injects the faults real kernels produce (RELIABILITY.md section 2): short
// writes, EAGAIN, EINTR, EIO, ENOSPC, EFBIG, EINVAL for misaligned O_DIRECT
// requests, a full submission queue, a failing fdatasync, broken link chains
// and arbitrary execution and completion order.
//
// Model: each fd is a file image. Submit hands queued operations over in
// units (a link chain is one unit). An operation executes (touches the
// caller's memory and the image) only when a Reap call finds its unit due:
// each unit waits 0..max_delay_reaps Reap calls, and with `reorder` due units
// execute, and completions are returned, in random order. A chain's members
// execute in order; a failed or short member cancels the rest with
// -ECANCELED. fdatasync makes durable exactly the writes executed before it.
//
// With FakeIoRingOptions::disk set, fds name files of that SimDisk
// (testing/sim_disk.h): an operation that executes without an injected
// fault is carried out on the disk (writes are volatile there until an
// fdatasync, which is the disk file's DataSync), and the disk's own errors
// (EIO past its fault point, EBADF) complete the operation. image() and
// durable_image() then stay empty: inspect the disk instead.
//
// Thread safety: all methods are safe for concurrent use.

#ifndef LSS_TESTING_FAKE_IO_RING_H_
#define LSS_TESTING_FAKE_IO_RING_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "flush/io_ring.h"

namespace lss::testing {

class FakeIoRing;
class SimDisk;

struct FakeIoRingOptions {
  uint64_t seed = 1;
  size_t capacity = 64;
  // 0: buffered. Otherwise O_DIRECT: address, length and offset must be
  // multiples of this, or the operation completes with -EINVAL.
  size_t direct_io_alignment = 0;
  bool reorder = false;
  int max_delay_reaps = 0;
  // "one in N" knobs; 0 turns a knob off.
  int short_write_one_in = 0;
  bool short_write_aligned = true;  // short length a multiple of alignment
  int eagain_one_in = 0;
  int eintr_one_in = 0;
  int eio_one_in = 0;
  int short_read_one_in = 0;        // reads: an aligned short transfer
  int read_eio_one_in = 0;          // reads: -EIO
  int sq_full_one_in = 0;           // Prepare* refuses below capacity
  int ebusy_on_submit_one_in = 0;   // Submit meets EBUSY and retries
  int link_break_one_in = 0;        // a linked member fails with -EIO
  // 0 turns these off.
  uint64_t enospc_after_bytes = 0;  // total bytes written before ENOSPC
  uint64_t efbig_at_offset = 0;     // file size limit (RLIMIT_FSIZE)
  bool fsync_eio_once = false;      // the first fdatasync fails with -EIO
  // Where operations execute; nullptr: the ring's own in-memory images.
  // Must outlive the ring.
  SimDisk* disk = nullptr;
  // Without a disk: reads see the images of this ring instead of this
  // ring's own (several rings over one file, as a store's read rings are
  // beside its appender's). Must outlive the ring.
  const FakeIoRing* reads_images_of = nullptr;
};

class FakeIoRing final : public IoRing {
 public:
  struct Event {
    enum class Kind { kWrite, kRead, kDataSync };
    Kind kind;
    int fd;
    uint64_t offset;
    size_t length;   // asked for
    int32_t result;  // as completed
    uint64_t tag;
  };
  struct Injected {
    uint64_t eagain = 0, eintr = 0, eio = 0, enospc = 0, efbig = 0,
             einval = 0, short_writes = 0, sq_full = 0, ebusy = 0,
             link_breaks = 0, cancelled = 0, fsync_eio = 0, short_reads = 0,
             read_eio = 0;
  };

  explicit FakeIoRing(FakeIoRingOptions options);

  bool PrepareWrite(int fd, std::span<const std::byte> data, uint64_t offset,
                    uint64_t tag, bool link_next = false) override;
  bool PrepareRead(int fd, std::span<std::byte> data, uint64_t offset,
                   uint64_t tag, bool link_next = false) override;
  bool PrepareDataSync(int fd, uint64_t tag, bool link_next = false) override;
  absl::Status Submit() override;
  // Aborts if min_complete exceeds what was submitted (it would hang).
  absl::StatusOr<size_t> Reap(size_t min_complete, size_t max,
                              std::vector<IoCompletion>& out) override;
  size_t pending() const override;
  size_t capacity() const override { return options_.capacity; }
  absl::StatusOr<size_t> DirectIoAlignment(int fd) const override;

  // Every executed operation, in execution order.
  std::vector<Event> events() const;
  // What a reader of `fd` sees now, and what survives a power cut (the image
  // as of the last successful fdatasync).
  std::string image(int fd) const;
  std::string durable_image(int fd) const;
  // Copies what a reader of `fd` sees at `offset` into `out`, up to the
  // image's end; returns how many bytes that was.
  size_t ReadImage(int fd, uint64_t offset, std::span<std::byte> out) const;
  Injected injected() const;
  uint64_t injected_eagain() const { return injected().eagain; }
  uint64_t injected_eintr() const { return injected().eintr; }

 private:
  struct Op {
    Event::Kind kind;
    int fd;
    std::byte* data;
    size_t len;
    uint64_t offset;
    uint64_t tag;
    bool link_next;
  };
  struct Unit {
    std::vector<Op> ops;  // one op, or a link chain in order
    int delay;            // Reap calls left before it is due
  };

  // All REQUIRE mu_.
  bool Queue(const Op& op);
  bool OneIn(int n);
  void ExecuteUnit(Unit& unit);
  int32_t Execute(const Op& op, bool in_chain);
  int32_t ExecuteWrite(const Op& op);
  int32_t ExecuteRead(const Op& op);
  size_t CopyImage(int fd, uint64_t offset, std::span<std::byte> out) const;
  bool Misaligned(const Op& op) const;
  size_t Alignment() const;

  const FakeIoRingOptions options_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  std::vector<Op> queued_;
  std::vector<Unit> submitted_;
  std::vector<IoCompletion> ready_;
  size_t pending_ = 0;
  uint64_t bytes_written_ = 0;
  bool fsync_failed_ = false;
  std::map<int, std::string> images_;
  std::map<int, std::string> durable_;
  std::vector<Event> events_;
  Injected injected_;
};

}  // namespace lss::testing

#endif  // LSS_TESTING_FAKE_IO_RING_H_
