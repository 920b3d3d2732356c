// LogStructuredStore: a durable, append-only log of records in one file.
//
// Appends are latch-free reservations in a ring of flush buffers
// (ring/FlushBufferRing); sealed buffers become blocks written at their LSS
// address by the Appender (flush/) through io_uring, or the pwrite fallback.
// An LSS address is the byte offset of a record in the file. lss/FORMAT.md
// describes what is on disk.
//
//   auto store = LogStructuredStore::Open("/data/log", {});
//   absl::StatusOr<uint64_t> a = (*store)->Append("payload");
//   (*store)->Sync();                        // durable from here on
//   absl::StatusOr<LogRecord> r = (*store)->Read(*a);
//
// Opening recovers: it scans the log, keeps its longest valid prefix (per
// RecoveryMode), and starts a new epoch there, so bytes a crash left past
// the tail can never rejoin the log. The file is locked (flock) while open.
//
// Errors: every failure is a Status naming the file and, where there is one,
// the offset and the value at fault. After the first I/O error the store is
// failed: every later call returns that error and nothing more is
// acknowledged. After Close, every call returns FailedPrecondition.
//
// Thread safety: every method may be called concurrently, except that
// Close (and the destructor) must not race with other calls. A thread that
// holds an uncommitted Reservation must commit it before it calls Append,
// Reserve, Flush, Sync or WaitStable (it could wait on its own record).

#ifndef LSS_LSS_LOG_STRUCTURED_STORE_H_
#define LSS_LSS_LOG_STRUCTURED_STORE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flush/appender.h"
#include "lss/format.h"
#include "ring/flush_buffer_ring.h"

namespace lss {

// What Open does with a log whose end is not clean (after RocksDB's WAL
// recovery modes).
enum class RecoveryMode {
  // Cut a torn or corrupt tail and report it. A valid block further than
  // writes can have been in flight past the cut means the damage is in the
  // middle of the log: DataLoss, and nothing is cut.
  kTolerateCorruptedTail,
  // Any corrupt block, or any valid block past the end, is DataLoss.
  kAbsoluteConsistency,
  // Keep everything before the first block that is not valid, whatever
  // follows it.
  kPointInTime,
  // Skip every corrupt range and keep every valid block (for tools that
  // salvage data). The store opens read-only.
  kSkipCorrupted,
};

struct StoreOptions {
  WritePolicy policy = WritePolicy::kTailLocalized;
  Durability durability = Durability::kNone;
  // Flush buffer size and count; the buffer size is fixed when the file is
  // created and must match on every later open.
  size_t buffer_bytes = size_t{4} << 20;
  size_t ring_size = 4;
  // Block size: writes and block starts align to it. Fixed at creation.
  uint32_t block_bytes = 4096;
  unsigned queue_depth = 64;
  // O_DIRECT. If the file system refuses it: an error, or buffered I/O (with
  // fdatasync for durability) when allow_buffered_fallback is set.
  bool direct_io = true;
  bool allow_buffered_fallback = false;
  RecoveryMode recovery = RecoveryMode::kTolerateCorruptedTail;
  // Open for reading only (no lock conflicts with other readers, no writes,
  // nothing cut). kSkipCorrupted implies it.
  bool read_only = false;
  // How long Open waits for the file's lock before it reports the log as
  // already open. The lock sits on the descriptor the I/O goes through, so
  // a writer that died keeps it until the kernel has finished its writes in
  // flight (tens to hundreds of ms after the process is reaped); only then
  // may a new writer recover and write. A live holder fails Open after
  // this wait.
  std::chrono::milliseconds lock_wait{2000};
  // The file is extended (fallocate) this far ahead of the tail, so writes
  // land in allocated space rather than extending the file.
  uint64_t preallocate_bytes = uint64_t{256} << 20;
  // Makes the IoRing the appender writes and reads through; default
  // CreateIoRing (io_uring, or the pwrite fallback). Tests inject
  // testing/FakeIoRing here.
  std::function<absl::StatusOr<std::unique_ptr<IoRing>>(unsigned queue_depth)>
      io_ring_factory;
};

// What recovery found on Open.
struct RecoveryReport {
  uint64_t tail = 0;             // where the log ends; appends go on from here
  uint64_t blocks = 0;           // valid blocks kept
  uint64_t records = 0;          // valid records kept
  uint64_t bytes_scanned = 0;    // bytes read while scanning
  std::string end;               // why the scan stopped (file, offset, reason)
  bool cut = false;  // the log was cut at `tail`: a corrupt block, or
                     // valid blocks past it (unacknowledged writes)
  std::vector<std::string> skipped;  // kSkipCorrupted: ranges passed over
};

struct LogRecord {
  uint64_t address = 0;
  RecordTag tag;
  std::string payload;
};

class LogReader;

// Space for one record, filled in place and then committed. Move-only; one
// destroyed without Commit becomes padding that no reader ever returns.
class StoreReservation {
 public:
  StoreReservation() = default;
  StoreReservation(StoreReservation&&) = default;
  StoreReservation& operator=(StoreReservation&&) = default;

  // Where to copy the payload.
  std::span<std::byte> payload() const {
    return ring_.data().subspan(kRecordHeaderBytes, payload_bytes_);
  }
  // The record's LSS address.
  uint64_t address() const { return ring_.address(); }
  // Changes what the record will say it is, e.g. when space reserved for a
  // page image ends up holding a failed-flush marker.
  void set_tag(RecordTag tag) { tag_ = tag; }

 private:
  friend class LogStructuredStore;
  StoreReservation(Reservation ring, RecordTag tag, size_t payload_bytes)
      : ring_(std::move(ring)), tag_(tag), payload_bytes_(payload_bytes) {}

  Reservation ring_;
  RecordTag tag_;
  size_t payload_bytes_ = 0;
};

class LogStructuredStore {
 public:
  static absl::StatusOr<std::unique_ptr<LogStructuredStore>> Open(
      const std::string& path, const StoreOptions& options = {});

  LogStructuredStore(const LogStructuredStore&) = delete;
  LogStructuredStore& operator=(const LogStructuredStore&) = delete;
  // Closes, ignoring errors; call Close to see them.
  ~LogStructuredStore();

  // Appends one record of 1 to max_payload_bytes() bytes; returns its
  // address. Stable only after Sync, or WaitStable of the address.
  absl::StatusOr<uint64_t> Append(absl::string_view payload,
                                  RecordTag tag = {});
  // Zero-copy append: reserve, fill payload(), Commit.
  absl::StatusOr<StoreReservation> Reserve(size_t payload_bytes,
                                           RecordTag tag = {});
  // Ends a reservation; returns its address.
  uint64_t Commit(StoreReservation&& reservation);

  // The record at `address`, from its flush buffer while that is resident,
  // else from the file. NotFound if no record starts at `address`.
  absl::StatusOr<LogRecord> Read(uint64_t address);

  // Iterates the records at or after `from` that are stable now, in address
  // order.
  absl::StatusOr<std::unique_ptr<LogReader>> NewLogReader(uint64_t from = 0);

  // Seals the partly filled buffer so it is written. Returns the end of
  // everything appended before the call.
  absl::StatusOr<uint64_t> Flush();
  // Everything appended before the call is stable when it returns OK.
  absl::Status Sync();
  // Blocks until the record at `address` is stable.
  absl::Status WaitStable(uint64_t address);
  // Every record that starts below HiStable() is stable.
  uint64_t HiStable() const;

  // Drains, syncs and releases the file; later calls fail. Idempotent.
  absl::Status Close();

  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& path() const { return path_; }
  size_t max_payload_bytes() const;
  // The first record's address (after the superblock slots).
  uint64_t data_start() const { return sb_.data_start; }
  bool direct_io() const { return direct_io_; }
  Appender::Stats appender_stats() const;
  FlushBufferRing::Stats ring_stats() const;

 private:
  class Sink;
  friend class LogReader;

  LogStructuredStore(std::string path, StoreOptions options);

  absl::Status OpenFile();
  absl::Status LoadOrCreateSuperblock();
  absl::Status Recover();
  absl::Status WriteSuperblock();
  // How far past the tail the last writer's writes may have reached.
  uint64_t Horizon() const;
  absl::Status ZeroPastTail();
  absl::Status StartWriting();
  absl::Status Usable() const;
  absl::Status ReadRange(uint64_t address, std::span<std::byte> out) const;
  // Copies the used bytes of the block at `base` into `out` (resized).
  absl::Status ReadBlock(uint64_t base, std::vector<std::byte>& out);

  const std::string path_;
  const StoreOptions options_;
  int fd_ = -1;
  bool direct_io_ = true;
  bool read_only_ = false;
  bool closed_ = false;
  uint64_t file_size_ = 0;
  Superblock sb_;
  RecoveryReport recovery_;

  std::unique_ptr<Sink> sink_;
  std::unique_ptr<IoRing> io_;
  std::unique_ptr<Appender> appender_;
  std::unique_ptr<FlushBufferRing> ring_;
};

// Records in address order, read from the file or resident buffers.
class LogReader {
 public:
  // Moves to the next record: true, or false at the end. DataLoss, naming
  // the file and offset, if a record fails its check.
  absl::StatusOr<bool> Next();
  // The current record; valid until the next call to Next.
  const RecordView& record() const { return record_; }

 private:
  friend class LogStructuredStore;
  LogReader(LogStructuredStore* store, std::vector<uint64_t> blocks,
            uint64_t from)
      : store_(store), blocks_(std::move(blocks)), from_(from) {}

  LogStructuredStore* store_;
  std::vector<uint64_t> blocks_;  // block addresses to visit, in order
  size_t next_block_ = 0;
  uint64_t from_;
  std::vector<std::byte> block_;
  std::vector<RecordView> records_;
  size_t next_record_ = 0;
  RecordView record_;
};

}  // namespace lss

#endif  // LSS_LSS_LOG_STRUCTURED_STORE_H_
