#include "lss/block_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lss {
namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }
uint64_t RoundDown(uint64_t x, uint64_t to) { return x / to * to; }

bool IsZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

absl::Status ForEachRecord(
    std::span<const std::byte> block, uint64_t address, const std::string& path,
    const std::function<absl::Status(const RecordView&)>& visit) {
  size_t at = kBlockHeaderBytes;
  std::string reason;
  while (at < block.size()) {
    RecordView record;
    switch (ParseRecord(address + at, block.subspan(at), record, reason)) {
      case RecordParse::kPadding:
        at += kRecordAlignment;
        break;
      case RecordParse::kCorrupt:
        return absl::DataLossError(
            absl::StrCat(path, ": offset ", address + at, ": ", reason));
      case RecordParse::kRecord:
        if (absl::Status s = visit(record); !s.ok()) return s;
        at += RecordFootprint(record.payload.size());
        break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BlockReader> BlockReader::Create(File* file,
                                                const Superblock& sb,
                                                uint64_t file_size) {
  // A block more than the largest Load: a window starts at the block
  // boundary below the address asked for (O_DIRECT reads start aligned;
  // salvage asks for records anywhere).
  absl::StatusOr<AlignedBuffer> window = AlignedBuffer::Allocate(
      uint64_t{sb.buffer_bytes} + sb.block_bytes, sb.block_bytes,
      AlignedBuffer::Pages::kHugeIfAvailable);
  if (!window.ok()) return window.status();
  return BlockReader(file, sb, file_size, *std::move(window));
}

BlockReader::BlockReader(File* file, const Superblock& sb, uint64_t file_size,
                         AlignedBuffer window)
    : file_(file),
      path_(file->path()),
      sb_(sb),
      file_size_(file_size),
      window_(std::move(window)) {}

absl::Status BlockReader::Load(uint64_t address, size_t len) {
  if (address >= window_start_ &&
      address + len <= window_start_ + window_.size() && window_len_ > 0) {
    return absl::OkStatus();
  }
  // Read a whole window from the block boundary at or below `address`;
  // what lies past the end of the file reads as zeros, i.e. as unwritten
  // space.
  const uint64_t start = address / sb_.block_bytes * sb_.block_bytes;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(
      window_.size(),
      RoundUp(file_size_ > start ? file_size_ - start : 0, sb_.block_bytes)));
  window_len_ = 0;  // a failed read leaves nothing valid
  absl::StatusOr<size_t> read = file_->ReadAt(start, {window_.data(), want});
  if (!read.ok()) return read.status();
  const size_t got = *read;
  std::memset(window_.data() + got, 0, window_.size() - got);
  window_start_ = start;
  window_len_ = window_.size();
  bytes_read_ += got;
  return absl::OkStatus();
}

absl::StatusOr<BlockCheck> BlockReader::Check(uint64_t address,
                                              uint64_t prev_epoch) {
  BlockCheck check;
  const std::string at = absl::StrCat(path_, ": offset ", address, ": ");
  auto verdict = [&](BlockVerdict v, std::string reason) {
    check.verdict = v;
    check.reason = absl::StrCat(at, reason);
    return check;
  };
  if (address >= file_size_) return verdict(BlockVerdict::kEnd, "end of file");
  if (absl::Status s = Load(address, kBlockHeaderBytes); !s.ok()) return s;
  const std::span<const std::byte> head = Bytes(address, kBlockHeaderBytes);
  BlockHeader& h = check.header;
  if (!ParseBlockHeader(head, h)) {
    if (IsZero(head)) {
      check.unwritten = true;
      return verdict(BlockVerdict::kEnd, "unwritten space");
    }
    return verdict(BlockVerdict::kCorrupt, "no block magic");
  }
  if (h.store_id != sb_.store_id) {
    return verdict(BlockVerdict::kCorrupt,
                   absl::StrCat("block of another store (id ", h.store_id,
                                ", this file's is ", sb_.store_id, ")"));
  }
  if (h.address != address) {
    return verdict(BlockVerdict::kCorrupt,
                   absl::StrCat("block claims address ", h.address));
  }
  if (h.used <= kBlockHeaderBytes || h.used > sb_.buffer_bytes) {
    return verdict(BlockVerdict::kCorrupt,
                   absl::StrCat("block used length ", h.used,
                                " outside (", kBlockHeaderBytes, ", ",
                                sb_.buffer_bytes, "]"));
  }
  if (address + RoundUp(h.used, sb_.block_bytes) > file_size_) {
    // Every block write covers its padded length: the file lost its end.
    return verdict(BlockVerdict::kCorrupt,
                   absl::StrCat("block of ", h.used,
                                " bytes runs past the end of the file at ",
                                file_size_));
  }
  if (absl::Status s = Load(address, h.used); !s.ok()) return s;
  block_ = Bytes(address, h.used);
  if (!BlockCrcMatches(block_)) {
    return verdict(BlockVerdict::kCorrupt,
                   "block checksum mismatch (torn or damaged write)");
  }
  if (absl::Status s = ForEachRecord(
          block_, address, path_,
          [&check](const RecordView&) {
            ++check.records;
            return absl::OkStatus();
          });
      !s.ok()) {
    check.verdict = BlockVerdict::kCorrupt;
    check.reason = std::string(s.message());
    return check;
  }
  check.intact = true;
  // Epoch rules apply only to an intact block: a damaged epoch is damage.
  if (h.epoch > sb_.epoch) {
    check.newer_epoch = true;
    return verdict(BlockVerdict::kCorrupt,
                   absl::StrCat("block epoch ", h.epoch,
                                " is newer than the superblock's ", sb_.epoch));
  }
  if ((address >= sb_.epoch_start && h.epoch != sb_.epoch) ||
      h.epoch < prev_epoch) {
    return verdict(BlockVerdict::kEnd,
                   absl::StrCat("stale block of epoch ", h.epoch,
                                " (left past the tail by an earlier crash)"));
  }
  check.verdict = BlockVerdict::kValid;
  return check;
}

absl::StatusOr<uint64_t> BlockReader::NextData(uint64_t from) {
  // Skips holes (ext4 reports preallocated, never-written extents as holes),
  // so looking past the tail does not read the preallocation.
  absl::StatusOr<uint64_t> data = file_->NextData(from);
  if (!data.ok()) return data.status();
  if (*data <= from) return from;
  return std::min(file_size_, RoundDown(*data, sb_.block_bytes));
}

absl::StatusOr<std::optional<uint64_t>> BlockReader::FindValid(
    uint64_t from, uint64_t limit) {
  limit = std::min(limit, file_size_);
  for (uint64_t a = RoundUp(from, sb_.block_bytes); a < limit;
       a += sb_.block_bytes) {
    if (a < window_start_ || a + kBlockHeaderBytes > window_start_ + window_len_) {
      absl::StatusOr<uint64_t> data = NextData(a);
      if (!data.ok()) return data.status();
      a = *data;
      if (a >= limit) break;
    }
    if (absl::Status s = Load(a, kBlockHeaderBytes); !s.ok()) return s;
    BlockHeader h;
    if (!ParseBlockHeader(Bytes(a, kBlockHeaderBytes), h) || h.address != a) {
      continue;
    }
    absl::StatusOr<BlockCheck> check = Check(a, /*prev_epoch=*/0);
    if (!check.ok()) return check.status();
    if (check->verdict == BlockVerdict::kValid) return a;
  }
  return std::nullopt;
}

}  // namespace lss
