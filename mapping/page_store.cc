#include "mapping/page_store.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ring/check.h"

namespace lss {

// One immutable element of a page's chain. alignas(8): the table stores
// node pointers with their low three bits free for the tag.
struct alignas(8) PageStore::Node {
  enum class Kind { kBase, kDelta, kFlush, kFreeing };
  Kind kind;
  std::string bytes = {};     // kBase, kDelta
  uint64_t address = 0;       // kFlush: the newest piece holding `next`
  uint32_t pieces = 0;        // kFlush: its position in its chain (image: 1)
  // kFlush of a relocation: the bytes it took along of changes no flush
  // had written (the whole record of a page not flushed since its UpdateR,
  // or what an earlier relocation below it took along), until a Flush or
  // Evict counts them (PageStore::CreditCarried).
  mutable std::atomic<uint32_t> carried = 0;
  // kFlush: the chain's image, its lowest piece: the chain needs nothing
  // of the log below it.
  uint64_t image = 0;
  const Node* next = nullptr;  // older state; nullptr below a base
};

namespace {

using Node = PageStore::Node;

void DeleteChain(const Node* head) {
  while (head != nullptr) delete std::exchange(head, head->next);
}

void DeleteChainErased(void* head) {
  DeleteChain(static_cast<const Node*>(head));
}

void DeleteNodeErased(void* node) { delete static_cast<const Node*>(node); }

// The nodes a copied piece or a relocation replaced: the deltas above the
// page's top flush node and that node; the rest of the chain lives on
// under the copies (CopyDeltas).
void DeleteThroughFlushErased(void* head) {
  const Node* n = static_cast<const Node*>(head);
  while (n->kind == Node::Kind::kDelta) delete std::exchange(n, n->next);
  delete n;
}

// Copies of the delta nodes from `head` down to `stop` (left out), on top
// of `below`: the page's changes not flushed yet, kept above a flush node
// that replaces the one they were on. Returns the copies' head.
Node* CopyDeltas(const Node* head, const Node* stop, Node* below) {
  std::vector<const Node*> deltas;
  for (const Node* n = head; n != stop; n = n->next) deltas.push_back(n);
  for (auto d = deltas.rbegin(); d != deltas.rend(); ++d) {
    below = new Node{
        .kind = Node::Kind::kDelta, .bytes = (*d)->bytes, .next = below};
  }
  return below;
}

// Frees what CopyDeltas and the new flush node under the copies made,
// down to `stop`, the node the flush node went on (the CAS was lost).
void DeleteDownTo(const Node* head, const Node* stop) {
  while (head != stop) delete std::exchange(head, head->next);
}

const Node* Head(PageState s) { return static_cast<const Node*>(s.pointer()); }

void PutDeltas(std::string& out, const std::vector<std::string>& deltas) {
  PutU32(out, static_cast<uint32_t>(deltas.size()));
  for (const std::string& d : deltas) {
    PutU32(out, static_cast<uint32_t>(d.size()));
    out += d;
  }
}

bool GetDeltas(absl::string_view& in, std::vector<std::string>& deltas) {
  uint32_t count = 0;
  if (!GetU32(in, count)) return false;
  deltas.clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!GetU32(in, len) || in.size() < len) return false;
    deltas.emplace_back(in.data(), len);
    in.remove_prefix(len);
  }
  return true;
}

// Formats in page_store.h.
std::string SerializeImage(const Page& page) {
  std::string out;
  PutU32(out, static_cast<uint32_t>(page.base.size()));
  out += page.base;
  PutDeltas(out, page.deltas);
  return out;
}

bool ParseImage(absl::string_view in, Page& page) {
  uint32_t len = 0;
  if (!GetU32(in, len) || in.size() < len) return false;
  page.base.assign(in.data(), len);
  in.remove_prefix(len);
  return GetDeltas(in, page.deltas) && in.empty();
}

std::string SerializeDeltaPiece(uint64_t previous, uint32_t pieces,
                                const std::vector<std::string>& deltas) {
  std::string out;
  PutU64(out, previous);
  PutU32(out, pieces);
  PutDeltas(out, deltas);
  return out;
}

// One flushed piece of a page as read back: an image, or a delta piece.
struct Piece {
  bool image = false;
  uint64_t previous = 0;  // delta piece: the piece below it
  uint32_t pieces = 1;    // its position in its chain; an image is 1
  Page content;           // an image's base and deltas; a piece's deltas
};

bool ParsePiece(const LogRecord& record, Piece& piece) {
  absl::string_view in = record.payload;
  if (record.tag.type == kPageImageRecord) {
    piece.image = true;
    piece.pieces = 1;
    return ParseImage(in, piece.content);
  }
  piece.image = false;
  // A link points back in the log and a chain ends in an image, so
  // following links always ends.
  return record.tag.type == kPageDeltaRecord && GetU64(in, piece.previous) &&
         GetU32(in, piece.pieces) && piece.pieces >= 2 &&
         piece.previous < record.address &&
         GetDeltas(in, piece.content.deltas) && in.empty();
}

// The page a chain describes (flush nodes are markers, not content), or,
// with `stop`, the deltas above it.
Page Materialize(const Node* head, PageState state,
                 const Node* stop = nullptr) {
  Page page;
  page.state = state;
  for (const Node* n = head; n != stop; n = n->next) {
    if (n->kind == Node::Kind::kDelta) page.deltas.push_back(n->bytes);
    if (n->kind == Node::Kind::kBase) page.base = n->bytes;
  }
  std::reverse(page.deltas.begin(), page.deltas.end());
  return page;
}

// A block is at most a flush buffer, and the head moves by whole blocks:
// a region of two buffers always gets past the head's block.
uint64_t RegionBytes(const PageStoreOptions& o) {
  if (o.cleaner.region_bytes != 0) return o.cleaner.region_bytes;
  return std::max<uint64_t>(o.store.capacity_bytes / 128,
                            2 * uint64_t{o.store.buffer_bytes});
}

absl::Status Changed(uint64_t pid) {
  return absl::AbortedError(
      absl::StrCat("page ", pid, " changed since it was read; read it again"));
}

absl::Status IsFree(uint64_t pid) {
  return absl::FailedPreconditionError(absl::StrCat("page ", pid, " is free"));
}

}  // namespace

PageStore::PageStore(std::unique_ptr<LogStructuredStore> log,
                     std::unique_ptr<MappingTable> table,
                     const PageStoreOptions& o)
    : log_(std::move(log)),
      table_(std::move(table)),
      max_flushed_pieces_(o.max_flushed_pieces),
      background_(o.cleaner.background && !o.store.read_only),
      checkpoints_(o.checkpoints && !o.store.read_only) {
  checkpoint_every_ = o.checkpoint_every_bytes != 0 ? o.checkpoint_every_bytes
                      : o.store.capacity_bytes != 0
                          ? o.store.capacity_bytes / 2
                          : uint64_t{64} << 20;
  buffer_bytes_ = o.store.buffer_bytes;
  region_bytes_ = RegionBytes(o);
  policy_ = o.cleaner.policy;
  capacity_bytes_ = o.store.capacity_bytes;
  if (!background_) return;
  free_bytes_low_ = o.cleaner.free_bytes_low != 0
                        ? o.cleaner.free_bytes_low
                        : 3 * region_bytes_;
  separate_relocations_ = o.cleaner.separate_relocations;
  // Never the whole log: at most a 32nd of it by default.
  burst_bytes_ =
      o.cleaner.burst_bytes != 0
          ? o.cleaner.burst_bytes
          : std::min(4 * region_bytes_, o.store.capacity_bytes / 32);
  // A relocated page is written whole, its flushed state, while only its
  // pieces in the region are freed: cleaning borrows space for a while
  // (the rest of its old chain dies later), hence up to two regions; with
  // the default low mark, half of it: 1.5 regions (a reserve of one ran
  // out of room).
  reserve_bytes_ = std::min(2 * region_bytes_ + o.store.buffer_bytes,
                            free_bytes_low_ / 2);
}

PageStore::~PageStore() {
  StopCleaner();
  // No thread is inside an operation any more: free every resident chain
  // (the EpochManager frees what was retired).
  for (uint64_t pid = 0; pid < table_->high_water(); ++pid) {
    absl::StatusOr<PageState> s = table_->Read(pid);
    if (s.ok() && s->in_memory()) DeleteChain(Head(*s));
  }
}

absl::StatusOr<std::unique_ptr<PageStore>> PageStore::Open(
    const std::string& path, const PageStoreOptions& options) {
  if (options.max_flushed_pieces < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": max_flushed_pieces is ", options.max_flushed_pieces,
        ", at least 1 (1: every flush writes a whole image)"));
  }
  const CleanerOptions& cleaner = options.cleaner;
  if (cleaner.region_bytes != 0 &&
      cleaner.region_bytes < 2 * uint64_t{options.store.buffer_bytes}) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": cleaner.region_bytes is ", cleaner.region_bytes,
        ", below two flush buffers (", 2 * options.store.buffer_bytes,
        "): a block is at most a buffer, and a region must hold one"));
  }
  if (cleaner.background) {
    const uint64_t capacity = options.store.capacity_bytes;
    const uint64_t region = RegionBytes(options);
    const uint64_t buffer = options.store.buffer_bytes;
    if (capacity == 0 || region < 2 * buffer || region >= capacity / 2 ||
        cleaner.free_bytes_low >= capacity ||
        cleaner.burst_bytes >= capacity) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": the background cleaner needs store.capacity_bytes (it is ",
          capacity, "), a region_bytes (", region, ") of at least two "
          "buffers (", 2 * buffer, ") and below half of the capacity, and a "
          "free_bytes_low (", cleaner.free_bytes_low, ") and burst_bytes (",
          cleaner.burst_bytes, ") below it"));
    }
  }
  absl::StatusOr<std::unique_ptr<MappingTable>> table =
      MappingTable::Create(options.table);
  if (!table.ok()) return table.status();
  // The table is rebuilt from the records as the log's recovery scans
  // them: the log is read once.
  Replay replay;
  replay.max_pages = (*table)->max_pages();
  StoreOptions store_options = options.store;
  store_options.on_checkpoint = nullptr;
  if (options.checkpoints) {
    store_options.on_checkpoint = [&replay, &path](const CheckpointView& c) {
      return replay.Load(path, c);
    };
  }
  store_options.on_recovered_record =
      [&replay, &path, user = options.store.on_recovered_record](
          const RecordView& r) {
        if (user) {
          if (absl::Status s = user(r); !s.ok()) return s;
        }
        return replay.Visit(path, r);
      };
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> log =
      LogStructuredStore::Open(path, store_options);
  if (!log.ok()) return log.status();
  std::unique_ptr<PageStore> store(
      new PageStore(*std::move(log), *std::move(table), options));
  if (absl::Status s = store->Restore(replay); !s.ok()) return s;
  store->shadow_end_ = store->log_->recovery().tail;
  store->shadow_ = std::move(replay);
  if (store->checkpoints_ && store->background_) {
    // About the size of the next checkpoint, which flushes and the
    // cleaner leave room for.
    store->checkpoint_bytes_.store(
        RecordFootprint(store->shadow_.SerializedSize()),
        std::memory_order_relaxed);
  }
  if (store->background_) {
    store->cleaner_ = std::thread([s = store.get()] { s->CleanerLoop(); });
    store->MaybeWakeCleaner();
  }
  return store;
}

absl::Status PageStore::Replay::Visit(const std::string& path,
                                      const RecordView& r) {
  const uint64_t pid = r.tag.key;
  const bool page_record = r.tag.type == kPageImageRecord ||
                           r.tag.type == kPageDeltaRecord ||
                           r.tag.type == kPageFreedRecord;
  // The key sizes the table built from it: checked before it is trusted,
  // or a corrupt one would make that a huge allocation.
  if (page_record && pid >= max_pages) {
    return absl::DataLossError(absl::StrCat(
        path, ": record at offset ", r.address, " (type ", r.tag.type,
        ") has key ", pid, ", not a PID below max_pages ", max_pages));
  }
  // Already replayed (a checkpoint covers records past its resume point):
  // a PID's records come in address order.
  if (const auto it = latest.find(pid);
      page_record && it != latest.end() && r.address <= it->second.address) {
    return absl::OkStatus();
  }
  const PieceRef piece = {
      .address = r.address,
      .bytes = static_cast<uint32_t>(RecordFootprint(r.payload.size()))};
  if (r.tag.type == kPageImageRecord) {
    latest[pid] = Latest{.address = r.address, .pieces = 1, .chain = {piece}};
  } else if (r.tag.type == kPageDeltaRecord) {
    // A delta piece continues the page's newest piece. One that does not
    // (the page is free here, or its chain went on elsewhere) would make a
    // page of pieces from different lives, e.g. a freed page come back.
    absl::string_view in = r.payload;
    uint64_t previous = 0;
    uint32_t pieces = 0;
    if (!GetU64(in, previous) || !GetU32(in, pieces)) {
      return absl::DataLossError(absl::StrCat(
          path, ": delta piece of page ", pid, " at offset ", r.address,
          " is too short (", r.payload.size(), " bytes) for its link"));
    }
    const auto it = latest.find(pid);
    // The piece it links to was never seen, though every record of the
    // PID from the head on was, save those released: it lies below the
    // head or in a released range (the cleaner wrote the page whole
    // further on), or before a free. Fine if something later replaces
    // it, DataLoss if it is the page's newest (Restore).
    const bool unseen =
        previous < r.address &&
        (it == latest.end() || previous > it->second.address);
    if (unseen) {
      latest[pid] = Latest{.address = r.address, .pieces = pieces,
                           .broken = true, .link = previous,
                           .chain = {piece}};
      high_water = std::max(high_water, pid + 1);
      return absl::OkStatus();
    }
    // A copy of the page's newest piece (its link and position): the
    // cleaner moved it (MovePiece), and it takes that piece's place.
    if (it != latest.end() && it->second.pieces == pieces &&
        it->second.chain.size() >= 2) {
      const PieceRef& below = it->second.chain.end()[-2];
      if (below.address != 0 && below.address == previous) {
        it->second.address = r.address;
        it->second.chain.back() = piece;
        return absl::OkStatus();
      }
    }
    // The same for a broken page's one piece, whose link the scan did not
    // see either (its image was released after the copy was made): the
    // copy links where that piece does, and the page stays broken.
    if (it != latest.end() && it->second.broken &&
        it->second.chain.size() == 1 && it->second.pieces == pieces &&
        previous < it->second.address &&
        (it->second.link == 0 || it->second.link == previous)) {
      it->second.address = r.address;
      it->second.link = previous;
      it->second.chain.back() = piece;
      return absl::OkStatus();
    }
    if (it == latest.end() || it->second.address != previous ||
        it->second.pieces + 1 != pieces) {
      return absl::DataLossError(absl::StrCat(
          path, ": delta piece of page ", pid, " at offset ", r.address,
          " links to piece #", pieces - 1, " at offset ", previous,
          ", but the page's newest piece there is ",
          it == latest.end()
              ? std::string("none (it is free)")
              : absl::StrCat("#", it->second.pieces, " at offset ",
                             it->second.address)));
    }
    it->second.address = r.address;
    it->second.pieces = pieces;
    it->second.chain.push_back(piece);
  } else if (r.tag.type == kPageFreedRecord) {
    latest.erase(pid);
  } else if (r.tag.type == kPageTombstoneRecord) {
    absl::string_view in = r.payload;
    uint64_t freed_at = 0;
    if (pid >= max_pages || !GetU64(in, freed_at) || !in.empty() ||
        freed_at >= r.address) {
      return absl::DataLossError(absl::StrCat(
          path, ": tombstone of page ", pid, " at offset ", r.address,
          " is malformed (", r.payload.size(), " bytes, free at ", freed_at,
          ")"));
    }
    if (const auto it = latest.find(pid);
        it != latest.end() && it->second.address < freed_at) {
      latest.erase(it);
    }
  } else {
    return absl::OkStatus();  // failed flushes, and records of other layers
  }
  high_water = std::max(high_water, pid + 1);
  return absl::OkStatus();
}

size_t PageStore::Replay::SerializedSize() const {
  size_t bytes = 4 + 4 + 8 + 8;
  for (const auto& [pid, newest] : latest) {
    bytes += 8 + 8 + 4 + 4 + 4 + newest.chain.size() * (8 + 4);
  }
  return bytes;
}

std::string PageStore::Replay::Serialize() const {
  const size_t size = SerializedSize();
  std::string out;
  out.reserve(size);
  PutU32(out, 2);
  PutU32(out, 0);
  PutU64(out, high_water);
  PutU64(out, latest.size());
  for (const auto& [pid, newest] : latest) {
    PutU64(out, pid);
    PutU64(out, newest.address);
    PutU32(out, newest.pieces);
    PutU32(out, newest.broken ? 1 : 0);
    PutU32(out, static_cast<uint32_t>(newest.chain.size()));
    for (const PieceRef& p : newest.chain) {
      PutU64(out, p.address);
      PutU32(out, p.bytes);
    }
  }
  LSS_CHECK(out.size() == size, "a checkpoint's size was miscounted");
  return out;
}

absl::Status PageStore::Replay::Load(const std::string& path,
                                     const CheckpointView& c) {
  auto bad = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(
        path, ": the page checkpoint at offset ", c.address, ": ", why));
  };
  absl::string_view in = c.bytes;
  uint32_t version = 0;
  uint32_t zero = 0;
  uint64_t count = 0;
  if (!GetU32(in, version) || !GetU32(in, zero) || !GetU64(in, high_water) ||
      !GetU64(in, count)) {
    return bad("its header is cut short");
  }
  if (version != 1 && version != 2) {
    return bad(absl::StrCat("version ", version, ", not 1 or 2"));
  }
  if (high_water > max_pages) {
    return bad(absl::StrCat("PIDs reach ", high_water,
                            ", past max_pages ", max_pages));
  }
  // Each entry is at least 24 bytes: a count past that is damage, not a
  // reason to allocate.
  if (count > in.size() / 24 || (version == 1 && in.size() != count * 24)) {
    return bad(absl::StrCat(count, " pages in ", in.size(), " bytes"));
  }
  latest.clear();
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t pid = 0;
    Latest l;
    uint32_t flags = 0;
    uint32_t known = 1;
    if (!GetU64(in, pid) || !GetU64(in, l.address) || !GetU32(in, l.pieces) ||
        !GetU32(in, flags) || (version == 2 && !GetU32(in, known))) {
      return bad(absl::StrCat("entry ", i, " is cut short"));
    }
    const bool in_order = latest.empty() || pid > latest.rbegin()->first;
    if (pid >= high_water || !in_order || l.pieces == 0 ||
        l.address >= c.address || flags > 1 || known == 0 ||
        known > l.pieces) {
      return bad(absl::StrCat("entry ", i, " (page ", pid, ", offset ",
                              l.address, ", piece #", l.pieces, ", flags ",
                              flags, ", ", known, " pieces listed) is out of "
                              "order or out of range"));
    }
    // Version 1 names only the newest piece: the rest of its chain lies
    // anywhere below it, which a first piece of no bytes at 0 says
    // (ChainIn), until the page's next image.
    if (version == 1) {
      if (l.pieces > 1) l.chain.push_back(PieceRef{});
      l.chain.push_back(PieceRef{.address = l.address});
    }
    for (uint32_t k = 0; version == 2 && k < known; ++k) {
      PieceRef p;
      if (!GetU64(in, p.address) || !GetU32(in, p.bytes)) {
        return bad(absl::StrCat("entry ", i, " is cut short"));
      }
      const uint64_t floor = l.chain.empty() ? 0 : l.chain.back().address + 1;
      const bool last = k + 1 == known;
      if (p.address < floor || (last && p.address != l.address) ||
          p.address > l.address) {
        return bad(absl::StrCat("entry ", i, " (page ", pid, "): piece ", k,
                                " at offset ", p.address, " is out of order"));
      }
      l.chain.push_back(p);
    }
    l.broken = flags == 1;
    // A chain in the log whole lists every piece, unless what it does not
    // know is marked (a version 1 checkpoint's, carried on).
    if (version == 2 && !l.broken && known < l.pieces &&
        l.chain.front().bytes != 0) {
      return bad(absl::StrCat("entry ", i, " (page ", pid, ") lists ", known,
                              " of its ", l.pieces, " pieces"));
    }
    // What a replay from the head would not see: every piece of the page
    // is below it.
    if (l.address < c.head) continue;
    latest.emplace_hint(latest.end(), pid, std::move(l));
  }
  if (!in.empty()) {
    return bad(absl::StrCat(in.size(), " bytes past its last entry"));
  }
  return absl::OkStatus();
}

absl::Status PageStore::Checkpoint() {
  if (!checkpoints_) {
    return absl::FailedPreconditionError(absl::StrCat(
        log_->path(), ": checkpoints are off, or the store is read-only"));
  }
  std::lock_guard<std::mutex> lock(checkpoint_mu_);
  return CheckpointLocked();
}

absl::Status PageStore::CheckpointLocked() {
  const uint64_t resume = log_->CheckpointBoundary();
  if (const uint64_t head = log_->head(); shadow_end_ < head) {
    // The log was truncated past what the replay has read: start it again
    // from the head, as recovery without a checkpoint would.
    shadow_ = Replay();
    shadow_.max_pages = table_->max_pages();
    shadow_end_ = head;
  }
  if (resume > shadow_end_) {
    absl::StatusOr<std::unique_ptr<LogReader>> reader = log_->NewLogReader(
        shadow_end_, {.read_bytes = 1 << 20, .reads_in_flight = 4,
                      .to = resume});
    if (!reader.ok()) return reader.status();
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      if (!more.ok()) return more.status();
      const RecordView& r = (*reader)->record();
      if (!*more || r.address >= resume) break;
      if (absl::Status s = shadow_.Visit(log_->path(), r); !s.ok()) return s;
    }
    shadow_end_ = resume;
  }
  const std::string checkpoint = shadow_.Serialize();
  checkpoint_bytes_.store(RecordFootprint(checkpoint.size()),
                          std::memory_order_relaxed);
  return log_->WriteCheckpoint(resume, checkpoint).status();
}

bool PageStore::CheckpointDue() const {
  const uint64_t since =
      std::max({log_->checkpoint_resume(), log_->head(),
                checkpoint_tried_at_.load(std::memory_order_relaxed)});
  return checkpoints_ && log_->AppendedEnd() - since > checkpoint_every_;
}

absl::Status PageStore::Restore(const Replay& replay) {
  std::vector<PageState> states(replay.high_water);
  const uint64_t head = log_->head();
  const std::vector<Hole> holes = log_->holes();
  // Where a piece went: below the head or into a released range (a
  // checkpoint may name pieces the log has let go since).
  auto gone = [&](uint64_t address) -> std::optional<std::string> {
    if (address < head) return absl::StrCat("below the head ", head);
    // The last hole that begins at or below it (holes are in order).
    auto h = std::upper_bound(
        holes.begin(), holes.end(), address,
        [](uint64_t a, const Hole& hole) { return a < hole.begin; });
    if (h != holes.begin() && address < std::prev(h)->end) {
      return absl::StrCat("in the released range [", std::prev(h)->begin,
                          ", ", std::prev(h)->end, ")");
    }
    return std::nullopt;
  };
  for (const auto& [pid, newest] : replay.latest) {
    if (newest.broken) {
      return absl::DataLossError(absl::StrCat(
          log_->path(), ": page ", pid, ": its newest piece, the delta piece "
          "at offset ", newest.address, " (#", newest.pieces,
          "), belongs to a chain whose image is not in the log (it lies "
          "below the head ", head, ", in a released range, before a free, "
          "or nowhere)"));
    }
    for (const PieceRef& p : newest.chain) {
      if (p.bytes == 0) continue;  // not known (a version 1 checkpoint)
      if (std::optional<std::string> where = gone(p.address)) {
        return absl::DataLossError(absl::StrCat(
            log_->path(), ": page ", pid, ": its piece at offset ", p.address,
            " (its newest is at offset ", newest.address, ") lies ", *where,
            ", and nothing later in the log replaces the page"));
      }
    }
    states[pid] = PageState::OnLog(newest.address);
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    SetChain(pid, newest.chain);
  }
  recovered_pages_ = replay.latest.size();
  if (absl::Status s = table_->Restore(states); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(log_->path(), ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PageStore::Allocate() { return table_->Allocate(); }

void PageStore::Retire(PageState old) {
  if (old.in_memory()) {
    epochs_.Retire(const_cast<Node*>(Head(old)), DeleteChainErased);
  }
}

absl::Status PageStore::Free(uint64_t pid) {
  EpochGuard guard(epochs_);
  // A freeing node on top stops every other change (a flush after the free
  // record would bring the page back on recovery); then the free record;
  // then the PID goes back to the table, so a reuse logs after the free.
  Node* freeing = new Node{.kind = Node::Kind::kFreeing};
  PageState state;
  std::optional<PageState> s_before;  // what the freeing node went on
  for (;;) {
    absl::StatusOr<PageState> s = table_->Read(pid);
    if (!s.ok()) {
      delete freeing;
      return s.status();
    }
    if (s->is_free() ||
        (s->in_memory() && Head(*s)->kind == Node::Kind::kFreeing)) {
      delete freeing;
      return IsFree(pid);
    }
    freeing->next = s->in_memory() ? Head(*s) : nullptr;
    state = PageState::InMemory(freeing);
    if (table_->CompareAndSwap(pid, *s, state)) {
      s_before = *s;
      break;
    }
  }
  const absl::StatusOr<uint64_t> logged =
      log_->Append("F", RecordTag{.type = kPageFreedRecord, .key = pid});
  if (logged.ok()) CountFree(*logged, 1);
  if (!logged.ok()) {
    // Not logged, so not freed: recovery would bring the page back (or,
    // once Clean truncated its pieces, not), so the table must not lose it
    // either. Nothing changes a page under a freeing node.
    LSS_CHECK(table_->CompareAndSwap(pid, state, *s_before),
              "a page changed under its freeing node");
    epochs_.Retire(freeing, DeleteNodeErased);
    return logged.status();
  }
  {
    // Nothing flushes the page under its freeing node, and nothing of the
    // PID's next life can flush before FreeIfUnchanged.
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    SetChain(pid, {});
  }
  LSS_CHECK(table_->FreeIfUnchanged(pid, state).ok(),
            "a page changed under its freeing node");
  Retire(state);
  return absl::OkStatus();
}

absl::Status PageStore::StillCurrent(uint64_t pid, PageState expected) {
  // A stale `expected` may point at a chain already freed: compare words
  // before following the pointer. A current chain cannot be freed while
  // the caller is inside its epoch.
  absl::StatusOr<PageState> now = table_->Read(pid);
  if (!now.ok()) return now.status();
  if (*now != expected) return Changed(pid);
  if (expected.in_memory() && Head(expected)->kind == Node::Kind::kFreeing) {
    return IsFree(pid);
  }
  return absl::OkStatus();
}

absl::StatusOr<PageState> PageStore::UpdateR(uint64_t pid, PageState expected,
                                             absl::string_view base) {
  EpochGuard guard(epochs_);
  if (absl::Status s = StillCurrent(pid, expected); !s.ok()) return s;
  Node* node = new Node{.kind = Node::Kind::kBase, .bytes = std::string(base)};
  const PageState desired = PageState::InMemory(node);
  bool won = false;
  {
    // Under the stripe's lock, so that the chain's count changes in the
    // order of the CASes (a flush after this one counts its new chain).
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    won = table_->CompareAndSwap(pid, expected, desired);
    const auto it = won ? stripe.chains.find(pid) : stripe.chains.end();
    if (it != stripe.chains.end() && stripe.replaced.insert(pid).second) {
      // Only a chain whose newest piece could be copied (from some region)
      // counts otherwise.
      const Chain& c = it->second;
      if (Movable(c, UINT64_MAX)) {
        std::lock_guard<std::mutex> regions(regions_mu_);
        CountChain(c, false, false);
        CountChain(c, true, true);
      }
    }
  }
  if (!won) {
    delete node;
    return Changed(pid);
  }
  Retire(expected);
  return desired;
}

absl::StatusOr<PageState> PageStore::UpdateD(uint64_t pid, PageState expected,
                                             absl::string_view delta) {
  EpochGuard guard(epochs_);
  if (absl::Status s = StillCurrent(pid, expected); !s.ok()) return s;
  if (!expected.in_memory()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "page ", pid, " is not in memory; Read it before UpdateD"));
  }
  Node* node = new Node{.kind = Node::Kind::kDelta,
                        .bytes = std::string(delta),
                        .next = Head(expected)};
  const PageState desired = PageState::InMemory(node);
  if (!table_->CompareAndSwap(pid, expected, desired)) {
    delete node;
    return Changed(pid);
  }
  return desired;
}

absl::StatusOr<PageStore::Node*> PageStore::Load(uint64_t pid,
                                                 uint64_t address) {
  // Newest piece first, down to the image. Each link must lead to a piece
  // of this page one position lower; anything else would piece the page
  // together from records that never formed one state.
  std::vector<Piece> chain;
  uint64_t at = address;
  uint64_t from = 0;  // the piece that links to `at`, once there is one
  for (;;) {
    const std::string where =
        chain.empty() ? absl::StrCat("offset ", at)
                      : absl::StrCat("offset ", at, " (linked from offset ",
                                     from, ")");
    absl::StatusOr<LogRecord> record = log_->Read(at);
    if (record.status().code() == absl::StatusCode::kNotFound) {
      // The address came from the log itself (a flush the table recorded,
      // or a link): no record there means the record was damaged.
      return absl::DataLossError(
          absl::StrCat(log_->path(), ": page ", pid, ": its piece at ", where,
                       " is unreadable: ", record.status().message()));
    }
    if (!record.ok()) return record.status();
    const uint32_t want = chain.empty() ? 0 : chain.back().pieces - 1;
    Piece piece;
    if (record->tag.key != pid || !ParsePiece(*record, piece) ||
        (want != 0 && piece.pieces != want)) {
      return absl::DataLossError(absl::StrCat(
          log_->path(), ": ", where, ": not ",
          want == 0 ? std::string("a piece")
                    : absl::StrCat("piece #", want),
          " of page ", pid, " (type ", record->tag.type, ", key ",
          record->tag.key, ")"));
    }
    const bool image = piece.image;
    from = at;
    at = piece.previous;
    chain.push_back(std::move(piece));
    if (image) break;
  }
  Node* head =
      new Node{.kind = Node::Kind::kBase,
               .bytes = std::move(chain.back().content.base)};
  for (auto p = chain.rbegin(); p != chain.rend(); ++p) {
    for (std::string& d : p->content.deltas) {
      head = new Node{
          .kind = Node::Kind::kDelta, .bytes = std::move(d), .next = head};
    }
  }
  return new Node{.kind = Node::Kind::kFlush,
                  .address = address,
                  .pieces = chain.front().pieces,
                  .image = from,
                  .next = head};
}

absl::StatusOr<Page> PageStore::Read(uint64_t pid) {
  EpochGuard guard(epochs_);
  for (;;) {
    absl::StatusOr<PageState> s = table_->Read(pid);
    if (!s.ok()) return s.status();
    if (s->is_free()) return IsFree(pid);
    if (s->in_memory()) {
      if (Head(*s)->kind == Node::Kind::kFreeing) return IsFree(pid);
      return Materialize(Head(*s), *s);
    }
    absl::StatusOr<Node*> loaded = Load(pid, s->address());
    if (!loaded.ok()) {
      // Clean may have relocated the page and truncated the log under the
      // chain being loaded: then the entry no longer points at it (Clean
      // moves every such entry before it truncates, and addresses are never
      // reused), and the page is read from where it is now.
      absl::StatusOr<PageState> now = table_->Read(pid);
      if (now.ok() && *now != *s) continue;
      return loaded.status();
    }
    const PageState desired = PageState::InMemory(*loaded);
    if (table_->CompareAndSwap(pid, *s, desired)) {
      return Materialize(*loaded, desired);
    }
    DeleteChain(*loaded);  // another thread loaded or changed it first
  }
}

absl::StatusOr<uint64_t> PageStore::Flush(uint64_t pid) {
  // With a background cleaner, the last reserve_bytes_ of the capacity are
  // the cleaner's, so that relocating a region always finds room, and so
  // is room for a checkpoint (one written while flushes go on must not eat
  // into the reserve): a flush that would dig into them (or finds the log
  // full) waits for a cleaning pass, a few at most: if they leave no room,
  // the live pages do not fit.
  for (int waits = 0;; ++waits) {
    const uint64_t passes = passes_.load(std::memory_order_acquire);
    const uint64_t reserve = FlushReserve();
    const bool short_of_room = background_ && FreeBytes() < reserve;
    absl::StatusOr<uint64_t> a =
        short_of_room ? absl::ResourceExhaustedError(absl::StrCat(
                            log_->path(), ": fewer than ", reserve,
                            " bytes of capacity_bytes ", capacity_bytes_,
                            " are free, and those are the cleaner's"))
                      : [&] {
                          std::shared_lock<std::shared_mutex> lock(
                              append_mu_, std::defer_lock);
                          if (separate_relocations_) lock.lock();
                          return FlushPiece(pid, /*image=*/false);
                        }();
    if (a.ok()) {
      MaybeWakeCleaner();
      return a;
    }
    if (a.status().code() != absl::StatusCode::kResourceExhausted ||
        !background_ || waits == 8 || !WaitForCleaning(passes)) {
      return a;
    }
  }
}

uint64_t PageStore::FlushReserve() const {
  return reserve_bytes_ +
         (checkpoints_ ? checkpoint_bytes_.load(std::memory_order_relaxed) : 0);
}

uint64_t PageStore::CleanBelow() const {
  // A buffer above what flushes leave alone, or a flush could wait for a
  // cleaner that finds nothing to do (a checkpoint as large as 1.5
  // regions, with the default mark).
  // At most half the capacity: a checkpoint too large for the log would
  // otherwise keep the cleaner going round it for nothing.
  return std::min(std::max(free_bytes_low_, FlushReserve() + buffer_bytes_),
                  capacity_bytes_ / 2);
}

uint64_t PageStore::FreeBytes() const {
  const uint64_t end = log_->AppendedEnd();
  const uint64_t space_end = log_->SpaceEnd();
  return end < space_end ? space_end - end : 0;
}

void PageStore::MaybeWakeCleaner() {
  if (!background_ || (FreeBytes() >= CleanBelow() && !CheckpointDue()) ||
      clean_wanted_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  std::lock_guard<std::mutex> lock(clean_mu_);
  clean_cv_.notify_one();
}

bool PageStore::WaitForCleaning(uint64_t passes) {
  std::unique_lock<std::mutex> lock(clean_mu_);
  clean_wanted_.store(true, std::memory_order_release);
  clean_cv_.notify_one();
  room_cv_.wait(lock, [&] {
    return passes_.load(std::memory_order_relaxed) != passes || stopping_ ||
           (!cleaner_status_.ok() &&
            cleaner_status_.code() != absl::StatusCode::kResourceExhausted);
  });
  // A pass that found no room may be followed by one that makes some
  // (its relocations came out larger than their estimates, and what it
  // freed is gone): Flush gives up after a few.
  return !stopping_ &&
         (cleaner_status_.ok() ||
          cleaner_status_.code() == absl::StatusCode::kResourceExhausted);
}

void PageStore::CleanerLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(clean_mu_);
      clean_cv_.wait(lock, [&] {
        return stopping_ ||
               clean_wanted_.load(std::memory_order_acquire);
      });
      if (stopping_) return;
      clean_wanted_.store(false, std::memory_order_release);
    }
    // Clean regions (CleanNext) until the low mark is cleared, then, if
    // the pass began below it, on in a burst (CleanerOptions::burst_bytes)
    // while each cleaning leaves more free than before (what flushes
    // appended meanwhile counted). Only durable regions can be cleaned:
    // CleanNext Syncs when none is. A pass cleans at most the capacity's
    // worth, so a cleaner that frees little (the live pages nearly fill
    // the log) gives waiting flushes their answer.
    absl::Status status;
    uint64_t cleaned = 0;
    const bool burst = FreeBytes() < CleanBelow();
    bool gained = true;
    bool cleared = false;
    // Taken before the pass's first relocation (CleanerOptions::
    // separate_relocations, CleanBlocks).
    std::unique_lock<std::shared_mutex> apart(append_mu_, std::defer_lock);
    if (separate_relocations_) pass_lock_ = &apart;
    while (status.ok() && cleaned < capacity_bytes_) {
      const uint64_t free_before = FreeBytes();
      const uint64_t low = CleanBelow();
      {
        std::lock_guard<std::mutex> lock(clean_mu_);
        if (stopping_) break;
        // Flushes waiting for room need not wait for the burst (unless
        // it holds append_mu_ for its relocations: then they wait).
        if (free_before >= low && !std::exchange(cleared, true)) {
          passes_.fetch_add(1, std::memory_order_release);
          cleaner_status_ = absl::OkStatus();
          room_cv_.notify_all();
        }
      }
      // Like the low mark (CleanBelow), at most half the capacity.
      const uint64_t high = std::min(low + burst_bytes_, capacity_bytes_ / 2);
      if (free_before >= low && (!burst || !gained || free_before >= high)) {
        break;
      }
      absl::StatusOr<Hole> range = CleanNext();
      // None yet: CleanNext made more of the log durable, so try again.
      if (range.ok() && range->begin == range->end) range = CleanNext();
      if (!range.ok()) {
        // A full log stops a cleaning part way; what it freed up to there
        // is gone, and the next round goes on if that made room. Past the
        // low mark it only ends the burst.
        status = range.status();
        if (status.code() == absl::StatusCode::kResourceExhausted &&
            (cleared || FreeBytes() > free_before)) {
          status = absl::OkStatus();
          if (cleared) break;
          cleaned += region_bytes_;
        }
      } else if (range->begin == range->end) {
        break;
      } else {
        cleaned += range->end - range->begin;
      }
      gained = FreeBytes() > free_before;
    }
    pass_lock_ = nullptr;
    if (apart.owns_lock()) {
      if (absl::Status s = CutRegion(); status.ok()) status = s;
      apart.unlock();
    }
    if (status.ok() && CheckpointDue()) {
      // One that does not fit is tried again a checkpoint interval later.
      checkpoint_tried_at_.store(log_->AppendedEnd(),
                                 std::memory_order_relaxed);
      if (absl::Status s = Checkpoint();
          s.code() != absl::StatusCode::kResourceExhausted) {
        status = s;
      }
    }
    // A full log may get room again (pages freed, or replaced by smaller
    // ones): only other errors stop the cleaner.
    const bool fatal =
        !status.ok() && status.code() != absl::StatusCode::kResourceExhausted;
    {
      std::lock_guard<std::mutex> lock(clean_mu_);
      passes_.fetch_add(1, std::memory_order_release);
      if (!stopping_) cleaner_status_ = status;
    }
    room_cv_.notify_all();
    if (fatal) return;
  }
}

absl::Status PageStore::cleaner_status() const {
  std::lock_guard<std::mutex> lock(clean_mu_);
  return cleaner_status_;
}

void PageStore::StopCleaner() {
  {
    std::lock_guard<std::mutex> lock(clean_mu_);
    stopping_ = true;
  }
  clean_cv_.notify_all();
  room_cv_.notify_all();
  if (cleaner_.joinable()) cleaner_.join();
}

absl::Status PageStore::Close() {
  StopCleaner();
  absl::Status checkpoint;
  if (checkpoints_ && !std::exchange(closed_, true)) {
    checkpoint = Checkpoint();
    if (checkpoint.code() == absl::StatusCode::kResourceExhausted) {
      checkpoint = absl::OkStatus();
    }
  }
  absl::Status closed = log_->Close();
  return checkpoint.ok() ? closed : checkpoint;
}

absl::StatusOr<uint64_t> PageStore::FlushPiece(uint64_t pid, bool image) {
  EpochGuard guard(epochs_);
  absl::StatusOr<PageState> s = table_->Read(pid);
  if (!s.ok()) return s.status();
  if (s->is_free()) return IsFree(pid);
  if (s->on_log() && !image) return s->address();  // the log has it all
  if (s->on_log()) {
    // A whole image is wanted: bring the page in first.
    if (absl::StatusOr<Page> loaded = Read(pid); !loaded.ok()) {
      return loaded.status();
    }
    return Changed(pid);  // the caller tries again, now in memory
  }
  const Node* head = Head(*s);
  if (head->kind == Node::Kind::kFreeing) return IsFree(pid);
  if (head->kind == Node::Kind::kFlush && !image) {
    CreditCarried(head);
    return head->address;
  }
  // What changed since the last flush: the deltas above its flush node. A
  // base with no flush node above it (never flushed, or replaced by
  // UpdateR since; a freed PID comes back that way) has no piece to link
  // to: its flush writes a whole image, as does one whose chain of pieces
  // is at max_flushed_pieces_, so the chain starts again.
  const Node* below = head;
  while (below->kind == Node::Kind::kDelta) below = below->next;
  const bool linkable = below->kind == Node::Kind::kFlush;
  const bool incremental =
      !image && linkable && below->pieces < max_flushed_pieces_;
  // A relocation of a page with a flush writes what that flush made
  // stable, not the changes since: those stay above it in memory, for the
  // page's next Flush (an UpdateR may yet throw them away).
  const bool flushed_only = image && linkable;
  uint32_t pieces = 1;
  std::string payload;
  if (incremental) {
    pieces = below->pieces + 1;
    payload = SerializeDeltaPiece(below->address, pieces,
                                  Materialize(head, *s, below).deltas);
  } else {
    payload = SerializeImage(Materialize(flushed_only ? below : head, *s));
  }
  const uint32_t type = incremental ? kPageDeltaRecord : kPageImageRecord;
  absl::StatusOr<StoreReservation> r =
      log_->Reserve(payload.size(), RecordTag{.type = type, .key = pid});
  if (!r.ok()) return r.status();
  const uint64_t address = r->address();
  const uint64_t footprint = RecordFootprint(payload.size());
  // A relocation of a page not flushed since its UpdateR writes it as it
  // is now, so it takes along changes no flush wrote yet. Counted as
  // relocated until the page's next Flush finds them (CreditCarried); set
  // before the CAS, which makes the node visible to that Flush. What an
  // earlier relocation below took along and no Flush has found yet goes
  // along again, taken over once the CAS is won (a Flush or Evict that
  // wins instead counts it).
  const uint64_t carried = image && !linkable ? footprint : 0;
  if (image) relocated_bytes_.fetch_add(footprint, std::memory_order_relaxed);
  Node* flush = new Node{.kind = Node::Kind::kFlush,
                         .address = address,
                         .pieces = pieces,
                         .carried = static_cast<uint32_t>(carried),
                         .image = incremental ? below->image : address,
                         .next = flushed_only ? below->next : head};
  // In place of the flush below, under copies of the deltas since.
  Node* desired = flushed_only ? CopyDeltas(head, below, flush) : flush;
  const PieceRef piece = {.address = address,
                          .bytes = static_cast<uint32_t>(footprint)};
  bool won = false;
  {
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    won = table_->CompareAndSwap(pid, *s, PageState::InMemory(desired));
    if (won) {
      Chain next;
      if (incremental) next = stripe.chains[pid];
      next.push_back(piece);
      SetChain(pid, std::move(next));
    }
  }
  if (won) {
    std::memcpy(r->payload().data(), payload.data(), payload.size());
    log_->Commit(*std::move(r));
    if (flushed_only) {
      flush->carried.fetch_add(
          below->carried.exchange(0, std::memory_order_relaxed),
          std::memory_order_relaxed);
      epochs_.Retire(const_cast<Node*>(head), DeleteThroughFlushErased);
    }
    (incremental ? flushed_pieces_ : flushed_images_)
        .fetch_add(1, std::memory_order_relaxed);
    if (linkable && !incremental && !image) {
      consolidations_.fetch_add(1, std::memory_order_relaxed);
    }
    flushed_bytes_.fetch_add(footprint, std::memory_order_relaxed);
    // A Flush that links to a relocation or consolidates over it.
    if (linkable && !image) CreditCarried(below);
    return address;
  }
  if (image) relocated_bytes_.fetch_sub(footprint, std::memory_order_relaxed);
  DeleteDownTo(desired, flush->next);
  AbandonFlush(pid, *std::move(r));
  return Changed(pid);
}

void PageStore::AbandonFlush(uint64_t pid, StoreReservation r) {
  // The space must still hold a record, one that recovery knows to skip.
  const size_t bytes = r.payload().size();
  std::memset(r.payload().data(), 0, bytes);
  r.set_tag(RecordTag{.type = kFailedFlushRecord, .key = pid});
  log_->Commit(std::move(r));
  failed_flushes_.fetch_add(1, std::memory_order_relaxed);
  failed_bytes_.fetch_add(RecordFootprint(bytes), std::memory_order_relaxed);
  flushed_bytes_.fetch_add(RecordFootprint(bytes), std::memory_order_relaxed);
}

absl::StatusOr<bool> PageStore::MovePiece(uint64_t pid, uint64_t from,
                                          uint64_t address) {
  EpochGuard guard(epochs_);
  absl::StatusOr<PageState> s = table_->Read(pid);
  if (!s.ok()) return s.status();
  if (s->is_free()) return false;
  // The piece must be what the page's state rests on: the address of an
  // evicted page, or the top flush node, under deltas not flushed yet. A
  // page replaced since its last flush (no flush node above its base) or
  // under a Free is relocated whole.
  const Node* head = nullptr;
  const Node* top = nullptr;
  if (s->on_log()) {
    if (s->address() != address) return false;
  } else {
    head = Head(*s);
    for (top = head; top->kind == Node::Kind::kDelta; top = top->next) {
    }
    if (top->kind != Node::Kind::kFlush || top->address != address) {
      return false;
    }
  }
  uint64_t below = 0;  // the piece it links to
  {
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    const auto it = stripe.chains.find(pid);
    if (it == stripe.chains.end() || it->second.back().address != address ||
        !Movable(it->second, from)) {
      return false;
    }
    below = it->second.end()[-2].address;
  }
  // Read from the range being cleaned, which stays until the copies are
  // durable; the page's chain said what must be there.
  absl::StatusOr<LogRecord> original = log_->Read(address);
  if (!original.ok()) return original.status();
  absl::string_view piece = original->payload;
  uint64_t link = 0;
  if (original->tag.type != kPageDeltaRecord || original->tag.key != pid ||
      !GetU64(piece, link) || link != below) {
    return absl::DataLossError(absl::StrCat(
        log_->path(), ": offset ", address, ": not the delta piece of page ",
        pid, " linked to offset ", below, " that its chain holds (type ",
        original->tag.type, ", key ", original->tag.key, ")"));
  }
  piece = original->payload;
  absl::StatusOr<StoreReservation> r = log_->Reserve(
      piece.size(), RecordTag{.type = kPageDeltaRecord, .key = pid});
  if (!r.ok()) return r.status();
  const uint64_t copy = r->address();
  const uint32_t footprint =
      static_cast<uint32_t>(RecordFootprint(piece.size()));
  PageState desired = PageState::OnLog(copy);
  Node* fresh = nullptr;  // the new nodes, head first
  if (top != nullptr) {
    // A piece's flush node carries nothing: only images are relocations.
    fresh = CopyDeltas(head, top,
                       new Node{.kind = Node::Kind::kFlush,
                                .address = copy,
                                .pieces = top->pieces,
                                .image = top->image,
                                .next = top->next});
    desired = PageState::InMemory(fresh);
  }
  bool won = false;
  {
    Stripe& stripe = StripeOf(pid);
    std::lock_guard<std::mutex> lock(stripe.mu);
    won = table_->CompareAndSwap(pid, *s, desired);
    if (won) {
      Chain next = stripe.chains[pid];
      next.back() = {.address = copy, .bytes = footprint};
      SetChain(pid, std::move(next));
    }
  }
  if (!won) {
    if (fresh != nullptr) DeleteDownTo(fresh, top->next);
    AbandonFlush(pid, *std::move(r));
    return Changed(pid);
  }
  std::memcpy(r->payload().data(), piece.data(), piece.size());
  log_->Commit(*std::move(r));
  if (head != nullptr) {
    epochs_.Retire(const_cast<Node*>(head), DeleteThroughFlushErased);
  }
  moved_.fetch_add(1, std::memory_order_relaxed);
  flushed_pieces_.fetch_add(1, std::memory_order_relaxed);
  relocated_bytes_.fetch_add(footprint, std::memory_order_relaxed);
  flushed_bytes_.fetch_add(footprint, std::memory_order_relaxed);
  return true;
}

void PageStore::CreditCarried(const Node* flush) {
  // This Flush would have written what the relocation took along: new page
  // state, not moved. One that an UpdateR or a Free drops first stays
  // relocated (it was written for the cleaner's sake alone).
  const uint64_t carried =
      flush->carried.exchange(0, std::memory_order_relaxed);
  if (carried == 0) return;
  relocated_bytes_.fetch_sub(carried, std::memory_order_relaxed);
  relocated_new_bytes_.fetch_add(carried, std::memory_order_relaxed);
}

bool PageStore::Movable(const Chain& c, uint64_t from) {
  // Only a chain's first piece is an image; the copy links to what the
  // original does, a piece whose address is known (a version 1
  // checkpoint's placeholder for pieces not known has none).
  return c.size() >= 2 && c.back().bytes != 0 && c.end()[-2].address != 0 &&
         c.end()[-2].address < from;
}

void PageStore::CountChain(const Chain& c, bool add, bool whole) {
  // A region holds its pieces live; cleaning it writes each of their pages
  // whole, about its chain's bytes, except where the page has only its
  // newest piece, a delta piece: that is copied (MovePiece), unless the
  // page was given a new base since (`whole`).
  uint64_t total = 0;
  for (const PieceRef& p : c) total += p.bytes;
  const bool movable =
      !whole && Movable(c, RegionStart(c.empty() ? 0 : c.back().address));
  uint64_t last = UINT64_MAX;
  for (const PieceRef& p : c) {
    const uint64_t region = RegionStart(p.address);
    RegionUse& use = regions_[region];
    use.live = add ? use.live + p.bytes
                   : use.live - std::min<uint64_t>(use.live, p.bytes);
    if (region == last) continue;
    last = region;
    const uint64_t cost =
        movable && &p == &c.back() ? uint64_t{p.bytes} : total;
    use.relocation = add ? use.relocation + cost
                         : use.relocation - std::min(use.relocation, cost);
  }
}

void PageStore::SetChain(uint64_t pid, Chain next) {
  Stripe& stripe = StripeOf(pid);
  Chain& chain = stripe.chains[pid];
  // Any new chain ends the page's time on a new base: a flush or a
  // relocation wrote it, or a free dropped it (a copied piece needs a
  // flush node, so never follows an UpdateR).
  const bool was_replaced = stripe.replaced.erase(pid) != 0;
  {
    std::lock_guard<std::mutex> lock(regions_mu_);
    CountChain(chain, false, was_replaced);
    CountChain(next, true, false);
  }
  if (next.empty()) {
    stripe.chains.erase(pid);
  } else {
    chain = std::move(next);
  }
}

bool PageStore::ChainIn(uint64_t pid, uint64_t from, uint64_t to) {
  Stripe& stripe = StripeOf(pid);
  std::lock_guard<std::mutex> lock(stripe.mu);
  const auto it = stripe.chains.find(pid);
  if (it == stripe.chains.end()) return false;
  const Chain& chain = it->second;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i].address >= from && chain[i].address < to) return true;
    // A piece of no bytes stands for pieces not known, up to the next.
    if (chain[i].bytes == 0 && i + 1 < chain.size() &&
        chain[i].address < to && chain[i + 1].address > from) {
      return true;
    }
  }
  return false;
}

bool PageStore::ChainAbove(uint64_t pid, uint64_t address) {
  Stripe& stripe = StripeOf(pid);
  std::lock_guard<std::mutex> lock(stripe.mu);
  const auto it = stripe.chains.find(pid);
  return it != stripe.chains.end() && it->second.back().address > address;
}

void PageStore::CountFree(uint64_t address, size_t payload_bytes) {
  std::lock_guard<std::mutex> lock(regions_mu_);
  regions_[RegionStart(address)].live += RecordFootprint(payload_bytes);
}

PageStore::RegionUse PageStore::region_use(uint64_t from) {
  std::lock_guard<std::mutex> lock(regions_mu_);
  const auto it = regions_.find(RegionStart(from));
  return it == regions_.end() ? RegionUse{} : it->second;
}

uint64_t PageStore::RegionStart(uint64_t address) const {
  const uint64_t grid = address - address % region_bytes_;
  const auto it = cuts_.upper_bound(address);
  return it == cuts_.begin() ? grid : std::max(grid, *std::prev(it));
}

uint64_t PageStore::RegionEnd(uint64_t start) const {
  const uint64_t grid = start - start % region_bytes_ + region_bytes_;
  const auto it = cuts_.upper_bound(start);
  return it == cuts_.end() ? grid : std::min(grid, *it);
}

absl::Status PageStore::CutRegion() {
  // Holding append_mu_, which every piece's append holds too (a flush's,
  // a relocation's), so that no piece is counted past the cut before it
  // exists (its count would be taken back from another region). A Free's
  // record may be, in the region before: free records' counts are never
  // taken back, only forgotten with their region.
  if (absl::Status s = log_->Sync(); !s.ok()) return s;
  const uint64_t cut = log_->HiStable();
  std::lock_guard<std::mutex> lock(regions_mu_);
  // No region shorter than a buffer on either side: a block starts in
  // every buffer's length (a block is a buffer at most), so every region
  // has one, or cleaning it would free nothing; a region that ends in the
  // block its neighbour's release frees would look released; and a small
  // region's block padding would look like free space to clean it for.
  const uint64_t start = RegionStart(cut);
  if (cut - start >= buffer_bytes_ &&
      RegionEnd(start) - cut >= buffer_bytes_) {
    cuts_.insert(cut);
  }
  return absl::OkStatus();
}

void PageStore::ForgetRegions(uint64_t from, uint64_t to) {
  // What is left of a region the log let go of is the estimate's error.
  std::lock_guard<std::mutex> lock(regions_mu_);
  // From the region that holds `from`: one the head was inside before.
  from = RegionStart(from);
  for (auto it = regions_.lower_bound(from);
       it != regions_.end() && it->first < to;) {
    it = RegionEnd(it->first) <= to ? regions_.erase(it) : std::next(it);
  }
  for (auto it = cuts_.lower_bound(from); it != cuts_.end() && *it < to;) {
    it = RegionEnd(*it) <= to ? cuts_.erase(it) : std::next(it);
  }
}

bool PageStore::BeingFreed(uint64_t pid) {
  EpochGuard guard(epochs_);
  absl::StatusOr<PageState> s = table_->Read(pid);
  return s.ok() && s->in_memory() &&
         Head(*s)->kind == Node::Kind::kFreeing;
}

absl::StatusOr<bool> PageStore::Relocate(uint64_t pid, uint64_t from,
                                         uint64_t to, uint64_t piece) {
  for (;;) {
    // A Free under way appends its record before it clears the page's
    // chain and frees the PID (or puts the page back if it cannot): once
    // the chain is clear, the Sync before the range goes covers the
    // record, so recovery never finds the page's pieces gone without its
    // free. It waits for nothing but one Append.
    while (BeingFreed(pid)) std::this_thread::yield();
    // The background cleaner's pass may hold append_mu_ already
    // (CleanBlocks takes it before the pass's first relocation).
    std::shared_lock<std::shared_mutex> appending(append_mu_,
                                                  std::defer_lock);
    if (separate_relocations_ &&
        (std::this_thread::get_id() != cleaner_.get_id() ||
         pass_lock_ == nullptr || !pass_lock_->owns_lock())) {
      appending.lock();
    }
    if (!ChainIn(pid, from, to)) return false;
    absl::StatusOr<bool> moved =
        piece == 0 ? false : MovePiece(pid, from, piece);
    if (moved.ok() && *moved) return true;
    absl::Status status = moved.status();
    if (moved.ok()) status = FlushPiece(pid, /*image=*/true).status();
    if (status.ok()) return true;
    // Evicted and now loaded, changed meanwhile, or a Free began after
    // the look (FailedPrecondition: free, and the Free may yet fail and
    // put the page back): look again.
    if (status.code() != absl::StatusCode::kAborted &&
        status.code() != absl::StatusCode::kFailedPrecondition) {
      return status;
    }
  }
}

absl::Status PageStore::Clean(uint64_t to) {
  return CleanBlocks(log_->head(), to, /*truncate=*/true);
}

absl::Status PageStore::CleanRange(uint64_t from, uint64_t to) {
  return CleanBlocks(from, to, /*truncate=*/false);
}

absl::Status PageStore::CleanBlocks(uint64_t from, uint64_t to,
                                    bool truncate) {
  // Another cleaning could release blocks this one reads. One of a caller's
  // relocates under append_mu_ shared: the background cleaner's pass,
  // holding it, lets it go for that one first (and cuts its regions).
  std::unique_lock<std::mutex> cleaning(cleaning_mu_, std::try_to_lock);
  if (!cleaning.owns_lock()) {
    if (std::this_thread::get_id() == cleaner_.get_id() &&
        pass_lock_ != nullptr && pass_lock_->owns_lock()) {
      if (absl::Status s = CutRegion(); !s.ok()) return s;
      pass_lock_->unlock();
    }
    cleaning.lock();
  }
  // Truncate keeps the block that holds `to`; Release frees whole blocks,
  // the last one's records past `to` too, so its pieces count as well.
  const uint64_t head = log_->head();
  const bool at_head = from <= head;
  if (at_head) from = head;
  // Nothing to clean, but what was appended before is durable on return,
  // as after any cleaning.
  if (to <= from) return log_->Sync();
  if (!truncate && to > log_->CheckpointBoundary()) {
    return absl::InvalidArgumentError(absl::StrCat(
        log_->path(), ": cannot clean [", from, ", ", to, "): it reaches past ",
        "the durable blocks, which end at ", log_->CheckpointBoundary()));
  }
  // Refused before any page is relocated: relocations that the release
  // then refuses would only use up the room left.
  if (const size_t holes = truncate ? 0 : log_->HolesAfterRelease(from, to);
      holes > kMaxHoles) {
    return absl::ResourceExhaustedError(absl::StrCat(
        log_->path(), ": cannot clean [", from, ", ", to, "): its release ",
        "would leave ", holes, " released ranges, more than the ", kMaxHoles,
        " the superblock lists; clean a range next to one, or the head's"));
  }
  // The pages with pieces there, in the order of their first piece, and
  // the frees: every record of the range is read once.
  struct Found {
    uint64_t pid = 0;
    uint64_t address = 0;  // a page's first piece there; a free's record
    uint64_t block = 0;    // the block that holds it
    uint64_t freed_at = 0;  // a free: the address of the free it stands for
    // A page's first piece there is a delta piece, which MovePiece may
    // copy alone.
    bool delta = false;
  };
  std::vector<Found> first;
  std::vector<Found> frees;
  uint64_t end = to;
  {
    std::set<uint64_t> seen;
    // Reads sized to the range: a small one must not read megabytes.
    const size_t read_bytes = static_cast<size_t>(
        std::clamp<uint64_t>(to - from, 64 << 10, 1 << 20));
    absl::StatusOr<std::unique_ptr<LogReader>> reader = log_->NewLogReader(
        from, {.read_bytes = read_bytes, .reads_in_flight = 4, .to = to});
    if (!reader.ok()) return reader.status();
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next();
      if (!more.ok()) return more.status();
      const RecordView& r = (*reader)->record();
      if (!*more || (truncate && r.address >= to)) break;
      end = std::max(end, r.address + 1);
      const uint32_t type = r.tag.type;
      Found found = {.pid = r.tag.key,
                     .address = r.address,
                     .block = (*reader)->block(),
                     .freed_at = r.address,
                     .delta = type == kPageDeltaRecord};
      if ((type == kPageImageRecord || type == kPageDeltaRecord) &&
          seen.insert(r.tag.key).second) {
        first.push_back(found);
        continue;
      }
      absl::string_view in = r.payload;
      if (type == kPageFreedRecord ||
          (type == kPageTombstoneRecord && GetU64(in, found.freed_at))) {
        frees.push_back(found);
      }
    }
  }
  // Each page with a piece there is written whole at the tail, or its
  // newest piece copied (MovePiece); a lost race means the page changed,
  // and its new flushed state (or current state, with no flush since its
  // UpdateR) is written instead. A page
  // freed meanwhile needs nothing. If the log fills up on the way, what
  // lies below the first page not relocated still goes: up to its record
  // (Truncate) or its block (Release).
  // The background cleaner's pass keeps flushes out from its first
  // relocation on (CleanerOptions::separate_relocations): from the first
  // page with a piece still in the range, so that a cleaning of dead pieces
  // alone keeps no flush waiting. A page that died meanwhile (a flush
  // under way, a Free) is looked at again once flushes are out.
  const bool pass = std::this_thread::get_id() == cleaner_.get_id() &&
                    pass_lock_ != nullptr;
  std::vector<uint64_t> evicted;
  absl::Status status;
  uint64_t done_to = to;
  for (const Found& f : first) {
    if (pass && !pass_lock_->owns_lock() && ChainIn(f.pid, from, end)) {
      pass_lock_->lock();
      if (!ChainIn(f.pid, from, end)) {
        pass_lock_->unlock();
      } else {
        passes_apart_.fetch_add(1, std::memory_order_relaxed);
        if (absl::Status s = CutRegion(); !s.ok()) return s;
      }
    }
    absl::StatusOr<PageState> before = table_->Read(f.pid);
    // At the head no chain has a piece below the range: nothing to copy.
    absl::StatusOr<bool> moved =
        Relocate(f.pid, from, end, f.delta && !at_head ? f.address : 0);
    if (!moved.ok()) {
      status = moved.status();
      done_to = truncate ? f.address : f.block;
      break;
    }
    if (moved.ok() && *moved) {
      relocated_.fetch_add(1, std::memory_order_relaxed);
    }
    if (before.ok() && before->on_log()) evicted.push_back(f.pid);
  }
  if (!status.ok() &&
      status.code() != absl::StatusCode::kResourceExhausted) {
    return status;
  }
  // Below the head nothing older than a free is left, but below a released
  // range there may be: the free must stay in the log while its PID has no
  // piece since (a later life of it, which the tombstone leaves alone), and
  // until the head passes the free it stands for (the life it ended lies
  // below that). One that cannot be written keeps the whole range.
  for (const Found& f : frees) {
    if (at_head || f.freed_at < head ||
        (!status.ok() && f.block >= done_to) ||
        ChainAbove(f.pid, f.freed_at)) {
      continue;
    }
    std::string payload;
    PutU64(payload, f.freed_at);
    absl::StatusOr<uint64_t> a = log_->Append(
        payload, RecordTag{.type = kPageTombstoneRecord, .key = f.pid});
    if (!a.ok()) return a.status();
    CountFree(*a, payload.size());
  }
  // Durable before the range goes: the relocated images and tombstones,
  // and the chains of the pages skipped above (their newest pieces may not
  // be durable yet).
  if (absl::Status s = log_->Sync(); !s.ok()) return s;
  const uint64_t gone_to = truncate || !status.ok() ? done_to : end;
  const uint64_t release_to = status.ok() ? to : done_to;
  {
    // Recovery can resume from the newest checkpoint only while its
    // records are in the log and the head is below its resume address:
    // write a newer one first if this takes either away.
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    const bool drops =
        truncate ? gone_to > log_->checkpoint_resume()
                 : log_->ReleaseDropsCheckpoint(from, release_to);
    if (checkpoints_ && log_->checkpoint_resume() != 0 && drops) {
      // One that does not fit (or finds the log full) is left out: the
      // old one is dropped, and recovery reads from the head.
      if (absl::Status s = CheckpointLocked();
          !s.ok() && s.code() != absl::StatusCode::kResourceExhausted) {
        return s;
      }
    }
    absl::Status s = truncate ? log_->Truncate(done_to)
                              : log_->Release(from, release_to);
    if (!s.ok()) return s;
  }
  ForgetRegions(from, truncate ? log_->head() : gone_to);
  if (status.ok()) cleanings_.fetch_add(1, std::memory_order_relaxed);
  // What was evicted stays so; one changed meanwhile stays in memory.
  for (uint64_t pid : evicted) Evict(pid).IgnoreError();
  return status;
}

absl::StatusOr<Hole> PageStore::CleanNext() {
  const uint64_t head = log_->head();
  const uint64_t boundary = log_->CheckpointBoundary();
  const std::vector<Hole> holes = log_->holes();
  // A released region's hole starts at its first block, within a buffer of
  // its start, and reaches at least its end.
  auto released = [&](uint64_t from, uint64_t to) {
    return std::any_of(holes.begin(), holes.end(), [&](const Hole& h) {
      return h.begin < from + buffer_bytes_ && h.end >= to;
    });
  };
  // Near the limit, a new range must merge with one (or be the head's).
  const bool merge_only = holes.size() + 4 >= kMaxHoles;
  auto adds_a_hole = [&](uint64_t from, uint64_t to) {
    return log_->HolesAfterRelease(from, to) > holes.size();
  };
  // The regions from the head's to the last that ends in durable blocks
  // (the head's alone to clean the oldest), with what the cleaner knows of
  // each, and the one after them, which the last one's block may reach.
  struct Candidate {
    uint64_t begin = 0;
    uint64_t end = 0;
    RegionUse use;
    bool cut = false;  // ends where a block does (at a cut)
  };
  std::vector<Candidate> regions;
  {
    std::lock_guard<std::mutex> lock(regions_mu_);
    uint64_t last_end = boundary;
    if (policy_ == CleaningPolicy::kOldest) {
      last_end = std::min(last_end, RegionEnd(RegionStart(head)));
    }
    for (uint64_t k = RegionStart(head);; k = RegionEnd(k)) {
      const auto it = regions_.find(k);
      regions.push_back(
          {.begin = k,
           .end = RegionEnd(k),
           .use = it == regions_.end() ? RegionUse{} : it->second,
           .cut = cuts_.count(RegionEnd(k)) != 0});
      if (regions.back().end > last_end) break;
    }
  }
  // The relocations must fit in what is free until the region goes, and
  // leave the reserve for the head's region, which cleaning in order
  // always frees in the end.
  const uint64_t room = capacity_bytes_ != 0 ? FreeBytes() : UINT64_MAX;
  const uint64_t end = log_->AppendedEnd();
  std::optional<uint64_t> best;
  double best_score = -1;
  // When none leaves the reserve (the relocations of earlier cleanings
  // came out larger than their estimates: pages grow, and a region's last
  // block reaches into the next), the one that gains the most room, if
  // half as much again as its estimate fits. Cleaning the head's region
  // instead may write more than it frees, and the room shrinks to nothing.
  std::optional<uint64_t> roomiest;
  uint64_t roomiest_gain = 0;
  bool any = false;
  for (size_t i = 0; i + 1 < regions.size(); ++i) {
    const Candidate& c = regions[i];
    const bool heads = i == 0;
    if (!heads && released(c.begin, c.end)) continue;
    if (merge_only && !heads && adds_a_hole(c.begin, c.end)) continue;
    any = true;
    const RegionUse& use = c.use;
    if (policy_ == CleaningPolicy::kOldest) {
      best = i;
      break;
    }
    const uint64_t size = c.end - c.begin;
    const uint64_t from = std::max(c.begin, head);
    const uint64_t freed = c.end - from;
    // What cleaning it writes before its space comes back: its pages,
    // whole, and those of its last block, which may reach a buffer into
    // the next region (not past a cut); and a checkpoint first if the
    // release drops the newest.
    const Candidate& next = regions[i + 1];
    const uint64_t next_size = next.end - next.begin;
    uint64_t need = use.relocation;
    if (!c.cut) {
      need += next.use.relocation * std::min(buffer_bytes_, next_size) /
              next_size;
    }
    if (checkpoints_ && log_->ReleaseDropsCheckpoint(from, c.end)) {
      need += checkpoint_bytes_.load(std::memory_order_relaxed);
    }
    if (need < freed && need * 3 / 2 < room &&
        freed - need > roomiest_gain) {
      roomiest = i;
      roomiest_gain = freed - need;
    }
    if (use.live >= size || need + reserve_bytes_ > room) continue;
    // LFS's cost-benefit: space freed times its age (bytes appended since
    // the region was written), over the cost of reading the region and
    // writing its live bytes. Cold regions are cleaned fuller than hot
    // ones, whose pieces are still dying. A relocated page is written
    // whole, which frees its pieces elsewhere too: in the end cleaning
    // gains the region less its live bytes.
    const double free = double(size - use.live);
    const double age =
        double(end - std::min(end, c.end)) + double(region_bytes_);
    const double score = free * age / (double(size) + double(use.live));
    if (score > best_score) {
      best = i;
      best_score = score;
    }
  }
  if (!any) {
    // As after any cleaning, what was appended before is durable.
    if (absl::Status s = log_->Sync(); !s.ok()) return s;
    return Hole{};
  }
  // None that leaves the reserve: the roomiest; none whose relocations fit
  // at all: the head's, relocated as far as it goes (its pages' other
  // pieces, further on, die with them).
  if (!best.has_value()) best = roomiest.value_or(0);
  const uint64_t from = std::max(regions[*best].begin, head);
  const uint64_t to = regions[*best].end;
  if (absl::Status s = CleanRange(from, to); !s.ok()) return s;
  return Hole{.begin = from, .end = to};
}

PageStore::FlushStats PageStore::flush_stats() const {
  FlushStats stats;
  stats.images = flushed_images_.load(std::memory_order_relaxed);
  stats.consolidations = consolidations_.load(std::memory_order_relaxed);
  stats.delta_pieces = flushed_pieces_.load(std::memory_order_relaxed);
  stats.failed = failed_flushes_.load(std::memory_order_relaxed);
  stats.bytes = flushed_bytes_.load(std::memory_order_relaxed);
  stats.failed_bytes = failed_bytes_.load(std::memory_order_relaxed);
  stats.relocated = relocated_.load(std::memory_order_relaxed);
  stats.moved = moved_.load(std::memory_order_relaxed);
  stats.relocated_bytes = relocated_bytes_.load(std::memory_order_relaxed);
  stats.relocated_new_bytes =
      relocated_new_bytes_.load(std::memory_order_relaxed);
  stats.cleanings = cleanings_.load(std::memory_order_relaxed);
  stats.passes_apart = passes_apart_.load(std::memory_order_relaxed);
  return stats;
}

absl::Status PageStore::Evict(uint64_t pid) {
  EpochGuard guard(epochs_);
  absl::StatusOr<PageState> s = table_->Read(pid);
  if (!s.ok()) return s.status();
  if (s->is_free()) return IsFree(pid);
  if (s->on_log()) return absl::OkStatus();
  const Node* head = Head(*s);
  if (head->kind == Node::Kind::kFreeing) return IsFree(pid);
  if (head->kind != Node::Kind::kFlush) {
    return absl::FailedPreconditionError(absl::StrCat(
        "page ", pid, " has changes that are not flushed; Flush it first"));
  }
  if (head->address >= log_->HiStable()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "page ", pid, ": its flush at ", head->address,
        " is not stable yet; MkStable it first"));
  }
  if (!table_->CompareAndSwap(pid, *s, PageState::OnLog(head->address))) {
    return Changed(pid);
  }
  // Evicting needs the page flushed: this would have.
  CreditCarried(head);
  Retire(*s);
  return absl::OkStatus();
}

}  // namespace lss
