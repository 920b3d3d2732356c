// Reading and writing the two superblock slots of a log file (FORMAT.md).
//
// Which slot is current, and what a damaged slot means:
//   - both valid: the higher sequence (they must agree on the store's fixed
//     fields; if not, DataLoss);
//   - one valid, the other never written: the valid one;
//   - one valid, the other damaged: the valid one stands in, but only if no
//     block of the log is newer than it, which recovery must prove
//     (`damaged` says which slot and why);
//   - none valid: DataLoss when a slot is damaged or the file holds data,
//     a new log when nothing was ever written, InvalidArgument when the
//     bytes are not a superblock at all ("not a log file").

#ifndef LSS_LSS_SUPERBLOCK_IO_H_
#define LSS_LSS_SUPERBLOCK_IO_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flush/file.h"
#include "lss/format.h"

namespace lss {

// What one superblock slot holds.
enum class SlotKind {
  kValid,
  kEmpty,    // all zero: never written
  kDamaged,  // a superblock, but its CRC fails, its magic is a few bits
             // off, or its fields are impossible where it sits
  kForeign,  // nothing like a superblock
  kNewer,    // a valid superblock of a newer format version
};

struct SuperblockSlot {
  SlotKind kind = SlotKind::kEmpty;
  uint64_t offset = 0;
  Superblock sb;       // kValid
  absl::Status error;  // kDamaged, kForeign, kNewer: why, naming the offset
};

// "valid", "empty", "damaged", "foreign" or "newer format".
const char* SlotKindName(SlotKind kind);

// Reads and classifies both slots of a non-empty file; slot 1 is looked
// for where a valid slot 0 puts it, else at `block_bytes`'s slot size, then
// at every slot size. Writes nothing.
absl::StatusOr<std::array<SuperblockSlot, 2>> ReadSuperblockSlots(
    File& file, uint32_t block_bytes);

struct LoadedSuperblock {
  // No superblock was ever made durable: a new (empty) log.
  bool is_new = false;
  Superblock sb;  // the current one, unless is_new
  // Non-empty when a damaged slot was passed over: names the slot, its
  // offset and the reason.
  std::string damaged;
};

// Reads both slots of `file` (of `file_size` bytes) and picks the current
// one. Writes nothing. `block_bytes` is the caller's, used only to find
// slot 1 first where slot 0 cannot say where it is.
absl::StatusOr<LoadedSuperblock> LoadSuperblock(File& file, uint64_t file_size,
                                                uint32_t block_bytes);

// Writes `sb` to slot `sb.sequence % 2`, then fdatasyncs.
absl::Status WriteSuperblock(File& file, const Superblock& sb);

}  // namespace lss

#endif  // LSS_LSS_SUPERBLOCK_IO_H_
