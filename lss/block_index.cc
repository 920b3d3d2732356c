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
  if (Dropped(address)) blocks_.erase(it);
}

void BlockIndex::DropBelow(uint64_t head) {
  std::lock_guard<std::mutex> lock(mu_);
  head_ = std::max(head_, head);
  while (!released_.empty() && released_.begin()->second <= head_) {
    released_.erase(released_.begin());
  }
  for (auto it = blocks_.begin(); it != blocks_.end() && it->first < head_;) {
    // A resident block goes when its buffer does (Release).
    it = it->second.resident == nullptr && it->second.pins == 0
             ? blocks_.erase(it)
             : std::next(it);
  }
}

void BlockIndex::DropRange(uint64_t begin, uint64_t end) {
  std::lock_guard<std::mutex> lock(mu_);
  if (end <= std::max(begin, head_)) return;
  // Kept disjoint, so the range below an address is the only one that can
  // hold it.
  auto at = released_.upper_bound(begin);
  if (at != released_.begin() && std::prev(at)->second >= begin) --at;
  while (at != released_.end() && at->first <= end) {
    begin = std::min(begin, at->first);
    end = std::max(end, at->second);
    at = released_.erase(at);
  }
  released_[begin] = end;
  for (auto it = blocks_.lower_bound(begin);
       it != blocks_.end() && it->first < end;) {
    it = it->second.resident == nullptr && it->second.pins == 0
             ? blocks_.erase(it)
             : std::next(it);
  }
}

bool BlockIndex::Dropped(uint64_t base) const {
  if (base < head_) return true;
  auto it = released_.upper_bound(base);
  return it != released_.begin() && base < std::prev(it)->second;
}

std::optional<std::pair<uint64_t, uint64_t>> BlockIndex::ReleasedRange(
    uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = released_.upper_bound(address);
  if (it == released_.begin() || address >= std::prev(it)->second) {
    return std::nullopt;
  }
  return *std::prev(it);
}

uint64_t BlockIndex::BlockStartAtOrAbove(uint64_t address, uint64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = blocks_.lower_bound(address);
       it != blocks_.end() && it->first < limit; ++it) {
    if (!Dropped(it->first)) return it->first;
  }
  return limit;
}

uint64_t BlockIndex::BlockStartAtOrBelow(uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.upper_bound(address);
  while (it != blocks_.begin()) {
    --it;
    if (it->first < head_ || !Dropped(it->first)) return it->first;
  }
  return address;
}

std::optional<BlockIndex::Pinned> BlockIndex::Find(uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (address < head_) return std::nullopt;
  auto it = blocks_.upper_bound(address);
  if (it == blocks_.begin()) return std::nullopt;
  --it;
  if (Dropped(it->first)) return std::nullopt;
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
    if (it->first + it->second.used > from && !Dropped(it->first)) {
      out.push_back(Extent{.base = it->first,
                           .used = it->second.used,
                           .salvaged = !it->second.salvaged.empty()});
    }
  }
  return out;
}

}  // namespace lss
