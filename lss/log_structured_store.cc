#include "lss/log_structured_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/direct_io_alignment.h"
#include "flush/io_ring_factory.h"
#include "lss/block_reader.h"
#include "ring/check.h"

namespace lss {
namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }
uint64_t RoundDown(uint64_t x, uint64_t to) { return x / to * to; }

absl::Status Errno(int error, const std::string& what) {
  return absl::ErrnoToStatus(error, what);
}

uint64_t NewStoreId() {
  std::random_device device;
  const uint64_t id = (uint64_t{device()} << 32) ^ device() ^
                      static_cast<uint64_t>(
                          std::chrono::steady_clock::now().time_since_epoch()
                              .count());
  return id == 0 ? 1 : id;
}

// Memory aligned for O_DIRECT, freed with free().
struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<std::byte[], FreeDeleter>;

AlignedBytes AllocateAligned(size_t alignment, size_t bytes) {
  void* p = nullptr;
  LSS_CHECK(posix_memalign(&p, alignment, bytes) == 0,
            "out of memory for an aligned read buffer");
  return AlignedBytes(static_cast<std::byte*>(p));
}

}  // namespace

// Stands between the ring and the appender: seals each dispatched buffer as
// a block (header and CRC), keeps the file allocated ahead of the writes,
// and keeps the index of blocks that Read and LogReader use, including which
// blocks are still resident in a flush buffer.
class LogStructuredStore::Sink final : public SealedBufferSink,
                                       public BufferRecycler {
 public:
  struct Block {
    uint32_t used = 0;
    const std::byte* resident = nullptr;  // set while in a flush buffer
    int pins = 0;                         // readers copying from `resident`
  };

  // `sb` is the store's, which changes only before the first dispatch.
  Sink(int fd, const Superblock& sb, uint64_t allocated, uint64_t step)
      : fd_(fd), sb_(sb), allocated_(allocated), step_(step) {}

  void Connect(Appender* appender, FlushBufferRing* ring) {
    appender_ = appender;
    ring_ = ring;
  }

  void AddRecovered(uint64_t address, uint32_t used) {
    std::lock_guard<std::mutex> lock(mu_);
    blocks_[address] = Block{.used = used};
  }

  void Dispatch(const SealedBuffer& sealed) override {
    const std::span<std::byte> bytes(sealed.buffer->data(), sealed.padded);
    SealBlock(BlockHeader{.store_id = sb_.store_id,
                          .address = sealed.address,
                          .epoch = sb_.epoch,
                          .used = static_cast<uint32_t>(sealed.used)},
              bytes);
    Preallocate(sealed.address + sealed.padded);
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks_[sealed.address] = Block{.used = static_cast<uint32_t>(
                                          sealed.used),
                                      .resident = sealed.buffer->data()};
    }
    appender_->Dispatch(sealed);
  }

  absl::Status HelpDrain() override { return appender_->HelpDrain(); }

  // The appender is done with the buffer: once no reader copies from it, it
  // stops being the block's resident copy and goes back to the ring.
  void Recycle(const SealedBuffer& sealed) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      Block& block = blocks_.at(sealed.address);
      unpinned_.wait(lock, [&] { return block.pins == 0; });
      block.resident = nullptr;
    }
    ring_->Recycle(sealed);
  }

  // The block containing `address`, pinned if resident; false if none is
  // known (yet). Unpin a resident result with Unpin.
  bool Find(uint64_t address, uint64_t& base, Block& found) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.upper_bound(address);
    if (it == blocks_.begin()) return false;
    --it;
    if (address >= it->first + RoundUp(it->second.used, sb_.block_bytes)) {
      return false;
    }
    base = it->first;
    if (it->second.resident != nullptr) ++it->second.pins;
    found = it->second;
    return true;
  }

  void Unpin(uint64_t base) {
    std::lock_guard<std::mutex> lock(mu_);
    if (--blocks_.at(base).pins == 0) unpinned_.notify_all();
  }

  // Block addresses whose blocks end after `from` and start below `limit`.
  std::vector<uint64_t> Blocks(uint64_t from, uint64_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> out;
    auto it = blocks_.upper_bound(from);
    if (it != blocks_.begin()) --it;
    for (; it != blocks_.end() && it->first < limit; ++it) {
      if (it->first + it->second.used > from) out.push_back(it->first);
    }
    return out;
  }

 private:
  // Keeps the file allocated at least step_ / 2 past `end`, in steps of
  // step_, so a block write never extends the file or straddles allocated
  // and unallocated space (both are slow paths in ext4 under O_DIRECT).
  void Preallocate(uint64_t end) {
    if (step_ == 0 ||
        end + step_ / 2 <= allocated_.load(std::memory_order_acquire)) {
      return;
    }
    std::lock_guard<std::mutex> lock(allocate_mu_);
    const uint64_t have = allocated_.load(std::memory_order_relaxed);
    if (end + step_ / 2 <= have) return;
    const uint64_t want = RoundUp(end + step_, step_);
    // A failure (no space, or a file system without fallocate) is left to
    // the write, which reports it with its offset.
    if (fallocate(fd_, 0, have, want - have) == 0) {
      allocated_.store(want, std::memory_order_release);
    } else {
      step_ = 0;
    }
  }

  const int fd_;
  const Superblock& sb_;
  Appender* appender_ = nullptr;
  FlushBufferRing* ring_ = nullptr;

  std::mutex allocate_mu_;
  std::atomic<uint64_t> allocated_;
  uint64_t step_;  // 0: stopped preallocating

  std::mutex mu_;
  std::condition_variable unpinned_;
  std::map<uint64_t, Block> blocks_;
};

LogStructuredStore::LogStructuredStore(std::string path, StoreOptions options)
    : path_(std::move(path)), options_(std::move(options)) {}

LogStructuredStore::~LogStructuredStore() { Close().IgnoreError(); }

absl::StatusOr<std::unique_ptr<LogStructuredStore>> LogStructuredStore::Open(
    const std::string& path, const StoreOptions& options) {
  const uint32_t block = options.block_bytes;
  if (block < 512 || block > (1u << 20) || (block & (block - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": block_bytes ", block,
                     " is not a power of two from 512 to 1048576"));
  }
  if (options.buffer_bytes % block != 0 ||
      options.buffer_bytes < 2 * kBlockHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": buffer_bytes ", options.buffer_bytes,
                     " is not a multiple of block_bytes ", block));
  }
  std::unique_ptr<LogStructuredStore> store(
      new LogStructuredStore(path, options));
  store->read_only_ =
      options.read_only || options.recovery == RecoveryMode::kSkipCorrupted;
  if (absl::Status s = store->OpenFile(); !s.ok()) return s;
  if (absl::Status s = store->LoadOrCreateSuperblock(); !s.ok()) return s;
  if (absl::Status s = store->Recover(); !s.ok()) return s;
  if (!store->read_only_) {
    if (absl::Status s = store->StartWriting(); !s.ok()) return s;
  }
  return store;
}

absl::Status LogStructuredStore::OpenFile() {
  int flags = O_CLOEXEC | (read_only_ ? O_RDONLY : O_RDWR | O_CREAT);
  direct_io_ = options_.direct_io;
  for (;;) {
    fd_ = open(path_.c_str(), flags | (direct_io_ ? O_DIRECT : 0), 0644);
    if (fd_ >= 0) break;
    const int error = errno;
    if (error == EINVAL && direct_io_ && options_.allow_buffered_fallback) {
      direct_io_ = false;  // the file system refuses O_DIRECT
      continue;
    }
    switch (error) {
      case EISDIR:
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": is a directory, not a log file"));
      case ENOENT:
        return absl::NotFoundError(absl::StrCat(
            path_, read_only_ ? ": no such log file"
                              : ": its directory does not exist"));
      case EINVAL:
        return absl::FailedPreconditionError(absl::StrCat(
            path_, ": the file system refuses O_DIRECT; set "
                   "allow_buffered_fallback or direct_io = false"));
      default:
        return Errno(error, absl::StrCat("open ", path_));
    }
  }
  // Locked on the same descriptor the I/O uses: see StoreOptions::lock_wait.
  const auto give_up = std::chrono::steady_clock::now() + options_.lock_wait;
  int backoff_us = 100;
  while (flock(fd_, (read_only_ ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK &&
        std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(backoff_us));
      backoff_us = std::min(backoff_us * 2, 20000);
      continue;
    }
    close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          path_, ": the log is already open (locked by this or another "
                 "process for more than ",
          options_.lock_wait.count(), " ms)"));
    }
    return Errno(error, absl::StrCat("flock ", path_));
  }
  struct stat st;
  if (fstat(fd_, &st) != 0) return Errno(errno, absl::StrCat("fstat ", path_));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": not a regular file"));
  }
  file_size_ = static_cast<uint64_t>(st.st_size);
  return absl::OkStatus();
}

absl::Status LogStructuredStore::LoadOrCreateSuperblock() {
  const uint64_t slot = SuperblockSlotBytes(options_.block_bytes);
  if (file_size_ == 0) {
    // A new log (or one whose creator died before writing anything, which
    // is the same thing). A writer writes the first epoch's superblock in
    // StartWriting, before any block; a reader sees an empty log.
    sb_.block_bytes = options_.block_bytes;
    sb_.buffer_bytes = options_.buffer_bytes;
    sb_.store_id = read_only_ ? 0 : NewStoreId();
    sb_.data_start = 2 * slot;
    sb_.epoch_start = sb_.data_start;
    return absl::OkStatus();
  }
  AlignedBytes buf = AllocateAligned(4096, 4096);
  auto read_slot = [&](uint64_t at) -> absl::StatusOr<Superblock> {
    std::memset(buf.get(), 0, 4096);
    if (pread(fd_, buf.get(), 4096, at) < 0) {
      return Errno(errno, absl::StrCat("read superblock at offset ", at,
                                       " of ", path_));
    }
    return DecodeSuperblock({buf.get(), 4096},
                            absl::StrCat(path_, ": offset ", at));
  };
  absl::StatusOr<Superblock> first = read_slot(0);
  if (!first.ok() && first.status().code() != absl::StatusCode::kDataLoss &&
      first.status().code() != absl::StatusCode::kInvalidArgument) {
    return first.status();  // a newer format version, or an I/O error
  }
  // Slot 1 sits at the slot size the file was made with; take it from a
  // valid slot 0, else try every size.
  absl::StatusOr<Superblock> second = absl::NotFoundError("");
  for (uint64_t at = 4096; at <= SuperblockSlotBytes(1u << 20); at *= 2) {
    if (first.ok() && at != SuperblockSlotBytes(first->block_bytes)) continue;
    absl::StatusOr<Superblock> sb = read_slot(at);
    if (sb.ok() && sb->data_start == 2 * at) {
      second = sb;
      break;
    }
    if (sb.status().code() == absl::StatusCode::kFailedPrecondition) {
      return sb.status();
    }
  }
  if (!first.ok() && !second.ok()) return first.status();
  sb_ = (first.ok() && (!second.ok() || first->sequence > second->sequence))
            ? *first
            : *second;
  if (sb_.block_bytes != options_.block_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": the log has block_bytes ", sb_.block_bytes,
        "; options ask for ", options_.block_bytes));
  }
  if (sb_.buffer_bytes != options_.buffer_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": the log has buffer_bytes ", sb_.buffer_bytes,
        "; options ask for ", options_.buffer_bytes));
  }
  return absl::OkStatus();
}

absl::Status LogStructuredStore::Recover() {
  sink_ = std::make_unique<Sink>(fd_, sb_, file_size_,
                                 read_only_ ? 0 : options_.preallocate_bytes);
  absl::StatusOr<BlockReader> reader =
      BlockReader::Create(fd_, path_, sb_, file_size_);
  if (!reader.ok()) return reader.status();
  const RecoveryMode mode = options_.recovery;
  uint64_t address = sb_.data_start;
  uint64_t prev_epoch = 0;
  for (;;) {
    absl::StatusOr<BlockCheck> check = reader->Check(address, prev_epoch);
    if (!check.ok()) return check.status();
    if (check->verdict == BlockVerdict::kValid) {
      sink_->AddRecovered(address, check->header.used);
      ++recovery_.blocks;
      recovery_.records += check->records;
      prev_epoch = check->header.epoch;
      address += RoundUp(check->header.used, sb_.block_bytes);
      continue;
    }
    recovery_.end = check->reason;
    const bool corrupt = check->verdict == BlockVerdict::kCorrupt;
    if (mode == RecoveryMode::kSkipCorrupted) {
      absl::StatusOr<std::optional<uint64_t>> next =
          reader->FindValid(address + sb_.block_bytes, file_size_);
      if (!next.ok()) return next.status();
      if (!next->has_value()) break;
      recovery_.skipped.push_back(absl::StrCat(
          check->reason, "; skipped ", **next - address, " bytes to ", **next));
      address = **next;
      prev_epoch = 0;
      continue;
    }
    if (corrupt && mode == RecoveryMode::kAbsoluteConsistency) {
      return absl::DataLossError(check->reason);
    }
    // Is anything of the log left past the end? (Holes are skipped, so
    // this reads only space that was written.)
    absl::StatusOr<std::optional<uint64_t>> later =
        reader->FindValid(address + sb_.block_bytes, file_size_);
    if (!later.ok()) return later.status();
    if (mode == RecoveryMode::kAbsoluteConsistency) {
      if (later->has_value()) {
        return absl::DataLossError(absl::StrCat(
            check->reason, "; but a valid block follows at offset ", **later));
      }
      // Where the end looks unwritten, not even a torn block's later
      // sectors may follow.
      if (check->unwritten) {
        absl::StatusOr<bool> zero =
            reader->AllZero(address, address + sb_.buffer_bytes);
        if (!zero.ok()) return zero.status();
        if (!*zero) {
          return absl::DataLossError(absl::StrCat(
              check->reason, "; but bytes of a torn block follow it"));
        }
      }
    }
    const bool dropped = later->has_value();
    if (mode == RecoveryMode::kTolerateCorruptedTail && dropped) {
      // Writes in flight at a crash lie within the horizon of the tail; a
      // valid block beyond it means the log is damaged mid-way (whether the
      // damage looks like garbage or like unwritten space).
      const uint64_t horizon = address + Horizon();
      if (**later < horizon) {
        later = reader->FindValid(horizon, file_size_);
        if (!later.ok()) return later.status();
      }
      if (later->has_value()) {
        return absl::DataLossError(absl::StrCat(
            check->reason, "; a valid block follows at offset ", **later,
            ", beyond what a crash can tear: the log is damaged in the "
            "middle (open with RecoveryMode::kPointInTime to keep the prefix "
            "or kSkipCorrupted to salvage)"));
      }
    }
    recovery_.cut = corrupt || dropped;
    break;
  }
  recovery_.tail = address;
  recovery_.bytes_scanned = reader->bytes_read();
  return absl::OkStatus();
}

absl::Status LogStructuredStore::WriteSuperblock() {
  const uint64_t slot = SuperblockSlotBytes(sb_.block_bytes);
  AlignedBytes buf = AllocateAligned(slot, slot);
  std::memset(buf.get(), 0, slot);
  EncodeSuperblock(sb_, {buf.get(), slot});
  const uint64_t offset = (sb_.sequence % 2) * slot;
  const ssize_t n = pwrite(fd_, buf.get(), slot, offset);
  if (n != static_cast<ssize_t>(slot)) {
    return Errno(n < 0 ? errno : EIO,
                 absl::StrCat("write superblock at offset ", offset, " of ",
                              path_));
  }
  if (fdatasync(fd_) != 0) {
    return Errno(errno, absl::StrCat("fdatasync superblock of ", path_));
  }
  return absl::OkStatus();
}

uint64_t LogStructuredStore::Horizon() const {
  return std::max(sb_.max_in_flight_bytes, sb_.buffer_bytes);
}

absl::Status LogStructuredStore::ZeroPastTail() {
  const uint64_t from = recovery_.tail;
  const uint64_t to = std::min(file_size_, from + Horizon());
  if (from >= to) return absl::OkStatus();
  if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(from), static_cast<off_t>(to - from)) == 0) {
    return absl::OkStatus();
  }
  // A file system without ZERO_RANGE: write the zeros.
  const size_t chunk = sb_.buffer_bytes;
  AlignedBytes zeros = AllocateAligned(sb_.block_bytes, chunk);
  std::memset(zeros.get(), 0, chunk);
  for (uint64_t at = from; at < to;) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(
        chunk, RoundUp(to - at, sb_.block_bytes)));
    const ssize_t n = pwrite(fd_, zeros.get(), len, static_cast<off_t>(at));
    if (n <= 0) {
      return Errno(n < 0 ? errno : EIO,
                   absl::StrCat("zeroing ", len, " bytes past the tail at ",
                                "offset ", at, " of ", path_));
    }
    at += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status LogStructuredStore::StartWriting() {
  // Clear what a crash may have left past the tail (torn or unacknowledged
  // blocks), so the new epoch's blocks are followed by zeros and a clean
  // close reopens clean. Stale blocks could never rejoin the log anyway
  // (epochs); this keeps them from reading as damage.
  if (absl::Status s = ZeroPastTail(); !s.ok()) return s;
  // The recovered prefix may sit only in the page cache (the writer was
  // killed, the machine was not): make it, and the zeros, durable before
  // the new epoch builds on it.
  if (fdatasync(fd_) != 0) {
    return Errno(errno, absl::StrCat("fdatasync ", path_));
  }
  const bool created = sb_.sequence == 0;
  ++sb_.sequence;
  ++sb_.epoch;
  sb_.epoch_start = recovery_.tail;
  sb_.max_in_flight_bytes = options_.ring_size * options_.buffer_bytes;
  if (absl::Status s = WriteSuperblock(); !s.ok()) return s;
  if (created) {
    // The new file's directory entry must be durable too.
    const size_t slash = path_.find_last_of('/');
    const std::string dir =
        slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  size_t alignment = sb_.block_bytes;
  if (direct_io_) {
    absl::StatusOr<size_t> dio = QueryDirectIoAlignment(fd_);
    if (!dio.ok()) return dio.status();
    if (sb_.block_bytes % *dio != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": block_bytes ", sb_.block_bytes,
          " is not a multiple of the file's O_DIRECT alignment ", *dio));
    }
  }
  absl::StatusOr<std::unique_ptr<IoRing>> io =
      options_.io_ring_factory ? options_.io_ring_factory(options_.queue_depth)
                               : CreateIoRing(options_.queue_depth);
  if (!io.ok()) return io.status();
  io_ = *std::move(io);
  appender_ = std::make_unique<Appender>(
      io_.get(), AppenderOptions{.fd = fd_,
                                 .path = path_,
                                 .policy = options_.policy,
                                 .durability = options_.durability,
                                 .direct_io = direct_io_,
                                 .alignment = alignment,
                                 .start_address = recovery_.tail});
  absl::StatusOr<std::unique_ptr<FlushBufferRing>> ring =
      FlushBufferRing::Create(
          FlushBufferRingOptions{.buffer_bytes = options_.buffer_bytes,
                                 .ring_size = options_.ring_size,
                                 .block_bytes = sb_.block_bytes,
                                 .start_address = recovery_.tail,
                                 .header_bytes = kBlockHeaderBytes},
          sink_.get());
  if (!ring.ok()) {
    return absl::Status(ring.status().code(),
                        absl::StrCat(path_, ": ", ring.status().message()));
  }
  ring_ = *std::move(ring);
  sink_->Connect(appender_.get(), ring_.get());
  appender_->set_ring(sink_.get());
  return absl::OkStatus();
}

absl::Status LogStructuredStore::Usable() const {
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": the store is closed"));
  }
  if (appender_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": the store is open read-only"));
  }
  return appender_->status();
}

size_t LogStructuredStore::max_payload_bytes() const {
  return sb_.buffer_bytes - kBlockHeaderBytes - kRecordHeaderBytes;
}

absl::StatusOr<uint64_t> LogStructuredStore::Append(absl::string_view payload,
                                                    RecordTag tag) {
  absl::StatusOr<StoreReservation> r = Reserve(payload.size(), tag);
  if (!r.ok()) return r.status();
  std::memcpy(r->payload().data(), payload.data(), payload.size());
  return Commit(*std::move(r));
}

absl::StatusOr<StoreReservation> LogStructuredStore::Reserve(
    size_t payload_bytes, RecordTag tag) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (payload_bytes == 0 || payload_bytes > max_payload_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": record of ", payload_bytes, " bytes; records hold 1 to ",
        max_payload_bytes(), " bytes with buffer_bytes ", sb_.buffer_bytes));
  }
  if (tag.type == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": record type 0 is reserved for padding"));
  }
  absl::StatusOr<Reservation> r = ring_->Reserve(RecordFootprint(payload_bytes));
  if (!r.ok()) return r.status();
  return StoreReservation(*std::move(r), tag, payload_bytes);
}

uint64_t LogStructuredStore::Commit(StoreReservation&& reservation) {
  const uint64_t address = reservation.address();
  SealRecord(address, reservation.tag_, reservation.payload_bytes_,
             reservation.ring_.data());
  ring_->Commit(std::move(reservation.ring_));
  return address;
}

absl::StatusOr<uint64_t> LogStructuredStore::Flush() {
  if (absl::Status s = Usable(); !s.ok()) return s;
  return ring_->SealCurrent();
}

absl::Status LogStructuredStore::Sync() {
  absl::StatusOr<uint64_t> end = Flush();
  if (!end.ok()) return end.status();
  return appender_->WaitStable(*end);
}

absl::Status LogStructuredStore::WaitStable(uint64_t address) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (HiStable() > address) return absl::OkStatus();
  absl::StatusOr<uint64_t> end = ring_->SealCurrent();
  if (!end.ok()) return end.status();
  if (address >= *end) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": WaitStable(", address, "): past the end of the log, ", *end));
  }
  return appender_->WaitStable(address + 1);
}

uint64_t LogStructuredStore::HiStable() const {
  return appender_ != nullptr ? appender_->HiStable() : recovery_.tail;
}

absl::Status LogStructuredStore::ReadRange(uint64_t address,
                                           std::span<std::byte> out) const {
  const uint64_t align = sb_.block_bytes;
  const uint64_t start = RoundDown(address, align);
  const uint64_t end = RoundUp(address + out.size(), align);
  const size_t len = end - start;
  AlignedBytes buf = AllocateAligned(align, len);
  if (appender_ != nullptr) {
    // Through the IoRing the writes use, so reads share its queue.
    absl::Status s = appender_->Read(start, {buf.get(), len});
    if (s.code() == absl::StatusCode::kOutOfRange) {
      return absl::DataLossError(absl::StrCat(
          path_, ": offset ", start, ": the file ends inside a block"));
    }
    if (!s.ok()) return s;
    std::memcpy(out.data(), buf.get() + (address - start), out.size());
    return absl::OkStatus();
  }
  size_t got = 0;
  while (got < len) {
    const ssize_t n = pread(fd_, buf.get() + got, len - got, start + got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Errno(errno, absl::StrCat("read of ", len - got,
                                       " bytes at offset ", start + got,
                                       " of ", path_));
    }
    if (n == 0) {
      if (start + got >= address + out.size()) break;
      return absl::DataLossError(absl::StrCat(
          path_, ": offset ", start + got, ": the file ends inside a block"));
    }
    got += static_cast<size_t>(n);
  }
  std::memcpy(out.data(), buf.get() + (address - start), out.size());
  return absl::OkStatus();
}

absl::StatusOr<LogRecord> LogStructuredStore::Read(uint64_t address) {
  if (closed_) return Usable();
  auto no_record = [&](absl::string_view why) {
    return absl::NotFoundError(absl::StrCat(path_, ": offset ", address,
                                            ": no record there: ", why));
  };
  if (address < sb_.data_start || address % kRecordAlignment != 0) {
    return no_record("not a record boundary");
  }
  for (;;) {
    uint64_t base = 0;
    Sink::Block block;
    if (!sink_->Find(address, base, block)) {
      if (appender_ == nullptr) return no_record("past the end of the log");
      absl::StatusOr<uint64_t> end = Flush();
      if (!end.ok()) return end.status();
      if (address >= *end) {
        return no_record(absl::StrCat("the log ends at ", *end));
      }
      // Its buffer is sealed but still has writers: help it along.
      if (absl::Status s = appender_->HelpDrain(); !s.ok()) return s;
      std::this_thread::yield();
      continue;
    }
    if (address < base + kBlockHeaderBytes) {
      return no_record(absl::StrCat("inside the header of block ", base));
    }
    if (address >= base + block.used) {
      return no_record(absl::StrCat("in the padding of block ", base));
    }
    const size_t left = base + block.used - address;
    LogRecord out;
    RecordView view;
    std::string reason;
    RecordParse parse;
    if (block.resident != nullptr) {
      parse = ParseRecord(address, {block.resident + (address - base), left},
                          view, reason);
      if (parse == RecordParse::kRecord) {
        out.payload.assign(view.payload.data(), view.payload.size());
      }
      sink_->Unpin(base);
    } else {
      // One read of the aligned block holding the header brings the whole
      // of a small record; a longer one needs a second read for the rest.
      const uint64_t first_end =
          std::min(base + block.used,
                   RoundUp(address + kRecordHeaderBytes, sb_.block_bytes));
      std::vector<std::byte> bytes(first_end - address);
      if (absl::Status s = ReadRange(address, bytes); !s.ok()) return s;
      uint32_t length = 0;
      if (bytes.size() >= 8) std::memcpy(&length, bytes.data() + 4, 4);
      const size_t have = bytes.size();
      const size_t want = std::min<uint64_t>(left, RecordFootprint(length));
      bytes.resize(want);
      if (want > have) {
        if (absl::Status s =
                ReadRange(address + have, std::span(bytes).subspan(have));
            !s.ok()) {
          return s;
        }
      }
      parse = ParseRecord(address, bytes, view, reason);
      if (parse == RecordParse::kRecord) {
        out.payload.assign(view.payload.data(), view.payload.size());
      }
    }
    if (parse == RecordParse::kPadding) return no_record("padding");
    if (parse == RecordParse::kCorrupt) return no_record(reason);
    out.address = address;
    out.tag = view.tag;
    return out;
  }
}

absl::Status LogStructuredStore::ReadBlock(uint64_t base,
                                           std::vector<std::byte>& out) {
  uint64_t found_base = 0;
  Sink::Block block;
  LSS_CHECK(sink_->Find(base, found_base, block) && found_base == base,
            "LogReader lost a block of the index");
  out.resize(block.used);
  if (block.resident != nullptr) {
    std::memcpy(out.data(), block.resident, block.used);
    sink_->Unpin(base);
    return absl::OkStatus();
  }
  return ReadRange(base, out);
}

absl::StatusOr<std::unique_ptr<LogReader>> LogStructuredStore::NewLogReader(
    uint64_t from) {
  if (closed_) return Usable();
  return std::unique_ptr<LogReader>(
      new LogReader(this, sink_->Blocks(from, HiStable()), from));
}

absl::StatusOr<bool> LogReader::Next() {
  while (next_record_ >= records_.size()) {
    if (next_block_ >= blocks_.size()) return false;
    const uint64_t base = blocks_[next_block_++];
    if (absl::Status s = store_->ReadBlock(base, block_); !s.ok()) return s;
    records_.clear();
    next_record_ = 0;
    if (absl::Status s = ForEachRecord(
            block_, base, store_->path_,
            [&](const RecordView& r) {
              if (r.address >= from_) records_.push_back(r);
              return absl::OkStatus();
            });
        !s.ok()) {
      return s;
    }
  }
  record_ = records_[next_record_++];
  return true;
}

absl::Status LogStructuredStore::Close() {
  if (closed_) return absl::OkStatus();
  absl::Status status;
  if (appender_ != nullptr) {
    status = Sync();
    status.Update(appender_->Drain());
    if (fdatasync(fd_) != 0) {
      status.Update(Errno(errno, absl::StrCat("fdatasync ", path_)));
    }
  }
  closed_ = true;
  // The appender reaps what is in flight before the ring's memory goes.
  appender_.reset();
  ring_.reset();
  io_.reset();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return status;
}

Appender::Stats LogStructuredStore::appender_stats() const {
  return appender_ != nullptr ? appender_->stats() : Appender::Stats{};
}

FlushBufferRing::Stats LogStructuredStore::ring_stats() const {
  return ring_ != nullptr ? ring_->stats() : FlushBufferRing::Stats{};
}

}  // namespace lss
