// MappingTable: page id (PID) -> one 64-bit tagged word saying where the page
// lives. Readers do one atomic load; writers install a new location with one
// compare-and-swap, so no reader or writer ever waits for another.
//
// Entry word layout (PageState), chosen by the two low "kind" bits:
//
//   in memory:  63                                        3   2   1 0
//              +-------------------------------------------+---+-----+
//              | pointer bits 63..3 (pointer is 8-aligned)  | 0 | 01  |
//              +-------------------------------------------+---+-----+
//   on log:     63                                 8 7      2   1 0
//              +------------------------------------+--------+-----+
//              | LSS address (56 b)                 | 0 (6)  | 10  |
//              +------------------------------------+--------+-----+
//   free:       63                                 8 7   3  2      1 0
//              +------------------------------------+-----+------+-----+
//              | free-list link (56 b, PID + 1)     | 0   |LISTED| 00  |
//              +------------------------------------+-----+------+-----+
//
//   free       no location. A freshly allocated PID reads as PageState::Free()
//              (word 0) until the caller installs a location. A PID sitting
//              on the free list has LISTED set and carries the next free PID
//              (+1; 0 = end of list), so a stale CAS expecting Free() on a
//              freed PID cannot succeed.
//   in memory  a pointer; its three low bits are zero because it is 8-aligned.
//   on log     an LSS address below 2^56 (64 PiB of log).
// Kind 11 is never produced. Building a PageState from a null or misaligned
// pointer, or from an address >= 2^56, is an LSS_CHECK failure.
//
// Storage: a directory of fixed-size chunks (kChunkEntries entries each),
// sized for max_pages when the table is created. A chunk is allocated when the
// first PID in it is handed out, published with a CAS (release), and never
// moved or freed before the table, so reads proceed during growth.
//
// Freed PIDs are reused before the table grows, through a Treiber stack whose
// links live in the freed entries' own words. Its head packs a version counter
// with the top PID so a pop that read a stale link cannot succeed (ABA):
//
//   head word:  63                    32 31                           0
//              +------------------------+------------------------------+
//              | version (32 b)         | top PID + 1 (32 b, 0 = empty)|
//              +------------------------+------------------------------+
//
// The version changes on every push and pop and wraps; a stale pop is
// fooled only if a multiple of 2^32 operations succeed between its load and
// its CAS. That takes tens of seconds of Allocate/Free; 2^16 would take
// under a millisecond, short enough for one preempted popper to be fooled.
// The PID field gets the other 32 bits, which is why max_pages < 2^32.

#ifndef LSS_MAPPING_MAPPING_TABLE_H_
#define LSS_MAPPING_MAPPING_TABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ring/check.h"

namespace lss {

// A decoded copy of a mapping-table entry. Pure value; does no atomics.
class PageState {
 public:
  enum class Kind : uint64_t { kFree = 0, kInMemory = 1, kOnLog = 2 };

  static constexpr uint64_t kKindMask = 0b11;
  static constexpr uint64_t kListedBit = uint64_t{1} << 2;
  static constexpr int kPayloadShift = 8;
  static constexpr int kPayloadBits = 56;
  static constexpr uint64_t kMaxAddress = (uint64_t{1} << kPayloadBits) - 1;
  static constexpr uint64_t kPointerAlignment = 8;

  static_assert(kPayloadShift + kPayloadBits == 64, "payload fills the top");
  static_assert((kKindMask | kListedBit) < (uint64_t{1} << kPayloadShift),
                "tag bits must sit below the payload");
  static_assert(kPointerAlignment > (kKindMask | kListedBit),
                "an aligned pointer must leave every tag bit zero");
  static_assert(sizeof(void*) == sizeof(uint64_t), "pointers must be 64-bit");

  constexpr PageState() = default;  // Free()
  constexpr explicit PageState(uint64_t word) : word_(word) {}

  static constexpr PageState Free() { return PageState(0); }
  static PageState InMemory(const void* p) {
    const uint64_t bits = reinterpret_cast<uintptr_t>(p);
    LSS_CHECK(p != nullptr, "in-memory page state needs a non-null pointer");
    LSS_CHECK(bits % kPointerAlignment == 0,
              "in-memory page pointer must be 8-byte aligned");
    return PageState(bits | static_cast<uint64_t>(Kind::kInMemory));
  }
  static PageState OnLog(uint64_t address) {
    LSS_CHECK(address <= kMaxAddress, "LSS address does not fit in 56 bits");
    return PageState((address << kPayloadShift) |
                     static_cast<uint64_t>(Kind::kOnLog));
  }

  constexpr uint64_t word() const { return word_; }
  constexpr Kind kind() const { return static_cast<Kind>(word_ & kKindMask); }
  constexpr bool is_free() const { return kind() == Kind::kFree; }
  constexpr bool in_memory() const { return kind() == Kind::kInMemory; }
  constexpr bool on_log() const { return kind() == Kind::kOnLog; }

  // REQUIRES: in_memory().
  void* pointer() const {
    LSS_CHECK(in_memory(), "pointer() of a page that is not in memory");
    return reinterpret_cast<void*>(word_ & ~kKindMask);
  }
  // REQUIRES: on_log().
  uint64_t address() const {
    LSS_CHECK(on_log(), "address() of a page that is not on the log");
    return word_ >> kPayloadShift;
  }

  friend constexpr bool operator==(PageState, PageState) = default;

 private:
  friend class MappingTable;

  // A free word on the free list whose successor is `next_plus_one`.
  static constexpr PageState Listed(uint64_t next_plus_one) {
    return PageState((next_plus_one << kPayloadShift) | kListedBit);
  }
  constexpr bool listed() const { return is_free() && (word_ & kListedBit); }
  constexpr uint64_t link() const { return word_ >> kPayloadShift; }

  uint64_t word_ = 0;
};

struct MappingTableOptions {
  // PIDs are 0 .. max_pages - 1, and max_pages is at most 2^32 - 1
  // (MappingTable::kMaxPagesLimit). Sizes the chunk directory up front
  // (8 bytes per kChunkEntries PIDs), so keep it realistic.
  uint64_t max_pages = (uint64_t{1} << 32) - 1;
};

// Thread safety: every public method may be called from any number of
// threads at once, and none blocks. Read and CompareAndSwap are linearizable
// per PID (one acquire load, one acq_rel CAS). Allocate never hands a PID to
// two callers without a Free in between. Freeing a PID while other threads
// still use it is the caller's business (e.g. an EpochManager).
class MappingTable {
 public:
  static constexpr int kChunkBits = 16;
  static constexpr uint64_t kChunkEntries = uint64_t{1} << kChunkBits;
  static constexpr int kHeadIndexBits = 32;
  static constexpr uint64_t kHeadIndexMask =
      (uint64_t{1} << kHeadIndexBits) - 1;
  // PID + 1 must fit both the head's index field and a free word's link.
  static constexpr uint64_t kMaxPagesLimit = kHeadIndexMask;
  static_assert(kHeadIndexBits <= PageState::kPayloadBits,
                "a free-list link must fit a free word's payload");
  static_assert(64 - kHeadIndexBits >= 32,
                "the ABA version needs 32+ bits (see the head word above)");

  // The free-list head's encoding, public so that its wrap-around can be
  // tested. The top PID + 1 of a head word:
  static constexpr uint64_t HeadIndex(uint64_t head) {
    return head & kHeadIndexMask;
  }
  // The head after `head` with top PID + 1 `index`: the version is bumped,
  // and wraps to 0 without touching the index.
  static constexpr uint64_t NextHead(uint64_t head, uint64_t index) {
    const uint64_t version = head >> kHeadIndexBits;
    return ((version + 1) << kHeadIndexBits) | index;
  }

  // InvalidArgument if max_pages is 0 or above kMaxPagesLimit.
  static absl::StatusOr<std::unique_ptr<MappingTable>> Create(
      const MappingTableOptions& options = {});

  MappingTable(const MappingTable&) = delete;
  MappingTable& operator=(const MappingTable&) = delete;
  ~MappingTable();

  // A PID whose entry reads PageState::Free(): a freed one if any, else the
  // next never-used one. ResourceExhausted (naming max_pages) once all
  // max_pages PIDs are in use.
  absl::StatusOr<uint64_t> Allocate();

  // Returns `pid` to the free list. OutOfRange if `pid` was never allocated;
  // FailedPrecondition if its entry is already free (double free, or nothing
  // was ever installed). The entry must hold a location so a double free is
  // caught instead of corrupting the free list.
  absl::Status Free(uint64_t pid);

  // Frees `pid` only if its entry still equals `expected` (which must not
  // be free): one CAS, so no install can slip in between. Aborted if the
  // entry changed; OutOfRange as Free.
  absl::Status FreeIfUnchanged(uint64_t pid, PageState expected);

  // For recovery, before any other use: PIDs 0 .. states.size() - 1 become
  // handed out, each entry set to its state; the free ones go on the free
  // list. InvalidArgument if there are more than max_pages, or a state is
  // in memory (recovery knows only log addresses).
  absl::Status Restore(const std::vector<PageState>& states);

  // The entry of `pid`: one acquire load (after a bounds check on two
  // read-mostly words). OutOfRange, naming the PID, if `pid` was never
  // handed out by Allocate.
  absl::StatusOr<PageState> Read(uint64_t pid) const;

  // Replaces `expected` with `desired` in one acq_rel CAS; false if the
  // entry no longer equals `expected`. `desired` must not be free (use Free).
  // REQUIRES (LSS_CHECK): `pid` was handed out by Allocate.
  bool CompareAndSwap(uint64_t pid, PageState expected, PageState desired);

  // PIDs 0 .. high_water() - 1 have been handed out at least once.
  uint64_t high_water() const {
    return next_unused_.load(std::memory_order_acquire);
  }
  uint64_t max_pages() const { return max_pages_; }

 private:
  using Entry = std::atomic<uint64_t>;

  MappingTable(uint64_t max_pages, uint64_t num_chunks);

  // The entry of a PID below high_water(); nullptr if its chunk is not yet
  // visible to this thread.
  Entry* Find(uint64_t pid) const {
    const Entry* chunk =
        directory_[pid >> kChunkBits].load(std::memory_order_acquire);
    if (chunk == nullptr) return nullptr;
    return const_cast<Entry*>(&chunk[pid & (kChunkEntries - 1)]);
  }
  Entry* EnsureChunk(uint64_t pid);
  bool PopFree(uint64_t& pid);
  void PushFree(uint64_t pid, Entry& entry);

  const uint64_t max_pages_;
  const uint64_t num_chunks_;
  const std::unique_ptr<std::atomic<Entry*>[]> directory_;

  // Separate lines: the free-list head is written on every Allocate/Free,
  // next_unused_ only on growth, and every Read loads next_unused_.
  alignas(64) std::atomic<uint64_t> free_head_{0};
  alignas(64) std::atomic<uint64_t> next_unused_{0};
};

}  // namespace lss

#endif  // LSS_MAPPING_MAPPING_TABLE_H_
