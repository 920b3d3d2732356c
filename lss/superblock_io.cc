#include "lss/superblock_io.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ring/aligned_buffer.h"

namespace lss {
namespace {

// Reads of the superblock area use one 4096-byte aligned buffer: a slot's
// first kSuperblockBytes are all that is decoded, and 4096 is a multiple of
// every O_DIRECT alignment the store accepts.
constexpr size_t kSlotRead = 4096;

using Slot = SuperblockSlot;

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

// A few flipped bits do not make a superblock foreign: damage, not another
// kind of file.
bool LooksLikeMagic(std::span<const std::byte> bytes) {
  uint64_t magic = 0;
  std::memcpy(&magic, bytes.data(), sizeof(magic));
  return std::popcount(magic ^ kSuperblockMagic) <= 8;
}

absl::StatusOr<Slot> ReadSlot(File& file, AlignedBuffer& buf, uint64_t at) {
  Slot slot;
  slot.offset = at;
  std::span<std::byte> bytes(buf.data(), kSlotRead);
  absl::StatusOr<size_t> n = file.ReadAt(at, bytes);
  if (!n.ok()) return n.status();
  std::fill(bytes.begin() + *n, bytes.end(), std::byte{0});
  const std::span<const std::byte> head = bytes.first(kSuperblockBytes);
  if (AllZero(head)) return slot;
  absl::StatusOr<Superblock> sb = DecodeSuperblock(
      head, absl::StrCat(file.path(), ": superblock slot ",
                         at == 0 ? 0 : 1, " at offset ", at));
  if (sb.ok()) {
    // Its CRC holds, so its fields are as written; but a slot 1 read at the
    // wrong slot size could be a copy of another file's: it must sit where
    // its own block size puts it.
    const uint64_t slot_bytes = SuperblockSlotBytes(sb->block_bytes);
    // Counters this large were never written by a writer that opens a log
    // once per epoch; they would wrap on the next open.
    constexpr uint64_t kImplausible = uint64_t{1} << 62;
    const bool placed = sb->data_start == 2 * slot_bytes &&
                        (at == 0 || at == slot_bytes) &&
                        sb->sequence < kImplausible && sb->epoch < kImplausible &&
                        sb->head >= sb->data_start && sb->block_bytes > 0 &&
                        sb->head % sb->block_bytes == 0 &&
                        sb->head < kImplausible;
    slot.kind = placed ? SlotKind::kValid : SlotKind::kDamaged;
    slot.sb = *sb;
    if (!placed) {
      slot.error = absl::DataLossError(absl::StrCat(
          file.path(), ": superblock slot at offset ", at,
          " says data starts at ", sb->data_start, " with block bytes ",
          sb->block_bytes, ", sequence ", sb->sequence, ", epoch ",
          sb->epoch, ", head ", sb->head));
    }
    return slot;
  }
  slot.error = sb.status();
  if (sb.status().code() == absl::StatusCode::kFailedPrecondition) {
    slot.kind = SlotKind::kNewer;
  } else if (LooksLikeMagic(head)) {
    slot.kind = SlotKind::kDamaged;
    if (sb.status().code() != absl::StatusCode::kDataLoss) {
      slot.error = absl::DataLossError(absl::StrCat(
          file.path(), ": superblock slot ", at == 0 ? 0 : 1, " at offset ",
          at, ": damaged magic"));
    }
  } else {
    slot.kind = SlotKind::kForeign;
  }
  return slot;
}

std::string Describe(const Slot& slot) {
  return std::string(slot.error.message());
}

// The first offset at or after `from` holding a nonzero byte, if any.
absl::StatusOr<std::optional<uint64_t>> FirstNonZero(File& file,
                                                     AlignedBuffer& buf,
                                                     uint64_t from,
                                                     uint64_t size) {
  uint64_t at = from;
  while (at < size) {
    absl::StatusOr<uint64_t> data = file.NextData(at);
    if (!data.ok()) return data.status();
    at = std::max(at, *data / kSlotRead * kSlotRead);
    if (at >= size) break;
    absl::StatusOr<size_t> n = file.ReadAt(at, {buf.data(), kSlotRead});
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (!AllZero({buf.data(), *n})) return at;
    at += kSlotRead;
  }
  return std::nullopt;
}

}  // namespace

const char* SlotKindName(SlotKind kind) {
  switch (kind) {
    case SlotKind::kValid:
      return "valid";
    case SlotKind::kEmpty:
      return "empty";
    case SlotKind::kDamaged:
      return "damaged";
    case SlotKind::kForeign:
      return "foreign";
    case SlotKind::kNewer:
      return "newer format";
  }
  return "?";
}

absl::StatusOr<std::array<SuperblockSlot, 2>> ReadSuperblockSlots(
    File& file, uint32_t block_bytes) {
  absl::StatusOr<AlignedBuffer> buf = AlignedBuffer::Allocate(
      kSlotRead, kSlotRead, AlignedBuffer::Pages::kOrdinary);
  if (!buf.ok()) return buf.status();
  absl::StatusOr<Slot> first = ReadSlot(file, *buf, 0);
  if (!first.ok()) return first.status();
  // Slot 1 sits at the slot size the file was made with: a valid slot 0
  // says which; else try the caller's, then every size.
  std::vector<uint64_t> candidates;
  if (first->kind == SlotKind::kValid) {
    candidates.push_back(SuperblockSlotBytes(first->sb.block_bytes));
  } else {
    candidates.push_back(SuperblockSlotBytes(block_bytes));
    for (uint64_t at = 4096; at <= SuperblockSlotBytes(1u << 20); at *= 2) {
      if (at != candidates.front()) candidates.push_back(at);
    }
  }
  std::optional<Slot> second;
  for (uint64_t at : candidates) {
    absl::StatusOr<Slot> slot = ReadSlot(file, *buf, at);
    if (!slot.ok()) return slot.status();
    // The most telling slot found: valid, else damaged, else the first.
    if (!second || slot->kind == SlotKind::kValid ||
        slot->kind == SlotKind::kNewer ||
        (slot->kind == SlotKind::kDamaged &&
         second->kind != SlotKind::kValid && second->kind != SlotKind::kNewer)) {
      second = *slot;
    }
    if (slot->kind == SlotKind::kValid || slot->kind == SlotKind::kNewer) {
      break;
    }
  }
  return std::array<SuperblockSlot, 2>{*first, *second};
}

absl::StatusOr<LoadedSuperblock> LoadSuperblock(File& file, uint64_t file_size,
                                                uint32_t block_bytes) {
  LoadedSuperblock out;
  if (file_size == 0) {
    out.is_new = true;
    return out;
  }
  absl::StatusOr<std::array<SuperblockSlot, 2>> slots =
      ReadSuperblockSlots(file, block_bytes);
  if (!slots.ok()) return slots.status();
  const Slot* const first = &(*slots)[0];
  const Slot* const second = &(*slots)[1];
  for (const Slot* s : {first, second}) {
    if (s->kind == SlotKind::kNewer) return s->error;
  }
  const bool v0 = first->kind == SlotKind::kValid;
  const bool v1 = second->kind == SlotKind::kValid;
  if (v0 && v1) {
    const Superblock& a = first->sb;
    const Superblock& b = second->sb;
    if (a.store_id != b.store_id || a.block_bytes != b.block_bytes ||
        a.buffer_bytes != b.buffer_bytes || a.data_start != b.data_start ||
        a.sequence == b.sequence) {
      return absl::DataLossError(absl::StrCat(
          file.path(), ": the superblock slots at offsets 0 and ",
          second->offset, " disagree (store id ", a.store_id, " / ",
          b.store_id, ", sequence ", a.sequence, " / ", b.sequence, ")"));
    }
    out.sb = a.sequence > b.sequence ? a : b;
    return out;
  }
  if (v0 || v1) {
    const Slot& valid = v0 ? *first : *second;
    const Slot& other = v0 ? *second : *first;
    out.sb = valid.sb;
    if (other.kind == SlotKind::kDamaged || other.kind == SlotKind::kForeign) {
      out.damaged = Describe(other);
    }
    return out;
  }
  for (const Slot* s : {first, second}) {
    if (s->kind == SlotKind::kDamaged) {
      const Slot& other = s == first ? *second : *first;
      return absl::DataLossError(absl::StrCat(
          Describe(*s), "; the other slot (offset ", other.offset, ") ",
          other.kind == SlotKind::kEmpty ? "was never written"
                                         : "is not valid either",
          ", so nothing can stand in for it"));
    }
  }
  if (first->kind == SlotKind::kForeign || second->kind == SlotKind::kForeign) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": not a log file (no superblock magic at offset 0)"));
  }
  // Both slots empty: a log whose creator died before its first superblock
  // was durable is new; one whose superblocks were wiped is damaged.
  absl::StatusOr<AlignedBuffer> buf = AlignedBuffer::Allocate(
      kSlotRead, kSlotRead, AlignedBuffer::Pages::kOrdinary);
  if (!buf.ok()) return buf.status();
  absl::StatusOr<std::optional<uint64_t>> data = FirstNonZero(
      file, *buf, kSlotRead, file_size);
  if (!data.ok()) return data.status();
  if (data->has_value()) {
    return absl::DataLossError(absl::StrCat(
        file.path(), ": both superblock slots are empty, but the file holds "
                     "data at offset ", **data));
  }
  out.is_new = true;
  return out;
}

absl::Status WriteSuperblock(File& file, const Superblock& sb) {
  const uint64_t slot = SuperblockSlotBytes(sb.block_bytes);
  absl::StatusOr<AlignedBuffer> buf =
      AlignedBuffer::Allocate(slot, slot, AlignedBuffer::Pages::kOrdinary);
  if (!buf.ok()) return buf.status();
  std::memset(buf->data(), 0, slot);
  EncodeSuperblock(sb, {buf->data(), slot});
  if (absl::Status s = file.WriteAt((sb.sequence % 2) * slot,
                                    {buf->data(), slot});
      !s.ok()) {
    return s;
  }
  return file.DataSync();
}

}  // namespace lss
