// lsstool: look inside a log file without writing C++.
//
//   ./bazelw run //tools:lsstool -- verify /path/to/log
//   ./bazelw run //tools:lsstool -- dump --from=8192 --limit=10 /path/to/log
//   ./bazelw run //tools:lsstool -- stats --json /path/to/log
//   ./bazelw run //tools:lsstool -- salvage --out=/path/to/new /path/to/log
//
//   ./bazelw run //tools:lsstool -- pages --pid=3 /path/to/page/log
//
// Every command opens the log read-only through the store's public API, so
// it sees exactly what the store's recovery sees. Exit codes: 0 everything
// verifies, 1 the log is damaged (DataLoss: corrupt or cut), 2 it could not
// be read (missing, not a log file, locked, I/O error), 64 usage error.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "flush/file.h"
#include "gflags/gflags.h"
#include "lss/format.h"
#include "lss/log_structured_store.h"
#include "lss/superblock_io.h"
#include "mapping/page_store.h"
#include "tools/progress.h"

DEFINE_bool(json, false,
            "print one JSON object per record (dump) or page (pages) and one "
            "JSON summary object as the last line of stdout");
DEFINE_uint64(from, 0, "dump: first address");
DEFINE_uint64(to, UINT64_MAX, "dump: stop before this address");
DEFINE_uint64(limit, 0, "dump: at most this many records (0: all)");
DEFINE_string(out, "", "salvage: the new log to write (must not exist)");
DEFINE_int64(pid, -1, "pages: print this page (its base and deltas)");
DEFINE_uint32(regions, 16,
              "stats of a page log: the live log is split into this many "
              "regions, each with the fraction of its bytes that live pages "
              "still need (what a cleaner would see)");
DEFINE_string(recovery, "tolerate_tail",
              "dump, stats, pages: how to open the log: tolerate_tail (what a "
              "writer's open keeps), absolute, point_in_time or "
              "skip_corrupted (every record that verifies)");

namespace lss {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitDamaged = 1;
constexpr int kExitUnreadable = 2;
constexpr int kExitUsage = 64;

constexpr char kUsage[] =
    R"(look inside a log file (read-only, except salvage's new log)

usage: lsstool COMMAND [flags] FILE

commands:
  verify FILE     checks both superblock slots, every block and every record;
                  lists each problem with its offset
  dump FILE       one line per record: address, length, type, key, preview
                  (--from, --to, --limit, --json, --recovery)
  stats FILE      superblocks, epoch, head, tail, blocks, records, payload
                  and padding bytes, record-size histogram; for a page log
                  also live pages, pieces per page and the live fraction of
                  each of --regions parts of the log (--json, --recovery)
  salvage FILE --out=NEW
                  copies every record whose checksum verifies into a new log
                  with the same block and buffer sizes. Addresses are
                  remapped: records keep their order, type and key, not their
                  addresses. Refuses if NEW exists. Exits 0 if nothing was
                  lost, 1 if damaged ranges were skipped (NEW holds the rest).
  pages FILE      for a PageStore log: every page recovery restores (its
                  newest flushed piece, an image or a delta piece, unless a
                  later record freed it), by PID, with that piece's address
                  and size, "image" in the output (--json, --recovery).
                  Exit 2 if the log holds no page records.
  pages --pid=N FILE
                  that page: its base and deltas as text or hex previews
                  (--json: every byte, as hex). Exit 2 if N is free.

exit codes: 0 everything verifies, 1 the log is damaged (corrupt or cut),
2 it could not be read (missing, not a log file, locked, I/O error; an I/O
error the kernel reports as EIO counts as damage), 64 usage error.

An empty (0-byte) file is a log no one has written yet: verify says so and
exits 0.

Beside a writer: verify checks a log that a writer has open without taking
the lock, so it neither waits for the writer nor holds it up. It verifies
everything the writer had written when the scan passed (at least its durable
point); a torn or missing block past that is the writer's work in progress,
not damage. Damage below what the file proves acknowledged is still exit 1.
dump, stats, pages and salvage take a shared lock: with a writer live they
exit 2 at once, and a writer that opens the log while they read waits for
them (StoreOptions::lock_wait, 2 s) and fails if they are still reading.

Long runs draw a progress line (bytes, rate, time left) on stderr, only when
stderr is a terminal.
)";

// --- JSON output -----------------------------------------------------------

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Builds one JSON object, fields in the order added.
class Json {
 public:
  Json& Num(absl::string_view key, uint64_t v) {
    return Raw(key, absl::StrCat(v));
  }
  Json& Str(absl::string_view key, absl::string_view v) {
    return Raw(key, JsonString(v));
  }
  Json& Bool(absl::string_view key, bool v) {
    return Raw(key, v ? "true" : "false");
  }
  Json& Strs(absl::string_view key, const std::vector<std::string>& v) {
    std::vector<std::string> quoted;
    for (const std::string& s : v) quoted.push_back(JsonString(s));
    return Raw(key, absl::StrCat("[", absl::StrJoin(quoted, ", "), "]"));
  }
  Json& Raw(absl::string_view key, absl::string_view raw) {
    absl::StrAppend(&body_, body_.empty() ? "" : ", ", JsonString(key), ": ",
                    raw);
    return *this;
  }
  std::string str() const { return absl::StrCat("{", body_, "}"); }

 private:
  std::string body_;
};

// --- Superblock probe --------------------------------------------------------

// One superblock slot as the store classifies it (lss/superblock_io.h),
// for an operator to read.
struct Slot {
  uint64_t offset = 0;
  std::string state;  // valid, empty, damaged, foreign, newer format
  std::string detail;
  std::optional<Superblock> sb;
};

struct Probe {
  uint64_t file_bytes = 0;
  Slot slots[2];
  // The valid slot with the higher sequence: its sizes open the store.
  std::optional<Superblock> current;
};

// `lock` false: without the shared lock (for a log a writer has open).
absl::StatusOr<Probe> ProbeFile(const std::string& path, bool lock = true) {
  absl::StatusOr<std::unique_ptr<File>> file = OpenPosixFile(
      path, FileOptions{.read_only = true, .direct_io = false, .lock = lock});
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  Probe probe;
  probe.file_bytes = *size;
  if (*size == 0) {
    probe.slots[0].state = probe.slots[1].state = "empty";
    return probe;
  }
  absl::StatusOr<std::array<SuperblockSlot, 2>> slots =
      ReadSuperblockSlots(**file, /*block_bytes=*/4096);
  if (!slots.ok()) return slots.status();
  for (int i = 0; i < 2; ++i) {
    const SuperblockSlot& from = (*slots)[i];
    Slot& to = probe.slots[i];
    to.offset = from.offset;
    to.state = SlotKindName(from.kind);
    to.detail = std::string(from.error.message());
    if (from.kind == SlotKind::kValid) to.sb = from.sb;
  }
  for (const Slot& s : probe.slots) {
    if (s.sb && (!probe.current || s.sb->sequence > probe.current->sequence)) {
      probe.current = s.sb;
    }
  }
  return probe;
}

// --- Opening -----------------------------------------------------------------

absl::StatusOr<RecoveryMode> ParseRecovery(const std::string& name) {
  if (name == "tolerate_tail") return RecoveryMode::kTolerateCorruptedTail;
  if (name == "absolute") return RecoveryMode::kAbsoluteConsistency;
  if (name == "point_in_time") return RecoveryMode::kPointInTime;
  if (name == "skip_corrupted") return RecoveryMode::kSkipCorrupted;
  return absl::InvalidArgumentError(
      absl::StrCat("--recovery=", name,
                   ": not tolerate_tail, absolute, point_in_time or "
                   "skip_corrupted"));
}

// The store's Open wants the sizes the file was made with; a file whose
// superblocks say nothing opens with the defaults, and the store's own
// superblock check names what is wrong.
StoreOptions ReadOptions(const Probe& probe, RecoveryMode mode) {
  StoreOptions options;
  options.read_only = true;
  options.recovery = mode;
  options.allow_buffered_fallback = true;
  if (probe.current) {
    options.block_bytes = probe.current->block_bytes;
    options.buffer_bytes = probe.current->buffer_bytes;
  }
  return options;
}

absl::StatusOr<std::unique_ptr<LogStructuredStore>> OpenLog(
    const std::string& path, const Probe& probe, RecoveryMode mode) {
  return LogStructuredStore::Open(path, ReadOptions(probe, mode));
}

// Opens, without the lock, a log a writer has open, and keeps everything
// before the first block that is not valid (kPointInTime). The scan may
// stop at a block the writer had not written yet when the scan passed it
// although a block the writer wrote just after proves it acknowledged; the
// next open gets past such a block, while damage stops every open at the
// same offset. So a stop below the acknowledged watermark counts only when
// two opens in a row make it at the same offset.
absl::StatusOr<std::unique_ptr<LogStructuredStore>> OpenBesideWriter(
    const std::string& path, const Probe& probe) {
  constexpr int kOpens = 8;
  std::optional<uint64_t> last_stop;
  for (int i = 0; i < kOpens; ++i) {
    StoreOptions options = ReadOptions(probe, RecoveryMode::kPointInTime);
    options.lock = false;
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
        LogStructuredStore::Open(path, options);
    if (!store.ok()) return store;
    const RecoveryReport& r = (*store)->recovery();
    if (!r.lost_acknowledged || last_stop == r.tail) return store;
    last_stop = r.tail;
  }
  return absl::UnavailableError(absl::StrCat(
      path, ": a writer has the log open, and ", kOpens,
      " opens in a row stopped below its acknowledged watermark, each at a "
      "later block (the writer kept overtaking the scan); verify again"));
}

int ExitFor(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDataLoss ? kExitDamaged
                                                  : kExitUnreadable;
}

// Walks every record the store recovered, in address order; `visit`
// returns false to stop. Draws a progress line labelled `progress` (none if
// null) over the bytes from `from` to the tail, if stderr is a terminal.
template <typename Visit>
absl::Status Replay(LogStructuredStore& store, uint64_t from,
                    const char* progress, Visit visit) {
  absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader(from);
  if (!reader.ok()) return reader.status();
  const uint64_t start = std::max(from, store.data_start());
  const uint64_t tail = store.recovery().tail;
  std::optional<ProgressLine> line;
  if (progress != nullptr) {
    line.emplace(progress, tail > start ? tail - start : 0);
  }
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    const RecordView& record = (*reader)->record();
    if (line && record.address > start) line->Update(record.address - start);
    if (!visit(record)) return absl::OkStatus();
  }
}

std::string SlotLine(const Slot& s) {
  std::string line = absl::StrCat("offset ", s.offset, ": ", s.state);
  if (s.sb) {
    absl::StrAppend(&line, " (sequence ", s.sb->sequence, ", epoch ",
                    s.sb->epoch, ")");
  }
  if (!s.detail.empty()) absl::StrAppend(&line, " (", s.detail, ")");
  return line;
}

std::string SlotsJson(const Probe& probe) {
  std::vector<std::string> slots;
  for (const Slot& s : probe.slots) {
    Json j;
    j.Num("offset", s.offset).Str("state", s.state);
    if (s.sb) j.Num("sequence", s.sb->sequence).Num("epoch", s.sb->epoch);
    if (!s.detail.empty()) j.Str("detail", s.detail);
    slots.push_back(j.str());
  }
  return absl::StrCat("[", absl::StrJoin(slots, ", "), "]");
}

void PrintHeader(const char* command, const std::string& path,
                 const Probe& probe) {
  std::printf("lsstool %s: %s (%" PRIu64 " bytes)\n", command, path.c_str(),
              probe.file_bytes);
  for (int i = 0; i < 2; ++i) {
    std::printf("  superblock slot %d  %s\n", i,
                SlotLine(probe.slots[i]).c_str());
  }
  if (probe.current) {
    const Superblock& sb = *probe.current;
    std::printf("  block bytes        %" PRIu32 ", buffer bytes %" PRIu64
                ", data start %" PRIu64 "\n",
                sb.block_bytes, sb.buffer_bytes, sb.data_start);
    std::printf("  epoch              %" PRIu64 " (from offset %" PRIu64
                ")\n",
                sb.epoch, sb.epoch_start);
    std::printf("  head               %" PRIu64 "%s\n", sb.head,
                sb.head > sb.data_start ? " (truncated below)" : "");
    if (sb.checkpoint != 0) {
      std::printf("  checkpoint         record at %" PRIu64 "\n",
                  sb.checkpoint);
    }
    uint64_t released = 0;
    for (const Hole& h : sb.holes) released += h.end - h.begin;
    if (!sb.holes.empty()) {
      std::printf("  holes              %zu, %" PRIu64 " bytes released\n",
                  sb.holes.size(), released);
    }
  }
}

// Reports a failure to open or read before anything was learned.
int Fail(const char* command, const std::string& path,
         const absl::Status& s) {
  const int code = ExitFor(s);
  std::fprintf(stderr, "lsstool %s: %s\n", command,
               std::string(s.message()).c_str());
  if (FLAGS_json) {
    std::printf("%s\n", Json()
                            .Str("command", command)
                            .Str("file", path)
                            .Str("result", code == kExitDamaged
                                               ? "damaged"
                                               : "unreadable")
                            .Str("error", s.message())
                            .Num("exit_code", code)
                            .str()
                            .c_str());
  }
  return code;
}

// --- verify ------------------------------------------------------------------

int Verify(const std::string& path) {
  absl::StatusOr<Probe> probe = ProbeFile(path);
  // A probe's only FailedPrecondition is the lock a writer holds: verify
  // what it has written so far, beside it.
  const bool live =
      probe.status().code() == absl::StatusCode::kFailedPrecondition;
  if (live) probe = ProbeFile(path, /*lock=*/false);
  if (!probe.ok()) return Fail("verify", path, probe.status());
  PrintHeader("verify", path, *probe);
  std::vector<std::string> problems;
  int code = kExitOk;
  auto problem = [&](int exit_code, std::string what) {
    std::printf("problem: %s\n", what.c_str());
    problems.push_back(std::move(what));
    code = std::max(code, exit_code);
  };
  for (const Slot& s : probe->slots) {
    if (s.state == "damaged") {
      problem(kExitDamaged, absl::StrCat("superblock slot at offset ",
                                         s.offset, ": ", s.state, ": ",
                                         s.detail));
    }
  }

  uint64_t tail = 0, blocks = 0, records = 0, payload_bytes = 0;
  uint64_t acknowledged = 0;
  std::string note;
  if (probe->file_bytes == 0) {
    note = "empty file: a log no one has written yet";
  } else if (live) {
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
        OpenBesideWriter(path, *probe);
    if (!store.ok()) {
      problem(ExitFor(store.status()), std::string(store.status().message()));
    } else {
      const RecoveryReport& r = (*store)->recovery();
      tail = r.tail;
      blocks = r.blocks;
      acknowledged = r.acknowledged;
      if (!r.superblock.empty()) problem(kExitDamaged, r.superblock);
      if (r.lost_acknowledged) {
        problem(kExitDamaged,
                absl::StrCat(r.end, "; but every record below offset ",
                             r.acknowledged,
                             " was acknowledged durable, and two opens in a "
                             "row stopped here: the log is damaged (verify "
                             "once the writer has closed it lists every "
                             "damaged range)"));
      }
      absl::Status s =
          Replay(**store, 0, "lsstool verify", [&](const RecordView& rec) {
            ++records;
            payload_bytes += rec.payload.size();
            return true;
          });
      if (!s.ok()) problem(ExitFor(s), std::string(s.message()));
      note = absl::StrCat(
          "a writer has the log open: verified up to offset ", tail,
          ", at least its durable point when the scan passed (the file "
          "proves everything below ",
          acknowledged, " durable); past it the writer is still writing");
    }
  } else {
    absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
        OpenLog(path, *probe, RecoveryMode::kAbsoluteConsistency);
    if (store.ok()) {
      const RecoveryReport& r = (*store)->recovery();
      tail = r.tail;
      blocks = r.blocks;
      if (!r.superblock.empty()) problem(kExitDamaged, r.superblock);
      absl::Status s =
          Replay(**store, 0, "lsstool verify", [&](const RecordView& rec) {
            ++records;
            payload_bytes += rec.payload.size();
            return true;
          });
      if (!s.ok()) problem(ExitFor(s), std::string(s.message()));
      if (s.ok() && records != r.records) {
        problem(kExitDamaged,
                absl::StrCat("recovery counted ", r.records,
                             " records, replaying them found ", records));
      }
      if (r.records == 0 && r.blocks == 0) note = r.end;
    } else if (store.status().code() != absl::StatusCode::kDataLoss) {
      problem(kExitUnreadable, std::string(store.status().message()));
    } else {
      problem(kExitDamaged, std::string(store.status().message()));
      // What can still be read: every valid block and every record whose
      // own checksum verifies, with every range passed over.
      absl::StatusOr<std::unique_ptr<LogStructuredStore>> salvage =
          OpenLog(path, *probe, RecoveryMode::kSkipCorrupted);
      if (!salvage.ok()) {
        problem(ExitFor(salvage.status()),
                absl::StrCat("salvaging open: ", salvage.status().message()));
      } else {
        const RecoveryReport& r = (*salvage)->recovery();
        tail = r.tail;
        blocks = r.blocks;
        for (const std::string& range : r.skipped) {
          problem(kExitDamaged, absl::StrCat("skipped: ", range));
        }
        absl::Status s =
            Replay(**salvage, 0, "lsstool verify", [&](const RecordView& rec) {
              ++records;
              payload_bytes += rec.payload.size();
              return true;
            });
        if (!s.ok()) problem(ExitFor(s), std::string(s.message()));
        note = absl::StrCat(records,
                            " records verify (salvage --out=NEW copies them)");
      }
    }
  }
  const char* result = code == kExitOk         ? "ok"
                       : code == kExitDamaged ? "damaged"
                                              : "unreadable";
  std::printf("  tail               %" PRIu64 "\n", tail);
  std::printf("  blocks             %" PRIu64 "\n", blocks);
  std::printf("  records            %" PRIu64 " (%" PRIu64
              " payload bytes)\n",
              records, payload_bytes);
  if (!note.empty()) std::printf("  note               %s\n", note.c_str());
  std::printf("  result             %s (%zu problems)\n", result,
              problems.size());
  if (FLAGS_json) {
    Json j;
    j.Str("command", "verify").Str("file", path).Str("result", result);
    j.Num("exit_code", code).Num("file_bytes", probe->file_bytes);
    j.Bool("writer_live", live);
    if (live) j.Num("acknowledged", acknowledged);
    j.Raw("superblock_slots", SlotsJson(*probe));
    if (probe->current) {
      j.Num("epoch", probe->current->epoch)
          .Num("data_start", probe->current->data_start);
    }
    j.Num("tail", tail).Num("blocks", blocks).Num("records", records);
    j.Num("payload_bytes", payload_bytes).Strs("problems", problems);
    std::printf("%s\n", j.str().c_str());
  }
  return code;
}


// --- dump --------------------------------------------------------------------

constexpr size_t kPreviewBytes = 32;

// The first kPreviewBytes of a payload: as text if every byte is printable
// ASCII, else as hex.
std::string Preview(absl::string_view payload, bool& text) {
  const absl::string_view head = payload.substr(0, kPreviewBytes);
  text = true;
  for (unsigned char c : head) text = text && c >= 0x20 && c < 0x7f;
  if (text) return std::string(head);
  std::string hex;
  for (unsigned char c : head) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", c);
    hex += buf;
  }
  return hex;
}

// Opens the log as --recovery says, for dump and stats.
absl::StatusOr<std::unique_ptr<LogStructuredStore>> OpenForReading(
    const std::string& path, const Probe& probe) {
  absl::StatusOr<RecoveryMode> mode = ParseRecovery(FLAGS_recovery);
  if (!mode.ok()) return mode.status();
  return OpenLog(path, probe, *mode);
}

int Dump(const std::string& path) {
  absl::StatusOr<Probe> probe = ProbeFile(path);
  if (!probe.ok()) return Fail("dump", path, probe.status());
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
      OpenForReading(path, *probe);
  if (!store.ok()) return Fail("dump", path, store.status());
  uint64_t shown = 0;
  absl::Status s = Replay(
      **store, FLAGS_from,
      // Its lines would cut through the records'.
      isatty(STDOUT_FILENO) ? nullptr : "lsstool dump",
      [&](const RecordView& r) {
        if (r.address >= FLAGS_to) return false;
        if (FLAGS_limit != 0 && shown >= FLAGS_limit) return false;
        ++shown;
        bool text = false;
        const std::string preview = Preview(r.payload, text);
        if (FLAGS_json) {
          std::printf("%s\n", Json()
                                  .Num("address", r.address)
                                  .Num("length", r.payload.size())
                                  .Num("type", r.tag.type)
                                  .Num("key", r.tag.key)
                                  .Str(text ? "text" : "hex", preview)
                                  .str()
                                  .c_str());
        } else {
          std::printf("%" PRIu64 " length=%zu type=%" PRIu32 " key=%" PRIu64
                      " %s%s%s\n",
                      r.address, r.payload.size(), r.tag.type, r.tag.key,
                      text ? "text=" : "hex=", JsonString(preview).c_str(),
                      r.payload.size() > kPreviewBytes ? "..." : "");
        }
        return true;
      });
  const int code = s.ok() ? kExitOk : ExitFor(s);
  if (!s.ok()) {
    std::fprintf(stderr, "lsstool dump: %s\n",
                 std::string(s.message()).c_str());
  }
  if (FLAGS_json) {
    Json j;
    j.Str("command", "dump").Str("file", path).Num("records", shown);
    j.Num("exit_code", code);
    if (!s.ok()) j.Str("error", s.message());
    std::printf("%s\n", j.str().c_str());
  }
  return code;
}

// --- stats -------------------------------------------------------------------

// What a page log holds for a cleaner: which page pieces are still needed
// (every piece of each live page's newest chain) and where they lie.
class PageLiveness {
 public:
  // Every record in address order.
  void Visit(const RecordView& r) {
    const uint64_t pid = r.tag.key;
    if (r.tag.type == kPageFreedRecord) {
      latest_.erase(pid);
      ++page_records_;
      return;
    }
    if (r.tag.type != kPageImageRecord && r.tag.type != kPageDeltaRecord) {
      return;
    }
    ++page_records_;
    Piece piece{.footprint = RecordFootprint(r.payload.size()), .prev = 0};
    if (r.tag.type == kPageDeltaRecord && r.payload.size() >= 8) {
      std::memcpy(&piece.prev, r.payload.data(), 8);
    }
    pieces_[r.address] = piece;
    latest_[pid] = r.address;
  }

  bool any() const { return page_records_ > 0; }
  uint64_t pages() const { return latest_.size(); }

  // Walks each live page's chain: pieces per page, and the live bytes of
  // each of `regions` equal parts of [from, to).
  void Summarise(uint64_t from, uint64_t to, uint32_t regions,
                 uint64_t block) {
    const uint64_t span = to > from ? to - from : 0;
    const uint64_t per = (span + regions - 1) / std::max<uint32_t>(regions, 1);
    region_bytes_ = std::max<uint64_t>(block, (per + block - 1) / block * block);
    region_from_ = from;
    live_.assign(span == 0 ? 0 : (span + region_bytes_ - 1) / region_bytes_,
                 0);
    region_to_ = to;
    for (const auto& [pid, newest] : latest_) {
      uint64_t n = 0;
      for (uint64_t at = newest;;) {
        auto it = pieces_.find(at);
        if (it == pieces_.end()) break;  // below the head, or damaged
        ++n;
        if (at >= from && at < to) {
          live_[(at - from) / region_bytes_] += it->second.footprint;
        }
        live_bytes_ += it->second.footprint;
        if (it->second.prev == 0 || it->second.prev >= at) break;
        at = it->second.prev;
      }
      ++pieces_per_page_[n];
    }
  }

  void Print() const {
    std::printf("  pages              %" PRIu64 " live, %" PRIu64
                " bytes of their pieces\n",
                pages(), live_bytes_);
    std::printf("  pieces per page\n");
    for (const auto& [n, count] : pieces_per_page_) {
      std::printf("    %" PRIu64 "%*s%" PRIu64 "\n", n, 8, "", count);
    }
    std::printf("  live fraction per region (%" PRIu64 " bytes each)\n",
                region_bytes_);
    for (size_t i = 0; i < live_.size(); ++i) {
      const uint64_t lo = region_from_ + i * region_bytes_;
      const uint64_t hi = std::min(lo + region_bytes_, region_to_);
      std::printf("    [%" PRIu64 ", %" PRIu64 ")  %5.1f%%\n", lo, hi,
                  100.0 * live_[i] / (hi - lo));
    }
  }

  void AddJson(Json& j) const {
    j.Num("pages", pages()).Num("live_page_bytes", live_bytes_);
    std::vector<std::string> per;
    for (const auto& [n, count] : pieces_per_page_) {
      per.push_back(absl::StrCat("\"", n, "\": ", count));
    }
    j.Raw("pieces_per_page", absl::StrCat("{", absl::StrJoin(per, ", "), "}"));
    std::vector<std::string> regions;
    for (size_t i = 0; i < live_.size(); ++i) {
      const uint64_t lo = region_from_ + i * region_bytes_;
      const uint64_t hi = std::min(lo + region_bytes_, region_to_);
      regions.push_back(absl::StrCat("{\"from\": ", lo, ", \"to\": ", hi,
                                     ", \"live_bytes\": ", live_[i], "}"));
    }
    j.Raw("regions", absl::StrCat("[", absl::StrJoin(regions, ", "), "]"));
  }

 private:
  struct Piece {
    uint64_t footprint;
    uint64_t prev;  // a delta piece's link; 0 for an image
  };
  std::map<uint64_t, Piece> pieces_;      // by address
  std::map<uint64_t, uint64_t> latest_;   // PID -> newest piece
  uint64_t page_records_ = 0;
  std::map<uint64_t, uint64_t> pieces_per_page_;
  std::vector<uint64_t> live_;
  uint64_t region_bytes_ = 0;
  uint64_t region_from_ = 0;
  uint64_t region_to_ = 0;
  uint64_t live_bytes_ = 0;
};

int Stats(const std::string& path) {
  absl::StatusOr<Probe> probe = ProbeFile(path);
  if (!probe.ok()) return Fail("stats", path, probe.status());
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
      OpenForReading(path, *probe);
  if (!store.ok()) return Fail("stats", path, store.status());
  const RecoveryReport& r = (*store)->recovery();
  uint64_t records = 0, payload_bytes = 0;
  // histogram[i]: payloads of [2^i, 2^(i+1)) bytes.
  std::vector<uint64_t> histogram(64, 0);
  PageLiveness pages;
  absl::Status s =
      Replay(**store, 0, "lsstool stats", [&](const RecordView& rec) {
        pages.Visit(rec);
        ++records;
        payload_bytes += rec.payload.size();
        ++histogram[63 - std::countl_zero(uint64_t{rec.payload.size()})];
        return true;
      });
  const int code = s.ok() ? kExitOk : ExitFor(s);
  const uint64_t data_start = (*store)->data_start();
  const uint64_t log_bytes = r.tail > data_start ? r.tail - data_start : 0;
  const uint64_t header_bytes =
      r.blocks * kBlockHeaderBytes + records * kRecordHeaderBytes;
  // Everything in the log that is neither a header nor a payload: record
  // alignment, abandoned reservations and each block's round-up to the
  // block size. Salvaged ranges are counted as log bytes too.
  const uint64_t used = header_bytes + payload_bytes;
  const uint64_t padding = log_bytes > used ? log_bytes - used : 0;

  PrintHeader("stats", path, *probe);
  std::printf("  data start         %" PRIu64 "\n", data_start);
  std::printf("  tail               %" PRIu64 " (%s)\n", r.tail, r.end.c_str());
  std::printf("  blocks             %" PRIu64 "\n", r.blocks);
  std::printf("  records            %" PRIu64 "\n", records);
  std::printf("  payload bytes      %" PRIu64 "\n", payload_bytes);
  std::printf("  header bytes       %" PRIu64 "\n", header_bytes);
  std::printf("  padding bytes      %" PRIu64 "\n", padding);
  std::printf("  record sizes (payload bytes)\n");
  std::vector<std::string> buckets;
  for (int i = 0; i < 64; ++i) {
    if (histogram[i] == 0) continue;
    const uint64_t lo = uint64_t{1} << i;
    std::printf("    [%" PRIu64 ", %" PRIu64 ")%*s%" PRIu64 "\n", lo, lo * 2,
                4, "", histogram[i]);
    buckets.push_back(absl::StrCat("\"", lo, "\": ", histogram[i]));
  }
  if (pages.any()) {
    pages.Summarise((*store)->head(), r.tail, FLAGS_regions,
                    probe->current ? probe->current->block_bytes : 4096);
    pages.Print();
  }
  if (!s.ok()) {
    std::fprintf(stderr, "lsstool stats: %s\n",
                 std::string(s.message()).c_str());
  }
  if (FLAGS_json) {
    Json j;
    j.Str("command", "stats").Str("file", path).Num("exit_code", code);
    j.Num("file_bytes", probe->file_bytes);
    j.Raw("superblock_slots", SlotsJson(*probe));
    if (probe->current) {
      j.Num("epoch", probe->current->epoch)
          .Num("epoch_start", probe->current->epoch_start)
          .Num("head", probe->current->head)
          .Num("checkpoint", probe->current->checkpoint)
          .Num("holes", probe->current->holes.size())
          .Num("block_bytes", probe->current->block_bytes)
          .Num("buffer_bytes", probe->current->buffer_bytes);
    }
    j.Num("data_start", data_start).Num("tail", r.tail);
    j.Num("blocks", r.blocks).Num("records", records);
    j.Num("payload_bytes", payload_bytes).Num("header_bytes", header_bytes);
    j.Num("padding_bytes", padding);
    j.Raw("size_histogram",
          absl::StrCat("{", absl::StrJoin(buckets, ", "), "}"));
    if (pages.any()) pages.AddJson(j);
    if (!s.ok()) j.Str("error", s.message());
    std::printf("%s\n", j.str().c_str());
  }
  return code;
}

// --- salvage -----------------------------------------------------------------

// REQUIRES: --out is set.
int Salvage(const std::string& path) {
  const std::string& out = FLAGS_out;
  struct stat st;
  if (lstat(out.c_str(), &st) == 0 || errno != ENOENT) {
    return Fail("salvage", path,
                absl::AlreadyExistsError(absl::StrCat(
                    out, ": already exists; salvage writes only a new log")));
  }
  absl::StatusOr<Probe> probe = ProbeFile(path);
  if (!probe.ok()) return Fail("salvage", path, probe.status());
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> source =
      OpenLog(path, *probe, RecoveryMode::kSkipCorrupted);
  if (!source.ok()) return Fail("salvage", path, source.status());
  const RecoveryReport& r = (*source)->recovery();

  StoreOptions options =
      ReadOptions(*probe, RecoveryMode::kAbsoluteConsistency);
  options.read_only = false;
  options.preallocate_bytes = options.buffer_bytes;
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> target =
      LogStructuredStore::Open(out, options);
  if (!target.ok()) return Fail("salvage", path, target.status());

  uint64_t kept = 0, payload_bytes = 0;
  absl::Status write;
  absl::Status read =
      Replay(**source, 0, "lsstool salvage", [&](const RecordView& rec) {
        absl::StatusOr<uint64_t> a = (*target)->Append(rec.payload, rec.tag);
        if (!a.ok()) {
          write = a.status();
          return false;
        }
        ++kept;
        payload_bytes += rec.payload.size();
        return true;
      });
  if (write.ok()) write = (*target)->Sync();
  if (absl::Status s = (*target)->Close(); write.ok()) write = s;
  if (!read.ok() || !write.ok()) {
    // Half a copy is worse than none: it would pass for the whole log.
    unlink(out.c_str());
    return Fail("salvage", path, read.ok() ? write : read);
  }

  std::vector<std::string> lost = r.skipped;
  if (!r.superblock.empty()) lost.push_back(r.superblock);
  const int code = lost.empty() ? kExitOk : kExitDamaged;
  std::printf("lsstool salvage: %s -> %s\n", path.c_str(), out.c_str());
  std::printf("  kept               %" PRIu64 " records (%" PRIu64
              " payload bytes), in order, with their types and keys\n",
              kept, payload_bytes);
  std::printf("  addresses          remapped: the new log packs the records "
              "from its own data start\n");
  for (const std::string& range : lost) {
    std::printf("  lost               %s\n", range.c_str());
  }
  std::printf("  result             %s\n",
              lost.empty() ? "nothing lost" : "damaged ranges skipped");
  if (FLAGS_json) {
    Json j;
    j.Str("command", "salvage").Str("file", path).Str("out", out);
    j.Num("exit_code", code).Num("records", kept);
    j.Num("payload_bytes", payload_bytes).Bool("addresses_remapped", true);
    j.Strs("lost", lost);
    std::printf("%s\n", j.str().c_str());
  }
  return code;
}

// --- pages -------------------------------------------------------------------

std::string Hex(absl::string_view bytes) {
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", c);
    hex += buf;
  }
  return hex;
}

// "text=\"...\"" or "hex=\"...\"", with "..." when cut.
std::string PreviewField(absl::string_view bytes) {
  bool text = false;
  const std::string preview = Preview(bytes, text);
  return absl::StrCat(text ? "text=" : "hex=", JsonString(preview),
                      bytes.size() > kPreviewBytes ? "..." : "");
}

// What the records of a page log are, by PageStore's record types.
struct PageRecords {
  uint64_t images = 0, deltas = 0, frees = 0, failed_flushes = 0, other = 0;
};

// Lists every page PageStore's recovery restores (its newest piece, unless
// a later record freed it), or with --pid prints one page.
int Pages(const std::string& path) {
  absl::StatusOr<Probe> probe = ProbeFile(path);
  if (!probe.ok()) return Fail("pages", path, probe.status());
  if (probe->file_bytes == 0) {
    return Fail("pages", path,
                absl::NotFoundError(
                    absl::StrCat(path,
                                 ": empty file: a log no one has written yet "
                                 "holds no pages")));
  }
  absl::StatusOr<RecoveryMode> mode = ParseRecovery(FLAGS_recovery);
  if (!mode.ok()) return Fail("pages", path, mode.status());
  PageStoreOptions options;
  options.store = ReadOptions(*probe, *mode);
  absl::StatusOr<std::unique_ptr<PageStore>> pages =
      PageStore::Open(path, options);
  if (!pages.ok()) return Fail("pages", path, pages.status());

  // PageStore's recovery has replayed the log already; this second pass
  // only tells a log without pages from one whose pages were all freed.
  PageRecords kinds;
  absl::Status s =
      Replay((*pages)->log(), 0, "lsstool pages", [&](const RecordView& r) {
        switch (r.tag.type) {
          case kPageImageRecord:
            ++kinds.images;
            break;
          case kPageDeltaRecord:
            ++kinds.deltas;
            break;
          case kPageFreedRecord:
            ++kinds.frees;
            break;
          case kFailedFlushRecord:
            ++kinds.failed_flushes;
            break;
          default:
            ++kinds.other;
        }
        return true;
      });
  if (!s.ok()) return Fail("pages", path, s);
  if (kinds.images == 0 && kinds.frees == 0) {
    return Fail("pages", path,
                absl::NotFoundError(absl::StrCat(
                    path, ": holds no pages: none of its ",
                    kinds.failed_flushes + kinds.other,
                    " records is a page image or free record (types ",
                    kPageImageRecord, ", ", kPageFreedRecord,
                    "); not a PageStore log, or no page was ever flushed")));
  }

  if (FLAGS_pid >= 0) {
    const uint64_t pid = static_cast<uint64_t>(FLAGS_pid);
    absl::StatusOr<PageState> state = (*pages)->table().Read(pid);
    if (!state.ok() || !state->on_log()) {
      return Fail("pages", path,
                  absl::NotFoundError(absl::StrCat(
                      path, ": page ", pid,
                      " is not in the log (never flushed, or freed)")));
    }
    absl::StatusOr<LogRecord> image = (*pages)->log().Read(state->address());
    absl::StatusOr<Page> page = (*pages)->Read(pid);
    if (!image.ok()) return Fail("pages", path, image.status());
    if (!page.ok()) return Fail("pages", path, page.status());
    std::printf("lsstool pages: %s\n", path.c_str());
    std::printf("  page %" PRIu64 ": address %" PRIu64
                ", image %zu bytes, base %zu bytes, %zu deltas\n",
                pid, state->address(), image->payload.size(), page->base.size(),
                page->deltas.size());
    std::printf("  base     %s\n", PreviewField(page->base).c_str());
    for (size_t i = 0; i < page->deltas.size(); ++i) {
      std::printf("  delta %zu  %s\n", i,
                  PreviewField(page->deltas[i]).c_str());
    }
    if (FLAGS_json) {
      std::vector<std::string> deltas;
      for (const std::string& d : page->deltas) deltas.push_back(Hex(d));
      Json j;
      j.Str("command", "pages").Str("file", path).Num("exit_code", kExitOk);
      j.Num("pid", pid).Num("address", state->address());
      j.Num("image_bytes", image->payload.size());
      j.Str("base_hex", Hex(page->base)).Strs("deltas_hex", deltas);
      std::printf("%s\n", j.str().c_str());
    }
    return kExitOk;
  }

  if (!FLAGS_json) {
    PrintHeader("pages", path, *probe);
    std::printf("  records            %" PRIu64 " page images, %" PRIu64
                " delta pieces, %" PRIu64 " frees, %" PRIu64
                " failed flushes, %" PRIu64 " other\n",
                kinds.images, kinds.deltas, kinds.frees, kinds.failed_flushes,
                kinds.other);
  }
  uint64_t listed = 0, image_bytes = 0;
  const uint64_t high_water = (*pages)->table().high_water();
  for (uint64_t pid = 0; pid < high_water; ++pid) {
    absl::StatusOr<PageState> state = (*pages)->table().Read(pid);
    if (!state.ok() || !state->on_log()) continue;  // free
    absl::StatusOr<LogRecord> image = (*pages)->log().Read(state->address());
    if (!image.ok()) return Fail("pages", path, image.status());
    ++listed;
    image_bytes += image->payload.size();
    if (FLAGS_json) {
      std::printf("%s\n", Json()
                              .Num("pid", pid)
                              .Num("address", state->address())
                              .Num("image_bytes", image->payload.size())
                              .str()
                              .c_str());
    } else {
      std::printf("  pid %" PRIu64 "  address %" PRIu64 "  image %zu bytes\n",
                  pid, state->address(), image->payload.size());
    }
  }
  if (FLAGS_json) {
    Json j;
    j.Str("command", "pages").Str("file", path).Num("exit_code", kExitOk);
    j.Num("pages", listed).Num("image_bytes", image_bytes);
    j.Num("page_image_records", kinds.images);
    j.Num("page_delta_records", kinds.deltas).Num("free_records", kinds.frees);
    j.Num("failed_flush_records", kinds.failed_flushes);
    j.Num("other_records", kinds.other);
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf(
        "  pages              %" PRIu64 " (%" PRIu64 " image bytes)%s\n",
        listed, image_bytes, listed == 0 ? ": every page was freed" : "");
  }
  return kExitOk;
}

}  // namespace
}  // namespace lss

namespace {

int Usage(const std::string& why) {
  std::fprintf(stderr, "lsstool: %s\n\n%s", why.c_str(), lss::kUsage);
  return lss::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(lss::kUsage);
  // An unknown flag is a usage error (64) here, not gflags' exit 1, which
  // means "damaged".
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    a.remove_prefix(a[1] == '-' ? 2 : 1);
    a = a.substr(0, a.find('='));
    std::string value;
    if (!gflags::GetCommandLineOption(std::string(a).c_str(), &value) &&
        !(absl::StartsWith(a, "no") &&
          gflags::GetCommandLineOption(std::string(a.substr(2)).c_str(),
                                       &value))) {
      return Usage(absl::StrCat("unknown flag ", argv[i]));
    }
  }
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  std::string help;
  if (gflags::GetCommandLineOption("help", &help) && help == "true") {
    std::printf("%s\nflags:\n", lss::kUsage);
    std::vector<gflags::CommandLineFlagInfo> flags;
    gflags::GetAllFlags(&flags);
    for (const gflags::CommandLineFlagInfo& f : flags) {
      if (f.filename.find("lsstool") == std::string::npos) continue;
      std::printf("  --%s (%s; default %s)\n", f.name.c_str(),
                  f.description.c_str(), f.default_value.c_str());
    }
    return 0;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a.size() > 1 && a[0] == '-') return Usage("unknown flag " + a);
  }
  if (args.empty()) return Usage("no command");
  const std::string command = args[0];
  if (args.size() != 2) {
    return Usage(absl::StrCat(command, " takes exactly one FILE"));
  }
  const std::string& path = args[1];
  if (command == "verify") return lss::Verify(path);
  if (command == "dump") return lss::Dump(path);
  if (command == "stats") return lss::Stats(path);
  if (command == "pages") return lss::Pages(path);
  if (command == "salvage") {
    if (FLAGS_out.empty()) return Usage("salvage needs --out=NEW");
    return lss::Salvage(path);
  }
  return Usage("unknown command " + command);
}
