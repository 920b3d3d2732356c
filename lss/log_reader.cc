#include "lss/log_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lss/block_reader.h"
#include "lss/log_structured_store.h"

namespace lss {
namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

// The kernel may still write into a buffer whose read was abandoned (the
// I/O ring broke): it must never be freed or reused.
void Abandon(AlignedBuffer buffer) {
  static_cast<void>(new AlignedBuffer(std::move(buffer)));
}

}  // namespace

LogReader::LogReader(LogStructuredStore* store, std::vector<Extent> extents,
                     uint64_t from, const LogReaderOptions& options)
    : store_(store),
      extents_(std::move(extents)),
      from_(from),
      read_bytes_(RoundUp(options.read_bytes, store->sb_.block_bytes)),
      reads_in_flight_(options.reads_in_flight) {}

LogReader::~LogReader() {
  // A closed store's appender reaped every read before it went.
  if (store_->closed_) return;
  for (Segment& segment : segments_) {
    bool abandoned = false;
    for (const Segment::Read& read : segment.reads) {
      bool lost = false;
      store_->reads()->FinishRead(read.ticket, lost).IgnoreError();
      abandoned = abandoned || lost;
    }
    if (abandoned) Abandon(std::move(segment.buffer));
  }
}

absl::StatusOr<bool> LogReader::Next() {
  if (store_->closed_) return store_->Usable();
  if (!failure_.ok()) return failure_;
  while (next_record_ >= records_.size()) {
    if (front_loaded_) {
      AlignedBuffer& done = segments_.front().buffer;
      if (done.size() > 0 && free_.size() <= reads_in_flight_) {
        free_.push_back(std::move(done));
      }
      segments_.pop_front();
      front_loaded_ = false;
    }
    absl::Status s = Fill();
    if (s.ok() && segments_.empty()) return false;
    if (s.ok()) s = LoadFront();
    if (!s.ok()) {
      failure_ = s;
      return s;
    }
  }
  block_ = blocks_[next_record_];
  record_ = records_[next_record_++];
  return true;
}

absl::Status LogReader::Fill() {
  const uint64_t block = store_->sb_.block_bytes;
  while (in_flight_ < reads_in_flight_) {
    if (segments_.empty() || segments_.back().salvaged ||
        segments_.back().submitted ==
            segments_.back().end - segments_.back().start) {
      if (next_extent_ == extents_.size()) return absl::OkStatus();
      Segment s;
      s.first = next_extent_;
      s.last = s.first + 1;
      const Extent& first = extents_[s.first];
      s.start = first.base;
      s.salvaged = first.salvaged;
      if (s.salvaged) {
        s.end = first.base + first.used;
      } else {
        // Adjacent blocks share reads, up to read_bytes_ together.
        s.end = RoundUp(first.base + first.used, block);
        while (s.last < extents_.size() && !extents_[s.last].salvaged &&
               extents_[s.last].base == s.end &&
               RoundUp(extents_[s.last].base + extents_[s.last].used, block) -
                       s.start <= read_bytes_) {
          s.end = RoundUp(extents_[s.last].base + extents_[s.last].used, block);
          ++s.last;
        }
        absl::StatusOr<AlignedBuffer> buffer = TakeBuffer(s.end - s.start);
        if (!buffer.ok()) return buffer.status();
        s.buffer = *std::move(buffer);
      }
      next_extent_ = s.last;
      segments_.push_back(std::move(s));
      continue;
    }
    Segment& s = segments_.back();
    const uint64_t len =
        std::min<uint64_t>(read_bytes_, s.end - s.start - s.submitted);
    absl::StatusOr<uint64_t> ticket = store_->reads()->StartRead(
        s.start + s.submitted, {s.buffer.data() + s.submitted, len});
    if (!ticket.ok()) return ticket.status();
    s.reads.push_back(
        {.ticket = *ticket, .offset = s.start + s.submitted, .len = len});
    s.submitted += len;
    ++in_flight_;
  }
  return absl::OkStatus();
}

absl::Status LogReader::LoadFront() {
  Segment& s = segments_.front();
  records_.clear();
  blocks_.clear();
  salvaged_.clear();
  next_record_ = 0;
  front_loaded_ = true;
  if (s.salvaged) return LoadSalvaged(extents_[s.first]);
  // Each finished read frees a slot for the next one.
  while (!s.reads.empty() || s.submitted < s.end - s.start) {
    if (absl::Status st = s.reads.empty() ? Fill() : Finish(s); !st.ok()) {
      return st;
    }
    if (absl::Status st = Fill(); !st.ok()) return st;
  }
  for (size_t i = s.first; i < s.last; ++i) {
    const Extent& e = extents_[i];
    if (absl::Status st = ForEachRecord(
            {s.buffer.data() + (e.base - s.start), e.used}, e.base,
            store_->path_,
            [&](const RecordView& r) {
              if (r.address >= from_) {
                records_.push_back(r);
                blocks_.push_back(e.base);
              }
              return absl::OkStatus();
            });
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status LogReader::Finish(Segment& s) {
  const Segment::Read read = s.reads.front();
  s.reads.pop_front();
  --in_flight_;
  bool abandoned = false;
  size_t got = 0;
  absl::Status st = store_->reads()->FinishRead(read.ticket, abandoned, &got);
  if (abandoned) {
    // Its other reads too may still land in the buffer.
    for (const Segment::Read& other : s.reads) {
      bool lost = false;
      store_->reads()->FinishRead(other.ticket, lost).IgnoreError();
    }
    s.reads.clear();
    Abandon(std::move(s.buffer));
    return st;
  }
  if (st.code() != absl::StatusCode::kOutOfRange) return st;
  // The file may end in the padding after the last block's records, never
  // before them.
  const Extent& last = extents_[s.last - 1];
  const uint64_t needed =
      std::min(read.offset + read.len, last.base + last.used);
  if (read.offset + got >= needed) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(store_->path_, ": offset ",
                                          read.offset + got,
                                          ": the file ends inside a block"));
}

absl::Status LogReader::LoadSalvaged(const Extent& extent) {
  std::optional<BlockIndex::Pinned> block = store_->index_->Find(extent.base);
  if (!block || block->base() != extent.base) {
    return absl::InternalError(absl::StrCat(
        store_->path_, ": offset ", extent.base, ": LogReader lost a block"));
  }
  // A salvaged range holds only the records that verified, read by address.
  std::vector<uint64_t> addresses;
  for (uint64_t address : block->salvaged()) {
    if (address >= from_) addresses.push_back(address);
  }
  for (absl::StatusOr<LogRecord>& r : store_->ReadMany(addresses)) {
    if (!r.ok()) return r.status();
    salvaged_.push_back(std::move(r->payload));
    records_.push_back(
        RecordView{.address = r->address, .tag = r->tag, .payload = {}});
    blocks_.push_back(extent.base);
  }
  for (size_t i = 0; i < records_.size(); ++i) {
    records_[i].payload = salvaged_[i];
  }
  return absl::OkStatus();
}

absl::StatusOr<AlignedBuffer> LogReader::TakeBuffer(size_t bytes) {
  auto fits = std::find_if(free_.begin(), free_.end(),
                           [&](const AlignedBuffer& b) {
                             return b.size() >= bytes;
                           });
  if (fits != free_.end()) {
    AlignedBuffer b = std::move(*fits);
    free_.erase(fits);
    return b;
  }
  return AlignedBuffer::Allocate(std::max(bytes, read_bytes_),
                                 store_->sb_.block_bytes);
}

}  // namespace lss
