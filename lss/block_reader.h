// BlockReader: reads blocks of a log file and decides whether each is part of
// the log. Used by recovery (to find the tail) and by LogReader.
//
// A block at address A belongs to the log when its header has the block
// magic, the file's store id and address A, a used length that fits a
// buffer, an epoch that the superblock allows there (at or past epoch_start
// only the current epoch; never a later epoch; never below the previous
// block's), and its CRC matches. Its records are then checked one by one.

#ifndef LSS_LSS_BLOCK_READER_H_
#define LSS_LSS_BLOCK_READER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/file.h"
#include "lss/format.h"
#include "ring/aligned_buffer.h"

namespace lss {

enum class BlockVerdict {
  kValid,
  kEnd,      // nothing was written here: end of file, zeros, or a stale block
             // from before the current epoch's start
  kCorrupt,  // something was written here but it is not a valid block
};

struct BlockCheck {
  BlockVerdict verdict = BlockVerdict::kEnd;
  std::string reason;  // for kEnd and kCorrupt
  BlockHeader header;  // for kValid, and whenever `intact`
  uint64_t records = 0;  // for kValid
  bool unwritten = false;  // kEnd: zeros where the block header would be
  // The block is whole as written (store id, address, length, checksum and
  // every record verify), whatever the epoch rules then decide: a stale
  // block is intact, and so is one of an epoch newer than the superblock's.
  bool intact = false;
  // Intact, but of an epoch newer than the superblock's (kCorrupt): the
  // superblock in use is older than the log.
  bool newer_epoch = false;
};

// Calls `visit` for each record of `block` (its used bytes, stored at
// `address`), in address order, skipping padding. DataLoss naming `path`,
// the record's offset and the reason if one is corrupt; a non-OK status
// from `visit` stops the walk and is returned.
absl::Status ForEachRecord(
    std::span<const std::byte> block, uint64_t address, const std::string& path,
    const std::function<absl::Status(const RecordView&)>& visit);

class BlockReader {
 public:
  // Reads `file` (which may be open with O_DIRECT) through File::ReadAt.
  static absl::StatusOr<BlockReader> Create(File* file, const Superblock& sb,
                                            uint64_t file_size);

  // Reads the block at `address` (a multiple of the block size), whose
  // predecessor in the log has epoch `prev_epoch` (0 for none), checks it
  // and its records. I/O errors are returned as errors; everything found in
  // the file is a verdict.
  absl::StatusOr<BlockCheck> Check(uint64_t address, uint64_t prev_epoch);

  // After Check returned kValid: the block's used bytes.
  std::span<const std::byte> block() const { return block_; }

  // The first address in [from, limit), stepping by the block size, that
  // holds a valid block by the superblock's rules; nothing if none does.
  absl::StatusOr<std::optional<uint64_t>> FindValid(uint64_t from,
                                                    uint64_t limit);

  // The next block-aligned address at or after `from` that may hold written
  // bytes (holes are skipped), or the file size.
  absl::StatusOr<uint64_t> NextData(uint64_t from);

  // Makes [address, address + len) of the file available to Bytes; what
  // lies past the end of the file reads as zeros. REQUIRES: len <= the
  // buffer size.
  absl::Status Load(uint64_t address, size_t len);
  std::span<const std::byte> Bytes(uint64_t address, size_t len) const {
    return {window_.data() + (address - window_start_), len};
  }

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  BlockReader(File* file, const Superblock& sb, uint64_t file_size,
              AlignedBuffer window);

  File* file_;
  std::string path_;
  Superblock sb_;
  uint64_t file_size_;
  AlignedBuffer window_;
  uint64_t window_start_ = 0;
  size_t window_len_ = 0;  // bytes of the window that hold file data
  std::span<const std::byte> block_;
  uint64_t bytes_read_ = 0;
};

}  // namespace lss

#endif  // LSS_LSS_BLOCK_READER_H_
