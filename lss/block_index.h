// BlockIndex: where each block of the log lies, and which blocks are still
// resident in a flush buffer, for Read and LogReader.
//
// A reader pins a resident block while it copies from the buffer; the
// buffer goes back to the ring (Release) only once no reader holds it.
//
// Thread safety: all methods are safe for concurrent use.

#ifndef LSS_LSS_BLOCK_INDEX_H_
#define LSS_LSS_BLOCK_INDEX_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace lss {

class BlockIndex {
 public:
  struct Block {
    uint64_t used = 0;  // bytes from the block's start, header included
    // The flush buffer holding the block while it is resident.
    const std::byte* resident = nullptr;
    // A corrupt range kept by kSkipCorrupted: the addresses of the records
    // in it that verify (no other address in it holds a record).
    std::vector<uint64_t> salvaged;
    int pins = 0;
  };

  // A block found by Find; unpins it when destroyed.
  class Pinned {
   public:
    Pinned(Pinned&& other) noexcept
        : index_(std::exchange(other.index_, nullptr)),
          base_(other.base_),
          used_(other.used_),
          block_(other.block_),
          resident_(other.resident_),
          is_salvaged_(other.is_salvaged_) {}
    Pinned& operator=(Pinned&&) = delete;
    ~Pinned();

    uint64_t base() const { return base_; }
    uint64_t used() const { return used_; }
    // Valid while this Pinned lives.
    const std::byte* resident() const { return resident_; }
    // Whether the block is a salvaged range, known from Find: a block on
    // disk is not pinned, and a writable store's Truncate may erase it.
    bool is_salvaged() const { return is_salvaged_; }
    // REQUIRES: is_salvaged(). Only read-only stores have salvaged blocks,
    // and they never truncate: the block outlives this Pinned.
    const std::vector<uint64_t>& salvaged() const { return block_->salvaged; }

   private:
    friend class BlockIndex;
    Pinned(BlockIndex* index, uint64_t base, const Block* block)
        : index_(index),
          base_(base),
          used_(block->used),
          block_(block),
          resident_(block->resident),
          is_salvaged_(!block->salvaged.empty()) {}

    BlockIndex* index_;
    uint64_t base_;
    uint64_t used_;
    // Map nodes never move; one that is not pinned (not resident) may be
    // erased by DropBelow, so only salvaged() reaches through this.
    const Block* block_;
    const std::byte* resident_ = nullptr;
    bool is_salvaged_ = false;
  };

  explicit BlockIndex(uint64_t block_bytes) : block_bytes_(block_bytes) {}

  // A recovered block, or one just dispatched from `resident`.
  void Add(uint64_t address, uint64_t used,
           const std::byte* resident = nullptr);
  void AddSalvaged(uint64_t address, uint64_t length,
                   std::vector<uint64_t> records);
  // The buffer of the block at `address` is leaving: waits until no reader
  // holds it, then forgets it.
  void Release(uint64_t address);

  // The block whose padded extent holds `address`, pinned; nothing if no
  // block known yet holds it, or it lies below the head.
  std::optional<Pinned> Find(uint64_t address);

  // The log was truncated at `head` (a block address): blocks below it are
  // forgotten (a resident one once its buffer leaves).
  void DropBelow(uint64_t head);
  // The blocks that start in [begin, end) were released: forgotten in the
  // same way, and Find and Blocks pass over them from now on.
  void DropRange(uint64_t begin, uint64_t end);
  // The start of the block that holds `address`, or of the last block
  // below it, passing over released blocks; `address` itself if no block
  // starts at or below it.
  uint64_t BlockStartAtOrBelow(uint64_t address);
  // The released range (DropRange) that holds `address`, if any.
  std::optional<std::pair<uint64_t, uint64_t>> ReleasedRange(
      uint64_t address);
  // The first block start at or above `address`, or `limit` if there is
  // none below it.
  uint64_t BlockStartAtOrAbove(uint64_t address, uint64_t limit);

  // A block as LogReader plans its reads: where it lies, and whether it is
  // a salvaged range (whose records must be read one by one).
  struct Extent {
    uint64_t base = 0;
    uint64_t used = 0;
    bool salvaged = false;
  };
  // The blocks that end after `from` and start below `limit`, in order.
  std::vector<Extent> Blocks(uint64_t from, uint64_t limit);

 private:
  void Unpin(uint64_t base);
  // Whether the block at `base` was truncated or released (mu_ held).
  bool Dropped(uint64_t base) const;

  const uint64_t block_bytes_;
  std::mutex mu_;
  uint64_t head_ = 0;
  std::map<uint64_t, uint64_t> released_;  // begin -> end, above head_
  std::condition_variable unpinned_;
  std::map<uint64_t, Block> blocks_;
};

}  // namespace lss

#endif  // LSS_LSS_BLOCK_INDEX_H_
