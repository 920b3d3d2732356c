#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/direct_io_alignment.h"
#include "flush/file.h"
#include "flush/io_error.h"

namespace lss {
namespace {

const char* FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

// Whether `path` still names the file open as `st` (another opener that
// created it may have removed it after failing, while this one waited for
// the lock).
bool StillNamed(const std::string& path, const struct stat& st) {
  struct stat now;
  return stat(path.c_str(), &now) == 0 && now.st_dev == st.st_dev &&
         now.st_ino == st.st_ino;
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd, bool direct_io, bool created,
            const struct stat& st)
      : path_(std::move(path)),
        fd_(fd),
        direct_io_(direct_io),
        created_(created),
        st_(st) {}
  ~PosixFile() override { close(fd_); }

  int fd() const override { return fd_; }
  const std::string& path() const override { return path_; }
  bool direct_io() const override { return direct_io_; }
  bool created() const override { return created_; }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("fstat of ", path_));
    }
    return static_cast<uint64_t>(st.st_size);
  }

  absl::StatusOr<size_t> DirectIoAlignment() override {
    return QueryDirectIoAlignment(fd_);
  }

  absl::StatusOr<size_t> ReadAt(uint64_t offset,
                                std::span<std::byte> out) override {
    size_t got = 0;
    while (got < out.size()) {
      const ssize_t n =
          pread(fd_, out.data() + got, out.size() - got, offset + got);
      if (n < 0) {
        const int error = errno;
        if (error == EINTR) continue;
        return IoErrorStatus(error,
                             absl::StrCat("read of ", out.size() - got,
                                          " bytes at offset ", offset + got,
                                          " of ", path_));
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  }

  absl::Status WriteAt(uint64_t offset,
                       std::span<const std::byte> data) override {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          pwrite(fd_, data.data() + done, data.size() - done, offset + done);
      const int error = n < 0 ? errno : (n == 0 ? EIO : 0);
      if (error == EINTR) continue;
      if (error != 0) {
        return IoErrorStatus(error,
                             absl::StrCat("write of ", data.size() - done,
                                          " bytes at offset ", offset + done,
                                          " of ", path_));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status DataSync() override {
    if (fdatasync(fd_) != 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("fdatasync of ", path_));
    }
    return absl::OkStatus();
  }

  absl::Status Allocate(uint64_t offset, uint64_t len) override {
    if (fallocate(fd_, 0, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) != 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("fallocate of ", len,
                                               " bytes at offset ", offset,
                                               " of ", path_));
    }
    return absl::OkStatus();
  }

  absl::Status PunchHole(uint64_t offset, uint64_t len) override {
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("punching a hole of ", len,
                                               " bytes at offset ", offset,
                                               " of ", path_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> NextData(uint64_t offset) override {
    const off_t data = lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (data >= 0) return static_cast<uint64_t>(data);
    const int error = errno;
    if (error == ENXIO) return Size();  // only holes from `offset` on
    if (error == EINVAL) return offset;  // no SEEK_DATA: assume data
    return IoErrorStatus(error, absl::StrCat("lseek(SEEK_DATA) to offset ",
                                             offset, " of ", path_));
  }

  absl::Status SyncDirectory() override {
    const size_t slash = path_.find_last_of('/');
    const std::string dir =
        slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("open directory ", dir));
    }
    const int rc = fsync(dfd);
    const int error = errno;
    close(dfd);
    if (rc != 0) {
      return IoErrorStatus(error, absl::StrCat("fsync of directory ", dir));
    }
    return absl::OkStatus();
  }

  absl::Status Unlink() override {
    // Only while the name is still this file's: never another one's.
    if (!StillNamed(path_, st_)) return absl::OkStatus();
    if (unlink(path_.c_str()) != 0) {
      const int error = errno;
      return IoErrorStatus(error, absl::StrCat("unlink ", path_));
    }
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  const int fd_;
  const bool direct_io_;
  const bool created_;
  const struct stat st_;
};

// Opens without O_DIRECT and without blocking; creates only when missing, so
// `created` is known exactly.
absl::StatusOr<int> OpenDescriptor(const std::string& path,
                                   const FileOptions& options, bool& created) {
  const int access = options.read_only ? O_RDONLY : O_RDWR;
  for (;;) {
    int fd = open(path.c_str(), access | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) return fd;
    int error = errno;
    if (error == ENOENT && options.create && !options.read_only) {
      fd = open(path.c_str(),
                O_RDWR | O_CLOEXEC | O_NONBLOCK | O_CREAT | O_EXCL, 0644);
      if (fd >= 0) {
        created = true;
        return fd;
      }
      error = errno;
      if (error == EEXIST) continue;  // created meanwhile: open that one
    }
    switch (error) {
      case EISDIR:
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": is a directory, not a log file"));
      case ENOENT:
        return absl::NotFoundError(absl::StrCat(
            path, options.create ? ": its directory does not exist"
                                 : ": no such file"));
      default:
        return IoErrorStatus(error, absl::StrCat("open ", path));
    }
  }
}

absl::Status Lock(int fd, const std::string& path,
                  const FileOptions& options) {
  const auto give_up = std::chrono::steady_clock::now() + options.lock_wait;
  int backoff_us = 100;
  while (flock(fd, (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK && std::chrono::steady_clock::now() < give_up) {
      // Waiting on another process, which announces nothing: poll.
      std::this_thread::sleep_for(std::chrono::microseconds(backoff_us));
      backoff_us = std::min(backoff_us * 2, 20000);
      continue;
    }
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": the log is already open (locked by this or another "
                "process for more than ",
          options.lock_wait.count(), " ms)"));
    }
    return IoErrorStatus(error, absl::StrCat("flock ", path));
  }
  return absl::OkStatus();
}

// Clears O_NONBLOCK and sets O_DIRECT as asked; false when the file system
// refuses O_DIRECT and the options allow buffered I/O instead.
absl::StatusOr<bool> SetFlags(int fd, const std::string& path,
                              const FileOptions& options) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    const int error = errno;
    return IoErrorStatus(error, absl::StrCat("fcntl(F_GETFL) of ", path));
  }
  const int base = flags & ~O_NONBLOCK;
  if (options.direct_io) {
    if (fcntl(fd, F_SETFL, base | O_DIRECT) == 0) return true;
    const int error = errno;
    if (error != EINVAL) {
      return IoErrorStatus(error, absl::StrCat("fcntl(O_DIRECT) of ", path));
    }
    if (!options.allow_buffered_fallback) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": the file system refuses O_DIRECT; set "
                "allow_buffered_fallback or direct_io = false"));
    }
  }
  if (fcntl(fd, F_SETFL, base) != 0) {
    const int error = errno;
    return IoErrorStatus(error, absl::StrCat("fcntl(F_SETFL) of ", path));
  }
  return false;
}

// One attempt; `renamed` is set when the file it locked had lost its name
// meanwhile (then it returns an error and the caller tries again).
absl::StatusOr<std::unique_ptr<File>> OpenOnce(const std::string& path,
                                               const FileOptions& options,
                                               bool& renamed) {
  bool created = false;
  absl::StatusOr<int> fd = OpenDescriptor(path, options, created);
  if (!fd.ok()) return fd.status();
  // Undoes the open on every failure below; a creation only while holding
  // the lock on a file that still has its name (another opener may have
  // it open, waiting for the lock).
  bool locked = false;
  struct stat st;
  auto fail = [&](absl::Status status) {
    if (created && locked && StillNamed(path, st)) unlink(path.c_str());
    close(*fd);
    return status;
  };
  if (fstat(*fd, &st) != 0) {
    const int error = errno;
    return fail(IoErrorStatus(error, absl::StrCat("fstat of ", path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        path, ": is ", FileKind(st.st_mode), ", not a regular file")));
  }
  // Locked on the descriptor the I/O goes through: a writer killed with
  // writes in flight holds it until the kernel has finished them.
  if (options.lock || !options.read_only) {
    if (absl::Status s = Lock(*fd, path, options); !s.ok()) return fail(s);
  }
  locked = true;
  if (!StillNamed(path, st)) {
    renamed = true;
    close(*fd);
    return absl::AbortedError(
        absl::StrCat(path, ": removed or replaced while opening"));
  }
  absl::StatusOr<bool> direct = SetFlags(*fd, path, options);
  if (!direct.ok()) return fail(direct.status());
  return std::unique_ptr<File>(
      new PosixFile(path, *fd, *direct, created, st));
}

}  // namespace

absl::StatusOr<std::unique_ptr<File>> OpenPosixFile(
    const std::string& path, const FileOptions& options) {
  // A file that lost its name while this open waited for its lock (its
  // creator failed and removed it) is not the log at `path`: open again.
  constexpr int kAttempts = 16;
  absl::Status last;
  for (int i = 0; i < kAttempts; ++i) {
    bool renamed = false;
    absl::StatusOr<std::unique_ptr<File>> file =
        OpenOnce(path, options, renamed);
    if (!renamed) return file;
    last = file.status();
  }
  return last;
}

}  // namespace lss
