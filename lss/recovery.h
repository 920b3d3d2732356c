// Recovery: scans a log file and decides where the log ends, what it keeps
// and what must be cleared past the end. Reads only; the store applies the
// outcome (lss/FORMAT.md, "Recovery", says the same in prose).
//
// The log is the longest run of valid blocks from the superblock's head
// (data_start until the log is first truncated). Where that run
// stops, the question is whether acknowledged data was lost. The proof is
// the watermark W: the superblock's epoch start (everything before it was
// durable when this epoch began) and the `stable` field of every intact
// block of the current epoch, wherever it lies. A stop below W is damage to
// acknowledged data; a stop at or past W is the tail a crash tore, and what
// follows it was never acknowledged.

#ifndef LSS_LSS_RECOVERY_H_
#define LSS_LSS_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "flush/file.h"
#include "lss/format.h"

namespace lss {

// What Open does with a log whose end is not clean (after RocksDB's WAL
// recovery modes). In every mode recovery never zeroes or overwrites a block
// that verifies, and damage below the acknowledged watermark is never cut
// silently.
enum class RecoveryMode {
  // Cut a torn tail (anything at or past the acknowledged watermark) and
  // report it. Damage below the watermark is DataLoss, and nothing changes.
  kTolerateCorruptedTail,
  // Any corrupt block, any intact block of this epoch past the end, or torn
  // bytes right after it are DataLoss: for logs closed cleanly.
  kAbsoluteConsistency,
  // Keep everything before the first block that is not valid, even when
  // that cuts acknowledged records (reported in `lost_acknowledged`).
  kPointInTime,
  // Skip every corrupt range, keeping every valid block and every record
  // whose own checksum verifies (for tools that salvage data). The store
  // opens read-only.
  kSkipCorrupted,
};

// What recovery found on Open.
struct RecoveryReport {
  // The superblock's head (data_start until the log is first truncated).
  uint64_t head = 0;
  // Where the scan began: the head, or a checkpoint's resume address
  // (StoreOptions::on_checkpoint; `checkpoint` is then that record's
  // address, else 0). Blocks below it were not read again.
  uint64_t scan_from = 0;
  uint64_t checkpoint = 0;
  // Why a checkpoint the superblock names was not used (empty if it was,
  // or if there is none or none was asked for).
  std::string checkpoint_unused;
  // Where the log ends; appends go on from here. kSkipCorrupted: the end
  // of the last valid block.
  uint64_t tail = 0;
  uint64_t blocks = 0;           // valid blocks kept
  uint64_t records = 0;          // valid records kept (salvaged included)
  uint64_t bytes_scanned = 0;    // bytes read while scanning
  // The acknowledged watermark W the file proves: every record below it
  // was acknowledged durable.
  uint64_t acknowledged = 0;
  std::string end;               // why the scan stopped (file, offset, reason)
  bool cut = false;  // the log was cut at `tail`: a corrupt block, or
                     // intact blocks past it (unacknowledged writes)
  // kPointInTime only: the cut lies below `acknowledged`.
  bool lost_acknowledged = false;
  std::vector<std::string> skipped;  // kSkipCorrupted: ranges passed over
  uint64_t salvaged_records = 0;     // kSkipCorrupted: from corrupt ranges
  std::string superblock;  // a damaged superblock slot that was passed over
  uint64_t bytes_cleared = 0;  // bytes past the tail zeroed by the open
};

struct RecoveredBlock {
  uint64_t address = 0;
  uint64_t used = 0;  // a salvaged range: its length
  // Set for a corrupt range salvaged by kSkipCorrupted: the records in it
  // whose checksums verify, by address.
  std::vector<uint64_t> salvaged;
};

struct RecoveredLog {
  RecoveryReport report;
  std::vector<RecoveredBlock> blocks;  // in address order
  // Ranges past the tail holding bytes that are not part of any intact
  // block (torn writes, damage): a writable open zeroes them.
  std::vector<std::pair<uint64_t, uint64_t>> clear;  // [from, to)
  // Intact blocks past the tail (stale ones, and this epoch's unacknowledged
  // ones), as padded extents [from, to). New appends overwrite them; one
  // whose head is overwritten leaves the rest of it behind as bytes that no
  // longer verify.
  std::vector<std::pair<uint64_t, uint64_t>> intact_past_tail;
};

// Scans `file` (of `file_size` bytes) under superblock `sb`. `damaged_slot`
// names a superblock slot that was passed over (LoadSuperblock): then any
// intact block newer than `sb` is DataLoss, because the damaged slot was
// the current one. I/O errors are returned; everything else found in the
// file is the report, or DataLoss naming the file, the offset and the
// reason. `visit`, if set, sees every record kept, in address order, as the
// scan reads it (a view valid during the call); its error ends the scan.
// `scan_from` (a block address at or above sb.head; 0: the head) is where
// the valid run is taken to start: blocks below it are not read.
using RecordVisitor = std::function<absl::Status(const RecordView&)>;
absl::StatusOr<RecoveredLog> RecoverLog(File& file, const Superblock& sb,
                                        uint64_t file_size, RecoveryMode mode,
                                        const std::string& damaged_slot,
                                        const RecordVisitor& visit = nullptr,
                                        uint64_t scan_from = 0);

}  // namespace lss

#endif  // LSS_LSS_RECOVERY_H_
