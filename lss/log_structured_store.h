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
//   (*store)->WaitStable(*a);                // durable from here on
//   absl::StatusOr<LogRecord> r = (*store)->Read(*a);
//
// Durability. "Stable" always means durable: a record is acknowledged once
// Sync() or WaitStable(its address) returned OK, and every byte below
// HiStable() is covered by an fdatasync issued after its write completed.
// After a crash or power loss every acknowledged record reads back byte for
// byte. StoreOptions::durability only chooses when fdatasyncs are issued.
//
// Opening recovers (lss/recovery.h): it scans the log, keeps its longest
// valid prefix, never zeroes a block that verifies, and starts a new epoch
// at the tail, so bytes a crash left past it can never rejoin the log. It
// never cuts records that the file proves acknowledged (every block records
// the durable watermark when it was sealed, and Close ends the log with a
// marker); only the records of the last sync before a crash, which no later
// block proves yet, cannot be told from a torn write if the media damages
// them (lss/FORMAT.md). The file is locked while open. Every option is
// checked, and every buffer and the I/O ring are made, before the first
// byte is written, so an Open that fails for its options or for what it
// found changes nothing; one whose own writes fail may have zeroed torn
// bytes past the tail. A file it created is removed again.
//
// Errors: every failure is a Status naming the file and, where there is one,
// the offset and the value at fault. After the first I/O error the store is
// failed: every later call returns that error and nothing more is
// acknowledged. After Close, every call returns FailedPrecondition.
//
// Thread safety: every method may be called concurrently, except that
// Close (and the destructor) must not race with other calls. A thread that
// holds an uncommitted Reservation must commit it before it calls Append,
// Reserve, Read, Flush, Sync or WaitStable (it could wait on its own
// record).

#ifndef LSS_LSS_LOG_STRUCTURED_STORE_H_
#define LSS_LSS_LOG_STRUCTURED_STORE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flush/appender.h"
#include "flush/file.h"
#include "flush/read_batch.h"
#include "lss/block_index.h"
#include "lss/format.h"
#include "lss/log_reader.h"
#include "lss/recovery.h"
#include "ring/flush_buffer_ring.h"

namespace lss {

// A checkpoint as Open hands it to the layer above (WriteCheckpoint).
struct CheckpointView {
  uint64_t address = 0;  // of the checkpoint record
  uint64_t resume = 0;   // the records it stands for are the ones below
  uint64_t head = 0;     // the log's head now (the checkpoint's may be lower)
  absl::string_view bytes;  // what the layer above wrote; valid in the call
};

struct StoreOptions {
  WritePolicy policy = WritePolicy::kTailLocalized;
  // kOnWait: an fdatasync only while someone waits (Sync, WaitStable,
  // Close); kSync: one after every written buffer as well, so HiStable()
  // advances without waiting and the ring is paced by the device's syncs.
  Durability durability = Durability::kOnWait;
  // Flush buffer size (a multiple of block_bytes, at most 1 GiB) and count
  // (1 to 1024); the buffer size is fixed when the file is created and must
  // match on every later open.
  size_t buffer_bytes = size_t{4} << 20;
  size_t ring_size = 4;
  // Block size: writes and block starts align to it (a power of two from
  // 512 to 1 MiB). Fixed at creation.
  uint32_t block_bytes = 4096;
  // I/O ring depth, 1 to 4096.
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
  // read_only only: false opens without the shared lock, so the open
  // neither waits for a writer that has the log open nor holds up one that
  // opens it later. The file is then read while the writer appends, as a
  // crash at that moment would leave it: past the writer's durable point
  // blocks may be torn or missing, and a block that was not written yet
  // when the scan passed it may be proven acknowledged by one written just
  // after (so kPointInTime, and a second open that gets past that block,
  // tell that from damage). For tools that inspect a live log.
  bool lock = true;
  // Group commit: how long a leader waits before it cuts the open block, so
  // that more records join its fdatasync (fewer syncs, higher latency).
  // Zero (the default) cuts at once; a group still forms from every record
  // appended while the previous group was being written. At most 100 ms.
  std::chrono::microseconds commit_delay{0};
  // Group commit: how far ahead of the tail a leader keeps the file
  // written with zeros (0 turns it off, or a power of two from 512 to 1
  // MiB: a block at least, and at most the preallocation step, so none
  // when preallocate_bytes is 0). On ext4 the fdatasync after a write into
  // space that was only fallocated must also commit the extent's
  // conversion to the journal; over space written before, it is a device
  // cache flush (without zeros, half the durable appends/s here). Each
  // window of zeros costs one such commit, which the groups syncing at that
  // moment wait for: a larger window means fewer, longer stalls. At 32
  // threads here 1 MiB gave a p99 of about 5 ms and 128 KiB under 2 ms,
  // for up to a fifth fewer appends/s (BENCHMARKS.md, "The zero-ahead
  // window"). Bulk appends never zero: for them it would double the bytes
  // written.
  uint64_t zero_ahead_bytes = uint64_t{128} << 10;
  // The file is extended (fallocate) ahead of the tail, so writes land in
  // allocated space rather than extending the file. The step grows with the
  // log: its size rounded up to a power of two, at most this; the file is
  // kept allocated at least half a step past the tail. So a log of a few
  // records takes tens of KiB, and a large one runs 128 to 512 MiB ahead
  // with the default. 0 turns preallocation off.
  uint64_t preallocate_bytes = uint64_t{256} << 20;
  // Bounds the disk the log uses: the superblocks and everything from the
  // head on, preallocation included (the space below the head was given
  // back by Truncate; the 4 KiB file-system block that holds the head, and
  // one of the file system's extent tree, count as used too). An append
  // that could take the log past it fails with ResourceExhausted, naming
  // the head and the end; Truncate makes room. At
  // least the superblocks and 4 x buffer_bytes; 0 (the default): no bound.
  // Each append in flight keeps twice its record and a block in reserve, so
  // the bound is never passed, and the last few buffers' worth may go
  // unused when many threads append at once.
  uint64_t capacity_bytes = 0;
  // Makes the IoRings the store uses; default CreateIoRing (io_uring, or
  // the pwrite fallback). Called by Open for the appender's ring (writes
  // and LogReader's reads), then again, from any thread and concurrently,
  // until Close, for the rings reads by address lease (Read, ReadMany: one
  // per call in progress, at most 64, kept until Close). It must be
  // thread-safe and outlive the store. Tests inject testing/FakeIoRing
  // here.
  std::function<absl::StatusOr<std::unique_ptr<IoRing>>(unsigned queue_depth)>
      io_ring_factory;
  // Opens the file every other operation goes through; default
  // OpenPosixFile. Tests inject a simulated disk here (with an IoRing that
  // reaches the same disk).
  FileOpener file_opener;
  // Called by Open for every record recovery keeps, in address order, as
  // its scan reads the log, so that a layer above rebuilds its state in the
  // same pass (PageStore does). The view is valid only during the call; an
  // error fails Open with it. Open may still fail after visiting records
  // (damage found further on): then discard what was seen.
  std::function<absl::Status(const RecordView&)> on_recovered_record;
  // Resuming from a checkpoint (WriteCheckpoint). If set, and the
  // superblock names a checkpoint that applies, Open reads it and calls
  // this with it before any record is visited, then scans the log from the
  // checkpoint's resume address: records below it are not visited (the
  // checkpoint stands for them) and their blocks are not read again (Read
  // finds them through the block list the checkpoint holds). Unset, or a
  // checkpoint that does not apply (recovery().checkpoint_unused says why;
  // kSkipCorrupted never uses one): the scan starts at the head and visits
  // everything. An error fails Open with it.
  std::function<absl::Status(const CheckpointView&)> on_checkpoint;
};

struct LogRecord {
  uint64_t address = 0;
  RecordTag tag;
  std::string payload;
};


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
  // address. Acknowledged (durable) once Sync, or WaitStable of the
  // address, returns OK.
  absl::StatusOr<uint64_t> Append(absl::string_view payload,
                                  RecordTag tag = {});
  // Zero-copy append: reserve, fill payload(), Commit.
  absl::StatusOr<StoreReservation> Reserve(size_t payload_bytes,
                                           RecordTag tag = {});
  // Ends a reservation; returns its address.
  uint64_t Commit(StoreReservation&& reservation);

  // The record at `address` (one Append or Commit returned), from its flush
  // buffer while that is resident, else from the file. NotFound, naming the
  // reason, if no valid record is there: the address is in a header or
  // padding, past the end, or its bytes fail the record's checksum (damage,
  // or not an address Append returned; a caller that got the address from
  // the log should treat that as damage). Checksums cover the address, so
  // stale or shifted bytes never read as a record; bytes inside a payload
  // that were built to be one can.
  absl::StatusOr<LogRecord> Read(uint64_t address);

  // Many reads at once, safe from many threads: the result for each
  // address, in order, as Read would return it. Records on disk are read
  // with every first read in flight together, each one aligned read that
  // covers a payload of `expected_payload_bytes`, or of the last record
  // read from disk if that was longer (as Read guesses; never past the
  // record's block); a longer record is read again, whole, as soon as its
  // first read shows its length. Records still in a flush buffer are
  // copied from memory. Reads by address (this and Read) go through I/O
  // rings of their own (flush/read_batch.h), one per call in progress,
  // never through the appender's: they wait for no write or fdatasync.
  std::vector<absl::StatusOr<LogRecord>> ReadMany(
      std::span<const uint64_t> addresses, size_t expected_payload_bytes = 0);

  // Iterates the records at or after `from` that are durable now, in
  // address order, streaming the file with `options.reads_in_flight` reads
  // of `options.read_bytes` in flight (InvalidArgument if out of range).
  // The reader must not outlive the store; after Close its Next fails.
  absl::StatusOr<std::unique_ptr<LogReader>> NewLogReader(
      uint64_t from = 0, const LogReaderOptions& options = {});

  // Seals the partly filled buffer so it is written (not made durable).
  // Returns the end of everything appended before the call.
  absl::StatusOr<uint64_t> Flush();
  // Everything appended before the call is durable when it returns OK.
  absl::Status Sync();
  // Blocks until the record at `address`, and everything before it, is
  // durable. `address` is one Append or Commit returned; InvalidArgument
  // for an address that cannot start a record (below data_start(), not a
  // multiple of 8, inside a block header, or at or past the end of what was
  // appended).
  absl::Status WaitStable(uint64_t address);
  // Every record that starts below HiStable() is durable.
  uint64_t HiStable() const;
  // Where the log ends, give or take the open flush buffer: every record
  // below it was appended. Never waits; for watching the log grow.
  uint64_t AppendedEnd() const;

  // Moves the log's head up to the block that holds `address` (an address
  // Append returned, or HiStable()): the records of the blocks below it are
  // gone. Reads of them are NotFound, readers start at the head, their
  // space goes back to the file system (hole punching: addresses are never
  // reused, so a stale one is found missing, never misread), and Open scans
  // from the head. The new head is durable when this returns OK (a
  // superblock rewrite and fdatasync come before any hole). Records of the
  // head's own block below `address` stay. InvalidArgument past HiStable()
  // (only durable records can go); a head at or below the current one
  // changes nothing. A LogReader already running may miss records below
  // the new head, or fail with DataLoss if it was reading their block as
  // its space went. FailedPrecondition on a read-only store.
  absl::Status Truncate(uint64_t address);
  // The first block of the log: data_start() until the first Truncate.
  uint64_t head() const;

  // Releases the blocks that start in [from, to) from the middle of the
  // log, as Truncate does below the head: their records are gone (Read is
  // NotFound, naming the range), readers and recovery step over them, and
  // their space goes back to the file system (a hole punched in the file,
  // which counts no more against capacity_bytes). The superblock lists the
  // released ranges above the head (lss/FORMAT.md, "Holes"), merging ranges
  // that touch; the new list is durable before any hole is punched. One
  // that would list more than kMaxHoles is ResourceExhausted (release a
  // range next to a hole, or Truncate). A range that reaches the head
  // moves the head instead. `to` is at most CheckpointBoundary() (only
  // whole durable blocks go), InvalidArgument otherwise; an empty range
  // changes nothing. A range that holds the newest checkpoint's records
  // drops it, as a Truncate past its resume address does. A LogReader
  // already running may miss records in the range, or fail with DataLoss
  // if it was reading their block as its space went. FailedPrecondition on
  // a read-only store.
  absl::Status Release(uint64_t from, uint64_t to);
  // Whether Release(from, to) would drop the newest checkpoint now (its
  // records released, or the head moved past its resume address, holes it
  // reaches included); false without one, or for an empty range. A layer
  // that writes checkpoints writes a new one first only then.
  bool ReleaseDropsCheckpoint(uint64_t from, uint64_t to);
  // How many released ranges holes() would list after Release(from, to)
  // now (as many as now for an empty range): more than kMaxHoles, and
  // Release would refuse it.
  size_t HolesAfterRelease(uint64_t from, uint64_t to);
  // The released ranges above the head, in address order.
  std::vector<Hole> holes() const;
  // Where capacity_bytes ends the log: appends that would pass it fail
  // ResourceExhausted. The capacity counts from the file-system block of
  // the head, and every punched hole adds what it gave back. Meaningless
  // without capacity_bytes.
  uint64_t SpaceEnd() const;

  // Checkpoints, for a layer above that rebuilds its state from the log
  // (PageStore): `bytes` is that state as of every record below `resume`.
  // Writes them, with the list of the blocks in [head, resume), as a
  // record (kCheckpointRecordType; one larger than a record goes first as
  // part records), makes it durable and then names it in the superblock,
  // so that an Open with StoreOptions::on_checkpoint starts its scan at
  // `resume`. `resume` is a block start at or above the head and at or
  // below HiStable(), e.g. CheckpointBoundary(); InvalidArgument otherwise.
  // A crash before the superblock is durable leaves the previous
  // checkpoint in force. A Truncate past `resume`, or an Open that cuts the
  // log below the record, drops the checkpoint (the superblock then names
  // none). Returns the record's address.
  absl::StatusOr<uint64_t> WriteCheckpoint(uint64_t resume,
                                           absl::string_view bytes);
  // The highest block start at or below HiStable(): every record below it
  // is durable. At least the head.
  uint64_t CheckpointBoundary();
  // The resume address of the checkpoint the superblock names, 0 if none.
  uint64_t checkpoint_resume() const;

  // Drains, makes everything durable, writes a close marker (a block with
  // no records that proves everything before it durable) and releases the
  // file; later calls fail. Idempotent.
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

  // Open's steps; all but StartWriting write nothing.
  absl::Status OpenFile(bool& is_new);
  absl::StatusOr<RecoveredLog> LoadAndRecover(bool is_new);
  absl::Status PrepareWriting();
  // A read-only store's I/O ring, for reads.
  absl::Status PrepareReading();
  // Makes io_ and read_align_, and the appender over them.
  absl::StatusOr<std::unique_ptr<Appender>> StartIo();
  // Sets read_align_, or InvalidArgument if block_bytes is no multiple of
  // the file's O_DIRECT alignment.
  absl::Status FindReadAlignment();
  absl::StatusOr<std::unique_ptr<IoRing>> CreateRing() const;
  // What reads go through: the appender, or a read-only store's reads_.
  Appender* reads() const {
    return appender_ != nullptr ? appender_.get() : reads_.get();
  }
  absl::Status StartWriting(const RecoveredLog& recovered);

  absl::Status Usable() const;
  // Blocks until everything below `end` is durable, leading or joining a
  // group commit.
  absl::Status MakeDurable(uint64_t end);
  // The group commit leader's part, holding commit_mu_ (adopted and
  // released): cuts the open block unless a cut already covers `end`, asks
  // for its fdatasync and returns where the cut ends.
  absl::StatusOr<uint64_t> LeadCut(uint64_t end);
  // A waiter's wait for the group commit in flight, `group` its end, before
  // it forms the next group.
  absl::Status JoinGroup(uint64_t group);
  // After the last sync: a block with no records whose watermark says that
  // everything before it is durable, so that recovery can tell damage
  // anywhere in a cleanly closed log from a torn tail.
  absl::Status WriteCloseMarker();
  // The checkpoint the superblock names, if it applies: its view, and the
  // blocks below its resume address from the head on. Otherwise nothing,
  // with recovery_.checkpoint_unused saying why.
  struct LoadedCheckpoint {
    CheckpointView view;
    std::vector<RecoveredBlock> blocks;
    std::string payload;  // the checkpoint, parts joined
    size_t bytes_at = 0;  // where the layer above's bytes start in it
    uint64_t low = 0;     // where its first part record is, if it has one
  };
  absl::StatusOr<std::optional<LoadedCheckpoint>> LoadCheckpoint();
  // Punches out [data_start, head) (what is not punched yet).
  absl::Status PunchBelowHead();
  // Holding head_mu_: makes `head` and `holes` (in order, disjoint, above
  // the head) durable in the superblock, dropping a checkpoint whose
  // records they no longer hold, and brings the index and the capacity
  // bound up to date. Punches nothing.
  // `fresh` is a range newly released, to punch (unpunched_) once this
  // returns OK.
  absl::Status MoveHeadAndHoles(uint64_t head, std::vector<Hole> holes,
                                std::optional<Hole> fresh);
  // Punches below the head and every released range not punched yet
  // (unpunched_, kept until its punch succeeds); holding head_mu_.
  absl::Status PunchReleased();
  // What Release(from, to) would do: the blocks it releases (empty if
  // none), the hole list after merging, and the head after it absorbs the
  // holes it reaches. REQUIRES head_mu_.
  struct ReleasePlan {
    Hole released;
    std::vector<Hole> holes;
    uint64_t head = 0;
  };
  ReleasePlan PlanRelease(uint64_t from, uint64_t to,
                          uint64_t boundary) const;
  // Whether a head and hole list leave the newest checkpoint unusable.
  // REQUIRES head_mu_.
  bool DropsCheckpoint(uint64_t head, const std::vector<Hole>& holes) const;
  // Sets hole_credit_ from the holes of sb_ that are punched.
  void CountHoles();
  // The block that holds `address`, pinned, sealing and helping the buffer
  // that holds it to the index if need be; NotFound if no record can be
  // there (below the head, past the end, not a record boundary).
  absl::StatusOr<BlockIndex::Pinned> Locate(uint64_t address);
  // NotFound unless `address` may start a record of `block`.
  absl::Status CheckInBlock(const BlockIndex::Pinned& block,
                            uint64_t address) const;
  absl::Status NoRecord(uint64_t address, absl::string_view why) const;
  absl::StatusOr<LogRecord> ParseAt(uint64_t address,
                                    std::span<const std::byte> bytes) const;
  // Where the first read of a record on disk ends: its block, or past a
  // payload of `expected_payload` bytes, whichever comes first.
  uint64_t FirstReadEnd(const BlockIndex::Pinned& block, uint64_t address,
                        size_t expected_payload) const;
  // A record being read from disk by ReadMany.
  struct DiskRead;
  // `read` finished as `done`: the record, or nothing once it asked `batch`
  // for the rest of a record longer than its first read.
  std::optional<absl::StatusOr<LogRecord>> FinishDiskRead(
      uint64_t address, DiskRead& read, const ReadBatch::Done& done,
      ReadBatch& batch);

  const std::string path_;
  const StoreOptions options_;
  std::unique_ptr<File> file_;
  bool direct_io_ = false;
  bool read_only_ = false;
  bool closed_ = false;
  uint64_t file_size_ = 0;
  // What reads by address align to: the file's O_DIRECT alignment, which
  // may be finer than the block size (a record is read, not its block).
  uint64_t read_align_ = 0;
  Superblock sb_;
  RecoveryReport recovery_;
  // Intact blocks recovery found past the tail (RecoveredLog).
  std::vector<std::pair<uint64_t, uint64_t>> intact_past_tail_;
  std::unique_ptr<BlockIndex> index_;
  std::mutex commit_mu_;  // one group commit leader at a time
  // Cuts led so far: what threads that find commit_mu_ taken wait on.
  std::atomic<uint32_t> cuts_{0};
  std::atomic<int> joining_{0};  // threads in JoinGroup
  // One Truncate, Release or superblock rewrite at a time.
  mutable std::mutex head_mu_;
  std::atomic<uint64_t> head_{0};
  // The resume address of the checkpoint sb_ names (changed under
  // head_mu_).
  std::atomic<uint64_t> checkpoint_resume_{0};
  // Where the newest checkpoint's records begin: its first part, or the
  // record itself (head_mu_).
  uint64_t checkpoint_low_ = 0;
  uint64_t punched_ = 0;  // [data_start, punched_) is a hole (head_mu_)
  // Released ranges whose punch has not succeeded yet (head_mu_).
  std::vector<Hole> unpunched_;
  // capacity_bytes: the file-system blocks the punched holes gave back.
  std::atomic<uint64_t> hole_credit_{0};
  // capacity_bytes: what Reserve charges the appends in flight.
  std::atomic<uint64_t> charged_{0};
  // The payload size of the last record read from disk: how far Read's
  // first read reaches.
  std::atomic<size_t> last_read_payload_{0};

  // Declared so that they are destroyed in the order Close tears them down:
  // the appender (which reaps what is in flight), the I/O ring, and only
  // then the memory the kernel wrote from.
  std::unique_ptr<FlushBufferRing> ring_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<IoRing> io_;
  std::unique_ptr<Appender> appender_;
  // A read-only store's reads: an appender that is never handed a buffer.
  std::unique_ptr<Appender> reads_;
  // Rings for reads by address (Read, ReadMany), apart from the appender's.
  std::unique_ptr<ReadRingPool> read_rings_;
};

}  // namespace lss

#endif  // LSS_LSS_LOG_STRUCTURED_STORE_H_
