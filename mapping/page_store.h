// PageStore: LLAMA's page operations over the mapping table (mapping/) and
// the log-structured store (lss/), rebuilt by replaying the log on open.
//
// A page's in-memory state is an immutable chain of PageNodes, newest
// first: deltas, then a base page. A flush puts a flush node on top that
// records where the state below it went on the log. The table entry of a
// page points at the chain's head, or holds the LSS address of the page's
// newest flushed piece once it is evicted. Every change is one CAS on that
// entry, against the state the caller last read (its `expected`); a lost
// race is Aborted and the caller re-reads. Replaced chains are freed
// through an EpochManager once no reader can still be walking them.
//
// Flushes are incremental (LLAMA): a page is on the log as a chain of
// pieces, newest first, each linked to the one below it, ending in an
// image. A flush writes only the deltas added since the page's last flush,
// as a delta piece linked to that flush's piece; it writes a whole image
// instead when there is no piece to link to (the first flush, and the
// first after an UpdateR, which is also how a freed and reallocated PID
// starts: a delta piece never links across a free) or when the chain has
// max_flushed_pieces pieces (consolidation: the chain starts again). Read
// of an evicted page follows the links down to the image.
//
// Log records (RecordTag key = the PID; integers little-endian):
//   kPageImageRecord   the whole page, written by Flush: u32 base length,
//                      base, u32 delta count, then (u32 length, bytes) per
//                      delta, oldest first. Piece #1 of a chain.
//   kPageDeltaRecord   a delta piece: u64 LSS address of the piece below it
//                      (the page's previous flush), u32 its position n >= 2
//                      in the chain (the piece below is #n-1, the image
//                      #1), u32 delta count, then (u32 length, bytes) per
//                      delta, oldest first: the deltas added since.
//                      Or a copy of the page's newest piece (the same
//                      link and position), written by the cleaner: it
//                      takes that piece's place.
//   kPageFreedRecord   the PID was freed
//   kFailedFlushRecord space a Flush reserved but lost its CAS for:
//                      recovery ignores it
//   kPageTombstoneRecord  the free at u64 address F still holds: written
//                      by the cleaner when it releases the free record's
//                      range while older pieces of the PID may remain.
//                      Frees the PID unless its newest piece is above F
//                      (a later life of the PID, which it leaves alone).
// Logs written before delta pieces existed hold only images and read as
// before. Recovery keeps, per PID, its newest piece unless a later free
// record follows; so after a crash every page reads as its last stable
// flush, or a later one, and pages that were never flushed (or were freed)
// are free. Every piece of a chain lies below the newest (links point
// back), so a stable newest piece means a stable chain.
//
// Cleaning (LLAMA's): the log is cut into regions of
// CleanerOptions::region_bytes (and where the background cleaner's
// relocations begin and end, CleanerOptions::separate_relocations), and
// PageStore keeps for each the bytes of the pieces there that pages'
// flushed chains still hold. The cleaner
// takes the head's region, or the one LFS's cost-benefit rates best
// (CleaningPolicy): the head's moves the head, any other is released
// (LogStructuredStore::Release), after each page with a piece there is
// written whole at the tail; or, if its only piece there is its newest, a
// delta piece, after that piece is copied to the tail alone (the page's
// deltas not flushed yet stay above the copy). So a delta piece may link
// below the head or into a released range; recovery accepts such a piece
// if a later image or free replaces it. A free record in a released range
// is written again as a tombstone, since older pieces of its PID may lie
// below the range.
//
// Checkpoints (LLAMA's, of the mapping table): what recovery's replay
// knows of every PID (its newest piece, or free) as of some address of the
// log, written as a log checkpoint (LogStructuredStore::WriteCheckpoint:
// u32 version 2, u32 zero, u64 high water, u64 count, then per PID in
// ascending order u64 PID, u64 address of its newest piece, u32 the
// piece's position in its chain, u32 flags (1 = its chain's image is not in
// the log), u32 n, and n x (u64 address, u32 bytes on the log) for the
// chain's pieces in the log, oldest first, the newest last; version 1, of
// older builds, has no n and no pieces). Open loads the newest and replays
// only the log after it. The
// checkpoint is built by replaying the log itself, the records since the
// last one read back, not from the table in memory, so it says exactly
// what a replay of the whole log would: it never holds a flush that is not
// durable, nor misses a free. Replay skips a record of a PID at or below
// the piece it already has, so records replayed twice change nothing.
//
// DataLoss, naming the file and offset: at Open, a page record whose key is
// not below max_pages, a delta piece that links to a piece of its page
// other than the newest (it would join pieces of different lives of the
// PID; a link to a piece never seen, above the newest, is taken as cut:
// see Cleaning; a copy of the newest is not), or a page whose newest chain
// lacks a piece (its image after a free, below the head or in a released
// range); at Read of an evicted page, a link that does not lead to the
// piece one position lower of the same page, or an unreadable piece; when
// cleaning, a piece that is not what the page's chain says is there.
//
// Thread safety: every method may be called concurrently; cleanings (Clean,
// CleanRange, CleanNext, the background cleaner) take turns.

#ifndef LSS_MAPPING_PAGE_STORE_H_
#define LSS_MAPPING_PAGE_STORE_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lss/format.h"
#include "lss/log_structured_store.h"
#include "mapping/epoch_manager.h"
#include "mapping/mapping_table.h"

namespace lss {

inline constexpr uint32_t kPageImageRecord = kFirstUserRecordType;
inline constexpr uint32_t kPageFreedRecord = kFirstUserRecordType + 1;
inline constexpr uint32_t kFailedFlushRecord = kFirstUserRecordType + 2;
inline constexpr uint32_t kPageDeltaRecord = kFirstUserRecordType + 3;
inline constexpr uint32_t kPageTombstoneRecord = kFirstUserRecordType + 4;

// Which region CleanNext cleans.
enum class CleaningPolicy {
  // The head's, oldest first (FIFO): every page is relocated once a lap.
  kOldest,
  // LFS's cost-benefit: the most (free bytes x age) / (region + live
  // bytes), age counted in bytes appended since the region was written,
  // among the regions whose relocations leave the cleaner's reserve free
  // (if none does, the one that gains the most room; the head's if no
  // relocations fit at all).
  kCostBenefit,
};

// The background cleaner (PageStore::CleanNext, run by a thread of its
// own).
struct CleanerOptions {
  CleaningPolicy policy = CleaningPolicy::kCostBenefit;
  // Runs a thread that cleans regions (CleanNext) whenever less than
  // free_bytes_low of store.capacity_bytes is free (or than what flushes
  // leave it, below, and a buffer, if more); a Flush that finds the
  // log full waits for it instead of failing (ResourceExhausted once a few
  // passes, each at most once round the log, leave no room). Flushes leave
  // the last 2 x region_bytes + buffer_bytes, at most half of
  // free_bytes_low (1.5 regions by default), to the cleaner, which writes
  // most pages it relocates whole while freeing only their pieces in the
  // region, and room for a checkpoint as large as the last. Needs
  // store.capacity_bytes.
  bool background = false;
  // The size of the regions the log is cleaned in, at least two flush
  // buffers (the log is freed by whole blocks, a block at most a buffer);
  // 0: a 128th of store.capacity_bytes, or two buffers if more. Smaller
  // regions keep the log fuller (less is held back for the cleaner) and
  // tell live from dead more finely, larger ones clean in fewer passes: at
  // 75% of 128 MiB, uniform updates, 1 MiB regions (a 128th) wrote 2.37
  // times the new page state, 2 MiB regions (a 64th, the default before,
  // with checkpoints every quarter) 2.71 (BENCHMARKS.md, "Smaller
  // regions").
  uint64_t region_bytes = 0;
  // 0: 3 x region_bytes: the cleaner's reserve (half of it), and room for
  // flushes while a region is cleaned. What is held back here the live
  // pages cannot use, which raises the utilization the cleaner works at:
  // at 75% of 128 MiB, 2 MiB regions and 1 MiB buffers, a mark of 12 MiB
  // (4 regions and the ring, the default before) gave a write
  // amplification of 3.74, 6 MiB 2.96 (counted as then: the new state
  // relocations took along as relocated); 4 MiB (a reserve of one region)
  // ran out of room (BENCHMARKS.md, "The cleaner's low mark").
  uint64_t free_bytes_low = 0;
  // Woken below the low mark, the cleaner goes on past it until
  // burst_bytes more are free (at most half the capacity), while each
  // cleaning leaves more free than before; 0: 4 x region_bytes, at most a
  // 32nd of the capacity; 1: it stops at the low mark. At 75% of 128 MiB,
  // bursts of 4 regions wrote 6-9% fewer bytes than stopping at the mark,
  // uniform and zipf alike, for the same number of cleanings: each
  // relocated fewer pages (BENCHMARKS.md, "Cleaning in bursts").
  uint64_t burst_bytes = 0;
  // The background cleaner writes what a pass relocates in regions of its
  // own: from its first relocation (the first page it finds still live in
  // a region it cleans) to the pass's end (a burst, a few milliseconds a
  // region), flushes wait, so none lands in between, and regions begin and
  // end where its relocations do (where that leaves a buffer on either
  // side: with regions of two buffers, as at 128 MiB with 512 KiB buffers,
  // only at a region's middle, so a run shares the regions at its ends with
  // flushes). Pages the cleaner moves outlived a region once, and tend to
  // outlive the next; kept apart from fresh flushes, the flushes' regions
  // empty out sooner. It pays when a region holds four buffers or more
  // (shown for 1 MiB regions): at 75% of 128 MiB, 256 KiB buffers, it
  // wrote 13% less than mixing with uniform updates, 2.5% less with 80/20
  // hot/cold and 3% less with zipf; with 512 KiB buffers 2-4%, 2% and
  // about 0 (BENCHMARKS.md, "Relocations apart, in regions of four
  // buffers"). Off by default: the default 4 MiB buffers make regions of
  // fewer than four below 2 GiB of capacity, and flushes wait out the rest
  // of the cleaner's pass once it relocates.
  // false: relocations mix with flushes, which then wait for the cleaner
  // only when short of room.
  bool separate_relocations = false;
};

struct PageStoreOptions {
  StoreOptions store;
  CleanerOptions cleaner;
  MappingTableOptions table = {.max_pages = uint64_t{1} << 24};
  // The longest chain of flushed pieces a page gets (at least 1; 1 makes
  // every flush a whole image). Reading an evicted page takes one log read
  // per piece; each whole image costs the page's size in log bytes.
  uint32_t max_flushed_pieces = 8;
  // Checkpoints (above): Close writes one, so does Checkpoint(), the
  // background cleaner once checkpoint_every_bytes (0: half of
  // store.capacity_bytes, or 64 MiB without a bound) were appended since
  // the last, and Clean and CleanRange before a truncation or release that
  // would drop the newest (LogStructuredStore::ReleaseDropsCheckpoint).
  // Open resumes from the newest. false: none is written or used, and Open
  // replays the whole log. Read-only stores only use them.
  // store.on_checkpoint is PageStore's own (a caller's is not called), and
  // a resumed Open calls store.on_recovered_record only for the records
  // from the checkpoint's resume address on. A checkpoint takes about 50
  // bytes a page: at 75% of 128 MiB, one every quarter of the capacity
  // was 3% of what the log wrote (BENCHMARKS.md, "Smaller regions").
  bool checkpoints = true;
  uint64_t checkpoint_every_bytes = 0;
};

// A page as Read returns it.
struct Page {
  PageState state;  // pass as `expected` to the next update of this page
  std::string base;
  std::vector<std::string> deltas;  // oldest first
};

class PageStore {
 public:
  // Opens (or creates) the log at `path` and rebuilds the mapping table
  // from it.
  static absl::StatusOr<std::unique_ptr<PageStore>> Open(
      const std::string& path, const PageStoreOptions& options = {});

  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;
  ~PageStore();

  // Holding the returned guard across a Read and the updates based on it
  // keeps the chain its `expected` points at from being freed and its
  // address reused, so a stale `expected` can never match a newer state by
  // coincidence (ABA). Without it an update against a stale state is still
  // memory-safe and almost always Aborted, but a reused address could let
  // it through. Guards nest.
  [[nodiscard]] EpochGuard Pin() { return EpochGuard(epochs_); }

  // A PID that reads as PageState::Free() until the first UpdateR.
  absl::StatusOr<uint64_t> Allocate();
  // Logs the free and releases the PID for reuse. FailedPrecondition if it
  // is already free; if the free cannot be logged (the log is full, or
  // failed), that error, and the page stays as it was.
  absl::Status Free(uint64_t pid);

  // Replaces the page with `base` (no deltas); `expected` may be
  // PageState::Free() for a newly allocated PID. Returns the new state.
  absl::StatusOr<PageState> UpdateR(uint64_t pid, PageState expected,
                                    absl::string_view base);
  // Prepends `delta`. FailedPrecondition unless the page is in memory
  // (Read it first).
  absl::StatusOr<PageState> UpdateD(uint64_t pid, PageState expected,
                                    absl::string_view delta);

  // The page's current state, loading it from the log if it was evicted.
  // FailedPrecondition for a free PID.
  absl::StatusOr<Page> Read(uint64_t pid);

  // LLAMA's flush: reserves log space for the page's next piece (its
  // deltas since the last flush, or a whole image: see above), installs a
  // flush node carrying that address by CAS, then copies the piece in. If
  // the CAS loses, the space becomes a failed-flush record and the result
  // is Aborted. Returns the piece's LSS address (the existing one if
  // nothing changed since the last flush). The page's whole flushed state
  // is stable after MkStable(address).
  absl::StatusOr<uint64_t> Flush(uint64_t pid);

  // Cleaning, in the foreground (the background cleaner runs the same):
  // every page with a piece in [head, to) of the log (read once to find
  // them) whose chain still needs that piece is written whole at the tail,
  // those images are made durable, and the log is truncated at `to` (its
  // space goes back; LogStructuredStore::Truncate). An image holds what
  // the page's last flush wrote (its changes since stay in memory, for its
  // next Flush), or the page as it is, if it has no flush since its
  // UpdateR; a page that flushes meanwhile is relocated as that flush
  // left it; a freed one needs nothing. `to` must be durable (at most HiStable()).
  // After a crash at any point every page reads as its last durable flush
  // or a later one: a relocated image holds one of those, and the head
  // moves only once they are durable. Which pages have a piece there
  // comes from each page's flushed chain, kept in memory; an evicted page
  // that must move is read in, and evicted again afterwards. If the log
  // fills up part way, the head moves up to the first page not relocated
  // and the result is ResourceExhausted.
  absl::Status Clean(uint64_t to);
  // Cleans the blocks that start in [from, to) (from the head's block if
  // `from` is at or below the head, which moves the head): every page with
  // a piece there is written whole at the tail (or, if that piece is its
  // newest, a delta piece linked below `from`, the piece is copied there
  // alone, and an evicted page stays evicted), a free record there is
  // written again as a tombstone unless its PID has a piece since or the
  // head has passed the free it stands for, those are made durable, and
  // the blocks are released (their space goes back;
  // LogStructuredStore::Release). `to` is at most the log's
  // CheckpointBoundary(), InvalidArgument otherwise. If the log fills up
  // part way, the blocks below the first page not relocated are released
  // and the result is ResourceExhausted. The same promise as Clean after a
  // crash (a copy holds what its piece did). Both return OK only with
  // everything appended before them durable, an empty range too.
  absl::Status CleanRange(uint64_t from, uint64_t to);
  // Cleans one region (of CleanerOptions::region_bytes, or less where a
  // pass of the background cleaner's relocations cut it) below the log's
  // CheckpointBoundary(), chosen by CleanerOptions::policy, and returns its
  // range (empty if there is none yet; everything appended before is
  // durable on return either way). ResourceExhausted if the log fills up
  // part way (CleanRange). Near kMaxHoles released ranges, only a region
  // next to one, or the head's, is taken, so that ranges merge.
  absl::StatusOr<Hole> CleanNext();
  // What the cleaner knows of the region that holds `from`: the bytes of
  // the pieces there that pages' flushed chains hold, and of its free
  // records and tombstones (`live`), and what cleaning it would write
  // (`relocation`: the bytes of those chains, since each page is written
  // whole, or of the piece alone where it would be copied, unless the page
  // was given a new base since its last flush; an estimate, which does not
  // know what the pages hold now).
  struct RegionUse {
    uint64_t live = 0;
    uint64_t relocation = 0;
  };
  RegionUse region_use(uint64_t from);
  uint64_t region_bytes() const { return region_bytes_; }

  // Writes a checkpoint of every PID's durable state as of the log's
  // CheckpointBoundary(), reading the log since the last one to build it.
  // About 50 bytes per page that has a flush. FailedPrecondition if
  // checkpoints are off or the store is read-only; ResourceExhausted if it
  // does not fit in the log's capacity.
  absl::Status Checkpoint();

  // Stops the background cleaner (waiting for a cleaning under way),
  // writes a checkpoint (unless off; one that does not fit in the log's
  // capacity is left out) and closes the log (LogStructuredStore::Close).
  // Other calls fail after it.
  absl::Status Close();
  // How the background cleaner's last pass ended: ResourceExhausted if it
  // could not make room (it tries again when a flush next waits), another
  // error if it stopped for good (flushes that wait for room then fail).
  absl::Status cleaner_status() const;

  // Drops the in-memory state of a page whose last flush is stable and
  // which has not changed since, so the table points at the log.
  // FailedPrecondition otherwise; Aborted on a lost race.
  absl::Status Evict(uint64_t pid);

  // Blocks until the record at `address` is stable.
  absl::Status MkStable(uint64_t address) { return log_->WaitStable(address); }
  uint64_t HiStable() const { return log_->HiStable(); }

  // What Flush wrote since Open: records, and their bytes on the log
  // (record headers and alignment padding included, block headers not).
  struct FlushStats {
    uint64_t images = 0;          // whole page images
    uint64_t consolidations = 0;  // of them, for a chain that was full
    uint64_t delta_pieces = 0;    // delta pieces
    uint64_t failed = 0;          // failed-flush markers (lost CAS races)
    uint64_t bytes = 0;           // of all of them
    uint64_t failed_bytes = 0;    // of the markers (also in `bytes`)
    // Pages Clean relocated: images (also in `images`), and delta pieces
    // copied alone (`moved`, also in `delta_pieces`).
    uint64_t relocated = 0;
    uint64_t moved = 0;
    // Their bytes (also in `bytes`), less relocated_new_bytes.
    uint64_t relocated_bytes = 0;
    // What they took along of changes no flush had written (all of a page
    // not flushed since its UpdateR; a page with a flush is relocated as
    // that flush left it), once the page's next Flush (or Evict) found it:
    // that Flush would have written it, so it is new page state. Until
    // then, and for good if an UpdateR or a Free replaces it first, it
    // counts as relocated.
    uint64_t relocated_new_bytes = 0;
    uint64_t cleanings = 0;       // Clean calls that finished, either kind
    // Times the background cleaner began keeping flushes out to relocate
    // (CleanerOptions::separate_relocations): once a pass, at the first
    // page it finds still live in a region it cleans (and again after
    // letting a caller's cleaning go first).
    uint64_t passes_apart = 0;
  };
  FlushStats flush_stats() const;

  // What recovery found: pages restored and the log's own report
  // (log().recovery(): scan_from and checkpoint say whether it resumed
  // from a checkpoint).
  uint64_t recovered_pages() const { return recovered_pages_; }
  LogStructuredStore& log() { return *log_; }
  MappingTable& table() { return *table_; }

 // The element of a page's in-memory chain; defined in page_store.cc.
  struct Node;

 private:
  PageStore(std::unique_ptr<LogStructuredStore> log,
            std::unique_ptr<MappingTable> table, const PageStoreOptions& o);
  // A piece of a page's flushed chain: where, and its bytes on the log.
  // Every record has bytes: a piece of none stands for pieces not known
  // (from a version 1 checkpoint) between it and the next.
  struct PieceRef {
    uint64_t address = 0;
    uint32_t bytes = 0;
  };
  using Chain = std::vector<PieceRef>;  // oldest first
  // What recovery's scan of the log says: the newest piece of each PID,
  // unless a later record freed it.
  struct Replay {
    struct Latest {
      uint64_t address = 0;
      uint32_t pieces = 0;  // its position in its chain
      // The chain's first pieces are not in the log (truncated, released,
      // or before a free): the page cannot be read unless a later record
      // replaces it.
      bool broken = false;
      // Broken with one piece: what that delta piece links to (0: not
      // known, from a checkpoint).
      uint64_t link = 0;
      Chain chain;  // the pieces the scan saw; the newest is `address`
    };
    uint64_t max_pages = 0;
    std::map<uint64_t, Latest> latest;  // PID -> its newest piece
    uint64_t high_water = 0;               // one past the highest PID seen
    absl::Status Visit(const std::string& path, const RecordView& r);
    // The checkpoint's bytes (format above), their count, and back.
    std::string Serialize() const;
    size_t SerializedSize() const;
    absl::Status Load(const std::string& path, const CheckpointView& c);
  };
  // Checkpoint, holding checkpoint_mu_.
  absl::Status CheckpointLocked();
  // Whether the cleaner should write a checkpoint.
  bool CheckpointDue() const;
  absl::Status Restore(const Replay& replay);
  // Flush, or with `image` (a relocation) a whole image of the page's
  // flushed state, even if nothing changed, in place of its last flush,
  // or of its current state if it has no flush since its UpdateR (loading
  // an evicted page first: Aborted, try again).
  absl::StatusOr<uint64_t> FlushPiece(uint64_t pid, bool image);
  // Clean (truncate: up to the block that holds `to`) or CleanRange.
  absl::Status CleanBlocks(uint64_t from, uint64_t to, bool truncate);
  // An image of the page at the tail (or a copy of its delta piece at
  // `piece`, if not 0 and MovePiece can) unless its flushed chain has no
  // piece in [from, to) (false then).
  absl::StatusOr<bool> Relocate(uint64_t pid, uint64_t from, uint64_t to,
                                uint64_t piece);
  // Whether the page's flushed chain has a piece in [from, to), and
  // whether it has one above `address` (a life after a free there).
  bool ChainIn(uint64_t pid, uint64_t from, uint64_t to);
  bool ChainAbove(uint64_t pid, uint64_t address);
  // What flushes leave free with a background cleaner: its reserve, and
  // room for a checkpoint as large as the last.
  uint64_t FlushReserve() const;
  // The cleaner cleans while less than this is free.
  uint64_t CleanBelow() const;
  // Counts what the relocation that wrote `flush` took along as new page
  // state (FlushStats::relocated_new_bytes), once.
  void CreditCarried(const Node* flush);
  // Whether cleaning from `from` on can copy the chain's newest piece alone
  // (MovePiece): it is a delta piece, and the piece below it has a known
  // address below `from`.
  static bool Movable(const Chain& c, uint64_t from);
  // Cleaning [from, ...) copies the page's newest piece, a delta piece at
  // `address` (read back from the log), to the tail, and the page goes on
  // from the copy: its deltas not flushed yet are kept above it (their
  // nodes copied). Only while that piece is still what the page's state
  // rests on (its top flush node, or the evicted page's address) and
  // Movable; false otherwise (relocate the page whole). Aborted on a lost
  // race.
  absl::StatusOr<bool> MovePiece(uint64_t pid, uint64_t from,
                                 uint64_t address);
  // Fills a reservation whose CAS was lost with a failed-flush record.
  void AbandonFlush(uint64_t pid, StoreReservation r);
  // The page's flushed chain becomes `next`; holding its stripe's lock.
  void SetChain(uint64_t pid, Chain next);
  // Adds (or takes away) what a chain puts in each region: its pieces'
  // bytes, and what cleaning there would write (`whole`: never the newest
  // piece alone, as for a page given a new base since its last flush);
  // holding regions_mu_.
  void CountChain(const Chain& c, bool add, bool whole);
  // A free record or tombstone counts as live in its region until the
  // region goes (it is written again there while it may be needed), so a
  // region of them does not look free to clean.
  void CountFree(uint64_t address, size_t payload_bytes);
  // Regions are the region_bytes_ grid, cut where a cleaner's pass of
  // relocations begins and ends (cuts_). The start of the region that holds
  // `address`, and the end of the region that starts at `start`; holding
  // regions_mu_.
  uint64_t RegionStart(uint64_t address) const;
  uint64_t RegionEnd(uint64_t start) const;
  // Ends the open block and starts a region where the next one begins.
  absl::Status CutRegion();
  // Forgets the regions the log no longer has, inside [from, to).
  void ForgetRegions(uint64_t from, uint64_t to);
  // Bytes of capacity the log does not use yet (give or take a buffer).
  uint64_t FreeBytes() const;
  // Wakes the background cleaner if the log is short of free space.
  void MaybeWakeCleaner();
  // Has the cleaner run a pass (or cleared its low mark) after `passes`;
  // false if it cannot (it failed or is stopping).
  bool WaitForCleaning(uint64_t passes);
  void CleanerLoop();
  // Stops the cleaner and waits for it (idempotent).
  void StopCleaner();
  // Whether a Free of the page is under way (a freeing node on top).
  bool BeingFreed(uint64_t pid);
  // Loads the chain of pieces whose newest is at `address` into memory
  // (with a flush node on top).
  absl::StatusOr<Node*> Load(uint64_t pid, uint64_t address);
  void Retire(PageState old);
  // OK if `pid` still holds `expected` and is not being freed.
  absl::Status StillCurrent(uint64_t pid, PageState expected);

  std::unique_ptr<LogStructuredStore> log_;
  std::unique_ptr<MappingTable> table_;
  EpochManager epochs_;
  const uint32_t max_flushed_pieces_;
  // A cleaner thread runs (not for read-only stores, which never flush):
  // fixed at construction, so Flush reads it while Close joins the thread.
  const bool background_;
  const bool checkpoints_;  // writes them (on, and writable)
  uint64_t checkpoint_every_ = 0;
  uint64_t recovered_pages_ = 0;
  // The replay checkpoints are made of: what recovery knew, brought up to
  // shadow_end_ (a block start) by reading the log since.
  std::mutex checkpoint_mu_;
  Replay shadow_;
  uint64_t shadow_end_ = 0;
  // The last checkpoint's bytes on the log: about what the next takes.
  std::atomic<uint64_t> checkpoint_bytes_{0};
  // Where the log ended when the cleaner last tried one.
  std::atomic<uint64_t> checkpoint_tried_at_{0};
  bool closed_ = false;  // Close ran
  // The background cleaner. Its sizes are set at construction; clean_mu_
  // guards stopping_ and cleaner_status_.
  uint64_t capacity_bytes_ = 0;
  uint64_t buffer_bytes_ = 0;
  uint64_t region_bytes_ = 0;
  CleaningPolicy policy_ = CleaningPolicy::kCostBenefit;
  uint64_t free_bytes_low_ = 0;
  uint64_t burst_bytes_ = 0;
  uint64_t reserve_bytes_ = 0;  // kept free for the cleaner's relocations
  std::thread cleaner_;
  std::atomic<bool> clean_wanted_{false};  // a wake-up is pending
  mutable std::mutex clean_mu_;
  std::condition_variable clean_cv_;  // the cleaner waits for work
  std::condition_variable room_cv_;   // flushes wait for passes_
  bool stopping_ = false;
  // Passes the cleaner finished, and bursts it went on to after clearing
  // its low mark: changed under clean_mu_, read without it by every Flush.
  std::atomic<uint64_t> passes_{0};
  absl::Status cleaner_status_;
  std::atomic<uint64_t> cleanings_{0};
  std::atomic<uint64_t> flushed_images_{0};
  std::atomic<uint64_t> flushed_pieces_{0};
  std::atomic<uint64_t> consolidations_{0};
  std::atomic<uint64_t> failed_flushes_{0};
  std::atomic<uint64_t> failed_bytes_{0};
  std::atomic<uint64_t> relocated_{0};
  std::atomic<uint64_t> passes_apart_{0};
  std::atomic<uint64_t> moved_{0};
  std::atomic<uint64_t> relocated_bytes_{0};
  std::atomic<uint64_t> relocated_new_bytes_{0};
  std::atomic<uint64_t> flushed_bytes_{0};
  // Liveness, for choosing what to clean: each page's flushed chain (the
  // newest that won its CAS; durable by the time a cleaning's Sync
  // returns), and per region the bytes of the chains with a piece there.
  // A page's stripe lock is held across the CASes that change its chain
  // (a flush, a relocation, a copied piece, a free) or its count (UpdateR)
  // and that change, so they happen in the order of the CASes; UpdateD,
  // Load and Evict change neither and take no lock.
  struct Stripe {
    std::mutex mu;
    std::unordered_map<uint64_t, Chain> chains;
    // Pages given a new base (UpdateR) since their last flush: with no
    // flush node in memory, a cleaning writes them whole, as they are now,
    // even where it would copy a newest delta piece (MovePiece).
    std::unordered_set<uint64_t> replaced;
  };
  static constexpr size_t kStripes = 64;
  Stripe& StripeOf(uint64_t pid) { return stripes_[pid % kStripes]; }
  std::array<Stripe, kStripes> stripes_;
  std::mutex cleaning_mu_;  // one cleaning at a time
  std::mutex regions_mu_;
  std::map<uint64_t, RegionUse> regions_;  // by region start
  std::set<uint64_t> cuts_;  // region starts off the grid
  bool separate_relocations_ = false;
  // With separate_relocations_ (and only then: nothing else takes it
  // exclusively), flushes and a caller's relocations hold it shared while
  // they append; the background cleaner holds it from a pass's first
  // relocation to the pass's end. pass_lock_ is the cleaner thread's own,
  // set during a pass.
  std::shared_mutex append_mu_;
  std::unique_lock<std::shared_mutex>* pass_lock_ = nullptr;
};

}  // namespace lss

#endif  // LSS_MAPPING_PAGE_STORE_H_
