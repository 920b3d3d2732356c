#include "lss/format.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lss/crc32c.h"
#include "ring/check.h"

namespace lss {
namespace {

template <typename T>
void Put(std::span<std::byte> out, size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof(T));
}

template <typename T>
T Get(std::span<const std::byte> in, size_t at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof(T));
  return value;
}

// Version 4 keeps version 3's CRC of the fields at 88, so that a build that
// reads only version 3 finds it valid and refuses the version by name.
constexpr size_t kFieldsCrcAt = 88;
constexpr size_t kHoleCountAt = 92;
constexpr size_t kHolesAt = 96;
constexpr size_t kVersion2CrcAt = 80;
constexpr size_t kVersion1CrcAt = 72;

uint32_t RecordCrc(uint64_t address, std::span<const std::byte> record,
                   size_t payload_bytes) {
  const uint32_t crc = Crc32c(&address, sizeof(address));
  return Crc32c(record.data() + 4, kRecordHeaderBytes - 4 + payload_bytes,
                crc);
}

}  // namespace

void EncodeSuperblock(const Superblock& sb, std::span<std::byte> out) {
  LSS_CHECK(out.size() >= kSuperblockBytes, "superblock buffer too small");
  LSS_CHECK(sb.holes.size() <= kMaxHoles, "superblock: too many holes");
  std::fill(out.begin(), out.begin() + kSuperblockBytes, std::byte{0});
  Put(out, 0, kSuperblockMagic);
  Put(out, 8, sb.version);
  Put(out, 12, sb.block_bytes);
  Put(out, 16, sb.buffer_bytes);
  Put(out, 24, sb.store_id);
  Put(out, 32, sb.sequence);
  Put(out, 40, sb.epoch);
  Put(out, 48, sb.epoch_start);
  Put(out, 56, sb.data_start);
  Put(out, 64, sb.max_in_flight_bytes);
  Put(out, 72, sb.head);
  Put(out, 80, sb.checkpoint);
  Put(out, kFieldsCrcAt, Crc32c(out.data(), kFieldsCrcAt));
  Put(out, kHoleCountAt, static_cast<uint32_t>(sb.holes.size()));
  size_t at = kHolesAt;
  for (const Hole& h : sb.holes) {
    Put(out, at, h.begin);
    Put(out, at + 8, h.end);
    at += 16;
  }
  Put(out, at, Crc32c(out.data(), at));
}

absl::StatusOr<Superblock> DecodeSuperblock(std::span<const std::byte> in,
                                            absl::string_view where) {
  if (in.size() < kSuperblockBytes ||
      Get<uint64_t>(in, 0) != kSuperblockMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a log file (no superblock magic)"));
  }
  const uint32_t version = Get<uint32_t>(in, 8);
  const size_t crc_at = version == 1   ? kVersion1CrcAt
                        : version == 2 ? kVersion2CrcAt
                                       : kFieldsCrcAt;
  const uint32_t crc = Get<uint32_t>(in, crc_at);
  if (crc != Crc32c(in.data(), crc_at)) {
    return absl::DataLossError(
        absl::StrCat(where, ": superblock checksum mismatch"));
  }
  Superblock sb;  // versions 1 and 2 read as the current one, upgraded
  if (version < 1 || version > kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": format version ", version,
                     "; this build reads versions 1 to ", kFormatVersion));
  }
  const uint32_t holes = version >= 4 ? Get<uint32_t>(in, kHoleCountAt) : 0;
  if (holes > kMaxHoles) {
    return absl::DataLossError(absl::StrCat(
        where, ": superblock lists ", holes, " holes, more than ", kMaxHoles,
        " (damaged)"));
  }
  const size_t holes_crc_at = kHolesAt + 16 * size_t{holes};
  if (version >= 4 &&
      Get<uint32_t>(in, holes_crc_at) != Crc32c(in.data(), holes_crc_at)) {
    return absl::DataLossError(
        absl::StrCat(where, ": superblock hole list checksum mismatch"));
  }
  sb.block_bytes = Get<uint32_t>(in, 12);
  sb.buffer_bytes = Get<uint64_t>(in, 16);
  sb.store_id = Get<uint64_t>(in, 24);
  sb.sequence = Get<uint64_t>(in, 32);
  sb.epoch = Get<uint64_t>(in, 40);
  sb.epoch_start = Get<uint64_t>(in, 48);
  sb.data_start = Get<uint64_t>(in, 56);
  sb.max_in_flight_bytes = Get<uint64_t>(in, 64);
  sb.head = version == 1 ? sb.data_start : Get<uint64_t>(in, 72);
  sb.checkpoint = version >= 3 ? Get<uint64_t>(in, 80) : 0;
  // Holes lie above the head, block-aligned, in order, never touching (a
  // release next to one grows it); anything else is damage.
  uint64_t after = sb.head;
  for (uint32_t i = 0; i < holes; ++i) {
    const Hole h{.begin = Get<uint64_t>(in, kHolesAt + 16 * i),
                 .end = Get<uint64_t>(in, kHolesAt + 16 * i + 8)};
    if (h.begin <= after || h.end <= h.begin || sb.block_bytes == 0 ||
        h.begin % sb.block_bytes != 0 || h.end % sb.block_bytes != 0) {
      return absl::DataLossError(absl::StrCat(
          where, ": superblock hole ", i, " [", h.begin, ", ", h.end,
          ") is not a block-aligned range above the head ", sb.head,
          " and the hole before it (damaged)"));
    }
    after = h.end;
    sb.holes.push_back(h);
  }
  return sb;
}

void SealBlock(const BlockHeader& header, std::span<std::byte> block) {
  LSS_CHECK(header.used >= kBlockHeaderBytes && block.size() >= header.used,
            "block header outside the block");
  std::fill(block.begin(), block.begin() + kBlockHeaderBytes, std::byte{0});
  Put(block, 4, kBlockMagic);
  Put(block, 8, header.store_id);
  Put(block, 16, header.address);
  Put(block, 24, header.epoch);
  Put(block, 32, header.used);
  Put(block, 40, header.stable);
  Put(block, 0, Crc32c(block.data() + 4, header.used - 4));
}

bool ParseBlockHeader(std::span<const std::byte> in, BlockHeader& out) {
  if (in.size() < kBlockHeaderBytes || Get<uint32_t>(in, 4) != kBlockMagic) {
    return false;
  }
  out.store_id = Get<uint64_t>(in, 8);
  out.address = Get<uint64_t>(in, 16);
  out.epoch = Get<uint64_t>(in, 24);
  out.used = Get<uint32_t>(in, 32);
  out.stable = Get<uint64_t>(in, 40);
  return true;
}

bool BlockCrcMatches(std::span<const std::byte> block) {
  return Get<uint32_t>(block, 0) == Crc32c(block.data() + 4, block.size() - 4);
}

void SealRecord(uint64_t address, RecordTag tag, size_t payload_bytes,
                std::span<std::byte> record) {
  LSS_CHECK(record.size() == RecordFootprint(payload_bytes),
            "record span does not match its payload");
  Put(record, 4, static_cast<uint32_t>(payload_bytes));
  Put(record, 8, tag.key);
  Put(record, 16, tag.type);
  Put(record, 20, uint32_t{0});
  std::fill(record.begin() + kRecordHeaderBytes + payload_bytes, record.end(),
            std::byte{0});
  Put(record, 0, RecordCrc(address, record, payload_bytes));
}

RecordParse ParseRecord(uint64_t address, std::span<const std::byte> in,
                        RecordView& out, std::string& reason) {
  if (in.size() >= kRecordAlignment && Get<uint64_t>(in, 0) == 0) {
    return RecordParse::kPadding;
  }
  if (in.size() < kRecordHeaderBytes) {
    reason = absl::StrCat("record header cut short: ", in.size(), " bytes");
    return RecordParse::kCorrupt;
  }
  const uint32_t length = Get<uint32_t>(in, 4);
  if (length == 0 || RecordFootprint(length) > in.size()) {
    reason = absl::StrCat("record length ", length, " does not fit the ",
                          in.size(), " bytes left in its block");
    return RecordParse::kCorrupt;
  }
  if (Get<uint32_t>(in, 0) != RecordCrc(address, in, length)) {
    reason = "record checksum mismatch";
    return RecordParse::kCorrupt;
  }
  out.address = address;
  out.tag.key = Get<uint64_t>(in, 8);
  out.tag.type = Get<uint32_t>(in, 16);
  out.payload = absl::string_view(
      reinterpret_cast<const char*>(in.data() + kRecordHeaderBytes), length);
  return RecordParse::kRecord;
}

void PutU32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

void PutU64(std::string& out, uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

bool GetU32(absl::string_view& in, uint32_t& v) {
  if (in.size() < sizeof(v)) return false;
  std::memcpy(&v, in.data(), sizeof(v));
  in.remove_prefix(sizeof(v));
  return true;
}

bool GetU64(absl::string_view& in, uint64_t& v) {
  if (in.size() < sizeof(v)) return false;
  std::memcpy(&v, in.data(), sizeof(v));
  in.remove_prefix(sizeof(v));
  return true;
}

}  // namespace lss
