// SimDisk: an in-memory device whose files lose what was not made durable
// when the power goes, after SQLite's crash VFS (src/test6.c), ALICE and
// CrashMonkey (RELIABILITY.md sections 1.3, 1.5 and 3.E).
//
// Model, per file:
//   - a durable image, and an ordered list of volatile operations made since
//     the file's last completed DataSync: writes (offset and bytes) and
//     growths (Allocate). Reads see the current image: the durable image
//     with the volatile operations applied in order.
//   - DataSync makes durable exactly the operations completed before it.
//   - Creating a file is volatile until SyncDirectory on a file of the same
//     directory; so is removing (Unlink) a name whose creation was durable.
//   - Files are sparse: space that was allocated but never written, or
//     written with zeros only, is a hole (NextData skips it) and reads as
//     zeros. A 512 MiB preallocation costs nothing.
//
// Crash(seed) is the power cut. For every file, it starts from the durable
// image and applies a random subset of the volatile operations, in a random
// order or in issue order, tearing some writes: only a prefix of a torn
// write's sectors (sector_bytes, aligned in the file) survives, and the file
// may still have grown to the write's end (ALICE's non-atomic append: the
// size landed, the data did not). Sectors are atomic: every sector of the
// result holds the bytes of one of its writes in full, or its old bytes. A
// file whose creation was not durable may vanish; a removed name whose
// removal was not durable may come back. Then all volatile state is gone,
// every open handle is invalidated (its operations fail with EIO, its lock
// is released), and the fault point is cleared: the power is back. The
// outcome depends only on the seed and the operations since the last crash.
// How harsh a crash is varies with the seed: the chance of keeping a
// volatile write is drawn from {0, 1/4, 1/2, 3/4, 1} and the chance of
// tearing one from {0, 1/4, 1/2}, so "everything landed" and "nothing
// landed" both come up.
//
// FailAfter(n): the power is going out. The next n mutating operations
// (writes, data syncs, allocations, creations, directory syncs, removals)
// succeed; from the (n+1)th on, every operation on the disk, reads and
// opens included, fails with EIO, until Crash or ClearFailAfter. A store
// running on the disk fails cleanly at that point and acknowledges nothing
// more.
//
// Files are opened with Open (or the FileOpener from opener()), which returns
// an lss::File whose fd() names the file to an IoRing: testing/FakeIoRing
// with FakeIoRingOptions::disk set executes its operations here, through
// PWrite, PRead and Fdatasync below. Locks follow OpenPosixFile: a writer
// holds an exclusive lock, a read-only open a shared one, and a conflicting
// open waits up to FileOptions::lock_wait, then fails with
// FailedPrecondition. With FileOptions::direct_io, ReadAt and WriteAt
// require the buffer's address, the length and the offset to be multiples
// of the configured alignment (Internal, as EINVAL maps, otherwise). Errors
// name the operation, the path, the offset and the errno
// (flush/io_error.h).
//
// Lifetime: the disk must outlive every File opened on it and every ring
// pointed at it.
// Thread safety: all methods are safe for concurrent use.

#ifndef LSS_TESTING_SIM_DISK_H_
#define LSS_TESTING_SIM_DISK_H_

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/file.h"

namespace lss::testing {

struct SimDiskOptions {
  // What DirectIoAlignment reports and what O_DIRECT requests through
  // File::ReadAt/WriteAt must align to: 512 or 4096.
  size_t direct_io_alignment = 4096;
  // The unit of atomicity: a torn write keeps a whole number of sectors.
  size_t sector_bytes = 512;
  // false: like a file system without O_DIRECT (FailedPrecondition, or
  // buffered I/O with allow_buffered_fallback).
  bool supports_direct_io = true;
  // A lying device: DataSync succeeds and makes nothing durable. Only for
  // checking that a crash test notices lost acknowledged writes.
  bool data_sync_is_a_no_op = false;
};

class SimDisk {
 public:
  explicit SimDisk(SimDiskOptions options = {});
  SimDisk(const SimDisk&) = delete;
  SimDisk& operator=(const SimDisk&) = delete;
  ~SimDisk();

  // As OpenPosixFile: NotFound for a missing file unless options.create;
  // FailedPrecondition for a lock held past options.lock_wait.
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path,
                                             const FileOptions& options);
  // Open, bound to this disk, for StoreOptions::file_opener.
  FileOpener opener();

  // The power cut (see the header comment).
  void Crash(uint64_t seed);
  // See the header comment; FailAfter(0) fails the very next mutation.
  void FailAfter(uint64_t n);
  void ClearFailAfter();
  // Whether the fault point has been reached.
  bool failing() const;

  // The File operations an injected error can hit (Open and recovery reach
  // the disk through File; the IoRing has FakeIoRing's own knobs).
  enum class FileOp { kRead, kWrite, kDataSync, kAllocate };
  // The `nth` call (0: the next) of `op` through any File of this disk
  // fails with `error` and changes nothing; once.
  void InjectFileError(FileOp op, uint64_t nth, int error);
  // Mutating operations so far (for picking a FailAfter point).
  uint64_t mutations() const;

  // Inspection, by name (ignores the fault point).
  bool Exists(const std::string& path) const;
  // The current size, or 0 for a missing file.
  uint64_t FileSize(const std::string& path) const;
  // `len` bytes of the current image from `offset`, cut at the end of the
  // file; "" for a missing file.
  std::string Contents(const std::string& path, uint64_t offset,
                       uint64_t len) const;
  std::string DurableContents(const std::string& path, uint64_t offset,
                              uint64_t len) const;
  // The first offset at or after `offset` that holds nonzero data, or the
  // size.
  uint64_t NextData(const std::string& path, uint64_t offset) const;
  // Volatile operations since the file's last DataSync.
  size_t VolatileOps(const std::string& path) const;
  bool CreationDurable(const std::string& path) const;

  // The device side of an fd, for IoRing implementations: like pwrite,
  // pread and fdatasync, they return the bytes transferred or -errno. They
  // check no alignment (the ring does). -EBADF for an fd that is not open,
  // -EIO for one a crash invalidated or when failing.
  int64_t PWrite(int fd, uint64_t offset, std::span<const std::byte> data);
  int64_t PRead(int fd, uint64_t offset, std::span<std::byte> out);
  int Fdatasync(int fd);
  // The size of the file behind `fd`, or -errno.
  int64_t SizeOf(int fd);
  size_t direct_io_alignment() const { return options_.direct_io_alignment; }

 private:
  class SimFile;
  friend class SimFile;

  // A sparse byte image in pages; absent pages read as zeros.
  class Image {
   public:
    static constexpr uint64_t kPage = 4096;
    uint64_t size() const { return size_; }
    void Grow(uint64_t to) {
      if (to > size_) size_ = to;
    }
    void Write(uint64_t offset, std::span<const std::byte> data);
    // REQUIRES: offset + out.size() <= size().
    void Read(uint64_t offset, std::span<std::byte> out) const;
    uint64_t NextData(uint64_t offset) const;

   private:
    uint64_t size_ = 0;
    std::map<uint64_t, std::array<std::byte, kPage>> pages_;
  };

  struct FileData {
    Image durable;
    Image current;
    struct Op {
      bool grow = false;  // Allocate to `end`; otherwise a write
      uint64_t offset = 0;
      std::string bytes;
      uint64_t end = 0;
    };
    std::vector<Op> pending;
    bool entry_durable = false;
    int shared_locks = 0;
    bool exclusive = false;
  };

  struct Handle {
    std::shared_ptr<FileData> file;
    std::string path;
    bool read_only = false;
    bool direct_io = false;
    bool created = false;
  };

  // All REQUIRE mu_. 0 or an errno.
  int Mutation();
  int Usable() const;
  // The open handle behind fd, or nullptr with `error` set.
  Handle* Find(int fd, int& error);
  int WriteLocked(Handle& h, uint64_t offset, std::span<const std::byte> data);
  void ApplyCrash(FileData& file, uint64_t seed_for_file);
  void Close(int fd);
  std::string Dump(const Image& image, uint64_t offset, uint64_t len) const;

  const SimDiskOptions options_;
  mutable std::mutex mu_;
  std::condition_variable lock_released_;
  std::map<std::string, std::shared_ptr<FileData>> files_;
  // Names removed while their creation was durable: a crash may bring them
  // back until SyncDirectory.
  std::map<std::string, std::shared_ptr<FileData>> removed_;
  std::map<int, Handle> handles_;
  std::set<int> dead_fds_;
  int next_fd_ = 3;
  uint64_t mutations_ = 0;
  // Returns the error injected for this call of `op`, or 0.
  int TakeInjected(FileOp op);

  struct Injection {
    uint64_t countdown;
    int error;
  };
  std::map<FileOp, Injection> injected_;
  std::optional<uint64_t> fail_budget_;
  bool failing_ = false;
};

}  // namespace lss::testing

#endif  // LSS_TESTING_SIM_DISK_H_
