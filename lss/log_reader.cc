#include "lss/log_reader.h"

#include "absl/strings/str_cat.h"
#include "lss/block_reader.h"
#include "lss/log_structured_store.h"

namespace lss {

absl::StatusOr<bool> LogReader::Next() {
  if (store_->closed_) return store_->Usable();
  while (next_record_ >= records_.size()) {
    if (next_block_ >= blocks_.size()) return false;
    if (absl::Status s = LoadBlock(blocks_[next_block_++]); !s.ok()) return s;
  }
  record_ = records_[next_record_++];
  return true;
}

absl::Status LogReader::LoadBlock(uint64_t base) {
  records_.clear();
  salvaged_.clear();
  next_record_ = 0;
  std::optional<BlockIndex::Pinned> block = store_->index_->Find(base);
  if (!block || block->base() != base) {
    return absl::InternalError(absl::StrCat(
        store_->path_, ": offset ", base, ": LogReader lost a block"));
  }
  if (!block->salvaged().empty()) {
    // A salvaged range holds only the records that verified, one by one.
    for (uint64_t address : block->salvaged()) {
      if (address < from_) continue;
      absl::StatusOr<LogRecord> r = store_->ReadIn(*block, address);
      if (!r.ok()) return r.status();
      salvaged_.push_back(std::move(r->payload));
      records_.push_back(
          RecordView{.address = address, .tag = r->tag, .payload = {}});
    }
    for (size_t i = 0; i < records_.size(); ++i) {
      records_[i].payload = salvaged_[i];
    }
    return absl::OkStatus();
  }
  if (absl::Status s = store_->ReadBlock(*block, block_); !s.ok()) return s;
  return ForEachRecord(block_, base, store_->path_,
                       [&](const RecordView& r) {
                         if (r.address >= from_) records_.push_back(r);
                         return absl::OkStatus();
                       });
}

}  // namespace lss
