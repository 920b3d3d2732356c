#include "lss/recovery.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "lss/block_reader.h"

namespace lss {
namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

class Scan {
 public:
  Scan(File& file, const Superblock& sb, uint64_t file_size,
       const std::string& damaged_slot, BlockReader reader,
       const RecordVisitor& visit, uint64_t scan_from)
      : file_(file),
        sb_(sb),
        size_(file_size),
        damaged_slot_(damaged_slot),
        reader_(std::move(reader)),
        visit_(visit),
        scan_from_(std::max(scan_from, sb.head)),
        watermark_(sb.epoch_start),
        watermark_source_("the superblock's epoch start") {
    // A range is released only once it is durable, and all below it too.
    if (!sb.holes.empty() && sb.holes.back().end > watermark_) {
      watermark_ = sb.holes.back().end;
      watermark_source_ = "the superblock's hole list";
    }
  }

  absl::StatusOr<RecoveredLog> Run(RecoveryMode mode) {
    absl::Status s = mode == RecoveryMode::kSkipCorrupted ? Salvage()
                                                          : Prefix(mode);
    if (!s.ok()) return s;
    out_.report.head = sb_.head;
    out_.report.scan_from = scan_from_;
    out_.report.acknowledged = watermark_;
    out_.report.bytes_scanned = reader_.bytes_read();
    out_.report.superblock = damaged_slot_;
    return std::move(out_);
  }

 private:
  // The longest run of valid blocks, then everything past it.
  absl::Status Prefix(RecoveryMode mode) {
    RecoveryReport& r = out_.report;
    uint64_t a = scan_from_;  // the head, or a checkpoint's resume point
    uint64_t prev_epoch = 0;
    BlockCheck stop;
    for (;;) {
      a = PastHole(a);
      absl::StatusOr<BlockCheck> check = reader_.Check(a, prev_epoch);
      if (!check.ok()) return check.status();
      if (check->newer_epoch) return Newer(a, *check);
      if (check->verdict != BlockVerdict::kValid) {
        stop = *std::move(check);
        break;
      }
      if (absl::Status s = Keep(a, *check); !s.ok()) return s;
      prev_epoch = check->header.epoch;
      a += RoundUp(check->header.used, sb_.block_bytes);
    }
    const uint64_t tail = a;
    if (absl::Status s = PastTail(tail); !s.ok()) return s;
    r.tail = tail;
    r.end = stop.reason;
    const bool corrupt = stop.verdict == BlockVerdict::kCorrupt;
    if (tail < watermark_) {
      if (mode != RecoveryMode::kPointInTime) {
        return absl::DataLossError(absl::StrCat(
            stop.reason, "; but every record below offset ", watermark_,
            " was acknowledged durable (", watermark_source_,
            " says so): the log is damaged, not torn. Open with "
            "RecoveryMode::kSkipCorrupted to salvage it, or kPointInTime to "
            "cut it here"));
      }
      r.lost_acknowledged = true;
    }
    if (mode == RecoveryMode::kAbsoluteConsistency) {
      if (corrupt) return absl::DataLossError(stop.reason);
      if (dropped_) {
        return absl::DataLossError(absl::StrCat(
            stop.reason, "; but an intact block of this epoch follows at "
                         "offset ", dropped_at_));
      }
      if (!out_.clear.empty() &&
          out_.clear.front().first < tail + sb_.buffer_bytes) {
        return absl::DataLossError(absl::StrCat(
            stop.reason, "; but bytes of a torn block follow at offset ",
            out_.clear.front().first));
      }
    }
    r.cut = corrupt || dropped_ || r.lost_acknowledged;
    return absl::OkStatus();
  }

  // Past the tail: every intact block (their watermarks count; none is
  // ever cleared) and every nonzero chunk outside them (to clear).
  absl::Status PastTail(uint64_t tail) {
    const uint64_t block = sb_.block_bytes;
    for (uint64_t x = tail; x < size_;) {
      absl::StatusOr<uint64_t> data = reader_.NextData(x);
      if (!data.ok()) return data.status();
      x = *data;
      if (x >= size_) break;
      absl::StatusOr<BlockCheck> check = reader_.Check(x, /*prev_epoch=*/0);
      if (!check.ok()) return check.status();
      if (check->intact) {
        if (check->newer_epoch) return Newer(x, *check);
        if (check->header.epoch == sb_.epoch) {
          Claim(x, check->header);
          if (!dropped_) dropped_at_ = x;
          dropped_ = true;
        }
        const uint64_t end = x + RoundUp(check->header.used, block);
        out_.intact_past_tail.emplace_back(x, end);
        x = end;
        continue;
      }
      const uint64_t len = std::min<uint64_t>(block, size_ - x);
      if (absl::Status s = reader_.Load(x, len); !s.ok()) return s;
      if (!AllZero(reader_.Bytes(x, len))) {
        if (!out_.clear.empty() && out_.clear.back().second == x) {
          out_.clear.back().second = x + block;
        } else {
          out_.clear.emplace_back(x, x + block);
        }
      }
      x += block;
    }
    return absl::OkStatus();
  }

  // kSkipCorrupted: every valid block anywhere, and the verifying records
  // of every corrupt range.
  absl::Status Salvage() {
    RecoveryReport& r = out_.report;
    uint64_t prev_epoch = 0;
    uint64_t end = sb_.head;
    for (uint64_t a = sb_.head; a < size_;) {
      absl::StatusOr<uint64_t> data = reader_.NextData(a);
      if (!data.ok()) return data.status();
      a = *data;
      if (const uint64_t past = PastHole(a); past != a) {
        a = past;
        continue;
      }
      if (a >= size_) break;
      absl::StatusOr<BlockCheck> check = reader_.Check(a, prev_epoch);
      if (!check.ok()) return check.status();
      if (check->verdict == BlockVerdict::kValid || check->newer_epoch) {
        if (absl::Status s = Keep(a, *check); !s.ok()) return s;
        // A block newer than the superblock says nothing about the order
        // of the epochs around it.
        if (!check->newer_epoch) prev_epoch = check->header.epoch;
        a += RoundUp(check->header.used, sb_.block_bytes);
        end = a;
        continue;
      }
      if (check->intact) {  // stale
        if (r.end.empty()) r.end = check->reason;
        a += RoundUp(check->header.used, sb_.block_bytes);
        continue;
      }
      if (check->unwritten) {
        // Zeros where a header would be: nothing here, unless the rest of
        // the chunk holds bytes (a block whose first sector was lost).
        const uint64_t len = std::min<uint64_t>(sb_.block_bytes, size_ - a);
        if (absl::Status s = reader_.Load(a, len); !s.ok()) return s;
        if (AllZero(reader_.Bytes(a, len))) {
          if (r.end.empty()) r.end = check->reason;
          a += sb_.block_bytes;
          continue;
        }
      }
      absl::StatusOr<std::optional<uint64_t>> next =
          reader_.FindValid(a + sb_.block_bytes, size_);
      if (!next.ok()) return next.status();
      const uint64_t to = std::min(next->value_or(size_), NextHole(a));
      absl::StatusOr<std::vector<uint64_t>> records = SalvageRecords(a, to);
      if (!records.ok()) return records.status();
      r.skipped.push_back(absl::StrCat(check->reason, "; skipped ", to - a,
                                       " bytes to offset ", to, ", keeping ",
                                       records->size(),
                                       " records that verify"));
      if (!records->empty()) {
        r.records += records->size();
        r.salvaged_records += records->size();
        out_.blocks.push_back(
            RecoveredBlock{.address = a, .used = to - a,
                           .salvaged = *std::move(records)});
      }
      a = to;
      prev_epoch = 0;
    }
    r.tail = end;
    if (r.end.empty()) r.end = absl::StrCat(file_.path(), ": end of file");
    return absl::OkStatus();
  }

  // `a`, or the end of the released range (Superblock::holes) it lies in.
  uint64_t PastHole(uint64_t a) const {
    for (const Hole& h : sb_.holes) {
      if (a >= h.begin && a < h.end) return h.end;
    }
    return a;
  }
  // Where the first released range at or above `a` begins (or the end of
  // the file).
  uint64_t NextHole(uint64_t a) const {
    for (const Hole& h : sb_.holes) {
      if (h.begin >= a) return std::min(h.begin, size_);
    }
    return size_;
  }

  // Records in [from, to) whose own checksums verify. A record's checksum
  // covers its address, so a verifying one is the record written there.
  absl::StatusOr<std::vector<uint64_t>> SalvageRecords(uint64_t from,
                                                       uint64_t to) {
    std::vector<uint64_t> found;
    const uint64_t largest = sb_.buffer_bytes - kBlockHeaderBytes;
    std::string reason;
    for (uint64_t c = from; c + kRecordHeaderBytes <= to;) {
      if (absl::Status s = reader_.Load(c, kRecordHeaderBytes); !s.ok()) {
        return s;
      }
      const std::span<const std::byte> head =
          reader_.Bytes(c, kRecordHeaderBytes);
      uint32_t length = 0;
      std::memcpy(&length, head.data() + 4, sizeof(length));
      const uint64_t footprint = RecordFootprint(length);
      if (AllZero(head.first(kRecordAlignment)) || length == 0 ||
          footprint > largest || c + footprint > to) {
        c += kRecordAlignment;
        continue;
      }
      if (absl::Status s = reader_.Load(c, footprint); !s.ok()) return s;
      RecordView view;
      if (ParseRecord(c, reader_.Bytes(c, footprint), view, reason) ==
          RecordParse::kRecord) {
        if (visit_) {
          if (absl::Status s = visit_(view); !s.ok()) return s;
        }
        found.push_back(c);
        c += footprint;
      } else {
        c += kRecordAlignment;
      }
    }
    return found;
  }

  absl::Status Keep(uint64_t at, const BlockCheck& check) {
    out_.blocks.push_back(
        RecoveredBlock{.address = at, .used = check.header.used, .salvaged = {}});
    ++out_.report.blocks;
    out_.report.records += check.records;
    Claim(at, check.header);
    if (!visit_) return absl::OkStatus();
    return ForEachRecord(reader_.block(), at, file_.path(), visit_);
  }

  // A block of this epoch proves everything below its `stable` durable.
  void Claim(uint64_t at, const BlockHeader& h) {
    if (h.epoch == sb_.epoch && h.stable > watermark_) {
      watermark_ = h.stable;
      watermark_source_ = absl::StrCat("the block at offset ", at);
    }
  }

  absl::Status Newer(uint64_t at, const BlockCheck& check) {
    return absl::DataLossError(absl::StrCat(
        check.reason, damaged_slot_.empty()
                          ? ""
                          : absl::StrCat(" (", damaged_slot_,
                                         "; it was the current one)"),
        ": an intact block at offset ", at,
        " was written after the superblock in use. Open with "
        "RecoveryMode::kSkipCorrupted to salvage"));
  }

  File& file_;
  const Superblock& sb_;
  const uint64_t size_;
  const std::string& damaged_slot_;
  BlockReader reader_;
  const RecordVisitor& visit_;
  const uint64_t scan_from_;
  uint64_t watermark_;
  std::string watermark_source_;
  bool dropped_ = false;     // intact blocks of this epoch past the tail
  uint64_t dropped_at_ = 0;  // the first of them
  RecoveredLog out_;
};

}  // namespace

absl::StatusOr<RecoveredLog> RecoverLog(File& file, const Superblock& sb,
                                        uint64_t file_size, RecoveryMode mode,
                                        const std::string& damaged_slot,
                                        const RecordVisitor& visit,
                                        uint64_t scan_from) {
  absl::StatusOr<BlockReader> reader = BlockReader::Create(&file, sb, file_size);
  if (!reader.ok()) return reader.status();
  Scan scan(file, sb, file_size, damaged_slot, *std::move(reader), visit,
            mode == RecoveryMode::kSkipCorrupted ? 0 : scan_from);
  return scan.Run(mode);
}

}  // namespace lss
