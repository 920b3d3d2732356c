// File: the seam for every file operation outside the IoRing's queued reads
// and writes: recovery's reads, superblock writes, zeroing, preallocation,
// fdatasync, and undoing a creation. The store reaches a file only through
// this interface and an IoRing, so testing/ can put a fault-injecting or
// power-loss-simulating device behind both.
//
// Implementations: OpenPosixFile (below) and testing/'s simulated disk.
//
// Errors name the file, the offset and the errno (flush/io_error.h).
// Thread safety: ReadAt, WriteAt, DataSync, Allocate, NextData and Size may be
// called concurrently.

#ifndef LSS_FLUSH_FILE_H_
#define LSS_FLUSH_FILE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lss {

struct FileOptions {
  bool read_only = false;
  // Create the file when it does not exist (never with read_only).
  bool create = false;
  // O_DIRECT. When the file system refuses it: FailedPrecondition, or
  // buffered I/O if allow_buffered_fallback.
  bool direct_io = true;
  bool allow_buffered_fallback = false;
  // An exclusive lock (shared when read_only) held while the File lives.
  // A holder that keeps it past lock_wait fails the open.
  std::chrono::milliseconds lock_wait{0};
  // read_only only: false takes no lock, so the open neither waits for nor
  // holds up a writer that has the file open.
  bool lock = true;
};

class File {
 public:
  virtual ~File() = default;  // closes the file and releases the lock

  // The descriptor IoRing operations on this file name.
  virtual int fd() const = 0;
  virtual const std::string& path() const = 0;
  virtual bool direct_io() const = 0;
  // Whether opening created the file (then Unlink undoes it).
  virtual bool created() const = 0;

  virtual absl::StatusOr<uint64_t> Size() = 0;
  // What O_DIRECT requests on this file must align to.
  virtual absl::StatusOr<size_t> DirectIoAlignment() = 0;
  // Reads into `out` from `offset`; returns the bytes read, fewer than asked
  // only at the end of the file. With O_DIRECT, `out` and `offset` must be
  // aligned.
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset,
                                        std::span<std::byte> out) = 0;
  // Writes all of `data` at `offset` (short writes are continued).
  virtual absl::Status WriteAt(uint64_t offset,
                               std::span<const std::byte> data) = 0;
  virtual absl::Status DataSync() = 0;
  // Allocates [offset, offset + len) (fallocate mode 0): the file grows and
  // the new space reads as zeros.
  virtual absl::Status Allocate(uint64_t offset, uint64_t len) = 0;
  // Gives [offset, offset + len) back to the file system (fallocate
  // PUNCH_HOLE, the size unchanged): it reads as zeros. Like a write, it is
  // durable only after DataSync.
  virtual absl::Status PunchHole(uint64_t offset, uint64_t len) = 0;
  // The first offset at or after `offset` that may hold written data
  // (SEEK_DATA), or the file's size if none does. May return `offset`
  // itself where holes are not known.
  virtual absl::StatusOr<uint64_t> NextData(uint64_t offset) = 0;
  // Makes the file's directory entry durable (after a creation).
  virtual absl::Status SyncDirectory() = 0;
  // Removes the file's name: undoes a creation that failed.
  virtual absl::Status Unlink() = 0;
};

using FileOpener = std::function<absl::StatusOr<std::unique_ptr<File>>(
    const std::string& path, const FileOptions& options)>;

// A regular file, opened without blocking (a FIFO never hangs the open) and
// refused unless it is a regular file.
absl::StatusOr<std::unique_ptr<File>> OpenPosixFile(
    const std::string& path, const FileOptions& options);

}  // namespace lss

#endif  // LSS_FLUSH_FILE_H_
