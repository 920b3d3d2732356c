#include "lss/log_structured_store.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "flush/io_ring_factory.h"
#include "lss/block_reader.h"
#include "lss/superblock_io.h"
#include "ring/check.h"

namespace lss {
namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

// The head once the holes that start at or below it are part of what lies
// below it (they are taken out of `holes`, which is in order).
uint64_t AbsorbAtHead(uint64_t head, std::vector<Hole>& holes) {
  while (!holes.empty() && holes.front().begin <= head) {
    head = std::max(head, holes.front().end);
    holes.erase(holes.begin());
  }
  return head;
}

uint64_t RoundDown(uint64_t x, uint64_t to) { return x / to * to; }

constexpr size_t kMaxBufferBytes = size_t{1} << 30;
constexpr size_t kMaxRingSize = 1024;
constexpr unsigned kMaxQueueDepth = 4096;
// The largest StoreOptions::zero_ahead_bytes.
constexpr uint64_t kMaxZeroAheadBytes = uint64_t{1} << 20;
// Longer than any fdatasync: a longer delay would only add latency.
constexpr std::chrono::microseconds kMaxCommitDelay{100'000};

uint64_t NewStoreId() {
  std::random_device device;
  const uint64_t id = (uint64_t{device()} << 32) ^ device() ^
                      static_cast<uint64_t>(
                          std::chrono::steady_clock::now().time_since_epoch()
                              .count());
  return id == 0 ? 1 : id;
}

// Every option, before anything touches the file.
absl::Status CheckOptions(const std::string& path, const StoreOptions& o) {
  auto bad = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what...));
  };
  const uint32_t block = o.block_bytes;
  if (block < 512 || block > (1u << 20) || (block & (block - 1)) != 0) {
    return bad("block_bytes ", block,
               " is not a power of two from 512 to 1048576");
  }
  if (o.buffer_bytes % block != 0 || o.buffer_bytes < block ||
      o.buffer_bytes < 2 * kBlockHeaderBytes ||
      o.buffer_bytes > kMaxBufferBytes) {
    return bad("buffer_bytes ", o.buffer_bytes,
               " is not a multiple of block_bytes ", block, " from ",
               std::max<size_t>(block, 2 * kBlockHeaderBytes), " to ",
               kMaxBufferBytes);
  }
  if (o.ring_size == 0 || o.ring_size > kMaxRingSize) {
    return bad("ring_size ", o.ring_size, " is not from 1 to ", kMaxRingSize);
  }
  if (o.queue_depth == 0 || o.queue_depth > kMaxQueueDepth) {
    return bad("queue_depth ", o.queue_depth, " is not from 1 to ",
               kMaxQueueDepth);
  }
  if (!o.lock && !o.read_only && o.recovery != RecoveryMode::kSkipCorrupted) {
    return bad("lock = false is for read-only opens only");
  }
  if (o.lock_wait.count() < 0) {
    return bad("lock_wait ", o.lock_wait.count(), " ms is negative");
  }
  const uint64_t zero = o.zero_ahead_bytes;
  if (zero != 0 && (zero < 512 || zero > kMaxZeroAheadBytes ||
                    (zero & (zero - 1)) != 0)) {
    return bad("zero_ahead_bytes ", zero,
               " is not 0 or a power of two from 512 to ",
               kMaxZeroAheadBytes);
  }
  if (o.commit_delay.count() < 0 || o.commit_delay > kMaxCommitDelay) {
    return bad("commit_delay ", o.commit_delay.count(),
               " us is not from 0 to ", kMaxCommitDelay.count());
  }
  // Room for the superblocks and a few buffers: less could never hold a
  // full record.
  const uint64_t min_capacity =
      2 * SuperblockSlotBytes(block) + 4 * uint64_t{o.buffer_bytes};
  if (o.capacity_bytes != 0 && o.capacity_bytes < min_capacity) {
    return bad("capacity_bytes ", o.capacity_bytes, " is below ",
               min_capacity, " (superblocks and 4 x buffer_bytes); 0 means "
               "no bound");
  }
  return absl::OkStatus();
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
// a block (header, durable watermark and CRC), keeps the file allocated
// ahead of the writes, and keeps the block index current.
class LogStructuredStore::Sink final : public SealedBufferSink,
                                       public BufferRecycler {
 public:
  // `sb` is the store's, which changes only before the first dispatch;
  // `stale_blocks`, the intact blocks recovery found past the tail.
  Sink(File* file, const Superblock& sb,
       const std::vector<std::pair<uint64_t, uint64_t>>* stale_blocks,
       BlockIndex* index, uint64_t allocated, uint64_t step,
       uint64_t zero_ahead_bytes)
      : zero_ahead_bytes_(zero_ahead_bytes == 0
                              ? 0
                              : std::max<uint64_t>(zero_ahead_bytes,
                                                   sb.block_bytes)),
        file_(file),
        sb_(sb),
        stale_blocks_(stale_blocks),
        index_(index),
        allocated_(allocated),
        step_(step) {}

  void Connect(Appender* appender, FlushBufferRing* ring) {
    appender_ = appender;
    ring_ = ring;
  }

  void Dispatch(const SealedBuffer& sealed) override {
    const std::span<std::byte> bytes = sealed.bytes();
    const uint64_t stable = appender_->HiStable();
    // A block with no records (a cut just before the buffer was sealed)
    // holds one padding word, like the close marker: the format wants more
    // than a header. The ring zeroed everything past the header.
    const uint32_t used = static_cast<uint32_t>(
        std::max<size_t>(sealed.used, kBlockHeaderBytes + kRecordAlignment));
    SealBlock(BlockHeader{.store_id = sb_.store_id,
                          .address = sealed.address,
                          .epoch = sb_.epoch,
                          .used = used,
                          .stable = stable},
              bytes);
    uint64_t seen = proven_.load(std::memory_order_relaxed);
    while (stable > seen && !proven_.compare_exchange_weak(
                                seen, stable, std::memory_order_acq_rel)) {
    }
    Preallocate(sealed.address + sealed.padded);
    {
      // Waits for a ZeroAhead that covers this block: its zeros must be
      // written before the block is, never after.
      std::lock_guard<std::mutex> lock(zero_mu_);
      dispatched_end_ =
          std::max<uint64_t>(dispatched_end_, sealed.address + sealed.padded);
    }
    index_->Add(sealed.address, used, bytes.data());
    appender_->Dispatch(sealed);
  }

  // Group commits write small blocks into fresh space, and on ext4 the
  // fdatasync after a write into space that was only fallocated must also
  // commit the extent's change from unwritten to written to the journal;
  // over space written before, it is a device cache flush (4 KiB O_DIRECT
  // write + fdatasync here: 3,200/s vs 6,100/s). So a group commit leader
  // keeps the file written with zeros a little ahead of `end`, never where
  // a block has been handed out: up to zero_ahead_bytes, less for a small
  // log and never more than the preallocation step (none when that is
  // off), so the file grows no faster than preallocation makes it. Bulk
  // appends never call this: for them it would double the bytes written.
  // Best effort: after a failed write it stops (the blocks' writes report
  // errors).
  void ZeroAhead(uint64_t end) {
    // A power of two of at least a block, so every write stays aligned.
    const uint64_t window =
        std::bit_floor(std::min({zero_ahead_bytes_, std::bit_ceil(end),
                                 step_.load(std::memory_order_relaxed)}));
    if (window < sb_.block_bytes ||
        end + window / 2 <= zeroed_.load(std::memory_order_acquire)) {
      return;
    }
    std::lock_guard<std::mutex> lock(zero_mu_);
    if (zero_failed_) return;
    if (zero_block_ == nullptr) {
      zero_block_ = AllocateAligned(sb_.block_bytes, zero_ahead_bytes_);
      std::memset(zero_block_.get(), 0, zero_ahead_bytes_);
    }
    // Only inside the space preallocation already gave the file.
    uint64_t to = std::min(RoundUp(end + window, window),
                           RoundDown(allocated_.load(std::memory_order_acquire),
                                     sb_.block_bytes));
    // An intact block a crash left past the recovered tail is zeroed whole
    // or not at all: its rest alone would read as a torn write.
    for (const auto& [block_from, block_to] : *stale_blocks_) {
      if (block_from < to && to < block_to) to = block_to;
    }
    // Nothing below this epoch's start, where the recovered log ends.
    uint64_t from = std::max({zeroed_.load(std::memory_order_relaxed),
                              dispatched_end_, sb_.epoch_start});
    while (from < to) {
      const size_t n =
          static_cast<size_t>(std::min(to - from, zero_ahead_bytes_));
      if (!file_->WriteAt(from, {zero_block_.get(), n}).ok()) {
        zero_failed_ = true;
        return;
      }
      from += n;
    }
    if (to > zeroed_.load(std::memory_order_relaxed)) {
      zeroed_.store(to, std::memory_order_release);
    }
  }

  absl::Status HelpDrain() override { return appender_->HelpDrain(); }

  // The highest durable watermark a dispatched block claims.
  uint64_t proven() const { return proven_.load(std::memory_order_acquire); }

  // The file is never allocated past `end` (StoreOptions::capacity_bytes).
  void LimitAllocation(uint64_t end) {
    allocate_limit_.store(end, std::memory_order_release);
  }

  // The appender is done with the buffer: once no reader copies from it, it
  // stops being the block's resident copy and goes back to the ring.
  void Recycle(const SealedBuffer& sealed) override {
    index_->Release(sealed.address);
    ring_->Recycle(sealed);
  }

 private:
  // Keeps the file allocated at least step / 2 past `end`, in steps of
  // step, so a block write never extends the file or straddles allocated
  // and unallocated space (both are slow paths in ext4 under O_DIRECT).
  // The step is the log's size rounded up to a power of two, at most
  // preallocate_bytes: a log that holds a few bytes takes a few KiB of disk,
  // and a growing one reaches the full step after a handful of doublings.
  void Preallocate(uint64_t end) {
    const uint64_t step =
        std::min(step_.load(std::memory_order_relaxed), std::bit_ceil(end));
    if (step == 0 ||
        end + step / 2 <= allocated_.load(std::memory_order_acquire)) {
      return;
    }
    std::lock_guard<std::mutex> lock(allocate_mu_);
    // Below the end of a block handed out, the file is the log's: written
    // (extending the file where the capacity held preallocation back), or
    // released and punched since. Allocating there would fill holes again.
    handed_out_ = std::max(handed_out_, end);
    const uint64_t have = allocated_.load(std::memory_order_relaxed);
    if (end + step / 2 <= have) return;
    // Never past the capacity: the preallocation counts as disk used.
    const uint64_t want =
        std::min(RoundUp(end + step, step),
                 RoundDown(allocate_limit_.load(std::memory_order_acquire),
                           sb_.block_bytes));
    const uint64_t from = std::max(have, handed_out_);
    if (want <= from) return;
    // A failure (no space, or a file system without fallocate) is left to
    // the write, which reports it with its offset.
    if (file_->Allocate(from, want - from).ok()) {
      allocated_.store(want, std::memory_order_release);
    } else {
      step_.store(0, std::memory_order_relaxed);
    }
  }

  // StoreOptions::zero_ahead_bytes, at least a block; 0: no zeros.
  const uint64_t zero_ahead_bytes_;
  File* const file_;
  const Superblock& sb_;
  const std::vector<std::pair<uint64_t, uint64_t>>* const stale_blocks_;
  BlockIndex* const index_;
  Appender* appender_ = nullptr;
  FlushBufferRing* ring_ = nullptr;

  std::atomic<uint64_t> proven_{0};
  std::mutex zero_mu_;  // held while zeros are written
  uint64_t dispatched_end_ = 0;           // the end of every block handed out
  std::atomic<uint64_t> zeroed_{0};       // written with zeros below here
  AlignedBytes zero_block_;
  bool zero_failed_ = false;
  std::mutex allocate_mu_;
  uint64_t handed_out_ = 0;  // the highest block end, under allocate_mu_
  std::atomic<uint64_t> allocated_;
  std::atomic<uint64_t> allocate_limit_{~uint64_t{0}};
  // preallocate_bytes, the largest step; 0: stopped preallocating.
  std::atomic<uint64_t> step_;
};

LogStructuredStore::LogStructuredStore(std::string path, StoreOptions options)
    : path_(std::move(path)), options_(std::move(options)) {}

LogStructuredStore::~LogStructuredStore() { Close().IgnoreError(); }

absl::StatusOr<std::unique_ptr<LogStructuredStore>> LogStructuredStore::Open(
    const std::string& path, const StoreOptions& options) {
  if (absl::Status s = CheckOptions(path, options); !s.ok()) return s;
  std::unique_ptr<LogStructuredStore> store(
      new LogStructuredStore(path, options));
  store->read_only_ =
      options.read_only || options.recovery == RecoveryMode::kSkipCorrupted;
  absl::Status status = [&] {
    bool is_new = false;
    if (absl::Status s = store->OpenFile(is_new); !s.ok()) return s;
    absl::StatusOr<RecoveredLog> recovered = store->LoadAndRecover(is_new);
    if (!recovered.ok()) return recovered.status();
    if (store->read_only_) return store->PrepareReading();
    // Everything that can fail without writing comes first.
    if (absl::Status s = store->PrepareWriting(); !s.ok()) return s;
    return store->StartWriting(*recovered);
  }();
  if (status.ok()) return store;
  // Before StartWriting nothing was written; a file this Open created goes
  // again whatever failed.
  store->closed_ = true;
  if (store->file_ != nullptr && store->file_->created()) {
    store->file_->Unlink().IgnoreError();
  }
  return status;
}

absl::Status LogStructuredStore::OpenFile(bool& is_new) {
  const FileOptions file_options{
      .read_only = read_only_,
      .create = !read_only_,
      .direct_io = options_.direct_io,
      .allow_buffered_fallback = options_.allow_buffered_fallback,
      .lock_wait = options_.lock_wait,
      .lock = options_.lock};
  absl::StatusOr<std::unique_ptr<File>> file =
      options_.file_opener ? options_.file_opener(path_, file_options)
                           : OpenPosixFile(path_, file_options);
  if (!file.ok()) return file.status();
  file_ = *std::move(file);
  direct_io_ = file_->direct_io();
  absl::StatusOr<uint64_t> size = file_->Size();
  if (!size.ok()) return size.status();
  file_size_ = *size;
  is_new = file_size_ == 0;
  return absl::OkStatus();
}

absl::StatusOr<RecoveredLog> LogStructuredStore::LoadAndRecover(
    bool is_new) {
  const uint64_t slot = SuperblockSlotBytes(options_.block_bytes);
  std::string damaged_slot;
  if (!is_new) {
    absl::StatusOr<LoadedSuperblock> loaded =
        LoadSuperblock(*file_, file_size_, options_.block_bytes);
    if (!loaded.ok()) return loaded.status();
    is_new = loaded->is_new;
    sb_ = loaded->sb;
    damaged_slot = loaded->damaged;
    // The head only moves up to a durable block, and the file never
    // shrinks: a head past both the data start and the end of the file
    // (one cut short below the data start may still hold an empty log).
    if (!is_new && sb_.head > std::max(file_size_, sb_.data_start)) {
      return absl::DataLossError(absl::StrCat(
          path_, ": the superblock's head, offset ", sb_.head,
          ", lies past the end of the file (", file_size_,
          " bytes): the superblock is damaged"));
    }
    if (!is_new && !sb_.holes.empty() &&
        sb_.holes.back().end > std::max(file_size_, sb_.data_start)) {
      return absl::DataLossError(absl::StrCat(
          path_, ": the superblock's hole [", sb_.holes.back().begin, ", ",
          sb_.holes.back().end, ") lies past the end of the file (",
          file_size_, " bytes): the superblock is damaged"));
    }
  }
  if (is_new) {
    // A new log (or one whose creator died before its first superblock was
    // durable, which is the same thing). A writer writes the first epoch's
    // superblock in StartWriting, before any block; a reader sees an empty
    // log.
    sb_ = Superblock{};
    sb_.block_bytes = options_.block_bytes;
    sb_.buffer_bytes = options_.buffer_bytes;
    sb_.store_id = read_only_ ? 0 : NewStoreId();
    sb_.data_start = 2 * slot;
    sb_.epoch_start = sb_.data_start;
    sb_.head = sb_.data_start;
  }
  head_.store(sb_.head, std::memory_order_release);
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
  index_ = std::make_unique<BlockIndex>(sb_.block_bytes);
  if (is_new) {
    RecoveredLog empty;
    empty.report.head = sb_.data_start;
    empty.report.tail = sb_.data_start;
    empty.report.acknowledged = sb_.data_start;
    empty.report.end = absl::StrCat(path_, ": a new log");
    recovery_ = empty.report;
    return empty;
  }
  absl::StatusOr<std::optional<LoadedCheckpoint>> checkpoint =
      LoadCheckpoint();
  if (!checkpoint.ok()) return checkpoint.status();
  const std::string checkpoint_unused = recovery_.checkpoint_unused;
  uint64_t scan_from = 0;
  if (checkpoint->has_value() && options_.on_checkpoint) {
    LoadedCheckpoint& c = **checkpoint;
    c.view.bytes = absl::string_view(c.payload).substr(c.bytes_at);
    if (absl::Status s = options_.on_checkpoint(c.view); !s.ok()) return s;
    scan_from = c.view.resume;
    for (const RecoveredBlock& b : c.blocks) index_->Add(b.address, b.used);
  }
  absl::StatusOr<RecoveredLog> recovered =
      RecoverLog(*file_, sb_, file_size_, options_.recovery, damaged_slot,
                 options_.on_recovered_record, scan_from);
  if (!recovered.ok()) return recovered.status();
  if (scan_from != 0 && recovered->report.tail <= sb_.checkpoint) {
    return absl::DataLossError(absl::StrCat(
        recovered->report.end, "; but the checkpoint at offset ",
        sb_.checkpoint, " that recovery resumed from lies past that end "
        "(it was durable before the superblock named it): the log is "
        "damaged. Open without StoreOptions::on_checkpoint (a PageStore: "
        "PageStoreOptions::checkpoints = false) to scan it all"));
  }
  for (RecoveredBlock& b : recovered->blocks) {
    if (b.salvaged.empty()) {
      index_->Add(b.address, b.used);
    } else {
      index_->AddSalvaged(b.address, b.used, std::move(b.salvaged));
    }
  }
  // A hole the scan did not reach (the log was cut below it) is no longer
  // part of the log: a new epoch writes there.
  std::erase_if(sb_.holes, [&](const Hole& h) {
    return h.end > recovered->report.tail;
  });
  for (const Hole& h : sb_.holes) index_->DropRange(h.begin, h.end);
  CountHoles();
  recovery_ = recovered->report;
  recovery_.checkpoint_unused = checkpoint_unused;
  if (scan_from != 0) recovery_.checkpoint = sb_.checkpoint;
  intact_past_tail_ = recovered->intact_past_tail;
  return recovered;
}

absl::StatusOr<std::optional<LogStructuredStore::LoadedCheckpoint>>
LogStructuredStore::LoadCheckpoint() {
  const uint64_t at = sb_.checkpoint;
  if (at == 0) return std::nullopt;
  // A checkpoint that does not apply is dropped (a writable open writes
  // the superblock without it): the scan from the head stands in for it.
  auto unused = [&](absl::string_view why) {
    recovery_.checkpoint_unused =
        absl::StrCat(path_, ": the checkpoint at offset ", at, " ", why,
                     "; recovery scans the log from the head");
    sb_.checkpoint = 0;
    return std::optional<LoadedCheckpoint>();
  };
  if (options_.recovery == RecoveryMode::kSkipCorrupted) {
    return unused("is not used by kSkipCorrupted, which reads everything");
  }
  const auto in_hole = [&](uint64_t address) {
    return std::any_of(sb_.holes.begin(), sb_.holes.end(), [&](const Hole& h) {
      return address >= h.begin && address < h.end;
    });
  };
  if (at < sb_.head || at % kRecordAlignment != 0 ||
      at + kRecordHeaderBytes > file_size_ || in_hole(at)) {
    return unused(absl::StrCat("is no record address of the log (head ",
                               sb_.head, ", file size ", file_size_,
                               ", or released)"));
  }
  absl::StatusOr<BlockReader> reader =
      BlockReader::Create(file_.get(), sb_, file_size_);
  if (!reader.ok()) return reader.status();
  // The payload of the record of `type` at `address`; nothing (with `why`
  // set) if there is no such record.
  std::string why;
  const auto read = [&](uint64_t address, uint32_t type)
      -> absl::StatusOr<std::optional<std::string>> {
    if (absl::Status s = reader->Load(address, kRecordHeaderBytes); !s.ok()) {
      return s;
    }
    uint32_t length = 0;
    std::memcpy(&length,
                reader->Bytes(address, kRecordHeaderBytes).data() + 4,
                sizeof(length));
    if (length == 0 || length > max_payload_bytes()) {
      why = absl::StrCat("a record length of ", length, " bytes at offset ",
                         address);
      return std::nullopt;
    }
    const uint64_t footprint = RecordFootprint(length);
    if (absl::Status s = reader->Load(address, footprint); !s.ok()) return s;
    RecordView record;
    std::string reason;
    if (ParseRecord(address, reader->Bytes(address, footprint), record,
                    reason) != RecordParse::kRecord ||
        record.tag.type != type) {
      why = absl::StrCat(
          "not a checkpoint record at offset ", address, " (",
          reason.empty() ? absl::StrCat("type ", record.tag.type) : reason,
          ")");
      return std::nullopt;
    }
    return std::string(record.payload);
  };
  absl::StatusOr<std::optional<std::string>> main =
      read(at, kCheckpointRecordType);
  if (!main.ok()) return main.status();
  if (!main->has_value()) return unused(absl::StrCat("is ", why));
  LoadedCheckpoint c;
  absl::string_view last = **main;
  uint64_t parts = 0;
  if (!GetU64(last, parts) || parts > last.size() / 8) {
    return unused("has a part list cut short");
  }
  uint64_t after = sb_.head;  // parts lie in order, from the head on
  for (uint64_t i = 0; i < parts; ++i) {
    uint64_t address = 0;
    GetU64(last, address);
    if (address < after || address >= at || address % kRecordAlignment ||
        in_hole(address)) {
      return unused(absl::StrCat("lists part ", i, " at offset ", address,
                                 ", not in order between the head and it "
                                 "outside the released ranges"));
    }
    if (i == 0) c.low = address;
    after = address + kRecordHeaderBytes;
    absl::StatusOr<std::optional<std::string>> part =
        read(address, kCheckpointPartRecordType);
    if (!part.ok()) return part.status();
    if (!part->has_value()) {
      return unused(absl::StrCat("has part ", i, " damaged: ", why));
    }
    c.payload += **part;
  }
  c.payload.append(last.data(), last.size());
  absl::string_view in = c.payload;
  uint64_t resume = 0;
  uint64_t count = 0;
  if (!GetU64(in, resume) || !GetU64(in, count) || count > in.size() / 16) {
    return unused("has a block list cut short");
  }
  if (resume < sb_.head || resume > at || resume % sb_.block_bytes != 0) {
    return unused(absl::StrCat("resumes at offset ", resume,
                               ", not a block address from the head ",
                               sb_.head, " to the record"));
  }
  uint64_t end = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t address = 0;
    uint64_t used = 0;
    GetU64(in, address);
    GetU64(in, used);
    const uint64_t next = address + RoundUp(used, sb_.block_bytes);
    if (address % sb_.block_bytes != 0 || address < end ||
        used < kBlockHeaderBytes || used > sb_.buffer_bytes ||
        next > resume) {
      return unused(absl::StrCat("lists a block at offset ", address, " of ",
                                 used, " bytes that does not fit below ",
                                 resume, " after the one before"));
    }
    end = next;
    if (address >= sb_.head && !in_hole(address)) {
      c.blocks.push_back(
          RecoveredBlock{.address = address, .used = used, .salvaged = {}});
    }
  }
  // The view's bytes are set where it is handed over: a moved string may
  // move its characters.
  c.view = CheckpointView{
      .address = at, .resume = resume, .head = sb_.head, .bytes = {}};
  c.bytes_at = c.payload.size() - in.size();
  checkpoint_resume_.store(resume, std::memory_order_release);
  checkpoint_low_ = parts == 0 ? at : c.low;
  return std::optional<LoadedCheckpoint>(std::move(c));
}

absl::StatusOr<uint64_t> LogStructuredStore::WriteCheckpoint(
    uint64_t resume, absl::string_view bytes) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  std::string payload;
  {
    // The head stays put while the block list is taken.
    std::lock_guard<std::mutex> lock(head_mu_);
    const uint64_t head = this->head();
    const uint64_t stable = HiStable();
    if (resume < head || resume > stable ||
        index_->BlockStartAtOrBelow(resume) != resume) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": WriteCheckpoint(", resume, "): not a block start from "
          "the head ", head, " to the durable end ", stable));
    }
    const std::vector<BlockIndex::Extent> blocks =
        index_->Blocks(head, resume);
    PutU64(payload, resume);
    PutU64(payload, blocks.size());
    for (const BlockIndex::Extent& b : blocks) {
      PutU64(payload, b.base);
      PutU64(payload, b.used);
    }
  }
  payload.append(bytes.data(), bytes.size());
  // What does not fit in the last record (with one address per part) goes
  // first, in part records of the largest size.
  const size_t largest = max_payload_bytes();
  std::string last;
  size_t off = 0;
  std::vector<uint64_t> parts;
  while (8 + 8 * parts.size() + (payload.size() - off) > largest) {
    const size_t n = std::min(largest, payload.size() - off);
    absl::StatusOr<uint64_t> part =
        Append(absl::string_view(payload).substr(off, n),
               RecordTag{.type = kCheckpointPartRecordType});
    if (!part.ok()) return part.status();
    parts.push_back(*part);
    off += n;
  }
  PutU64(last, parts.size());
  for (uint64_t part : parts) PutU64(last, part);
  last.append(payload, off);
  absl::StatusOr<uint64_t> at =
      Append(last, RecordTag{.type = kCheckpointRecordType});
  if (!at.ok()) return at.status();
  if (absl::Status s = WaitStable(*at); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(head_mu_);
  if (head() > resume) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": WriteCheckpoint(", resume, "): the log was truncated past "
        "it meanwhile, to ", head()));
  }
  const uint64_t low = parts.empty() ? *at : parts.front();
  for (const Hole& h : sb_.holes) {
    if (h.begin <= *at && h.end > low) {
      return absl::FailedPreconditionError(absl::StrCat(
          path_, ": WriteCheckpoint(", resume, "): its records were "
          "released meanwhile (Release from ", h.begin, " to ", h.end, ")"));
    }
  }
  Superblock next = sb_;
  next.checkpoint = *at;
  ++next.sequence;
  if (absl::Status s = WriteSuperblock(*file_, next); !s.ok()) return s;
  sb_.checkpoint = next.checkpoint;
  sb_.sequence = next.sequence;
  checkpoint_resume_.store(resume, std::memory_order_release);
  checkpoint_low_ = low;
  return *at;
}

uint64_t LogStructuredStore::CheckpointBoundary() {
  return std::max(head(), index_->BlockStartAtOrBelow(HiStable()));
}

uint64_t LogStructuredStore::checkpoint_resume() const {
  return checkpoint_resume_.load(std::memory_order_acquire);
}

absl::Status LogStructuredStore::StartWriting(const RecoveredLog& recovered) {
  // Clear what a crash left past the tail that is not an intact block (torn
  // writes), so the new epoch's blocks are followed by zeros or by intact
  // stale blocks, and a clean close reopens clean. Intact blocks are never
  // touched: epochs keep them out of the log.
  if (!recovered.clear.empty()) {
    const size_t chunk = sb_.buffer_bytes;
    AlignedBytes zeros = AllocateAligned(sb_.block_bytes, chunk);
    std::memset(zeros.get(), 0, chunk);
    for (const auto& [from, to] : recovered.clear) {
      for (uint64_t at = from; at < to;) {
        const size_t len = static_cast<size_t>(std::min<uint64_t>(chunk, to - at));
        if (absl::Status s = file_->WriteAt(at, {zeros.get(), len}); !s.ok()) {
          return s;
        }
        at += len;
        recovery_.bytes_cleared += len;
      }
    }
  }
  // The recovered prefix may sit only in the page cache (the writer was
  // killed, the machine was not): make it, and the zeros, durable before
  // the new epoch builds on it.
  if (absl::Status s = file_->DataSync(); !s.ok()) return s;
  ++sb_.sequence;
  ++sb_.epoch;
  sb_.epoch_start = recovery_.tail;
  // A checkpoint that is not in the recovered log (it was cut) is dropped.
  if (sb_.checkpoint >= recovery_.tail) {
    sb_.checkpoint = 0;
    checkpoint_resume_.store(0, std::memory_order_release);
  }
  sb_.max_in_flight_bytes = options_.ring_size * options_.buffer_bytes;
  if (absl::Status s = WriteSuperblock(*file_, sb_); !s.ok()) return s;
  if (file_->created()) {
    if (absl::Status s = file_->SyncDirectory(); !s.ok()) return s;
  }
  // A crash may have come between a Truncate's or a Release's superblock
  // and its hole punch: punching again costs next to nothing.
  if (absl::Status s = PunchBelowHead(); !s.ok()) return s;
  for (const Hole& h : sb_.holes) {
    if (absl::Status s = file_->PunchHole(h.begin, h.end - h.begin);
        !s.ok()) {
      return s;
    }
  }
  if (options_.capacity_bytes != 0) sink_->LimitAllocation(SpaceEnd());
  sink_->Connect(appender_.get(), ring_.get());
  appender_->set_ring(sink_.get());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<IoRing>> LogStructuredStore::CreateRing()
    const {
  return options_.io_ring_factory ? options_.io_ring_factory(options_.queue_depth)
                                  : CreateIoRing(options_.queue_depth);
}

absl::Status LogStructuredStore::FindReadAlignment() {
  read_align_ = 512;  // buffered reads may align to anything; less is less
  if (file_->direct_io()) {
    // What the file asks, and what the I/O ring asks of it (a test's ring
    // may be stricter than the file).
    absl::StatusOr<size_t> dio = file_->DirectIoAlignment();
    if (!dio.ok()) return dio.status();
    absl::StatusOr<size_t> ring = io_->DirectIoAlignment(file_->fd());
    if (!ring.ok()) return ring.status();
    read_align_ = std::max<uint64_t>({*dio, *ring, 512});
  }
  if (sb_.block_bytes % read_align_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": block_bytes ", sb_.block_bytes,
        " is not a multiple of the file's O_DIRECT alignment ", read_align_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Appender>> LogStructuredStore::StartIo() {
  absl::StatusOr<std::unique_ptr<IoRing>> io = CreateRing();
  if (!io.ok()) return io.status();
  io_ = *std::move(io);
  if (absl::Status s = FindReadAlignment(); !s.ok()) return s;
  read_rings_ = std::make_unique<ReadRingPool>(
      options_.io_ring_factory ? options_.io_ring_factory
                               : ReadRingPool::Factory(CreateIoRing),
      options_.queue_depth);
  return std::make_unique<Appender>(
      io_.get(), AppenderOptions{.fd = file_->fd(),
                                 .path = path_,
                                 .policy = options_.policy,
                                 .durability = options_.durability,
                                 .direct_io = file_->direct_io(),
                                 // What the file's O_DIRECT asks: a short
                                 // read or write aligned to it is only short.
                                 .alignment = read_align_,
                                 .start_address = recovery_.tail});
}

absl::Status LogStructuredStore::PrepareReading() {
  // Never handed a buffer, it only reads.
  absl::StatusOr<std::unique_ptr<Appender>> reads = StartIo();
  if (!reads.ok()) return reads.status();
  reads_ = *std::move(reads);
  return absl::OkStatus();
}

absl::Status LogStructuredStore::PrepareWriting() {
  absl::StatusOr<std::unique_ptr<Appender>> appender = StartIo();
  if (!appender.ok()) return appender.status();
  appender_ = *std::move(appender);
  sink_ = std::make_unique<Sink>(file_.get(), sb_, &intact_past_tail_,
                                 index_.get(), file_size_,
                                 options_.preallocate_bytes,
                                 options_.zero_ahead_bytes);
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
  const uint64_t footprint = RecordFootprint(payload_bytes);
  if (options_.capacity_bytes == 0) {
    absl::StatusOr<Reservation> r = ring_->Reserve(footprint);
    if (!r.ok()) return r.status();
    return StoreReservation(*std::move(r), tag, payload_bytes);
  }
  // Each reserver in flight is charged the most its reservation can move
  // the end of the log: its record, the padding of a buffer it seals (less
  // than its record), and a block for a cut or flush that ends it. Charges
  // are counted before the end is read, so the check never sees a
  // reservation neither in the end nor in the charges.
  const uint64_t charge = 2 * footprint + sb_.block_bytes;
  const uint64_t charged =
      charged_.fetch_add(charge, std::memory_order_acq_rel) + charge;
  absl::StatusOr<uint64_t> end = ring_->ReservedEnd();
  if (end.ok() && *end + charged + 2 * sb_.block_bytes > SpaceEnd()) {
    end = absl::ResourceExhaustedError(absl::StrCat(
        path_, ": the log is full: capacity_bytes ", options_.capacity_bytes,
        " from the head ", head(), " ends at ", SpaceEnd(), ", the log at ",
        *end, " (with ", charged, " bytes charged to appends in flight); "
        "Truncate makes room"));
  }
  absl::StatusOr<Reservation> r =
      end.ok() ? ring_->Reserve(footprint) : end.status();
  charged_.fetch_sub(charge, std::memory_order_acq_rel);
  if (!r.ok()) return r.status();
  return StoreReservation(*std::move(r), tag, payload_bytes);
}

uint64_t LogStructuredStore::SpaceEnd() const {
  // The superblocks count as disk used: they sit below the data start. A
  // punched hole gives back whole file-system blocks only (4 KiB on ext4
  // and XFS), so the block that holds the head counts as used too, and so
  // does one block of the file system's own: ext4 counts a block of extent
  // tree in the file's size on disk once holes split it into extents.
  constexpr uint64_t kFsBlock = 4096;
  const uint64_t used_from =
      std::max(head() / kFsBlock * kFsBlock, uint64_t{sb_.data_start});
  return used_from + options_.capacity_bytes - sb_.data_start - kFsBlock +
         hole_credit_.load(std::memory_order_acquire);
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
  if (absl::Status s = Usable(); !s.ok()) return s;
  absl::StatusOr<uint64_t> end = ring_->ReservedEnd();
  if (!end.ok()) return end.status();
  return MakeDurable(*end);
}

// Group commit. A caller whose records are still in the open block joins
// the next group rather than cutting a block for itself while an earlier
// group is being written: it waits (once) for that group's write (and, if
// no other thread waits with it, for its fdatasync), then the first waiter
// to take commit_mu_ leads. The leader cuts the open block, which takes
// every record appended so far, whoever appended it, and asks for one
// fdatasync; everyone below the cut waits for that one sync. Its write and
// fdatasync may run while the earlier group's fdatasync still does (the
// appender keeps two in flight).
absl::Status LogStructuredStore::MakeDurable(uint64_t end) {
  bool joined = false;
  for (;;) {
    if (appender_->HiStable() >= end) return absl::OkStatus();
    if (end <= ring_->SealedEnd()) return appender_->WaitStable(end);
    if (!joined) {
      joined = true;
      if (const uint64_t group = appender_->CommitInProgress(); group != 0) {
        if (absl::Status s = JoinGroup(group); !s.ok()) return s;
        continue;
      }
    }
    const uint32_t cuts_seen = cuts_.load(std::memory_order_acquire);
    if (!commit_mu_.try_lock()) {
      // A leader is cutting, most likely below `end`. Waiting for its cut
      // rather than for commit_mu_ wakes the group at once, not one by one.
      cuts_.wait(cuts_seen, std::memory_order_acquire);
      continue;
    }
    absl::StatusOr<uint64_t> cut = LeadCut(end);
    if (!cut.ok()) return cut.status();
    // Every record reserved before the cut lies below *cut; `end` may lie
    // past it only by an empty block's header.
    end = std::min(end, *cut);
  }
}

absl::Status LogStructuredStore::JoinGroup(uint64_t group) {
  joining_.fetch_add(1, std::memory_order_relaxed);
  absl::Cleanup left = [&] {
    joining_.fetch_sub(1, std::memory_order_relaxed);
  };
  if (absl::Status s = appender_->WaitWritten(group); !s.ok()) return s;
  // With another joiner, lead the next group now: its write and fdatasync
  // overlap the last group's fdatasync. Alone, that group would hold this
  // record only (at two threads the other waits in the last group): then
  // wait for the last group's sync, so the threads it releases join.
  if (joining_.load(std::memory_order_relaxed) < 2) {
    return appender_->WaitStable(group);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> LogStructuredStore::LeadCut(uint64_t end) {
  // Declared first, so it runs after the unlock: a follower that sees the
  // new count must find commit_mu_ free, or it would wait for a later cut.
  absl::Cleanup wake_followers = [&] {
    cuts_.fetch_add(1, std::memory_order_release);
    cuts_.notify_all();
  };
  std::lock_guard<std::mutex> lock(commit_mu_, std::adopt_lock);
  const uint64_t sealed = ring_->SealedEnd();
  if (end <= sealed) return sealed;  // another leader took it
  if (options_.commit_delay.count() > 0) {
    // Lets more records join the group: fewer, larger fdatasyncs.
    std::this_thread::sleep_for(options_.commit_delay);
  }
  absl::StatusOr<uint64_t> cut = ring_->Cut();
  if (!cut.ok()) return cut.status();
  appender_->RequestStable(*cut);
  sink_->ZeroAhead(*cut);
  return *cut;
}

absl::Status LogStructuredStore::WaitStable(uint64_t address) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": WaitStable(", address, "): no record can start there: ",
        why));
  };
  if (address < sb_.data_start) {
    return bad(absl::StrCat("below the first record, at ", sb_.data_start));
  }
  if (address % kRecordAlignment != 0) return bad("not a multiple of 8");
  // Known once the block holding `address` is dispatched.
  auto in_header = [&]() -> std::optional<uint64_t> {
    std::optional<BlockIndex::Pinned> block = index_->Find(address);
    if (block && address < block->base() + kBlockHeaderBytes) {
      return block->base();
    }
    return std::nullopt;
  };
  if (std::optional<uint64_t> base = in_header()) {
    return bad(absl::StrCat("inside the header of the block at ", *base));
  }
  if (HiStable() > address) return absl::OkStatus();
  absl::StatusOr<uint64_t> end = ring_->ReservedEnd();
  if (!end.ok()) return end.status();
  if (address >= *end) {
    return bad(absl::StrCat("past the end of the log, ", *end));
  }
  if (absl::Status s = MakeDurable(address + 1); !s.ok()) return s;
  // The block is written now, so the index knows where its header is.
  if (std::optional<uint64_t> base = in_header()) {
    return bad(absl::StrCat("inside the header of the block at ", *base));
  }
  return absl::OkStatus();
}

uint64_t LogStructuredStore::HiStable() const {
  return appender_ != nullptr ? appender_->HiStable() : recovery_.tail;
}

absl::Status LogStructuredStore::Truncate(uint64_t address) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(head_mu_);
  const uint64_t stable = HiStable();
  if (address > stable) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": Truncate(", address, "): past the durable end of the log (",
        stable, "); only durable records can be truncated: Sync first"));
  }
  uint64_t head = index_->BlockStartAtOrBelow(address);
  // An address in a released range: that range goes too.
  if (std::optional<std::pair<uint64_t, uint64_t>> released =
          index_->ReleasedRange(address)) {
    head = released->second;
  }
  if (head <= this->head()) return PunchReleased();
  if (absl::Status s = MoveHeadAndHoles(head, sb_.holes, std::nullopt);
      !s.ok()) {
    return s;
  }
  return PunchReleased();
}

absl::Status LogStructuredStore::Release(uint64_t from, uint64_t to) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(head_mu_);
  const uint64_t boundary = CheckpointBoundary();
  if (to > boundary) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": Release(", from, ", ", to, "): past the last durable block "
        "start ", boundary, "; only whole durable blocks can be released: "
        "Sync first"));
  }
  ReleasePlan plan = PlanRelease(from, to, boundary);
  // Nothing new (a retry, say): what an earlier punch left is punched now.
  if (plan.released.begin >= plan.released.end) return PunchReleased();
  if (plan.holes.size() > kMaxHoles) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path_, ": Release(", from, ", ", to, "): the log would have ",
        plan.holes.size(), " released ranges, more than the ", kMaxHoles,
        " its superblock lists; release a range next to one, or Truncate"));
  }
  if (absl::Status s = MoveHeadAndHoles(plan.head, std::move(plan.holes),
                                        plan.released);
      !s.ok()) {
    return s;
  }
  return PunchReleased();
}

LogStructuredStore::ReleasePlan LogStructuredStore::PlanRelease(
    uint64_t from, uint64_t to, uint64_t boundary) const {
  ReleasePlan plan;
  plan.released = {
      .begin = index_->BlockStartAtOrAbove(std::max(from, head()), boundary),
      .end = index_->BlockStartAtOrAbove(to, boundary)};
  if (plan.released.begin >= plan.released.end) return plan;
  // Merged with the holes it overlaps or touches.
  Hole merged = plan.released;
  for (const Hole& h : sb_.holes) {
    if (h.end < merged.begin || h.begin > merged.end) {
      plan.holes.push_back(h);
    } else {
      merged.begin = std::min(merged.begin, h.begin);
      merged.end = std::max(merged.end, h.end);
    }
  }
  plan.holes.insert(std::upper_bound(plan.holes.begin(), plan.holes.end(),
                                     merged,
                                     [](const Hole& a, const Hole& b) {
                                       return a.begin < b.begin;
                                     }),
                    merged);
  plan.head = AbsorbAtHead(head(), plan.holes);
  return plan;
}

bool LogStructuredStore::ReleaseDropsCheckpoint(uint64_t from, uint64_t to) {
  std::lock_guard<std::mutex> lock(head_mu_);
  const ReleasePlan plan = PlanRelease(from, to, CheckpointBoundary());
  return plan.released.begin < plan.released.end &&
         DropsCheckpoint(plan.head, plan.holes);
}

size_t LogStructuredStore::HolesAfterRelease(uint64_t from, uint64_t to) {
  std::lock_guard<std::mutex> lock(head_mu_);
  const ReleasePlan plan = PlanRelease(from, to, CheckpointBoundary());
  return plan.released.begin < plan.released.end ? plan.holes.size()
                                                 : sb_.holes.size();
}

bool LogStructuredStore::DropsCheckpoint(
    uint64_t head, const std::vector<Hole>& holes) const {
  return sb_.checkpoint != 0 &&
         (head > checkpoint_resume() ||
          std::any_of(holes.begin(), holes.end(), [&](const Hole& h) {
            return h.begin <= sb_.checkpoint && h.end > checkpoint_low_;
          }));
}

absl::Status LogStructuredStore::PunchReleased() {
  if (absl::Status s = PunchBelowHead(); !s.ok()) return s;
  while (!unpunched_.empty()) {
    const Hole h = unpunched_.back();
    const uint64_t begin = std::max(h.begin, head());
    if (begin < h.end) {
      if (absl::Status s = file_->PunchHole(begin, h.end - begin); !s.ok()) {
        return s;
      }
    }
    unpunched_.pop_back();
    CountHoles();
  }
  return absl::OkStatus();
}

std::vector<Hole> LogStructuredStore::holes() const {
  std::lock_guard<std::mutex> lock(head_mu_);
  return sb_.holes;
}

absl::Status LogStructuredStore::MoveHeadAndHoles(
    uint64_t head, std::vector<Hole> holes, std::optional<Hole> fresh) {
  head = AbsorbAtHead(head, holes);
  // Durable first: once a hole is punched, the head must never go back and
  // a released range must never rejoin the log.
  Superblock next = sb_;
  next.head = head;
  next.holes = std::move(holes);
  ++next.sequence;
  // Recovery could no longer start at a checkpoint the head passes, nor
  // read one whose records are released.
  const bool drop_checkpoint = DropsCheckpoint(head, next.holes);
  if (drop_checkpoint) next.checkpoint = 0;
  if (absl::Status s = WriteSuperblock(*file_, next); !s.ok()) return s;
  // Field by field: the rest of sb_ is read without head_mu_.
  sb_.head = next.head;
  sb_.holes = std::move(next.holes);
  sb_.sequence = next.sequence;
  sb_.checkpoint = next.checkpoint;
  if (drop_checkpoint) checkpoint_resume_.store(0, std::memory_order_release);
  // The credit first: a hole the head absorbs must not count twice, and
  // one not punched yet gives nothing back.
  if (fresh) unpunched_.push_back(*fresh);
  CountHoles();
  head_.store(head, std::memory_order_release);
  index_->DropBelow(head);
  for (const Hole& h : sb_.holes) index_->DropRange(h.begin, h.end);
  if (options_.capacity_bytes != 0) sink_->LimitAllocation(SpaceEnd());
  return absl::OkStatus();
}

void LogStructuredStore::CountHoles() {
  // A punched hole gives back only the whole file-system blocks inside it,
  // and may cost a block of the file system's extent tree.
  constexpr uint64_t kFsBlock = 4096;
  uint64_t credit = 0;
  for (const Hole& h : sb_.holes) {
    if (std::any_of(unpunched_.begin(), unpunched_.end(), [&](const Hole& u) {
          return u.begin < h.end && u.end > h.begin;
        })) {
      continue;
    }
    const uint64_t begin = (h.begin + kFsBlock - 1) / kFsBlock * kFsBlock;
    const uint64_t end = h.end / kFsBlock * kFsBlock;
    if (end > begin + kFsBlock) credit += end - begin - kFsBlock;
  }
  hole_credit_.store(credit, std::memory_order_release);
}

uint64_t LogStructuredStore::AppendedEnd() const {
  return ring_ != nullptr ? std::max(ring_->SealedEnd(), HiStable())
                          : recovery_.tail;
}

uint64_t LogStructuredStore::head() const {
  return head_.load(std::memory_order_acquire);
}

absl::Status LogStructuredStore::PunchBelowHead() {
  const uint64_t head = head_.load(std::memory_order_acquire);
  if (punched_ >= head) return absl::OkStatus();
  const uint64_t from = std::max(punched_, sb_.data_start);
  if (from < head) {
    if (absl::Status s = file_->PunchHole(from, head - from); !s.ok()) {
      return s;
    }
  }
  punched_ = head;
  return absl::OkStatus();
}

absl::StatusOr<LogRecord> LogStructuredStore::Read(uint64_t address) {
  return std::move(ReadMany({&address, 1}).front());
}

absl::StatusOr<BlockIndex::Pinned> LogStructuredStore::Locate(
    uint64_t address) {
  if (closed_) return Usable();
  const auto truncated = [&]() -> std::optional<absl::Status> {
    const uint64_t head = head_.load(std::memory_order_acquire);
    if (address >= head) return std::nullopt;
    return absl::NotFoundError(absl::StrCat(
        path_, ": offset ", address, ": no record there: below the log's "
        "head ", head, " (truncated)"));
  };
  if (std::optional<absl::Status> s = truncated()) return *s;
  if (address < sb_.data_start || address % kRecordAlignment != 0) {
    return absl::NotFoundError(absl::StrCat(
        path_, ": offset ", address, ": no record there: not a record "
        "boundary"));
  }
  for (;;) {
    if (std::optional<BlockIndex::Pinned> block = index_->Find(address)) {
      return *std::move(block);
    }
    // The head moved past it meanwhile (stored before the index drops the
    // blocks below it).
    if (std::optional<absl::Status> s = truncated()) return *s;
    if (std::optional<std::pair<uint64_t, uint64_t>> released =
            index_->ReleasedRange(address)) {
      return NoRecord(address, absl::StrCat("released (Release from ",
                                            released->first, " to ",
                                            released->second, ")"));
    }
    auto past_end = [&](uint64_t end) {
      return absl::NotFoundError(absl::StrCat(path_, ": offset ", address,
                                              ": no record there: the log "
                                              "ends at ", end));
    };
    if (appender_ == nullptr) return past_end(recovery_.tail);
    absl::StatusOr<uint64_t> end = Flush();
    if (!end.ok()) return end.status();
    if (address >= *end) return past_end(*end);
    // Its buffer is sealed but still has writers: help it along.
    if (absl::Status s = appender_->HelpDrain(); !s.ok()) return s;
    std::this_thread::yield();
  }
}

absl::Status LogStructuredStore::CheckInBlock(const BlockIndex::Pinned& block,
                                              uint64_t address) const {
  const uint64_t base = block.base();
  if (block.is_salvaged()) {
    if (!std::binary_search(block.salvaged().begin(), block.salvaged().end(),
                            address)) {
      return NoRecord(address, absl::StrCat("not a record that verifies in "
                                            "the corrupt range at ", base));
    }
  } else if (address < base + kBlockHeaderBytes) {
    return NoRecord(address,
                    absl::StrCat("inside the header of block ", base));
  }
  if (address >= base + block.used()) {
    return NoRecord(address, absl::StrCat("in the padding of block ", base));
  }
  return absl::OkStatus();
}

absl::Status LogStructuredStore::NoRecord(uint64_t address,
                                          absl::string_view why) const {
  return absl::NotFoundError(
      absl::StrCat(path_, ": offset ", address, ": no record there: ", why));
}

absl::StatusOr<LogRecord> LogStructuredStore::ParseAt(
    uint64_t address, std::span<const std::byte> bytes) const {
  RecordView view;
  std::string reason;
  const RecordParse parse = ParseRecord(address, bytes, view, reason);
  if (parse == RecordParse::kPadding) return NoRecord(address, "padding");
  if (parse == RecordParse::kCorrupt) return NoRecord(address, reason);
  LogRecord out;
  out.address = address;
  out.tag = view.tag;
  out.payload.assign(view.payload.data(), view.payload.size());
  return out;
}

uint64_t LogStructuredStore::FirstReadEnd(const BlockIndex::Pinned& block,
                                          uint64_t address,
                                          size_t expected_payload) const {
  // Without a caller's guess, the last record read from disk is the guess:
  // records of one log tend to be alike, and a read that ends short of its
  // record costs a second trip to the device.
  const size_t guess = std::max<size_t>(
      {expected_payload, last_read_payload_.load(std::memory_order_relaxed),
       1});
  return std::min(block.base() + block.used(),
                  RoundUp(address + RecordFootprint(
                                        std::min(guess, max_payload_bytes())),
                          read_align_));
}

struct LogStructuredStore::DiskRead {
  BlockIndex::Pinned block;
  uint64_t start = 0;  // the aligned read [start, start + len)
  size_t len = 0;
  AlignedBytes buffer;
  bool whole = false;  // the read covers the whole record
};

std::optional<absl::StatusOr<LogRecord>> LogStructuredStore::FinishDiskRead(
    uint64_t address, DiskRead& read, const ReadBatch::Done& done,
    ReadBatch& batch) {
  if (done.abandoned) {
    static_cast<void>(read.buffer.release());  // the kernel may still write
    return done.status;
  }
  const uint64_t block_end = read.block.base() + read.block.used();
  const uint64_t end = std::min(read.start + read.len, block_end);
  if (done.status.code() == absl::StatusCode::kOutOfRange) {
    // Only the padding past the block's records may be missing.
    if (read.start + done.bytes_read < end) {
      return absl::DataLossError(absl::StrCat(path_, ": offset ", read.start,
                                              ": the file ends inside a "
                                              "block"));
    }
  } else if (!done.status.ok()) {
    return done.status;
  }
  const std::span<const std::byte> bytes(
      read.buffer.get() + (address - read.start), end - address);
  if (!read.whole) {
    // The first read brought the header: a longer record is read again,
    // whole.
    uint32_t length = 0;
    if (bytes.size() >= 8) std::memcpy(&length, bytes.data() + 4, 4);
    const uint64_t want =
        std::min<uint64_t>(block_end - address, RecordFootprint(length));
    if (want > bytes.size()) {
      read.whole = true;
      read.len = RoundUp(address + want, read_align_) - read.start;
      read.buffer = AllocateAligned(read_align_, read.len);
      batch.Add(read.start, {read.buffer.get(), read.len}, done.tag);
      return std::nullopt;
    }
  }
  absl::StatusOr<LogRecord> record = ParseAt(address, bytes);
  if (record.ok()) {
    last_read_payload_.store(record->payload.size(), std::memory_order_relaxed);
  }
  return record;
}

std::vector<absl::StatusOr<LogRecord>> LogStructuredStore::ReadMany(
    std::span<const uint64_t> addresses, size_t expected_payload_bytes) {
  std::vector<absl::StatusOr<LogRecord>> out(
      addresses.size(), absl::InternalError("ReadMany: not read"));
  std::vector<std::optional<DiskRead>> reads(addresses.size());
  std::optional<ReadBatch> batch;
  for (size_t i = 0; i < addresses.size(); ++i) {
    const uint64_t a = addresses[i];
    absl::StatusOr<BlockIndex::Pinned> block = Locate(a);
    if (!block.ok()) {
      out[i] = block.status();
      continue;
    }
    if (absl::Status s = CheckInBlock(*block, a); !s.ok()) {
      out[i] = s;
      continue;
    }
    if (const std::byte* resident = block->resident()) {
      out[i] = ParseAt(a, {resident + (a - block->base()),
                           block->base() + block->used() - a});
      continue;
    }
    // On disk: every first read in flight at once.
    if (!batch) {
      batch.emplace(*read_rings_,
                    ReadTarget{.fd = file_->fd(),
                               .path = path_,
                               .direct_io = file_->direct_io(),
                               .alignment = read_align_});
    }
    const uint64_t start = RoundDown(a, read_align_);
    const size_t len = RoundUp(FirstReadEnd(*block, a, expected_payload_bytes),
                               read_align_) - start;
    DiskRead& read = reads[i].emplace(DiskRead{
        .block = *std::move(block),
        .start = start,
        .len = len,
        .buffer = AllocateAligned(read_align_, len),
    });
    batch->Add(start, {read.buffer.get(), len}, i);
  }
  while (batch) {
    std::optional<ReadBatch::Done> done = batch->Next();
    if (!done) break;
    std::optional<absl::StatusOr<LogRecord>> record = FinishDiskRead(
        addresses[done->tag], *reads[done->tag], *done, *batch);
    if (record) out[done->tag] = *std::move(record);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<LogReader>> LogStructuredStore::NewLogReader(
    uint64_t from, const LogReaderOptions& options) {
  if (closed_) return Usable();
  if (options.read_bytes < 4096 || options.read_bytes > (size_t{64} << 20) ||
      options.reads_in_flight < 1 || options.reads_in_flight > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": LogReaderOptions: read_bytes ", options.read_bytes,
        " (4 KiB to 64 MiB) and reads_in_flight ", options.reads_in_flight,
        " (1 to 1024) must be in range"));
  }
  // Read-only, everything recovery kept is on disk, including records
  // kSkipCorrupted salvaged past the last valid block.
  uint64_t limit = appender_ != nullptr ? HiStable() : ~uint64_t{0};
  if (options.to != 0) limit = std::min(limit, options.to);
  return std::unique_ptr<LogReader>(
      new LogReader(this, index_->Blocks(from, limit), from, options));
}

absl::Status LogStructuredStore::Close() {
  if (closed_) return absl::OkStatus();
  absl::Status status;
  if (appender_ != nullptr) {
    status = Sync();
    status.Update(appender_->Drain());
    if (status.ok()) status = WriteCloseMarker();
    status.Update(file_->DataSync());
  }
  closed_ = true;
  // In-flight kernel I/O is reaped (the appender drains) and the I/O ring
  // torn down before any memory it targets goes.
  appender_.reset();
  reads_.reset();
  read_rings_.reset();
  io_.reset();
  ring_.reset();
  sink_.reset();
  file_.reset();
  return status;
}

absl::Status LogStructuredStore::WriteCloseMarker() {
  const uint64_t end = appender_->HiStable();
  // The epoch start was made durable when this epoch began; the blocks of
  // this epoch prove the rest. (Claims of an earlier epoch count for
  // nothing: a kPointInTime cut may lie below them.)
  if (end <= std::max(sb_.epoch_start, sink_->proven())) {
    return absl::OkStatus();  // the file already proves everything durable
  }
  const size_t bytes = sb_.block_bytes;
  AlignedBytes block = AllocateAligned(bytes, bytes);
  std::memset(block.get(), 0, bytes);
  // No records: one padding word after the header.
  SealBlock(BlockHeader{.store_id = sb_.store_id,
                        .address = end,
                        .epoch = sb_.epoch,
                        .used = kBlockHeaderBytes + kRecordAlignment,
                        .stable = end},
            {block.get(), bytes});
  if (absl::Status s = file_->WriteAt(end, {block.get(), bytes}); !s.ok()) {
    return s;
  }
  // An intact block a crash left past the recovered tail, whose head this
  // session's blocks or the marker overwrote, left its rest behind: bytes
  // that no longer verify, which would read as a torn tail. Cleared, so a
  // clean close reopens clean.
  const uint64_t written_to = end + bytes;
  std::memset(block.get(), 0, bytes);
  for (const auto& [from, to] : intact_past_tail_) {
    if (from >= written_to || to <= written_to) continue;
    for (uint64_t at = written_to; at < to; at += bytes) {
      if (absl::Status s = file_->WriteAt(at, {block.get(), bytes}); !s.ok()) {
        return s;
      }
    }
  }
  return file_->DataSync();
}

Appender::Stats LogStructuredStore::appender_stats() const {
  return appender_ != nullptr ? appender_->stats() : Appender::Stats{};
}

FlushBufferRing::Stats LogStructuredStore::ring_stats() const {
  return ring_ != nullptr ? ring_->stats() : FlushBufferRing::Stats{};
}

}  // namespace lss
