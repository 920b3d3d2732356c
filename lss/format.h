// The on-disk format of a log file (lss/FORMAT.md describes it in prose).
// Every integer is little-endian. Pure encoding and decoding: no I/O.
//
//   [superblock slot 0][superblock slot 1][block][block]...
//
// Superblock slot (first kSuperblockBytes of a slot of slot_bytes):
//    0 u64 magic "LSSLOG\0\1"     8 u32 format version    12 u32 block bytes
//   16 u64 buffer bytes          24 u64 store id          32 u64 sequence
//   40 u64 epoch                 48 u64 epoch start       56 u64 data start
//   64 u64 max in-flight bytes   72 u64 head              80 u64 checkpoint
//   88 u32 CRC32C of [0,88)      92 u32 hole count n
//   96 n x (u64 begin, u64 end): released ranges above the head, in order
//   96 + 16n u32 CRC32C of [0, 96 + 16n)      100 + 16n u32 zero
// (Version 3 had no holes: it ended with its zero word at 92. Version 2 had
// no checkpoint either: its CRC of [0,80) sits at 80. Version 1 had no head:
// its CRC of [0,72) sits at 72, and its head is the data start.) The valid
// slot with the higher sequence is current; a
// rewrite goes to the other slot, so a torn superblock write leaves the
// previous one intact.
//
// Block (one per written flush buffer, at its LSS address = file offset):
//    0 u32 CRC32C of [4, used)   4 u32 magic "LSSB"       8 u64 store id
//   16 u64 address               24 u64 epoch             32 u32 used
//   36 u32 zero                  40 u64 stable
//   48 .. 64 zero; then records; then zeros up to the block size.
// `stable` is the writer's durable watermark when it sealed the block: every
// record below it had been acknowledged. Recovery uses it to tell damage to
// acknowledged data from a torn tail.
//
// Record (8-byte aligned inside a block; an all-zero 8-byte word where a
// record would start is padding, e.g. an abandoned reservation):
//    0 u32 CRC32C of (address as u64, then bytes [4, 24 + length))
//    4 u32 length (payload bytes, >= 1)     8 u64 key      16 u32 type
//   20 u32 zero   24 payload, then zeros to the next multiple of 8.
// A record's CRC covers its own address, so bytes copied from elsewhere, or a
// block from an earlier life of the file, never pass as a record here.

#ifndef LSS_LSS_FORMAT_H_
#define LSS_LSS_FORMAT_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lss {

static_assert(std::endian::native == std::endian::little,
              "the format is little-endian and so is every supported host");

inline constexpr uint64_t kSuperblockMagic = 0x0100474F4C53534CULL;
inline constexpr uint32_t kFormatVersion = 4;
// The most holes a superblock lists (LogStructuredStore::Release).
inline constexpr size_t kMaxHoles = 128;
// The largest superblock, with kMaxHoles holes.
inline constexpr size_t kSuperblockBytes = 96 + 16 * kMaxHoles + 8;
inline constexpr uint32_t kBlockMagic = 0x4253534CU;  // "LSSB"
inline constexpr size_t kBlockHeaderBytes = 64;
inline constexpr size_t kRecordHeaderBytes = 24;
inline constexpr size_t kRecordAlignment = 8;

// A released range of the log: blocks from `begin` (a block start) up to
// `end` (the start of the block after them) are gone.
struct Hole {
  uint64_t begin = 0;
  uint64_t end = 0;
  friend bool operator==(const Hole&, const Hole&) = default;
};

// Record types. 0 is never written (a zero word is padding); types from
// kFirstUserRecordType on belong to higher layers (e.g. page records).
inline constexpr uint32_t kDataRecordType = 1;
// A checkpoint (LogStructuredStore::WriteCheckpoint) is one record of type
// 2: u64 part count k, k x u64 the addresses of its part records (type 3,
// written before it, in order), then the checkpoint's last bytes. The
// checkpoint is the parts' payloads followed by those bytes: u64 resume
// address, u64 block count, (u64 address, u64 used) per block below the
// resume address from the head on, then the layer above's bytes.
inline constexpr uint32_t kCheckpointRecordType = 2;
inline constexpr uint32_t kCheckpointPartRecordType = 3;
inline constexpr uint32_t kFirstUserRecordType = 16;

struct Superblock {
  uint32_t version = kFormatVersion;
  uint32_t block_bytes = 0;
  uint64_t buffer_bytes = 0;
  uint64_t store_id = 0;
  // Incremented on every rewrite; picks the current slot.
  uint64_t sequence = 0;
  // The life of the file that writes blocks from epoch_start on. Each open
  // for writing starts a new epoch at the recovered tail, so a block left
  // past the tail by a crash (stale epoch) can never rejoin the log.
  uint64_t epoch = 0;
  uint64_t epoch_start = 0;
  // Address of the first block: two superblock slots come first.
  uint64_t data_start = 0;
  // How far past the tail writes of this epoch may have reached
  // (ring size x buffer bytes). For tools; recovery relies on the blocks'
  // durable watermarks instead.
  uint64_t max_in_flight_bytes = 0;
  // The first block of the log: everything below it was truncated (its
  // space may be a hole). A block address, data_start at least.
  uint64_t head = 0;
  // The newest checkpoint record (kCheckpointRecordType), 0 for none. Its
  // resume address is at or above the head: recovery may start there.
  uint64_t checkpoint = 0;
  // Released ranges above the head (LogStructuredStore::Release), in
  // address order, neither touching nor overlapping, at most kMaxHoles:
  // recovery and readers step over them.
  std::vector<Hole> holes;
};

// Bytes per superblock slot for a file of `block_bytes` blocks.
inline uint64_t SuperblockSlotBytes(uint32_t block_bytes) {
  return block_bytes < 4096 ? 4096 : block_bytes;
}

// Always in the current layout (sb.version is written as it is).
void EncodeSuperblock(const Superblock& sb, std::span<std::byte> out);
// InvalidArgument ("not a log file") for a wrong magic, DataLoss for a bad
// CRC or a hole list that is out of order, FailedPrecondition for a newer
// format version. Versions 1 to 3 decode as the current version without
// holes (1 and 2 without a checkpoint, 1 with head = data_start), and are
// written back so. `where` names the file and
// offset in the message.
absl::StatusOr<Superblock> DecodeSuperblock(std::span<const std::byte> in,
                                            absl::string_view where);

struct BlockHeader {
  uint64_t store_id = 0;
  uint64_t address = 0;
  uint64_t epoch = 0;
  uint32_t used = 0;  // bytes from the block's start, header included
  // Everything below this address was durable when the block was sealed
  // (0 in blocks written before the field existed: no claim).
  uint64_t stable = 0;
};

// Writes the header into block[0, kBlockHeaderBytes) and its CRC over
// block[4, used). REQUIRES: block.size() >= header.used.
void SealBlock(const BlockHeader& header, std::span<std::byte> block);

// The header fields if `in` starts with the block magic.
bool ParseBlockHeader(std::span<const std::byte> in, BlockHeader& out);
// Whether block[0, used)'s CRC matches its header.
bool BlockCrcMatches(std::span<const std::byte> block);

struct RecordTag {
  uint32_t type = kDataRecordType;
  uint64_t key = 0;
};

// Bytes a record of `payload_bytes` takes in a block.
inline constexpr size_t RecordFootprint(size_t payload_bytes) {
  return (kRecordHeaderBytes + payload_bytes + kRecordAlignment - 1) /
         kRecordAlignment * kRecordAlignment;
}

// Fills the header of a record whose payload already sits at
// record[kRecordHeaderBytes, +payload_bytes), and zeros its padding.
// REQUIRES: record.size() == RecordFootprint(payload_bytes).
void SealRecord(uint64_t address, RecordTag tag, size_t payload_bytes,
                std::span<std::byte> record);

struct RecordView {
  uint64_t address = 0;
  RecordTag tag;
  absl::string_view payload;
};

enum class RecordParse { kRecord, kPadding, kCorrupt };

// Parses the record at `in` (which runs to the end of its block's used
// bytes), stored at `address`. kPadding: an all-zero word, skip 8 bytes.
// kCorrupt: `reason` says why.
RecordParse ParseRecord(uint64_t address, std::span<const std::byte> in,
                        RecordView& out, std::string& reason);

// Integers in record payloads (the store's checkpoint records, the page
// store's records), appended to a string or taken from the front of a view.
// A Get finds fewer bytes than it needs: false, and `in` is left as it was.
void PutU32(std::string& out, uint32_t v);
void PutU64(std::string& out, uint64_t v);
bool GetU32(absl::string_view& in, uint32_t& v);
bool GetU64(absl::string_view& in, uint64_t& v);

}  // namespace lss

#endif  // LSS_LSS_FORMAT_H_
