#include "lss/block_index.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "ring/check.h"

namespace lss {

BlockIndex::Pinned::~Pinned() {
  if (index_ != nullptr && resident_ != nullptr) index_->Unpin(base_);
}

void BlockIndex::Add(uint64_t address, uint64_t used,
                     const std::byte* resident) {
  std::lock_guard<std::mutex> lock(mu_);
  Block& b = blocks_[address];
  b.used = used;
  b.resident = resident;
}

void BlockIndex::AddSalvaged(uint64_t address, uint64_t length,
                             std::vector<uint64_t> records) {
  std::lock_guard<std::mutex> lock(mu_);
  Block& b = blocks_[address];
  b.used = length;
  b.salvaged = std::move(records);
}

void BlockIndex::Release(uint64_t address) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = blocks_.find(address);
  LSS_CHECK(it != blocks_.end(), "BlockIndex: released an unknown block");
  Block& block = it->second;
  unpinned_.wait(lock, [&] { return block.pins == 0; });
  block.resident = nullptr;
  if (address < head_) blocks_.erase(it);
}

void BlockIndex::DropBelow(uint64_t head) {
  std::lock_guard<std::mutex> lock(mu_);
  head_ = std::max(head_, head);
  for (auto it = blocks_.begin(); it != blocks_.end() && it->first < head_;) {
    // A resident block goes when its buffer does (Release).
    it = it->second.resident == nullptr && it->second.pins == 0
             ? blocks_.erase(it)
             : std::next(it);
  }
}

uint64_t BlockIndex::BlockStartAtOrBelow(uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.upper_bound(address);
  if (it == blocks_.begin()) return address;
  return std::prev(it)->first;
}

std::optional<BlockIndex::Pinned> BlockIndex::Find(uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (address < head_) return std::nullopt;
  auto it = blocks_.upper_bound(address);
  if (it == blocks_.begin()) return std::nullopt;
  --it;
  const uint64_t padded =
      (it->second.used + block_bytes_ - 1) / block_bytes_ * block_bytes_;
  if (address >= it->first + padded) return std::nullopt;
  if (it->second.resident != nullptr) ++it->second.pins;
  return Pinned(this, it->first, &it->second);
}

void BlockIndex::Unpin(uint64_t base) {
  std::lock_guard<std::mutex> lock(mu_);
  Block& block = blocks_.at(base);
  LSS_CHECK(block.pins > 0, "BlockIndex: unpinned a block nobody pinned");
  if (--block.pins == 0) unpinned_.notify_all();
}

std::vector<BlockIndex::Extent> BlockIndex::Blocks(uint64_t from,
                                                   uint64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Extent> out;
  from = std::max(from, head_);
  auto it = blocks_.upper_bound(from);
  if (it != blocks_.begin()) --it;
  for (; it != blocks_.end() && it->first < limit; ++it) {
    if (it->first + it->second.used > from) {
      out.push_back(Extent{.base = it->first,
                           .used = it->second.used,
                           .salvaged = !it->second.salvaged.empty()});
    }
  }
  return out;
}

}  // namespace lss
