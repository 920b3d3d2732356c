#include "testing/sim_disk.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/io_error.h"

namespace lss::testing {
namespace {

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

// ---- Image ----

void SimDisk::Image::Write(uint64_t offset, std::span<const std::byte> data) {
  Grow(offset + data.size());
  size_t done = 0;
  while (done < data.size()) {
    const uint64_t at = offset + done;
    const uint64_t page = at / kPage;
    const size_t in_page = static_cast<size_t>(at % kPage);
    const size_t n = std::min<size_t>(kPage - in_page, data.size() - done);
    const std::span<const std::byte> chunk = data.subspan(done, n);
    auto it = pages_.find(page);
    if (it == pages_.end()) {
      if (AllZero(chunk)) {  // stays a hole
        done += n;
        continue;
      }
      it = pages_.emplace(page, std::array<std::byte, kPage>{}).first;
    }
    std::memcpy(it->second.data() + in_page, chunk.data(), n);
    done += n;
  }
}

void SimDisk::Image::Read(uint64_t offset, std::span<std::byte> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t at = offset + done;
    const uint64_t page = at / kPage;
    const size_t in_page = static_cast<size_t>(at % kPage);
    const size_t n = std::min<size_t>(kPage - in_page, out.size() - done);
    auto it = pages_.find(page);
    if (it == pages_.end()) {
      std::memset(out.data() + done, 0, n);
    } else {
      std::memcpy(out.data() + done, it->second.data() + in_page, n);
    }
    done += n;
  }
}

uint64_t SimDisk::Image::NextData(uint64_t offset) const {
  if (offset >= size_) return size_;
  auto it = pages_.lower_bound(offset / kPage);
  if (it == pages_.end()) return size_;
  return std::min(size_, std::max(offset, it->first * kPage));
}

// ---- SimFile ----

class SimDisk::SimFile final : public File {
 public:
  SimFile(SimDisk* disk, int fd, std::string path, bool direct_io,
          bool created)
      : disk_(disk),
        fd_(fd),
        path_(std::move(path)),
        direct_io_(direct_io),
        created_(created) {}
  ~SimFile() override { disk_->Close(fd_); }

  int fd() const override { return fd_; }
  const std::string& path() const override { return path_; }
  bool direct_io() const override { return direct_io_; }
  bool created() const override { return created_; }

  absl::StatusOr<uint64_t> Size() override {
    const int64_t size = disk_->SizeOf(fd_);
    if (size < 0) {
      return IoErrorStatus(static_cast<int>(-size),
                           absl::StrCat("fstat of ", path_));
    }
    return static_cast<uint64_t>(size);
  }

  absl::StatusOr<size_t> DirectIoAlignment() override {
    std::lock_guard<std::mutex> lock(disk_->mu_);
    int error = 0;
    if (disk_->Find(fd_, error) == nullptr) {
      return IoErrorStatus(error,
                           absl::StrCat("direct I/O alignment of ", path_));
    }
    return disk_->options_.direct_io_alignment;
  }

  absl::StatusOr<size_t> ReadAt(uint64_t offset,
                                std::span<std::byte> out) override {
    const std::string what = absl::StrCat("read of ", out.size(),
                                          " bytes at offset ", offset, " of ",
                                          path_);
    if (Misaligned(offset, out.data(), out.size())) {
      return IoErrorStatus(EINVAL, what);
    }
    if (const int e = disk_->TakeInjected(FileOp::kRead); e != 0) {
      return IoErrorStatus(e, what);
    }
    const int64_t n = disk_->PRead(fd_, offset, out);
    if (n < 0) return IoErrorStatus(static_cast<int>(-n), what);
    return static_cast<size_t>(n);
  }

  absl::Status WriteAt(uint64_t offset,
                       std::span<const std::byte> data) override {
    const std::string what = absl::StrCat("write of ", data.size(),
                                          " bytes at offset ", offset, " of ",
                                          path_);
    if (Misaligned(offset, data.data(), data.size())) {
      return IoErrorStatus(EINVAL, what);
    }
    if (const int e = disk_->TakeInjected(FileOp::kWrite); e != 0) {
      return IoErrorStatus(e, what);
    }
    const int64_t n = disk_->PWrite(fd_, offset, data);
    if (n < 0) return IoErrorStatus(static_cast<int>(-n), what);
    return absl::OkStatus();
  }

  absl::Status DataSync() override {
    if (const int e = disk_->TakeInjected(FileOp::kDataSync); e != 0) {
      return IoErrorStatus(e, absl::StrCat("fdatasync of ", path_));
    }
    const int error = disk_->Fdatasync(fd_);
    if (error != 0) {
      return IoErrorStatus(-error, absl::StrCat("fdatasync of ", path_));
    }
    return absl::OkStatus();
  }

  absl::Status Allocate(uint64_t offset, uint64_t len) override {
    const std::string what = absl::StrCat("fallocate of ", len,
                                          " bytes at offset ", offset, " of ",
                                          path_);
    if (const int e = disk_->TakeInjected(FileOp::kAllocate); e != 0) {
      return IoErrorStatus(e, what);
    }
    std::lock_guard<std::mutex> lock(disk_->mu_);
    int error = 0;
    Handle* h = disk_->Find(fd_, error);
    if (h == nullptr) return IoErrorStatus(error, what);
    if (h->read_only) return IoErrorStatus(EBADF, what);
    if (len == 0) return IoErrorStatus(EINVAL, what);
    if (const int e = disk_->Mutation(); e != 0) {
      return IoErrorStatus(e, what);
    }
    FileData& f = *h->file;
    if (offset + len > f.current.size()) {
      f.current.Grow(offset + len);
      f.pending.push_back(
          {.grow = true, .offset = 0, .bytes = {}, .end = offset + len});
    }
    return absl::OkStatus();
  }

  // Zeros, written as volatile writes: the image keeps zeros as holes, and
  // a crash keeps any part of them, as it may of a real hole punch. Like
  // FALLOC_FL_KEEP_SIZE, it never makes the file longer (a damaged head
  // far past the end would otherwise take that much memory).
  absl::Status PunchHole(uint64_t offset, uint64_t len) override {
    absl::StatusOr<uint64_t> size = Size();
    if (!size.ok()) return size.status();
    if (offset >= *size) return absl::OkStatus();
    len = std::min(len, *size - offset);
    constexpr uint64_t kChunk = uint64_t{1} << 20;
    const std::vector<std::byte> zeros(std::min(len, kChunk));
    for (uint64_t at = offset; at < offset + len; at += kChunk) {
      const uint64_t n = std::min(kChunk, offset + len - at);
      const int64_t r = disk_->PWrite(fd_, at, {zeros.data(), n});
      if (r < 0) {
        return IoErrorStatus(static_cast<int>(-r),
                             absl::StrCat("punching a hole of ", len,
                                          " bytes at offset ", offset, " of ",
                                          path_));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> NextData(uint64_t offset) override {
    std::lock_guard<std::mutex> lock(disk_->mu_);
    int error = disk_->Usable();
    Handle* h = error == 0 ? disk_->Find(fd_, error) : nullptr;
    if (h == nullptr) {
      return IoErrorStatus(error, absl::StrCat("lseek(SEEK_DATA) to offset ",
                                               offset, " of ", path_));
    }
    return h->file->current.NextData(offset);
  }

  absl::Status SyncDirectory() override {
    const std::string dir = DirectoryOf(path_);
    const std::string what = absl::StrCat("fsync of directory ", dir);
    std::lock_guard<std::mutex> lock(disk_->mu_);
    int error = 0;
    if (disk_->Find(fd_, error) == nullptr) return IoErrorStatus(error, what);
    if (const int e = disk_->Mutation(); e != 0) {
      return IoErrorStatus(e, what);
    }
    for (auto& [name, file] : disk_->files_) {
      if (DirectoryOf(name) == dir) file->entry_durable = true;
    }
    for (auto it = disk_->removed_.begin(); it != disk_->removed_.end();) {
      it = DirectoryOf(it->first) == dir ? disk_->removed_.erase(it)
                                         : std::next(it);
    }
    return absl::OkStatus();
  }

  absl::Status Unlink() override {
    const std::string what = absl::StrCat("unlink ", path_);
    std::lock_guard<std::mutex> lock(disk_->mu_);
    int error = 0;
    Handle* h = disk_->Find(fd_, error);
    if (h == nullptr) return IoErrorStatus(error, what);
    auto it = disk_->files_.find(path_);
    if (it == disk_->files_.end() || it->second != h->file) {
      return IoErrorStatus(ENOENT, what);
    }
    if (const int e = disk_->Mutation(); e != 0) {
      return IoErrorStatus(e, what);
    }
    if (it->second->entry_durable) disk_->removed_[path_] = it->second;
    disk_->files_.erase(it);
    return absl::OkStatus();
  }

 private:
  bool Misaligned(uint64_t offset, const std::byte* p, size_t len) const {
    if (!direct_io_) return false;
    const size_t a = disk_->options_.direct_io_alignment;
    return offset % a != 0 || len % a != 0 ||
           reinterpret_cast<uintptr_t>(p) % a != 0;
  }

  SimDisk* const disk_;
  const int fd_;
  const std::string path_;
  const bool direct_io_;
  const bool created_;
};

// ---- SimDisk ----

SimDisk::SimDisk(SimDiskOptions options) : options_(options) {}

SimDisk::~SimDisk() = default;

int SimDisk::Usable() const { return failing_ ? EIO : 0; }

void SimDisk::InjectFileError(FileOp op, uint64_t nth, int error) {
  std::lock_guard<std::mutex> lock(mu_);
  injected_[op] = Injection{.countdown = nth, .error = error};
}

int SimDisk::TakeInjected(FileOp op) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = injected_.find(op);
  if (it == injected_.end()) return 0;
  if (it->second.countdown > 0) {
    --it->second.countdown;
    return 0;
  }
  const int error = it->second.error;
  injected_.erase(it);
  return error;
}

int SimDisk::Mutation() {
  if (failing_) return EIO;
  if (fail_budget_.has_value()) {
    if (*fail_budget_ == 0) {
      failing_ = true;
      return EIO;
    }
    --*fail_budget_;
  }
  ++mutations_;
  return 0;
}

SimDisk::Handle* SimDisk::Find(int fd, int& error) {
  auto it = handles_.find(fd);
  if (it != handles_.end()) return &it->second;
  error = dead_fds_.count(fd) != 0 ? EIO : EBADF;
  return nullptr;
}

absl::StatusOr<std::unique_ptr<File>> SimDisk::Open(
    const std::string& path, const FileOptions& options) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failing_) return IoErrorStatus(EIO, absl::StrCat("open ", path));
  bool created = false;
  auto it = files_.find(path);
  if (it == files_.end()) {
    if (!options.create || options.read_only) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    if (const int e = Mutation(); e != 0) {
      return IoErrorStatus(e, absl::StrCat("open ", path));
    }
    it = files_.emplace(path, std::make_shared<FileData>()).first;
    created = true;
  }
  std::shared_ptr<FileData> file = it->second;
  const auto give_up = std::chrono::steady_clock::now() + options.lock_wait;
  auto conflicts = [&] {
    return file->exclusive || (!options.read_only && file->shared_locks > 0);
  };
  while (conflicts()) {
    if (lock_released_.wait_until(lock, give_up) == std::cv_status::timeout &&
        conflicts()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": the log is already open (locked by this or another "
                "process for more than ",
          options.lock_wait.count(), " ms)"));
    }
  }
  if (failing_) return IoErrorStatus(EIO, absl::StrCat("open ", path));
  bool direct_io = options.direct_io;
  if (direct_io && !options_.supports_direct_io) {
    if (!options.allow_buffered_fallback) {
      if (created) files_.erase(path);
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": the file system refuses O_DIRECT; set "
                "allow_buffered_fallback or direct_io = false"));
    }
    direct_io = false;
  }
  if (options.read_only) {
    ++file->shared_locks;
  } else {
    file->exclusive = true;
  }
  const int fd = next_fd_++;
  handles_[fd] = Handle{.file = file,
                        .path = path,
                        .read_only = options.read_only,
                        .direct_io = direct_io,
                        .created = created};
  return std::unique_ptr<File>(
      new SimFile(this, fd, path, direct_io, created));
}

FileOpener SimDisk::opener() {
  return [this](const std::string& path, const FileOptions& options) {
    return Open(path, options);
  };
}

void SimDisk::Close(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = handles_.find(fd);
  if (it == handles_.end()) return;  // invalidated by a crash
  FileData& f = *it->second.file;
  if (it->second.read_only) {
    --f.shared_locks;
  } else {
    f.exclusive = false;
  }
  handles_.erase(it);
  lock_released_.notify_all();
}

int SimDisk::WriteLocked(Handle& h, uint64_t offset,
                         std::span<const std::byte> data) {
  if (h.read_only) return EBADF;
  if (const int e = Mutation(); e != 0) return e;
  FileData& f = *h.file;
  f.current.Write(offset, data);
  f.pending.push_back(
      {.grow = false,
       .offset = offset,
       .bytes = std::string(reinterpret_cast<const char*>(data.data()),
                            data.size()),
       .end = offset + data.size()});
  return 0;
}

int64_t SimDisk::PWrite(int fd, uint64_t offset,
                        std::span<const std::byte> data) {
  std::lock_guard<std::mutex> lock(mu_);
  int error = 0;
  Handle* h = Find(fd, error);
  if (h == nullptr) return -error;
  if (data.empty()) return Usable() == 0 ? 0 : -EIO;
  if (const int e = WriteLocked(*h, offset, data); e != 0) return -e;
  return static_cast<int64_t>(data.size());
}

int64_t SimDisk::PRead(int fd, uint64_t offset, std::span<std::byte> out) {
  std::lock_guard<std::mutex> lock(mu_);
  int error = Usable();
  Handle* h = error == 0 ? Find(fd, error) : nullptr;
  if (h == nullptr) return -error;
  const Image& image = h->file->current;
  if (offset >= image.size()) return 0;
  const size_t n = std::min<uint64_t>(out.size(), image.size() - offset);
  image.Read(offset, out.first(n));
  return static_cast<int64_t>(n);
}

int SimDisk::Fdatasync(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  int error = 0;
  Handle* h = Find(fd, error);
  if (h == nullptr) return -error;
  if (const int e = Mutation(); e != 0) return -e;
  if (options_.data_sync_is_a_no_op) return 0;
  FileData& f = *h->file;
  for (const FileData::Op& op : f.pending) {
    if (op.grow) {
      f.durable.Grow(op.end);
    } else {
      f.durable.Write(op.offset, {reinterpret_cast<const std::byte*>(
                                      op.bytes.data()),
                                  op.bytes.size()});
    }
  }
  f.pending.clear();
  return 0;
}

int64_t SimDisk::SizeOf(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  int error = Usable();
  Handle* h = error == 0 ? Find(fd, error) : nullptr;
  if (h == nullptr) return -error;
  return static_cast<int64_t>(h->file->current.size());
}

void SimDisk::FailAfter(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_budget_ = n;
  failing_ = false;
}

void SimDisk::ClearFailAfter() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_budget_.reset();
  failing_ = false;
}

bool SimDisk::failing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failing_;
}

uint64_t SimDisk::mutations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mutations_;
}

void SimDisk::ApplyCrash(FileData& f, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto chance = [&](int quarters) {
    return std::uniform_int_distribution<int>(0, 3)(rng) < quarters;
  };
  const int keep_quarters = std::uniform_int_distribution<int>(0, 4)(rng);
  const int tear_quarters = std::uniform_int_distribution<int>(0, 2)(rng);
  const bool shuffle = chance(2);
  std::vector<size_t> order(f.pending.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (shuffle) std::shuffle(order.begin(), order.end(), rng);
  Image image = f.durable;
  const uint64_t sector = options_.sector_bytes;
  for (const size_t i : order) {
    const FileData::Op& op = f.pending[i];
    const bool keep = chance(keep_quarters);
    if (op.grow) {
      if (keep) image.Grow(op.end);
      continue;
    }
    const auto* bytes = reinterpret_cast<const std::byte*>(op.bytes.data());
    const uint64_t end = op.offset + op.bytes.size();
    if (keep && !chance(tear_quarters)) {
      image.Write(op.offset, {bytes, op.bytes.size()});
      continue;
    }
    if (keep) {
      // Torn: a prefix of the sectors the write covers, maybe none.
      const uint64_t first = op.offset / sector;
      const uint64_t sectors = (end + sector - 1) / sector - first;
      const uint64_t kept =
          std::uniform_int_distribution<uint64_t>(0, sectors - 1)(rng);
      const uint64_t cut = std::min(end, (first + kept) * sector);
      if (cut > op.offset) image.Write(op.offset, {bytes, cut - op.offset});
    }
    // The size may have landed without the data (ALICE).
    if (end > image.size() && chance(2)) image.Grow(end);
  }
  f.durable = image;
  f.current = std::move(image);
  f.pending.clear();
  f.shared_locks = 0;
  f.exclusive = false;
}

void SimDisk::Crash(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  for (auto it = files_.begin(); it != files_.end();) {
    const uint64_t file_seed = rng();
    if (!it->second->entry_durable && (rng() & 1) != 0) {
      it = files_.erase(it);  // its creation never reached the disk
      continue;
    }
    ApplyCrash(*it->second, file_seed);
    it->second->entry_durable = true;
    ++it;
  }
  for (auto& [path, file] : removed_) {
    const uint64_t file_seed = rng();
    if (files_.count(path) == 0 && (rng() & 1) != 0) {
      ApplyCrash(*file, file_seed);
      file->entry_durable = true;
      files_[path] = file;  // its removal never reached the disk
    }
  }
  removed_.clear();
  for (const auto& [fd, handle] : handles_) dead_fds_.insert(fd);
  handles_.clear();
  fail_budget_.reset();
  failing_ = false;
  lock_released_.notify_all();
}

bool SimDisk::Exists(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.count(path) != 0;
}

uint64_t SimDisk::FileSize(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second->current.size();
}

std::string SimDisk::Dump(const Image& image, uint64_t offset,
                          uint64_t len) const {
  if (offset >= image.size()) return "";
  std::string out(std::min(len, image.size() - offset), '\0');
  image.Read(offset, {reinterpret_cast<std::byte*>(out.data()), out.size()});
  return out;
}

std::string SimDisk::Contents(const std::string& path, uint64_t offset,
                              uint64_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? "" : Dump(it->second->current, offset, len);
}

std::string SimDisk::DurableContents(const std::string& path, uint64_t offset,
                                     uint64_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? "" : Dump(it->second->durable, offset, len);
}

uint64_t SimDisk::NextData(const std::string& path, uint64_t offset) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second->current.NextData(offset);
}

size_t SimDisk::VolatileOps(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second->pending.size();
}

bool SimDisk::CreationDurable(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  return it != files_.end() && it->second->entry_durable;
}

}  // namespace lss::testing
