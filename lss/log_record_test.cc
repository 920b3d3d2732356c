// Framing and recovery at store level (shared/RELIABILITY.md section 3.A):
//
//   A1  LevelDB log_test parity, each case under every RecoveryMode.
//   A2  stale epochs and zero tails read as a clean end.
//   A3  truncation sweep: every block-size truncation of a 1,000-record log,
//       and byte-granular ones in the superblocks and the last blocks.
//   A4  corruption sweep: 10,000 random positions (bit flip, zeroed sector,
//       random sector), each under kPointInTime, kAbsoluteConsistency and
//       kSkipCorrupted.
//   A5  idempotence: recover twice, recover-append-recover.
//   and the bad inputs of Open and the calls after Close.
//
// What decides each case is whether the file proves the damaged block
// acknowledged (lss/recovery.h): the watermark W is the superblock's epoch
// start and the `stable` of every intact block of the current epoch, and a
// clean Close ends the log with a close marker whose `stable` is its own
// address. So damage anywhere in a closed log, even in its last data
// block, is damage to acknowledged data: DataLoss under
// kTolerateCorruptedTail and kAbsoluteConsistency (the file left byte for
// byte), a cut reported as lost_acknowledged under kPointInTime. A torn
// tail is what a crash before Close leaves: the tests build it without the
// proof (Proof::kNothing: no waits while writing, so every block's
// `stable` is the epoch start, and the file cut where the close marker
// began), and then it is cut under kTolerateCorruptedTail and kPointInTime
// and DataLoss under kAbsoluteConsistency. kSkipCorrupted returns exactly
// the written records whose bytes the damage left untouched (Untouched()),
// inside damaged blocks too. Every open, whatever it decides, leaves every
// block that verified before it byte for byte (RecoverImage checks).
//
// How LevelDB's cases map onto this format. LevelDB splits records into
// FIRST/MIDDLE/LAST fragments across 32 KiB blocks; here a record never
// spans blocks: a block is one written flush buffer with its own CRC, and
// each record has a CRC over its address. So:
//   Empty, ReadWrite, ManyBlocks, OpenForAppend, RandomRead: as in LevelDB
//     (plus the close marker after the last block).
//   Fragmentation -> LargeRecords: records up to max_payload_bytes(), a
//     full buffer each; nothing larger is accepted.
//   MarginalTrailer / ShortTrailer / AlignedEof -> a buffer filled exactly
//     to its end, one left with less room than the smallest record (the
//     next record starts the next block), and a log ending on a block end.
//   BadRecordType -> the record type is opaque to the store and round
//     trips; type 0 is refused (it is padding); a damaged type field fails
//     the record CRC even when the block CRC was recomputed.
//   TruncatedTrailingRecordIsIgnored / PartialLastIsIgnored /
//     MissingLastIsIgnored -> a file cut inside the last block (which cuts
//     the close marker off too, so nothing proves that block), or its later
//     pages lost along with the marker: a torn tail, cut under
//     kTolerateCorruptedTail and kPointInTime, DataLoss under
//     kAbsoluteConsistency (RocksDB's ...IsNotIgnored). The same pages lost
//     with the marker kept: damage.
//   BadLengthAtEnd / ChecksumMismatch at the end -> the last block damaged,
//     in a closed log (damage) and in one that crashed before Close (torn
//     tail).
//   BadLength / mid-log ChecksumMismatch / Unexpected*Type (a block from
//     elsewhere: a copy, another store's, one of a newer epoch) -> damage
//     in the middle of a closed log. A block of a newer epoch that verifies
//     means the superblock is older than the log: DataLoss in every mode
//     but kSkipCorrupted.
//   (no LevelDB twin) -> damage that nothing proves acknowledged is a torn
//     tail even with intact blocks after it, and a later block's `stable`
//     proves a damaged block acknowledged without any close marker.
//   MissingFirst (no LevelDB twin) -> the last block's first sector zero,
//     its later sectors written; and the same zeroed sector, or an epoch
//     field damaged, in the middle of the log (RELIABILITY 3.A4's "zero a
//     512 B sector").
//   ErrorJoinsRecords -> damage across two blocks never makes records of
//     its neighbours run together (kSkipCorrupted).
//   AlignedEof's converse -> a file ending inside the last block where only
//     record padding (zeros) is missing: torn like any other cut.
//   OpenForAppend after a cut -> the new epoch's first block is shorter than
//     the torn block it replaces, or ends inside an intact stale block; a
//     clean Close must then reopen clean.
//   Initial offset family / SkipIntoMultiRecord -> NewLogReader(from) at,
//     inside and between records.
//   ReadError -> I/O errors need fault injection (RELIABILITY 3.B/3.C).
//
// Randomised tests take their seed from LSS_TEST_SEED (a fixed default) and
// name it in every failure. LSS_CORRUPTION_POSITIONS changes the A4 count
// (10,000). The A4 sweep opens the store 30,000 times; it reads through the
// page cache unless LSS_SWEEP_DIRECT_IO=1 (O_DIRECT doubles its time, and the
// recovery logic it checks is the same either way; every other test here
// uses O_DIRECT). BUILD runs A4 as its own target,
// //lss:log_record_corruption_sweep_test, so each target stays near a
// minute.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/format.h"
#include "lss/log_image.h"
#include "lss/log_structured_store.h"
#include "testing/payload.h"
#include "testing/process.h"

namespace lss {
namespace {

using testing::ReadFileBytes;
using testing::WriteFileBytes;

using ::lss::testing::EnvU64;
using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;
using ::testing::HasSubstr;

constexpr size_t kBufferBytes = size_t{64} << 10;
constexpr uint32_t kBlockBytes = 4096;

StoreOptions SmallOptions() {
  StoreOptions o;
  o.buffer_bytes = kBufferBytes;
  o.ring_size = 2;
  o.block_bytes = kBlockBytes;
  o.direct_io = true;
  o.allow_buffered_fallback = true;
  o.preallocate_bytes = 0;  // the file ends where the log does
  return o;
}

StoreOptions ModeOptions(RecoveryMode mode, bool read_only = false) {
  StoreOptions o = SmallOptions();
  o.recovery = mode;
  o.read_only = read_only;
  return o;
}

const RecoveryMode kAllModes[] = {
    RecoveryMode::kTolerateCorruptedTail, RecoveryMode::kAbsoluteConsistency,
    RecoveryMode::kPointInTime, RecoveryMode::kSkipCorrupted};

std::string ModeName(RecoveryMode m) {
  switch (m) {
    case RecoveryMode::kTolerateCorruptedTail:
      return "kTolerateCorruptedTail";
    case RecoveryMode::kAbsoluteConsistency:
      return "kAbsoluteConsistency";
    case RecoveryMode::kPointInTime:
      return "kPointInTime";
    case RecoveryMode::kSkipCorrupted:
      return "kSkipCorrupted";
  }
  return "?";
}

uint64_t Seed() { return EnvU64("LSS_TEST_SEED", 20240611); }

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

std::string TestPath(absl::string_view suffix = "") {
  std::string name = absl::StrCat(
      ::testing::UnitTest::GetInstance()
          ->current_test_info()
          ->test_suite_name(),
      ".", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
      suffix);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name, ".log");
  unlink(path.c_str());
  return path;
}

// ------------------------------------------------------------ Records

// A record a test appended. Its payload is FillPayload(stream, index) and its
// tag carries both, so any record read back identifies itself.
struct Rec {
  uint64_t address = 0;
  uint64_t stream = 0;
  uint64_t index = 0;
  size_t len = 0;
  uint32_t type = kDataRecordType;
};

RecordTag TagOf(uint64_t stream, uint64_t index, uint32_t type) {
  return RecordTag{type, (stream << 32) | index};
}

std::string PayloadOf(uint64_t stream, uint64_t index, size_t len) {
  std::string s(len, '\0');
  FillPayload(stream, index, std::as_writable_bytes(std::span(s)));
  return s;
}

// The payload of (stream, index, len), computed once: the sweeps compare
// hundreds of thousands of records.
const std::string& CachedPayload(uint64_t stream, uint64_t index, size_t len) {
  static auto* cache =
      new std::map<std::tuple<uint64_t, uint64_t, size_t>, std::string>();
  auto [it, added] = cache->try_emplace({stream, index, len});
  if (added) it->second = PayloadOf(stream, index, len);
  return it->second;
}

Rec AppendRec(LogStructuredStore& store, uint64_t stream, uint64_t index,
              size_t len, uint32_t type = kDataRecordType) {
  Rec r{0, stream, index, len, type};
  absl::StatusOr<uint64_t> a =
      store.Append(PayloadOf(stream, index, len), TagOf(stream, index, type));
  EXPECT_TRUE(a.ok()) << a.status();
  if (a.ok()) r.address = *a;
  return r;
}

::testing::AssertionResult Matches(const Rec& want, uint64_t address,
                                   const RecordTag& tag,
                                   absl::string_view payload) {
  if (address != want.address) {
    return ::testing::AssertionFailure()
           << "address " << address << ", wrote record " << want.index
           << " of stream " << want.stream << " at " << want.address;
  }
  if (tag.key != TagOf(want.stream, want.index, want.type).key ||
      tag.type != want.type) {
    return ::testing::AssertionFailure()
           << "at " << address << ": tag (" << tag.type << ", " << tag.key
           << "), wrote (" << want.type << ", "
           << TagOf(want.stream, want.index, want.type).key << ")";
  }
  if (payload.size() != want.len) {
    return ::testing::AssertionFailure()
           << "at " << address << ": " << payload.size() << " bytes, wrote "
           << want.len;
  }
  if (payload == CachedPayload(want.stream, want.index, want.len)) {
    return ::testing::AssertionSuccess();
  }
  if (auto bad = FirstPayloadMismatch(want.stream, want.index,
                                      std::as_bytes(std::span(payload)))) {
    return ::testing::AssertionFailure()
           << "at " << address << ": payload byte " << *bad << " differs";
  }
  return ::testing::AssertionSuccess();
}

// Every record the store's LogReader returns from `from` on.
absl::StatusOr<std::vector<LogRecord>> ReadAll(LogStructuredStore& store,
                                               uint64_t from = 0) {
  absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader(from);
  if (!reader.ok()) return reader.status();
  std::vector<LogRecord> out;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) return more.status();
    if (!*more) break;
    const RecordView& v = (*reader)->record();
    out.push_back(LogRecord{v.address, v.tag, std::string(v.payload)});
  }
  return out;
}

// `got` is exactly `want`, record by record and byte by byte.
::testing::AssertionResult SameRecords(const std::vector<LogRecord>& got,
                                       const std::vector<Rec>& want) {
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    ::testing::AssertionResult m =
        Matches(want[i], got[i].address, got[i].tag, got[i].payload);
    if (!m) return m << " (record " << i << " of " << want.size() << ")";
  }
  if (got.size() > want.size()) {
    const LogRecord& extra = got[want.size()];
    return ::testing::AssertionFailure()
           << got.size() << " records, expected " << want.size()
           << "; the first extra is at " << extra.address << ", "
           << extra.payload.size() << " bytes, key " << extra.tag.key;
  }
  if (got.size() < want.size()) {
    return ::testing::AssertionFailure()
           << got.size() << " records, expected " << want.size()
           << "; the first missing was written at "
           << want[got.size()].address;
  }
  return ::testing::AssertionSuccess();
}

std::vector<Rec> Prefix(const std::vector<Rec>& all, size_t n) {
  return std::vector<Rec>(all.begin(), all.begin() + std::min(n, all.size()));
}

size_t RecordsBelow(const std::vector<Rec>& all, uint64_t address) {
  size_t n = 0;
  while (n < all.size() && all[n].address < address) ++n;
  return n;
}

// Read(address) of every record in `want` returns it.
::testing::AssertionResult ReadEach(LogStructuredStore& store,
                                    const std::vector<Rec>& want) {
  for (const Rec& r : want) {
    absl::StatusOr<LogRecord> got = store.Read(r.address);
    if (!got.ok()) {
      return ::testing::AssertionFailure()
             << "Read(" << r.address << "): " << got.status();
    }
    ::testing::AssertionResult m =
        Matches(r, got->address, got->tag, got->payload);
    if (!m) return m << " (Read)";
  }
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------ Block map

struct BlockInfo {
  uint64_t base = 0;
  uint32_t used = 0;
  uint64_t epoch = 0;
  uint64_t stable = 0;
  // Close's marker: a block with no records, one zero padding word.
  bool marker() const { return used == kBlockHeaderBytes + kRecordAlignment; }
};

bool IntactAt(std::span<const std::byte> image, uint64_t at, BlockHeader& h,
              uint64_t store_id = 0) {
  return testing::IntactBlockAt(image, at, kBlockBytes, kBufferBytes, h,
                                store_id);
}

uint64_t StoreIdOf(std::span<const std::byte> image) {
  return testing::StoreIdOf(image, kBlockBytes);
}

// The blocks of a log image, walked with format.h alone (the oracle).
std::vector<BlockInfo> ParseBlocks(std::span<const std::byte> image,
                                   uint64_t data_start = 2 * kBlockBytes) {
  std::vector<BlockInfo> out;
  uint64_t at = data_start;
  BlockHeader h;
  while (IntactAt(image, at, h)) {
    out.push_back({at, h.used, h.epoch, h.stable});
    at += RoundUp(h.used, kBlockBytes);
  }
  return out;
}

// The blocks that hold records (all but close markers).
std::vector<BlockInfo> DataBlocks(const std::vector<BlockInfo>& blocks) {
  std::vector<BlockInfo> out;
  for (const BlockInfo& b : blocks) {
    if (!b.marker()) out.push_back(b);
  }
  return out;
}

uint64_t LogEnd(const std::vector<BlockInfo>& blocks) {
  return blocks.empty()
             ? 2 * kBlockBytes
             : blocks.back().base + RoundUp(blocks.back().used, kBlockBytes);
}

// Every block anywhere in the image that verifies (the log's, stale ones,
// dropped ones): what no open may change.
std::vector<BlockInfo> IntactBlocks(std::span<const std::byte> image) {
  std::vector<BlockInfo> out;
  BlockHeader h;
  const uint64_t store_id = StoreIdOf(image);
  for (uint64_t at = 2 * kBlockBytes; at < image.size(); at += kBlockBytes) {
    if (IntactAt(image, at, h, store_id)) {
      out.push_back({at, h.used, h.epoch, h.stable});
    }
  }
  return out;
}

// Each block of `intact` (taken from the image before an open) is still
// there byte for byte in `after`.
::testing::AssertionResult IntactBlocksUnchanged(
    std::span<const std::byte> before, std::span<const std::byte> after,
    const std::vector<BlockInfo>& intact) {
  for (const BlockInfo& b : intact) {
    if (after.size() < b.base + b.used ||
        !std::equal(before.begin() + b.base, before.begin() + b.base + b.used,
                    after.begin() + b.base)) {
      return ::testing::AssertionFailure()
             << "the intact block at " << b.base << " (epoch " << b.epoch
             << ", " << b.used << " bytes) was changed by the open";
    }
  }
  return ::testing::AssertionSuccess();
}

// Recomputes the CRC of the block at `base` (after a deliberate change of
// its records, so that only the record check can catch it).
void Reseal(std::vector<std::byte>& image, uint64_t base) {
  BlockHeader h;
  ASSERT_TRUE(ParseBlockHeader(std::span(image).subspan(base), h));
  SealBlock(h, std::span(image).subspan(base, h.used));
}

// What proves the blocks of a log written by WriteBlocks acknowledged.
enum class Proof {
  // Closed: the close marker proves every record durable.
  kClosed,
  // A crash before Close: no waits while writing (so every block's
  // `stable` is the epoch start and claims nothing) and no close marker
  // (the file is cut where it began). Nothing was acknowledged.
  kNothing,
  // A crash before Close after a Sync per block: each block's `stable`
  // proves the blocks before it; nothing proves the last one.
  kEachBlockByTheNext,
};

// Writes a log: one block per entry of `blocks` (record sizes; Flush after
// each), then Sync and Close; with `proof` other than kClosed the close
// marker is then cut off. Returns the records in address order.
std::vector<Rec> WriteBlocks(const std::string& path,
                             const std::vector<std::vector<size_t>>& blocks,
                             Proof proof = Proof::kClosed, uint64_t stream = 1,
                             const StoreOptions& options = SmallOptions(),
                             uint64_t first_index = 0) {
  std::vector<Rec> out;
  auto store = LogStructuredStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  uint64_t index = first_index;
  for (const auto& sizes : blocks) {
    for (size_t len : sizes)
      out.push_back(AppendRec(**store, stream, index++, len));
    EXPECT_TRUE((*store)->Flush().ok());
    if (proof == Proof::kEachBlockByTheNext) {
      EXPECT_TRUE((*store)->Sync().ok());
    }
  }
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_TRUE((*store)->Close().ok());
  const std::vector<BlockInfo> all = ParseBlocks(ReadFileBytes(path));
  EXPECT_EQ(DataBlocks(all).size(), blocks.size());
  EXPECT_TRUE(!all.empty() && all.back().marker() &&
              all.back().stable == all.back().base)
      << "Close wrote no close marker proving the log";
  if (proof == Proof::kClosed || all.empty()) return out;
  EXPECT_EQ(truncate(path.c_str(), all.back().base), 0) << strerror(errno);
  // The premise of each kind: what the blocks left prove.
  for (size_t b = 0; b + 1 < all.size(); ++b) {
    if (proof == Proof::kNothing) {
      EXPECT_LE(all[b].stable, 2 * kBlockBytes) << "block " << b;
    } else if (b > 0) {
      EXPECT_GE(all[b].stable, all[b - 1].base + all[b - 1].used)
          << "block " << b;
    }
  }
  if (all.size() >= 2) {
    EXPECT_LE(all[all.size() - 2].stable, all[all.size() - 2].base)
        << "something proves the last block";
  }
  return out;
}

// ------------------------------------------------------------ Recovery

struct Outcome {
  absl::Status status;       // of Open
  absl::Status read_status;  // of reading the records back, and of Close
  RecoveryReport report;
  std::vector<LogRecord> records;
  std::vector<std::byte> after;  // the file once the store is closed
};

// Opens `path` as it is, reads every record with a LogReader, checks that
// Read(address) agrees for each (or, for the sweeps, for the first and the
// last), closes. Problems after Open go to read_status.
Outcome RecoverFileQuiet(const std::string& path, const StoreOptions& options,
                         bool read_each = true) {
  Outcome out;
  auto store = LogStructuredStore::Open(path, options);
  out.status = store.status();
  if (store.ok()) {
    out.report = (*store)->recovery();
    absl::StatusOr<std::vector<LogRecord>> records = ReadAll(**store);
    if (records.ok()) {
      out.records = *std::move(records);
    } else {
      out.read_status = records.status();
    }
    for (size_t i = 0; i < out.records.size(); ++i) {
      if (!read_each && i != 0 && i + 1 != out.records.size()) continue;
      const LogRecord& r = out.records[i];
      absl::StatusOr<LogRecord> again = (*store)->Read(r.address);
      if (!again.ok()) {
        out.read_status.Update(again.status());
      } else if (again->payload != r.payload || again->tag.key != r.tag.key) {
        out.read_status.Update(absl::InternalError(absl::StrCat(
            "Read(", r.address, ") differs from the LogReader's record")));
      }
    }
    out.read_status.Update((*store)->Close());
  }
  out.after = ReadFileBytes(path);
  return out;
}

Outcome RecoverFile(const std::string& path, const StoreOptions& options) {
  Outcome out = RecoverFileQuiet(path, options);
  EXPECT_TRUE(out.read_status.ok())
      << out.read_status << " (after recovering " << out.report.records
      << " records, tail " << out.report.tail << ")";
  return out;
}

// Whether `text` names an offset ("offset N") in [lo, hi): the block's own,
// or that of a record in it.
bool NamesOffsetIn(absl::string_view text, uint64_t lo, uint64_t hi) {
  size_t at = 0;
  while ((at = text.find("offset ", at)) != absl::string_view::npos) {
    at += 7;
    uint64_t n = 0;
    size_t digits = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      n = n * 10 + static_cast<uint64_t>(text[at] - '0');
      ++at;
      ++digits;
    }
    if (digits > 0 && n >= lo && n < hi) return true;
  }
  return false;
}

::testing::AssertionResult NamesBlock(absl::string_view text, uint64_t base,
                                      uint64_t used) {
  if (NamesOffsetIn(text, base, base + used)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "\"" << text << "\" names no offset in the block at [" << base
         << ", " << base + used << ")";
}

// Writes `image` to `path` and recovers it; whatever the open does, every
// block that verified in `image` must still be there byte for byte.
Outcome RecoverImage(const std::string& path, std::span<const std::byte> image,
                     const StoreOptions& options) {
  WriteFileBytes(path, image);
  const std::vector<BlockInfo> intact = IntactBlocks(image);
  Outcome out = RecoverFile(path, options);
  EXPECT_TRUE(IntactBlocksUnchanged(image, out.after, intact));
  return out;
}

// The records of `written` whose every byte (header, payload and, unless
// `padding` is false, padding) is the same in `image` as in `pristine`.
// kSkipCorrupted must return every record whose whole footprint is
// untouched, and no record whose header or payload changed; one whose
// padding alone changed (its CRC does not cover padding) it may return.
std::vector<Rec> Untouched(const std::vector<Rec>& written,
                           std::span<const std::byte> pristine,
                           std::span<const std::byte> image,
                           bool padding = true) {
  std::vector<Rec> out;
  for (const Rec& r : written) {
    const uint64_t end =
        r.address + (padding ? RecordFootprint(r.len) : kRecordHeaderBytes + r.len);
    if (end <= image.size() &&
        std::equal(pristine.begin() + r.address, pristine.begin() + end,
                   image.begin() + r.address)) {
      out.push_back(r);
    }
  }
  return out;
}

// Whether `bad` lies below what the file proves acknowledged.
enum class Damage {
  // Below the watermark (a close marker or a later block's `stable`
  // covers it): DataLoss in kTolerateCorruptedTail and kAbsoluteConsistency,
  // a cut with lost_acknowledged in kPointInTime.
  kAcknowledged,
  // At or past it (a crash tore the tail): cut in kTolerateCorruptedTail
  // and kPointInTime, DataLoss in kAbsoluteConsistency.
  kTornTail,
};

// `got` holds every record of `must`, and nothing but records of `may`
// (a superset of `must`), in address order and byte for byte.
::testing::AssertionResult Salvaged(const std::vector<LogRecord>& got,
                                    const std::vector<Rec>& must,
                                    const std::vector<Rec>& may) {
  size_t m = 0;
  size_t next_must = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    while (m < may.size() && may[m].address < got[i].address) ++m;
    if (m == may.size() || may[m].address != got[i].address) {
      return ::testing::AssertionFailure()
             << "record " << i << " at " << got[i].address << " ("
             << got[i].payload.size() << " bytes) is not an untouched record";
    }
    ::testing::AssertionResult same =
        Matches(may[m], got[i].address, got[i].tag, got[i].payload);
    if (!same) return same;
    if (next_must < must.size() && must[next_must].address < got[i].address) {
      return ::testing::AssertionFailure()
             << "the untouched record at " << must[next_must].address
             << " is missing";
    }
    if (next_must < must.size() && must[next_must].address == got[i].address) {
      ++next_must;
    }
  }
  if (next_must < must.size()) {
    return ::testing::AssertionFailure()
           << "the untouched record at " << must[next_must].address
           << " is missing (" << got.size() << " records returned)";
  }
  return ::testing::AssertionSuccess();
}

// `image` is `pristine` (whose records are `written`) damaged; the first
// block it damaged is `bad`. Checks every mode. `corrupt`: whether what is
// left at `bad` reads as a corrupt block (false when its header reads as
// unwritten space).
void ExpectDamage(const std::string& path,
                  const std::vector<std::byte>& pristine,
                  const std::vector<std::byte>& image,
                  const std::vector<Rec>& written, const BlockInfo& bad,
                  Damage damage, bool corrupt = true) {
  const std::vector<Rec> prefix =
      Prefix(written, RecordsBelow(written, bad.base));
  const std::vector<Rec> untouched = Untouched(written, pristine, image);
  const std::vector<Rec> may = Untouched(written, pristine, image, false);
  ASSERT_LT(untouched.size(), written.size()) << "the damage changed no record";
  size_t salvaged = 0;
  for (const Rec& r : untouched) {
    salvaged += r.address >= bad.base && r.address < bad.base + bad.used;
  }
  const size_t may_salvage = salvaged + may.size() - untouched.size();
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    const bool refuse =
        mode == RecoveryMode::kAbsoluteConsistency ||
        (mode == RecoveryMode::kTolerateCorruptedTail &&
         damage == Damage::kAcknowledged);
    if (refuse) {
      if (o.status.ok()) {
        ADD_FAILURE() << "opened OK: " << o.records.size() << " of "
                      << written.size() << " records kept; end: "
                      << o.report.end;
        continue;
      }
      EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss) << o.status;
      EXPECT_THAT(o.status.message(), HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.status.message(), bad.base, bad.used));
      EXPECT_TRUE(o.after == image) << "a refused open changed the file";
      continue;
    }
    ASSERT_TRUE(o.status.ok()) << o.status;
    if (mode == RecoveryMode::kSkipCorrupted) {
      EXPECT_TRUE(Salvaged(o.records, untouched, may));
      EXPECT_EQ(o.report.records, o.records.size());
      EXPECT_GE(o.report.salvaged_records, salvaged);
      EXPECT_LE(o.report.salvaged_records, may_salvage);
      ASSERT_EQ(o.report.skipped.size(), 1u);
      EXPECT_THAT(o.report.skipped[0], HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.report.skipped[0], bad.base, bad.used));
      EXPECT_TRUE(o.after == image) << "a read-only open changed the file";
      continue;
    }
    EXPECT_TRUE(SameRecords(o.records, prefix));
    EXPECT_EQ(o.report.records, prefix.size());
    EXPECT_EQ(o.report.tail, bad.base);
    EXPECT_EQ(o.report.lost_acknowledged, damage == Damage::kAcknowledged);
    if (damage == Damage::kAcknowledged) {
      EXPECT_GE(o.report.acknowledged, bad.base + bad.used);
    } else {
      EXPECT_LE(o.report.acknowledged, bad.base);
    }
    if (corrupt || damage == Damage::kAcknowledged) {
      EXPECT_TRUE(o.report.cut) << o.report.end;
    }
    EXPECT_THAT(o.report.end, HasSubstr(path));
    EXPECT_TRUE(NamesBlock(o.report.end, bad.base, bad.used));
  }
}

// A log whose last data block is damaged, built both ways: closed (the
// close marker after it proves it acknowledged: damage) and crashed before
// Close (nothing proves it: a torn tail). `damage` changes an image whose
// last data block is `last`.
void ExpectLastBlockDamage(
    const std::string& path, const std::vector<std::vector<size_t>>& plan,
    const std::function<void(std::vector<std::byte>&, const BlockInfo& last,
                             const std::vector<Rec>& written)>& damage,
    bool corrupt = true) {
  for (Proof proof : {Proof::kClosed, Proof::kNothing}) {
    SCOPED_TRACE(proof == Proof::kClosed ? "closed" : "crashed before Close");
    unlink(path.c_str());
    const std::vector<Rec> w = WriteBlocks(path, plan, proof);
    const std::vector<std::byte> pristine = ReadFileBytes(path);
    const std::vector<BlockInfo> blocks = ParseBlocks(pristine);
    ASSERT_EQ(blocks.back().marker(), proof == Proof::kClosed);
    const BlockInfo last = DataBlocks(blocks).back();
    std::vector<std::byte> image = pristine;
    damage(image, last, w);
    ExpectDamage(path, pristine, image, w, last,
                 proof == Proof::kClosed ? Damage::kAcknowledged
                                         : Damage::kTornTail,
                 corrupt);
  }
}

// Seven blocks: two small, a small one (index 2, the usual victim), three
// full 64 KiB buffers, and a small last one.
std::vector<std::vector<size_t>> MidLogPlan() {
  return {{1000, 1000, 1000},
          {500, 700},
          {2000, 2000, 2000},
          std::vector<size_t>(16, 4000),
          std::vector<size_t>(16, 4000),
          std::vector<size_t>(16, 4000),
          {300, 300}};
}

// ================================================================ A1

TEST(LevelDbParity, Empty) {
  const std::string path = TestPath();
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->recovery().records, 0u);
    absl::StatusOr<std::vector<LogRecord>> all = ReadAll(**store);
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_TRUE(all->empty());
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<std::byte> image = ReadFileBytes(path);
  // Nothing was appended, so nothing needs proving: no close marker.
  EXPECT_TRUE(ParseBlocks(image).empty());
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(o.records.empty());
    EXPECT_EQ(o.report.records, 0u);
    EXPECT_EQ(o.report.blocks, 0u);
    EXPECT_EQ(o.report.tail, 2 * kBlockBytes);
    EXPECT_FALSE(o.report.cut);
    EXPECT_TRUE(o.report.skipped.empty());
  }
}

TEST(LevelDbParity, ReadWrite) {
  const std::string path = TestPath();
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<Rec> w;
  for (size_t len : {3, 3, 1, 4, 1000, 8, 9}) {
    w.push_back(AppendRec(**store, 7, w.size(), len));
  }
  // The empty record LevelDB allows is refused here (length >= 1).
  absl::StatusOr<uint64_t> empty = (*store)->Append("");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  // From the resident buffers, before anything is written.
  EXPECT_TRUE(ReadEach(**store, w));
  ASSERT_TRUE((*store)->Sync().ok());
  absl::StatusOr<std::vector<LogRecord>> all = ReadAll(**store);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(SameRecords(*all, w));
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  // From the file.
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverFile(path, ModeOptions(mode, /*read_only=*/true));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, w));
    EXPECT_EQ(o.report.records, w.size());
    EXPECT_FALSE(o.report.cut);
  }
  auto again = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(ReadEach(**again, w));
}

TEST(LevelDbParity, ManyBlocks) {
  const std::string path = TestPath();
  std::vector<Rec> w;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (uint64_t i = 0; i < 20000; ++i) {
      w.push_back(AppendRec(**store, 3, i, 1 + i % 100));
    }
    ASSERT_TRUE((*store)->Sync().ok());
    absl::StatusOr<std::vector<LogRecord>> all = ReadAll(**store);
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_TRUE(SameRecords(*all, w));
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<BlockInfo> blocks = ParseBlocks(ReadFileBytes(path));
  EXPECT_GE(blocks.size(), 20u);
  for (size_t b = 1; b < blocks.size(); ++b) {
    ASSERT_EQ(blocks[b].base,
              blocks[b - 1].base + RoundUp(blocks[b - 1].used, kBlockBytes))
        << "hole before block " << b;
  }
  Outcome o = RecoverFile(path, SmallOptions());
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, w));
  EXPECT_EQ(o.report.blocks, blocks.size());
  EXPECT_EQ(o.report.tail, LogEnd(blocks));
}

// LevelDB's Fragmentation: here the largest record fills a buffer.
TEST(LevelDbParity, LargeRecords) {
  const std::string path = TestPath();
  std::vector<Rec> w;
  size_t max = 0;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    max = (*store)->max_payload_bytes();
    EXPECT_EQ(max, kBufferBytes - kBlockHeaderBytes - kRecordHeaderBytes);
    for (size_t len : {size_t{1}, max / 2, max, size_t{1}, max}) {
      w.push_back(AppendRec(**store, 4, w.size(), len));
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<BlockInfo> blocks = ParseBlocks(ReadFileBytes(path));
  ASSERT_EQ(blocks.size(), 5u);  // four buffers and the close marker
  EXPECT_TRUE(blocks[4].marker());
  EXPECT_EQ(blocks[4].stable, blocks[4].base);
  EXPECT_EQ(blocks[1].used, kBufferBytes);
  EXPECT_EQ(blocks[3].used, kBufferBytes);
  EXPECT_EQ(w[2].address, blocks[1].base + kBlockHeaderBytes);
  EXPECT_EQ(w[3].address, blocks[2].base + kBlockHeaderBytes);
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverFile(path, ModeOptions(mode, true));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, w));
    EXPECT_EQ(o.report.tail, LogEnd(blocks));
  }
}

// MarginalTrailer, ShortTrailer and AlignedEof.
TEST(LevelDbParity, BufferFilledExactlyAndTrailers) {
  const size_t room = kBufferBytes - kBlockHeaderBytes;
  struct Case {
    const char* name;
    size_t left;      // bytes left in the first buffer after two records
    bool third_fits;  // whether a 1-byte record still fits there
  };
  for (const Case& c : {Case{"exact", 0, false}, Case{"short", 24, false},
                        Case{"marginal", 32, true}}) {
    SCOPED_TRACE(c.name);
    const std::string path = TestPath(c.name);
    const size_t a = 32744;  // footprint 32768
    const size_t b_footprint = room - RecordFootprint(a) - c.left;
    const size_t b = b_footprint - kRecordHeaderBytes;
    ASSERT_EQ(RecordFootprint(b), b_footprint);
    std::vector<Rec> w;
    {
      auto store = LogStructuredStore::Open(path, SmallOptions());
      ASSERT_TRUE(store.ok()) << store.status();
      w.push_back(AppendRec(**store, 5, 0, a));
      w.push_back(AppendRec(**store, 5, 1, b));
      w.push_back(AppendRec(**store, 5, 2, 1));
      ASSERT_TRUE((*store)->Close().ok());
    }
    const uint64_t base = 2 * kBlockBytes;
    EXPECT_EQ(w[0].address, base + kBlockHeaderBytes);
    EXPECT_EQ(w[1].address, base + kBlockHeaderBytes + RecordFootprint(a));
    const std::vector<BlockInfo> all = ParseBlocks(ReadFileBytes(path));
    ASSERT_TRUE(!all.empty() && all.back().marker());
    const std::vector<BlockInfo> blocks = DataBlocks(all);
    if (c.third_fits) {
      EXPECT_EQ(w[2].address, base + kBufferBytes - RecordFootprint(1));
      ASSERT_EQ(blocks.size(), 1u);
      EXPECT_EQ(blocks[0].used, kBufferBytes);  // aligned end of file
    } else {
      EXPECT_EQ(w[2].address, base + kBufferBytes + kBlockHeaderBytes);
      ASSERT_EQ(blocks.size(), 2u);
      EXPECT_EQ(blocks[0].used, kBufferBytes - c.left);
    }
    for (RecoveryMode mode : kAllModes) {
      SCOPED_TRACE(ModeName(mode));
      Outcome o = RecoverFile(path, ModeOptions(mode, true));
      ASSERT_TRUE(o.status.ok()) << o.status;
      EXPECT_TRUE(SameRecords(o.records, w));
      EXPECT_FALSE(o.report.cut);
      EXPECT_EQ(o.report.tail, LogEnd(all));
    }
  }
}

TEST(LevelDbParity, OpenForAppend) {
  const std::string path = TestPath();
  std::vector<Rec> w;
  uint64_t last_tail = 0;
  for (int session = 0; session < 3; ++session) {
    SCOPED_TRACE(absl::StrCat("session ", session));
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->recovery().records, w.size());
    EXPECT_FALSE((*store)->recovery().cut);
    EXPECT_GE((*store)->recovery().tail, last_tail);
    last_tail = (*store)->recovery().tail;
    const size_t before = w.size();
    for (int i = 0; i < 300; ++i) {
      w.push_back(AppendRec(**store, 6, w.size(), 1 + (i * 37) % 900));
    }
    EXPECT_EQ(w[before].address, last_tail + kBlockHeaderBytes);
    ASSERT_TRUE((*store)->Sync().ok());
    absl::StatusOr<std::vector<LogRecord>> all = ReadAll(**store);
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_TRUE(SameRecords(*all, w));
    ASSERT_TRUE((*store)->Close().ok());
  }
  Outcome o =
      RecoverFile(path, ModeOptions(RecoveryMode::kAbsoluteConsistency));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, w));
}

TEST(LevelDbParity, RandomRead) {
  const uint64_t seed = Seed();
  SCOPED_TRACE(absl::StrCat("LSS_TEST_SEED=", seed));
  std::mt19937_64 rng(seed);
  const std::string path = TestPath();
  std::vector<Rec> w;
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 500; ++i) {
    w.push_back(AppendRec(**store, 8, i, 1 + rng() % 3000));
  }
  std::vector<Rec> shuffled = w;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  EXPECT_TRUE(ReadEach(**store, shuffled));  // resident or written
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  auto again = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(again.ok()) << again.status();
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  EXPECT_TRUE(ReadEach(**again, shuffled));  // from the file
  // Addresses where no record starts.
  const std::vector<BlockInfo> blocks = ParseBlocks(ReadFileBytes(path));
  std::vector<uint64_t> nowhere = {0,
                                   8,
                                   4096,
                                   2 * kBlockBytes - 8,
                                   blocks[0].base,     // a block header
                                   w[0].address + 1,   // unaligned
                                   w[3].address + 8,   // inside a record
                                   w[3].address + 24,  // its payload
                                   LogEnd(blocks),     // the end
                                   LogEnd(blocks) + 1024 * 1024};
  for (uint64_t a : nowhere) {
    absl::StatusOr<LogRecord> r = (*again)->Read(a);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound)
        << "Read(" << a << "): " << r.status();
    if (!r.ok()) {
      EXPECT_THAT(r.status().message(), HasSubstr(path));
    }
  }
}

TEST(LevelDbParity, RecordTypesAndKeysRoundTrip) {
  const std::string path = TestPath();
  std::vector<Rec> w;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    for (uint32_t type : {kDataRecordType, kFirstUserRecordType,
                          kFirstUserRecordType + 1, uint32_t{0xFFFFFFFF}, 2u}) {
      w.push_back(AppendRec(**store, 9, w.size(), 17, type));
    }
    absl::StatusOr<uint64_t> zero =
        (*store)->Append("x", RecordTag{0, 1});  // 0 is padding
    EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE((*store)->Close().ok());
  }
  Outcome o = RecoverFile(path, SmallOptions());
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, w));
}


// The record's type field damaged, with the block CRC recomputed so that
// only the record's own CRC can see it.
TEST(LevelDbParity, BadRecordTypeMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  std::vector<std::byte> image = pristine;
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks.size(), 8u);  // seven and the close marker
  const size_t victim = RecordsBelow(w, blocks[2].base) + 1;
  image[w[victim].address + 16] ^= std::byte{0x02};
  Reseal(image, blocks[2].base);
  ExpectDamage(path, pristine, image, w, blocks[2], Damage::kAcknowledged);
}

TEST(LevelDbParity, BadRecordTypeAtEnd) {
  ExpectLastBlockDamage(
      TestPath(), MidLogPlan(),
      [](std::vector<std::byte>& image, const BlockInfo& last,
         const std::vector<Rec>& w) {
        image[w.back().address + 16] ^= std::byte{0x40};
        Reseal(image, last.base);
      });
}

// A file cut inside the last data block also loses the close marker after
// it: what is left proves nothing about the last block, a torn tail.
void ExpectTruncatedLastBlock(const std::string& path,
                              const std::vector<std::byte>& full,
                              const std::vector<Rec>& w, uint64_t cut) {
  SCOPED_TRACE(absl::StrCat("file cut at ", cut));
  const BlockInfo last = DataBlocks(ParseBlocks(full)).back();
  ASSERT_GT(cut, last.base);
  ASSERT_LT(cut, last.base + RoundUp(last.used, kBlockBytes));
  ExpectDamage(path, full,
               std::vector<std::byte>(full.begin(), full.begin() + cut), w,
               last, Damage::kTornTail);
}

TEST(LevelDbParity, TruncatedTrailingRecord) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = DataBlocks(ParseBlocks(full)).back();
  // The used bytes may end in record padding (zeros): cut so that the last
  // non-zero byte is lost.
  uint64_t last_non_zero = last.base + last.used - 1;
  while (full[last_non_zero] == std::byte{0}) --last_non_zero;
  for (uint64_t cut : {last_non_zero, last_non_zero - 99,
                       last.base + kBlockHeaderBytes + 10, last.base + 20}) {
    ExpectTruncatedLastBlock(path, full, w, cut);
  }
}

// A file that ends inside the last block's used bytes, where only zeros
// (record padding) are missing. Every block write covers the whole padded
// block, so the file lost its end: the block is torn like any other (the
// records it holds are whole, so kSkipCorrupted returns them).
TEST(LevelDbParity, TruncatedInTheZeroPaddingOfTheLastBlock) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {300, 301};  // 4 and 3 bytes of record padding
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = DataBlocks(ParseBlocks(full)).back();
  ASSERT_EQ(full[last.base + last.used - 1], std::byte{0});
  // One byte of padding lost, then one of payload as well.
  for (uint64_t cut : {last.base + last.used - 1, last.base + last.used - 4}) {
    ExpectTruncatedLastBlock(path, full, w, cut);
  }
}

TEST(LevelDbParity, TruncatedInsideALargeLastBlock) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.pop_back();  // the last block is a full 64 KiB buffer
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = DataBlocks(ParseBlocks(full)).back();
  for (uint64_t cut : {last.base + 4096, last.base + 4097, last.base + 33000,
                       last.base + last.used - 8}) {
    ExpectTruncatedLastBlock(path, full, w, cut);
  }
}

// BadLength: a record's length field, block CRC recomputed.
TEST(LevelDbParity, BadLengthMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(pristine);
  const size_t first = RecordsBelow(w, blocks[2].base);
  for (uint32_t len :
       {uint32_t{0}, uint32_t{1999}, uint32_t{2001}, uint32_t{2008},
        uint32_t{1u << 20}, uint32_t{0xFFFFFFFF}}) {
    SCOPED_TRACE(absl::StrCat("length ", len));
    std::vector<std::byte> image = pristine;
    std::memcpy(image.data() + w[first].address + 4, &len, 4);
    Reseal(image, blocks[2].base);
    ExpectDamage(path, pristine, image, w, blocks[2], Damage::kAcknowledged);
  }
}

TEST(LevelDbParity, BadLengthAtEnd) {
  ExpectLastBlockDamage(
      TestPath(), MidLogPlan(),
      [](std::vector<std::byte>& image, const BlockInfo& last,
         const std::vector<Rec>& w) {
        const uint32_t len = 5000;  // runs past the block's used bytes
        std::memcpy(image.data() + w.back().address + 4, &len, 4);
        Reseal(image, last.base);
      });
}

TEST(LevelDbParity, ChecksumMismatchMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(pristine);
  // The block CRC itself, a header field, a record header, a payload byte.
  for (uint64_t at : {blocks[2].base, blocks[2].base + 33,
                      blocks[2].base + kBlockHeaderBytes + 1,
                      blocks[2].base + blocks[2].used - 1}) {
    SCOPED_TRACE(absl::StrCat("byte ", at));
    std::vector<std::byte> image = pristine;
    image[at] ^= std::byte{0x20};
    if (at < blocks[2].base + kBlockHeaderBytes) {
      // Header damage changes no record: flip one in it as well, so the
      // oracle has a record to miss (and kSkipCorrupted must still return
      // the other two).
      image[w[RecordsBelow(w, blocks[2].base)].address + 30] ^= std::byte{1};
    }
    ExpectDamage(path, pristine, image, w, blocks[2], Damage::kAcknowledged);
  }
}

TEST(LevelDbParity, ChecksumMismatchAtEnd) {
  ExpectLastBlockDamage(TestPath(), MidLogPlan(),
                        [](std::vector<std::byte>& image, const BlockInfo& last,
                           const std::vector<Rec>&) {
                          image[last.base + last.used - 3] ^= std::byte{1};
                        });
}

// A crash before Close with no waits: nothing proves any block, so damage
// to block 5 is the tail a crash tore even though an intact block of this
// epoch (6) follows it: kTolerateCorruptedTail and kPointInTime cut there
// and drop block 6 (never acknowledged); kAbsoluteConsistency refuses.
TEST(LevelDbParity, DamageNothingProvesIsATornTailEvenWithBlocksAfterIt) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan(), Proof::kNothing);
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  std::vector<std::byte> image = pristine;
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks.size(), 7u);
  image[blocks[5].base + 1000] ^= std::byte{1};
  ExpectDamage(path, pristine, image, w, blocks[5], Damage::kTornTail);
}

// The same damage after a Sync per block and a crash before Close: block
// 6's `stable` proves block 5 acknowledged, close marker or not.
TEST(LevelDbParity, ALaterBlocksWatermarkProvesTheDamagedBlock) {
  const std::string path = TestPath();
  const std::vector<Rec> w =
      WriteBlocks(path, MidLogPlan(), Proof::kEachBlockByTheNext);
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(pristine);
  ASSERT_EQ(blocks.size(), 7u);
  {
    SCOPED_TRACE("block 5, proven by block 6");
    std::vector<std::byte> image = pristine;
    image[blocks[5].base + 1000] ^= std::byte{1};
    ExpectDamage(path, pristine, image, w, blocks[5], Damage::kAcknowledged);
  }
  {
    SCOPED_TRACE("block 6, proven by nothing");
    std::vector<std::byte> image = pristine;
    image[blocks[6].base + 100] ^= std::byte{1};
    ExpectDamage(path, pristine, image, w, blocks[6], Damage::kTornTail);
  }
}

// LevelDB's Unexpected*Type: a well-formed block that does not belong here.
TEST(LevelDbParity, BlockFromElsewhere) {
  const std::string path = TestPath();
  // Blocks 1 and 2 both hold three 2000-byte records: same size.
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan[1] = {2000, 2000, 2000};
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(pristine);
  ASSERT_EQ(blocks[1].used, blocks[2].used);
  const BlockInfo& b = blocks[2];
  {
    SCOPED_TRACE("copy of the block before it");
    std::vector<std::byte> image = pristine;
    std::memcpy(image.data() + b.base, pristine.data() + blocks[1].base,
                RoundUp(b.used, kBlockBytes));
    ExpectDamage(path, pristine, image, w, b, Damage::kAcknowledged);
  }
  {
    // Its records still verify (their CRCs cover their address, not the
    // store id): kSkipCorrupted returns them. One is damaged as well so
    // that the oracle has something to miss.
    SCOPED_TRACE("another store's block");
    std::vector<std::byte> image = pristine;
    image[b.base + 8] ^= std::byte{0x01};
    image[w[RecordsBelow(w, b.base)].address + 30] ^= std::byte{1};
    Reseal(image, b.base);
    ExpectDamage(path, pristine, image, w, b, Damage::kAcknowledged);
  }
  {
    // Intact, of an epoch newer than the superblock's: the superblock in
    // use is older than the log. DataLoss in every mode but kSkipCorrupted,
    // which keeps the block and so every record.
    SCOPED_TRACE("a block from a later epoch");
    std::vector<std::byte> image = pristine;
    const uint64_t epoch = 9;
    std::memcpy(image.data() + b.base + 24, &epoch, 8);
    Reseal(image, b.base);
    for (RecoveryMode mode : kAllModes) {
      SCOPED_TRACE(ModeName(mode));
      Outcome o = RecoverImage(path, image, ModeOptions(mode));
      if (mode == RecoveryMode::kSkipCorrupted) {
        ASSERT_TRUE(o.status.ok()) << o.status;
        EXPECT_TRUE(SameRecords(o.records, w));
        EXPECT_TRUE(o.after == image);
        continue;
      }
      EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss) << o.status;
      EXPECT_THAT(o.status.message(), HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.status.message(), b.base, b.used));
      EXPECT_TRUE(o.after == image) << "a refused open changed the file";
    }
  }
}

// PartialLastIsIgnored: a three-page last block of which only the first page
// (or two) reached the disk. Closed, the close marker was zeroed too (a
// lost write of the whole end): nothing proves the block, a torn tail; with
// the marker kept, the same loss is damage to acknowledged data.
TEST(LevelDbParity, PartialLastBlock) {
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {3000, 3000, 3000};  // three pages
  for (uint64_t pages : {1, 2}) {
    SCOPED_TRACE(absl::StrCat(pages, " pages written"));
    const std::string path = TestPath();
    const std::vector<Rec> w = WriteBlocks(path, plan);
    const std::vector<std::byte> pristine = ReadFileBytes(path);
    const BlockInfo last = DataBlocks(ParseBlocks(pristine)).back();
    ASSERT_GT(last.used, 2 * kBlockBytes);
    const uint64_t from = last.base + pages * kBlockBytes;
    const uint64_t to = last.base + 3 * kBlockBytes;
    {
      SCOPED_TRACE("close marker kept");
      std::vector<std::byte> image = pristine;
      std::fill(image.begin() + from, image.begin() + to, std::byte{0});
      ExpectDamage(path, pristine, image, w, last, Damage::kAcknowledged);
    }
    {
      SCOPED_TRACE("close marker lost");
      std::vector<std::byte> image = pristine;
      std::fill(image.begin() + from, image.end(), std::byte{0});
      ExpectDamage(path, pristine, image, w, last, Damage::kTornTail);
    }
  }
}

// MissingFirst: the last block's later pages reached the disk but not its
// first 512 bytes (a torn write; also what a zeroed sector looks like). The
// header reads as unwritten space, but torn bytes follow it: in a crashed
// log the tail (kAbsoluteConsistency refuses: "torn bytes right after the
// end"), in a closed one damage. The records after the zeroed sector are
// whole, and kSkipCorrupted returns them.
TEST(LevelDbParity, LastBlockMissingItsFirstSector) {
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {3000, 3000, 3000};
  ExpectLastBlockDamage(
      TestPath(), plan,
      [](std::vector<std::byte>& image, const BlockInfo& last,
         const std::vector<Rec>&) {
        std::fill(image.begin() + last.base, image.begin() + last.base + 512,
                  std::byte{0});
      },
      /*corrupt=*/false);
}

// A zeroed sector over the header of a block in the middle (RELIABILITY
// 3.A4's "zero a 512 B sector"): it reads as unwritten space, but the close
// marker proves the log goes on.
TEST(LevelDbParity, ZeroedHeaderSectorMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  std::vector<std::byte> image = pristine;
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  std::fill(image.begin() + blocks[2].base,
            image.begin() + blocks[2].base + 512, std::byte{0});
  ExpectDamage(path, pristine, image, w, blocks[2], Damage::kAcknowledged,
               /*corrupt=*/false);
}

// The epoch field of a block in the middle damaged to an older epoch (no
// reseal): a checksum mismatch like any other damage.
TEST(LevelDbParity, EpochFieldDamagedMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  std::vector<std::byte> image = pristine;
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks[2].epoch, 1u);
  image[blocks[2].base + 24] ^= std::byte{0x01};  // epoch 1 -> 0
  image[w[RecordsBelow(w, blocks[2].base)].address + 30] ^= std::byte{1};
  ExpectDamage(path, pristine, image, w, blocks[2], Damage::kAcknowledged);
}

// ErrorJoinsRecords: damage across the boundary of two blocks loses the
// records it touches and nothing else; no record is stitched from the two.
TEST(LevelDbParity, DamageAcrossTwoBlocksDoesNotJoinRecords) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan[1] = {500, 700, 2600};  // block 1 ends 152 bytes before a page end
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> pristine = ReadFileBytes(path);
  std::vector<std::byte> image = pristine;
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  const uint64_t boundary = blocks[2].base;
  ASSERT_GT(blocks[1].base + blocks[1].used, boundary - 256);
  std::fill(image.begin() + boundary - 256, image.begin() + boundary + 256,
            std::byte{0x5A});
  Outcome o =
      RecoverImage(path, image, ModeOptions(RecoveryMode::kSkipCorrupted));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(Salvaged(o.records, Untouched(w, pristine, image),
                       Untouched(w, pristine, image, false)));
  EXPECT_EQ(o.report.skipped.size(), 1u) << "blocks 1-2 are one skipped range";
  o = RecoverImage(path, image, ModeOptions(RecoveryMode::kPointInTime));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(o.report.lost_acknowledged);
  EXPECT_TRUE(
      SameRecords(o.records, Prefix(w, RecordsBelow(w, blocks[1].base))));
  o = RecoverImage(path, image, SmallOptions());
  EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss) << o.status;
}

TEST(LevelDbParity, ReaderFromAnyOffset) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<BlockInfo> blocks = ParseBlocks(ReadFileBytes(path));
  auto store = LogStructuredStore::Open(
      path, ModeOptions(RecoveryMode::kTolerateCorruptedTail,
                        /*read_only=*/true));
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint64_t> froms = {0,
                                 1,
                                 2 * kBlockBytes,
                                 LogEnd(blocks),
                                 LogEnd(blocks) + 12345,
                                 ~uint64_t{0} >> 1};
  for (const BlockInfo& b : blocks) {
    froms.push_back(b.base);
    froms.push_back(b.base + b.used);
  }
  for (const Rec& r : w) {
    froms.push_back(r.address);
    froms.push_back(r.address + 8);
    froms.push_back(r.address - 1);
  }
  for (uint64_t from : froms) {
    SCOPED_TRACE(absl::StrCat("from ", from));
    absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**store, from);
    ASSERT_TRUE(got.ok()) << got.status();
    std::vector<Rec> want;
    for (const Rec& r : w) {
      if (r.address >= from) want.push_back(r);
    }
    ASSERT_TRUE(SameRecords(*got, want));
  }
}

// Recovery for writing cuts a torn last block; the new epoch's first block
// goes to the same address. When the new block is shorter than the torn
// one, the torn block's later pages are still on disk past it. After a
// clean Close the log must read back whole, in every mode (a clean
// shutdown is what kAbsoluteConsistency is for), and the default mode must
// not report a cut: the torn remnant has to be neutralised (zeroed, or
// otherwise never read as part of the log) by the recovery that cut it.
TEST(LevelDbParity, AppendAfterCuttingATornTailThenRecoverCleanly) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {3000, 3000, 3000};  // three pages
  // A crash before Close: nothing proves the last block, so damage there is
  // a torn tail that the default mode cuts.
  const std::vector<Rec> w = WriteBlocks(path, plan, Proof::kNothing);
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(full).back();
  ASSERT_EQ(RoundUp(last.used, kBlockBytes), 3 * kBlockBytes);
  struct Case {
    std::string name;
    std::vector<std::byte> image;
  };
  std::vector<Case> cases;
  for (uint64_t cut : {last.base + 100, last.base + kBlockBytes + 1,
                       last.base + last.used - 9}) {
    cases.push_back({absl::StrCat("file cut at ", cut),
                     std::vector<std::byte>(full.begin(), full.begin() + cut)});
  }
  cases.push_back({"a bit flipped in the first page, file whole", full});
  cases.back().image[last.base + 200] ^= std::byte{0x08};
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.name, "; torn block at ", last.base, ", ",
                              last.used, " bytes"));
    WriteFileBytes(path, c.image);
    const std::vector<BlockInfo> intact = IntactBlocks(c.image);
    std::vector<Rec> want = Prefix(w, RecordsBelow(w, last.base));
    {
      auto store = LogStructuredStore::Open(path, SmallOptions());
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE((*store)->recovery().cut);
      ASSERT_FALSE((*store)->recovery().lost_acknowledged);
      ASSERT_EQ((*store)->recovery().tail, last.base);
      // One block of two pages where the torn one had three.
      for (int i = 0; i < 3; ++i) {
        want.push_back(AppendRec(**store, 40, i, 100 + 2000 * i));
      }
      ASSERT_EQ(want[want.size() - 3].address, last.base + kBlockHeaderBytes);
      ASSERT_TRUE((*store)->Close().ok());
    }
    const std::vector<std::byte> after = ReadFileBytes(path);
    // The blocks before the cut are untouched; the appends go after them.
    EXPECT_TRUE(IntactBlocksUnchanged(c.image, after, intact));
    const std::vector<BlockInfo> now = DataBlocks(ParseBlocks(after));
    ASSERT_EQ(now.back().base, last.base);
    ASSERT_EQ(now.back().epoch, 2u);
    for (RecoveryMode mode : kAllModes) {
      SCOPED_TRACE(ModeName(mode));
      Outcome o = RecoverImage(path, after, ModeOptions(mode, true));
      if (!o.status.ok()) {
        ADD_FAILURE() << "a cleanly closed log does not open: " << o.status
                      << "\n  (the new block ends at "
                      << now.back().base + RoundUp(now.back().used, kBlockBytes)
                      << "; the torn block's bytes continue to "
                      << last.base + RoundUp(last.used, kBlockBytes) << ")";
        continue;
      }
      EXPECT_TRUE(SameRecords(o.records, want));
      EXPECT_FALSE(o.report.cut) << o.report.end;
      EXPECT_TRUE(o.report.skipped.empty());
    }
  }
}

// ================================================================ A2

// Preallocated (zero) space past the log is a clean end in every mode.
TEST(StaleAndZeroTail, PreallocatedTailIsACleanEnd) {
  const std::string path = TestPath();
  StoreOptions o = SmallOptions();
  o.preallocate_bytes = 1 << 20;
  const std::vector<Rec> w =
      WriteBlocks(path, {{100, 200}, {3000}}, Proof::kClosed, 1, o);
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  if (image.size() <= LogEnd(blocks)) {
    image.resize(LogEnd(blocks) + (1 << 20));  // no fallocate here: do it
  }
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome out = RecoverImage(path, image, ModeOptions(mode));
    ASSERT_TRUE(out.status.ok()) << out.status;
    EXPECT_TRUE(SameRecords(out.records, w));
    EXPECT_FALSE(out.report.cut);
    EXPECT_TRUE(out.report.skipped.empty());
    EXPECT_EQ(out.report.tail, LogEnd(blocks));
  }
}

// Life 1 writes blocks 0..9 and is closed. Block 5 is damaged;
// kPointInTime cuts there (acknowledged records lost, so reported) and life
// 2 writes one block of the same size at block 5's address and closes, so
// life-1 blocks 6..9 (intact, never touched by the open) lie past it.
// Life 2's close marker went over the first page of life-1 block 6, and
// Close then cleared the rest of that block (bytes that no longer verify);
// putting the whole block back (as if a crash had lost the marker and the
// clearing, which were never synced) leaves block 6, intact and of an
// older epoch, exactly where the log now ends.
// It must read as the end (stale epoch) in every mode, with nothing
// reported as corrupt.
TEST(StaleAndZeroTail, BlocksOfAnEarlierEpochReadAsTheEnd) {
  const std::string path = TestPath();
  const std::vector<size_t> same(10, 1000);  // 10 x 1024 + 64: 3 pages
  const std::vector<Rec> w1 =
      WriteBlocks(path, std::vector<std::vector<size_t>>(10, same));
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks.size(), 11u);  // and the close marker
  image[blocks[5].base + 100] ^= std::byte{1};
  WriteFileBytes(path, image);
  const std::vector<BlockInfo> intact = IntactBlocks(image);
  std::vector<Rec> expected = Prefix(w1, RecordsBelow(w1, blocks[5].base));
  {
    auto store =
        LogStructuredStore::Open(path, ModeOptions(RecoveryMode::kPointInTime));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->recovery().cut);
    ASSERT_TRUE((*store)->recovery().lost_acknowledged);
    ASSERT_EQ((*store)->recovery().tail, blocks[5].base);
    for (size_t i = 0; i < same.size(); ++i) {
      expected.push_back(AppendRec(**store, 2, i, same[i]));
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<std::byte> life1 = image;
  image = ReadFileBytes(path);
  // The open changed no intact block; only life 2's block and close marker
  // went over life-1 blocks 5 (corrupt) and 6.
  std::vector<BlockInfo> not_overwritten;
  for (const BlockInfo& b : intact) {
    if (b.base > blocks[6].base) not_overwritten.push_back(b);
  }
  EXPECT_TRUE(IntactBlocksUnchanged(life1, image, not_overwritten));
  const uint64_t block6_bytes =
      (blocks[6].used + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  std::copy(life1.begin() + blocks[6].base,
            life1.begin() + blocks[6].base + block6_bytes,
            image.begin() + blocks[6].base);
  WriteFileBytes(path, image);
  const std::vector<BlockInfo> now = ParseBlocks(image);
  ASSERT_EQ(now.size(), 11u);  // the walk sees block 6 of life 1 after it
  EXPECT_EQ(now[5].epoch, 2u);
  EXPECT_EQ(now[6].epoch, 1u);
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, expected));
    EXPECT_FALSE(o.report.cut);
    EXPECT_EQ(o.report.tail, now[6].base);
    EXPECT_TRUE(o.report.skipped.empty());
  }
}

// A clean close whose new blocks end inside an intact block of an older
// epoch (left past the tail by a cut, and never cleared because it
// verifies) must still reopen clean in every mode: the close marker's page
// goes over that block's first page, and its later pages must not read as
// a torn tail.
TEST(StaleAndZeroTail, CleanCloseOverAStaleBlockReopensClean) {
  const std::string path = TestPath();
  const std::vector<size_t> same(10, 1000);  // 3 pages per block
  const std::vector<Rec> w1 =
      WriteBlocks(path, std::vector<std::vector<size_t>>(10, same));
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  image[blocks[5].base + 100] ^= std::byte{1};
  WriteFileBytes(path, image);
  std::vector<Rec> expected = Prefix(w1, RecordsBelow(w1, blocks[5].base));
  {
    auto store =
        LogStructuredStore::Open(path, ModeOptions(RecoveryMode::kPointInTime));
    ASSERT_TRUE(store.ok()) << store.status();
    for (size_t i = 0; i < same.size(); ++i) {
      expected.push_back(AppendRec(**store, 2, i, same[i]));
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<std::byte> closed = ReadFileBytes(path);
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, closed, ModeOptions(mode, true));
    if (!o.status.ok()) {
      ADD_FAILURE() << "a cleanly closed log does not open: " << o.status;
      continue;
    }
    EXPECT_TRUE(SameRecords(o.records, expected));
    EXPECT_FALSE(o.report.cut) << o.report.end;
    EXPECT_TRUE(o.report.skipped.empty()) << o.report.skipped[0];
  }
}

// Records appended after a kPointInTime cut and acknowledged by Close must
// be proven like any others: the cut dropped the blocks whose watermark
// was the old proof, so Close must write a close marker (the superblock's
// epoch start proves only the cut). Damage to them is then DataLoss, not
// a torn tail to cut silently.
TEST(StaleAndZeroTail, AppendsAfterAPointInTimeCutAreProven) {
  const std::string path = TestPath();
  const std::vector<Rec> w1 = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  image[blocks[5].base + 100] ^= std::byte{1};
  WriteFileBytes(path, image);
  std::vector<Rec> w = Prefix(w1, RecordsBelow(w1, blocks[5].base));
  {
    auto store =
        LogStructuredStore::Open(path, ModeOptions(RecoveryMode::kPointInTime));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->recovery().lost_acknowledged);
    for (int i = 0; i < 3; ++i) w.push_back(AppendRec(**store, 3, i, 500));
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::vector<std::byte> closed = ReadFileBytes(path);
  const std::vector<BlockInfo> now = ParseBlocks(closed);
  ASSERT_GE(now.size(), 6u);
  ASSERT_EQ(now[5].base, blocks[5].base);
  ASSERT_EQ(now[5].epoch, 2u);
  std::vector<std::byte> damaged = closed;
  damaged[w.back().address + 30] ^= std::byte{1};
  Outcome o = RecoverImage(path, damaged, SmallOptions());
  EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss)
      << o.status << "; acknowledged records cut: kept " << o.records.size()
      << " of " << w.size() << "; end: " << o.report.end;
  if (!o.status.ok()) {
    EXPECT_TRUE(o.after == damaged) << "a refused open changed the file";
  }
}

// ================================================================ A3

struct Sweep {
  std::vector<Rec> written;
  std::vector<std::byte> image;
  std::vector<BlockInfo> blocks;
};

// `n` records of random sizes (crossing sectors, pages and buffers), with a
// Flush now and then (short blocks), over `sessions` opens.
Sweep WriteRandomLog(const std::string& path, uint64_t seed, int n,
                     int sessions, size_t max_len) {
  Sweep s;
  std::mt19937_64 rng(seed);
  int index = 0;
  for (int session = 0; session < sessions; ++session) {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return s;
    for (int i = 0; i < n / sessions; ++i, ++index) {
      const int pick = rng() % 100;
      size_t len = pick < 70   ? 1 + rng() % 300
                   : pick < 95 ? 300 + rng() % 4700
                               : 5000 + rng() % (max_len - 5000);
      s.written.push_back(AppendRec(**store, 11, index, len));
      if (rng() % 25 == 0) {
        EXPECT_TRUE((*store)->Flush().ok());
      }
    }
    EXPECT_TRUE((*store)->Close().ok());
  }
  s.image = ReadFileBytes(path);
  s.blocks = ParseBlocks(s.image);
  return s;
}

bool SuperblockSurvives(std::span<const std::byte> image, uint64_t size) {
  for (uint64_t slot : {uint64_t{0}, uint64_t{kBlockBytes}}) {
    std::vector<std::byte> bytes(kSuperblockBytes);
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (slot + i < size) bytes[i] = image[slot + i];
    }
    if (DecodeSuperblock(bytes, "").ok()) return true;
  }
  return false;
}

TEST(TruncationSweep, EveryPrefixRecoversExactlyTheWholeBlocks) {
  const uint64_t seed = Seed();
  SCOPED_TRACE(absl::StrCat("LSS_TEST_SEED=", seed));
  const std::string source = TestPath("source");
  const Sweep s = WriteRandomLog(source, seed, 1000, 1, 30000);
  ASSERT_GE(s.blocks.size(), 10u);
  ASSERT_EQ(LogEnd(s.blocks), s.image.size());
  // One session without waits: the close marker is the only proof, and
  // every cut below its end removes it. Every truncation is then a torn
  // tail, cut at the first block the file no longer holds whole.
  ASSERT_TRUE(s.blocks.back().marker());
  for (size_t b = 0; b + 1 < s.blocks.size(); ++b) {
    ASSERT_LE(s.blocks[b].stable, 2 * kBlockBytes) << "block " << b;
  }
  const std::vector<BlockInfo> data = DataBlocks(s.blocks);
  std::mt19937_64 rng(seed + 1);

  std::set<uint64_t> lengths;
  for (uint64_t l = 0; l <= s.image.size(); l += kBlockBytes) lengths.insert(l);
  for (uint64_t l : {1, 8, 79, 80, 4095, 4097, 4096 + 71, 4096 + 72, 4096 + 75,
                     4096 + 76, 4096 + 80, 8191}) {
    lengths.insert(l);
  }
  for (size_t b = 0; b < s.blocks.size(); ++b) {
    const BlockInfo& k = s.blocks[b];
    for (uint64_t l : {k.base + 1, k.base + k.used - 1, k.base + k.used,
                       k.base + k.used + 1}) {
      lengths.insert(l);
    }
    // The last three data blocks and the close marker.
    if (b + 4 < s.blocks.size()) continue;
    // The last three blocks: byte by byte through the header, every sector
    // boundary +-1, around the end of the used bytes, and random points.
    for (uint64_t l = k.base; l <= k.base + 80; ++l) lengths.insert(l);
    for (uint64_t l = k.base; l <= k.base + k.used + 512; l += 512) {
      lengths.insert(l - 1);
      lengths.insert(l);
      lengths.insert(l + 1);
    }
    for (uint64_t l = k.base + k.used - 16; l <= k.base + k.used + 16; ++l) {
      lengths.insert(l);
    }
    for (int i = 0; i < 50; ++i) lengths.insert(k.base + rng() % k.used);
  }

  std::map<std::string, int> failures;
  std::map<std::string, std::string> first_failure;
  auto fail = [&](const std::string& what, const std::string& detail) {
    if (failures[what]++ == 0) first_failure[what] = detail;
  };
  auto all_zero = [&](uint64_t from, uint64_t to) {
    for (uint64_t p = from; p < to; ++p) {
      if (s.image[p] != std::byte{0}) return false;
    }
    return true;
  };

  // Truncate a copy downwards; open read-only under the default mode.
  const std::string path = TestPath();
  WriteFileBytes(path, s.image);
  int checked = 0;
  int writable = 0;
  for (auto it = lengths.rbegin(); it != lengths.rend(); ++it) {
    const uint64_t len = *it;
    if (len > s.image.size()) continue;
    const std::string trial =
        absl::StrCat("truncated to ", len, " of ", s.image.size());
    ASSERT_EQ(truncate(path.c_str(), len), 0) << strerror(errno);

    // The oracle. Every block write covers the whole padded block, so a
    // block is whole when the file still holds all of it; a file that ends
    // anywhere inside a block (even in its zero padding) lost its end. The
    // first block that is not whole is the tail; it is reported as cut
    // unless what is left of its header is all zeros (which reads as
    // unwritten space).
    size_t whole = 0;
    while (whole < s.blocks.size() &&
           len >= s.blocks[whole].base +
                      RoundUp(s.blocks[whole].used, kBlockBytes)) {
      ++whole;
    }
    const uint64_t tail =
        whole < s.blocks.size() ? s.blocks[whole].base : LogEnd(s.blocks);
    const bool torn = whole < s.blocks.size() && len > tail &&
                      !all_zero(tail, std::min(len, tail + kBlockHeaderBytes));
    const std::vector<Rec> want =
        Prefix(s.written, RecordsBelow(s.written, tail));
    const bool has_superblock = SuperblockSurvives(s.image, len);

    Outcome o = RecoverFileQuiet(
        path, ModeOptions(RecoveryMode::kTolerateCorruptedTail, true),
        /*read_each=*/false);
    ++checked;
    if (len == 0) {
      // What a writer killed before its first superblock leaves: an empty
      // log.
      if (!o.status.ok() || o.report.records != 0) {
        fail("an empty file is not an empty log",
             absl::StrCat(trial, ": ", o.status.ToString()));
      }
      continue;
    }
    if (!has_superblock) {
      // Slot 0 was never written (one session) and slot 1 is cut short.
      // Zeros alone are what a creator that died before its first
      // superblock was durable leaves: a new, empty log. Any other byte
      // (part of slot 1) is damage to the only written slot: an error.
      if (all_zero(0, len)) {
        if (!o.status.ok() || o.report.records != 0) {
          fail("zeros without a superblock are not an empty log",
               absl::StrCat(trial, ": ", o.status.ToString()));
        }
      } else if (o.status.ok()) {
        fail("opened without a superblock", trial);
      } else if (!absl::StrContains(o.status.message(), path)) {
        fail("the error does not name the file",
             absl::StrCat(trial, ": ", o.status.ToString()));
      }
      continue;
    }
    if (!o.status.ok()) {
      fail("open failed", absl::StrCat(trial, ": ", o.status.ToString()));
      continue;
    }
    if (!o.read_status.ok()) {
      fail("recovered records cannot be read back",
           absl::StrCat(trial, ": recovery kept ", o.report.records,
                        " records, tail ", o.report.tail, "; ",
                        o.read_status.ToString()));
    }
    if (o.report.records != want.size() || o.report.blocks != whole ||
        o.report.tail != std::max<uint64_t>(tail, 2 * kBlockBytes) ||
        o.report.cut != torn) {
      fail("the recovery report is not the whole blocks",
           absl::StrCat(trial, ": records ", o.report.records, " (want ",
                        want.size(), "), blocks ", o.report.blocks, " (want ",
                        whole, "), tail ", o.report.tail, " (want ",
                        std::max<uint64_t>(tail, 2 * kBlockBytes), "), cut ",
                        o.report.cut, " (want ", torn,
                        "); end: ", o.report.end));
    }
    if (o.read_status.ok()) {
      const ::testing::AssertionResult same = SameRecords(o.records, want);
      if (!same) {
        fail("records differ from the whole blocks",
             absl::StrCat(trial, ": ", same.message()));
      }
    }

    // Now and then (every 4th cut inside the last block, every 37th
    // elsewhere) also open for writing, append, and recover again (A5 on a
    // torn log).
    const bool in_last = len > data.back().base;
    if (len < 2 * kBlockBytes || checked % (in_last ? 4 : 37) != 0) continue;
    ++writable;
    const std::string copy = TestPath("copy");
    WriteFileBytes(copy, std::span(s.image).first(len));
    const std::vector<BlockInfo> intact =
        IntactBlocks(std::span(s.image).first(len));
    std::vector<Rec> more = want;
    {
      auto store = LogStructuredStore::Open(copy, SmallOptions());
      if (!store.ok()) {
        fail("writable open failed",
             absl::StrCat(trial, ": ", store.status().ToString()));
        continue;
      }
      if ((*store)->recovery().records != want.size() ||
          (*store)->recovery().tail != o.report.tail) {
        fail("writable open recovers otherwise than read-only",
             absl::StrCat(trial, ": records ", (*store)->recovery().records,
                          ", tail ", (*store)->recovery().tail));
      }
      for (int i = 0; i < 3; ++i) {
        more.push_back(AppendRec(**store, 12, i, 100 + 2000 * i));
      }
      if (more[want.size()].address !=
          (*store)->recovery().tail + kBlockHeaderBytes) {
        fail(
            "appends do not continue at the recovered tail",
            absl::StrCat(trial, ": first append at ", more[want.size()].address,
                         ", tail ", (*store)->recovery().tail));
      }
      const absl::Status closed = (*store)->Close();
      if (!closed.ok()) {
        fail("Close failed", absl::StrCat(trial, ": ", closed.ToString()));
      }
    }
    Outcome again = RecoverFileQuiet(
        copy, ModeOptions(RecoveryMode::kAbsoluteConsistency, true),
        /*read_each=*/false);
    // The appends went to the tail, past every block the file held whole.
    if (const ::testing::AssertionResult same = IntactBlocksUnchanged(
            std::span(s.image).first(len), again.after, intact);
        !same) {
      fail("an intact block changed", absl::StrCat(trial, ": ", same.message()));
    }
    if (!again.status.ok() || !again.read_status.ok()) {
      fail("recover-append-recover fails",
           absl::StrCat(trial, ": ", again.status.ToString(), " / ",
                        again.read_status.ToString()));
      continue;
    }
    const ::testing::AssertionResult same = SameRecords(again.records, more);
    if (!same) {
      fail("recover-append-recover loses or changes records",
           absl::StrCat(trial, ": ", same.message()));
    }
  }
  EXPECT_GT(checked, 500);
  EXPECT_GT(writable, 60);
  for (const auto& [what, count] : failures) {
    ADD_FAILURE() << count << " of " << checked << " truncations: " << what
                  << "\n  first: " << first_failure[what];
  }
}

// ================================================================ A4

enum class Action { kFlipBit, kZeroSector, kRandomSector };

TEST(CorruptionSweep, RandomDamageNeverYieldsMoreThanWasWritten) {
  const uint64_t seed = Seed();
  const int positions =
      static_cast<int>(EnvU64("LSS_CORRUPTION_POSITIONS", 10000));
  const bool direct_io = EnvU64("LSS_SWEEP_DIRECT_IO", 0) != 0;
  SCOPED_TRACE(absl::StrCat("LSS_TEST_SEED=", seed,
                            " LSS_CORRUPTION_POSITIONS=", positions));
  const std::string path = TestPath();
  // Two sessions, so both superblock slots hold a valid superblock (the
  // current one at sequence 2 in slot 0, the previous one in slot 1).
  const Sweep s = WriteRandomLog(path, seed, 240, 2, 12000);
  ASSERT_EQ(LogEnd(s.blocks), s.image.size());
  ASSERT_GE(s.blocks.size(), 8u);
  absl::StatusOr<Superblock> current = DecodeSuperblock(s.image, "slot 0");
  ASSERT_TRUE(current.ok()) << current.status();
  ASSERT_EQ(current->sequence, 2u);
  ASSERT_TRUE(
      DecodeSuperblock(std::span(s.image).subspan(kBlockBytes), "1").ok());
  bool two_epochs = false;
  for (const BlockInfo& b : s.blocks) two_epochs |= b.epoch == 2;
  ASSERT_TRUE(two_epochs);

  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::mt19937_64 rng(seed ^ 0xC0FFEE);
  std::map<std::string, int> failures;
  std::map<std::string, std::string> first_failure;
  auto fail = [&](const std::string& what, const std::string& detail) {
    if (failures[what]++ == 0) first_failure[what] = detail;
  };
  int damaged_blocks = 0;
  for (int t = 0; t < positions; ++t) {
    const uint64_t pos = rng() % s.image.size();
    const Action action = static_cast<Action>(rng() % 3);
    uint64_t lo = pos;
    uint64_t hi = pos + 1;
    std::vector<std::byte> bytes;
    if (action == Action::kFlipBit) {
      bytes = {s.image[pos] ^ static_cast<std::byte>(1u << (rng() % 8))};
    } else {
      lo = pos / 512 * 512;
      hi = std::min<uint64_t>(lo + 512, s.image.size());
      bytes.resize(hi - lo);
      if (action == Action::kRandomSector) {
        for (std::byte& b : bytes) b = static_cast<std::byte>(rng());
      }
    }
    const std::string trial =
        absl::StrCat("trial ", t, ": ",
                     action == Action::kFlipBit      ? "bit flip"
                     : action == Action::kZeroSector ? "zeroed sector"
                                                     : "random sector",
                     " at [", lo, ", ", hi, ")");

    // The oracle. Blocks with a changed byte in their used range lose their
    // integrity. The log was closed, so its close marker (the last block)
    // proves every block before it: damage to any of them is damage to
    // acknowledged data. Damage to that marker alone is a torn tail: the
    // superblock's epoch start and the other blocks' watermarks prove no
    // more than the second session's start. A changed byte in the current
    // superblock's checksummed bytes (slot 0, sequence 2) leaves slot 1,
    // which is older than the epoch-2 blocks: DataLoss in every mode but
    // kSkipCorrupted, which keeps every intact block.
    std::set<size_t> hit;
    bool superblock_hit = false;
    for (uint64_t p = lo; p < hi; ++p) {
      if (bytes[p - lo] == s.image[p]) continue;
      if (p < 76) superblock_hit = true;
      for (size_t b = 0; b < s.blocks.size(); ++b) {
        if (p >= s.blocks[b].base && p < s.blocks[b].base + s.blocks[b].used) {
          hit.insert(b);
        }
      }
    }
    // The first damaged block, if any.
    const bool damaged = !hit.empty();
    const size_t first = damaged ? *hit.begin() : 0;
    damaged_blocks += damaged;
    const bool marker_only = damaged && first + 1 == s.blocks.size();
    // What is left of the first damaged block's header reads as unwritten
    // space (a zeroed sector over it): an end, not a corrupt block.
    bool unwritten = false;
    if (damaged) {
      const uint64_t base = s.blocks[first].base;
      unwritten = true;
      for (uint64_t p = base; p < base + kBlockHeaderBytes; ++p) {
        const std::byte now =
            p >= lo && p < hi ? bytes[p - lo] : s.image[p];
        unwritten &= now == std::byte{0};
      }
    }
    const std::vector<Rec> prefix =
        Prefix(s.written, damaged
                              ? RecordsBelow(s.written, s.blocks[first].base)
                              : s.written.size());
    // kSkipCorrupted must return the records whose whole footprint is
    // untouched, and may return those whose padding alone changed.
    std::vector<Rec> untouched;
    std::vector<Rec> may;
    for (const Rec& r : s.written) {
      for (bool padding : {true, false}) {
        const uint64_t end =
            r.address +
            (padding ? RecordFootprint(r.len) : kRecordHeaderBytes + r.len);
        bool same = true;
        for (uint64_t p = std::max(r.address, lo); p < std::min(end, hi);
             ++p) {
          same &= bytes[p - lo] == s.image[p];
        }
        if (same) (padding ? untouched : may).push_back(r);
      }
    }

    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), lo),
              static_cast<ssize_t>(bytes.size()));
    for (RecoveryMode mode :
         {RecoveryMode::kPointInTime, RecoveryMode::kAbsoluteConsistency,
          RecoveryMode::kSkipCorrupted}) {
      const std::string where = absl::StrCat(trial, " ", ModeName(mode));
      StoreOptions options = ModeOptions(mode, /*read_only=*/true);
      options.direct_io = direct_io;
      const bool skip = mode == RecoveryMode::kSkipCorrupted;
      const bool strict = mode == RecoveryMode::kAbsoluteConsistency;
      // Which damage this mode must refuse: kPointInTime only a superblock
      // older than the log; kAbsoluteConsistency any damage but a close
      // marker zeroed whole (an end that looks unwritten).
      const bool refuse =
          !skip && (superblock_hit ||
                    (strict && damaged && !(marker_only && unwritten)));
      auto store = LogStructuredStore::Open(path, options);
      if (!store.ok()) {
        if (!refuse) {
          fail(absl::StrCat(ModeName(mode), ": open failed"),
               absl::StrCat(where, ": ", store.status().ToString()));
        } else if (store.status().code() != absl::StatusCode::kDataLoss ||
                   !absl::StrContains(store.status().message(), path)) {
          fail("DataLoss naming the file expected",
               absl::StrCat(where, ": ", store.status().ToString()));
        } else if (damaged &&
                   !NamesOffsetIn(store.status().message(),
                                  s.blocks[first].base,
                                  s.blocks[first].base +
                                      s.blocks[first].used)) {
          fail("DataLoss does not name the damaged block",
               absl::StrCat(where, ": ", store.status().ToString(),
                            "; expected offset ", s.blocks[first].base));
        }
        continue;
      }
      if (refuse) {
        fail(absl::StrCat(ModeName(mode), ": damage opened OK"),
             absl::StrCat(where, ": recovered ", (*store)->recovery().records,
                          " of ", s.written.size(),
                          "; end: ", (*store)->recovery().end));
        continue;
      }
      absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**store);
      if (!got.ok()) {
        fail(absl::StrCat(ModeName(mode), ": reader failed"),
             absl::StrCat(where, ": ", got.status().ToString()));
        continue;
      }
      if (skip) {
        // Every record whose bytes are untouched, and no other.
        const ::testing::AssertionResult same = Salvaged(*got, untouched, may);
        if (!same) {
          fail("kSkipCorrupted: not exactly the untouched records",
               absl::StrCat(where, ": ", same.message()));
        }
        continue;
      }
      const RecoveryReport& report = (*store)->recovery();
      const ::testing::AssertionResult same = SameRecords(*got, prefix);
      if (!same) {
        fail(absl::StrCat(ModeName(mode), ": wrong prefix"),
             absl::StrCat(where, ": ", same.message()));
        continue;
      }
      const bool cut_expected = damaged && !(marker_only && unwritten);
      if (report.cut != cut_expected ||
          report.lost_acknowledged != (damaged && !marker_only)) {
        fail(absl::StrCat(ModeName(mode), ": wrong cut report"),
             absl::StrCat(where, ": cut ", report.cut, ", lost_acknowledged ",
                          report.lost_acknowledged, "; end: ", report.end));
      }
      if (mode == RecoveryMode::kPointInTime && damaged &&
          !NamesOffsetIn(report.end, s.blocks[first].base,
                         s.blocks[first].base + s.blocks[first].used)) {
        fail("kPointInTime: the end does not name the damaged block",
             absl::StrCat(where, ": ", report.end));
      }
    }
    ASSERT_EQ(pwrite(fd, s.image.data() + lo, hi - lo, lo),
              static_cast<ssize_t>(hi - lo));
  }
  close(fd);
  EXPECT_GT(damaged_blocks, positions / 2);
  for (const auto& [what, count] : failures) {
    ADD_FAILURE() << count << " of " << positions << " trials: " << what
                  << "\n  first: " << first_failure[what];
  }
}

// ================================================================ A5

// A crash before Close tore the last block (nothing proves it).
TEST(Idempotence, RecoverTwiceGivesTheSameLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan(), Proof::kNothing);
  std::vector<std::byte> image = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(image).back();
  image[last.base + last.used - 5] ^= std::byte{0x10};  // torn tail
  WriteFileBytes(path, image);
  const std::vector<Rec> prefix = Prefix(w, RecordsBelow(w, last.base));

  // Read-only recovery changes nothing, however often it runs.
  for (int i = 0; i < 2; ++i) {
    Outcome o = RecoverFile(
        path, ModeOptions(RecoveryMode::kTolerateCorruptedTail, true));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, prefix));
    EXPECT_TRUE(o.report.cut);
    EXPECT_TRUE(o.after == image);
  }
  // Recovery for writing cuts once; after that the log is clean, and opens
  // that append nothing add nothing to it (the new superblock's epoch start
  // already proves the tail: no close marker is needed).
  Outcome first = RecoverFile(path, SmallOptions());
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_TRUE(first.report.cut);
  EXPECT_TRUE(SameRecords(first.records, prefix));
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("recovery ", i + 2));
    Outcome again = RecoverFile(path, SmallOptions());
    ASSERT_TRUE(again.status.ok()) << again.status;
    EXPECT_FALSE(again.report.cut) << again.report.end;
    EXPECT_TRUE(SameRecords(again.records, prefix));
    EXPECT_EQ(again.report.tail, first.report.tail);
    EXPECT_EQ(again.report.blocks, first.report.blocks);
    EXPECT_EQ(again.report.records, first.report.records);
    // The log's bytes are unchanged (only superblocks are rewritten).
    EXPECT_TRUE(std::equal(again.after.begin() + 2 * kBlockBytes,
                           again.after.begin() + last.base,
                           image.begin() + 2 * kBlockBytes));
    EXPECT_TRUE(ParseBlocks(again.after).size() == first.report.blocks)
        << "an open that appended nothing wrote a block";
  }
  Outcome strict =
      RecoverFile(path, ModeOptions(RecoveryMode::kAbsoluteConsistency));
  ASSERT_TRUE(strict.status.ok()) << strict.status;
  EXPECT_TRUE(SameRecords(strict.records, prefix));
}

// A crash before Close with no waits: damage to block 5 is a torn tail, and
// intact block 6 after it was never acknowledged.
TEST(Idempotence, RecoverAppendRecoverKeepsThePrefixAndAddsTheNew) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan(), Proof::kNothing);
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  image[blocks[5].base + 7] ^= std::byte{0x10};  // blocks 5 and 6 go
  WriteFileBytes(path, image);
  std::vector<Rec> expected = Prefix(w, RecordsBelow(w, blocks[5].base));
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->recovery().cut, round == 0);
    EXPECT_EQ((*store)->recovery().records, expected.size());
    absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**store);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(SameRecords(*got, expected));
    const uint64_t tail = (*store)->recovery().tail;
    for (int i = 0; i < 40; ++i) {
      expected.push_back(AppendRec(**store, 20 + round, i, 1 + i * 211));
    }
    EXPECT_EQ(expected[expected.size() - 40].address, tail + kBlockHeaderBytes);
    ASSERT_TRUE((*store)->Close().ok());
  }
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverFile(path, ModeOptions(mode, true));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, expected));
    EXPECT_FALSE(o.report.cut);
  }
}

// ================================================================ Bad input

TEST(BadInput, PathIsADirectory) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/a_dir");
  mkdir(dir.c_str(), 0755);
  for (bool read_only : {false, true}) {
    StoreOptions o = SmallOptions();
    o.read_only = read_only;
    auto store = LogStructuredStore::Open(dir, o);
    EXPECT_FALSE(store.ok());
    EXPECT_THAT(store.status().message(), HasSubstr(dir));
  }
}

TEST(BadInput, ParentDirectoryMissing) {
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/no/such/dir/store.log");
  for (bool read_only : {false, true}) {
    StoreOptions o = SmallOptions();
    o.read_only = read_only;
    auto store = LogStructuredStore::Open(path, o);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound)
        << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(path));
  }
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
}

TEST(BadInput, FileThatIsNotALogIsLeftAlone) {
  const std::string path = TestPath();
  for (size_t size :
       {size_t{5}, size_t{79}, size_t{4096}, size_t{12345}, size_t{300000}}) {
    SCOPED_TRACE(absl::StrCat(size, " bytes"));
    std::string text;
    while (text.size() < size) text += "not a log, just some text. ";
    text.resize(size);
    WriteFileBytes(path, std::as_bytes(std::span(text)));
    const std::vector<std::byte> before = ReadFileBytes(path);
    for (RecoveryMode mode : kAllModes) {
      SCOPED_TRACE(ModeName(mode));
      auto store = LogStructuredStore::Open(path, ModeOptions(mode));
      EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument)
          << store.status();
      EXPECT_THAT(store.status().message(), HasSubstr(path));
      EXPECT_TRUE(ReadFileBytes(path) == before) << "the file was changed";
    }
  }
}

TEST(BadInput, NewerFormatVersionIsRefused) {
  const std::string path = TestPath();
  WriteBlocks(path, {{100}});
  std::vector<std::byte> image = ReadFileBytes(path);
  // Every valid slot says version 2.
  for (uint64_t slot : {uint64_t{0}, uint64_t{kBlockBytes}}) {
    absl::StatusOr<Superblock> sb =
        DecodeSuperblock(std::span(image).subspan(slot), "");
    if (!sb.ok()) continue;
    sb->version = kFormatVersion + 1;
    EncodeSuperblock(*sb, std::span(image).subspan(slot));
  }
  WriteFileBytes(path, image);
  for (bool read_only : {false, true}) {
    StoreOptions o = SmallOptions();
    o.read_only = read_only;
    auto store = LogStructuredStore::Open(path, o);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
        << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(path));
    EXPECT_TRUE(ReadFileBytes(path) == image) << "the file was changed";
  }
}

TEST(BadInput, SizesThatDoNotMatchTheFileAreRefused) {
  const std::string path = TestPath();
  WriteBlocks(path, {{100}, {200}});
  const std::vector<std::byte> image = ReadFileBytes(path);
  StoreOptions bigger_blocks = SmallOptions();
  bigger_blocks.block_bytes = 8192;
  StoreOptions smaller_blocks = SmallOptions();
  smaller_blocks.block_bytes = 512;
  StoreOptions bigger_buffers = SmallOptions();
  bigger_buffers.buffer_bytes = 128 << 10;
  StoreOptions smaller_buffers = SmallOptions();
  smaller_buffers.buffer_bytes = 32 << 10;
  for (const StoreOptions& o :
       {bigger_blocks, smaller_blocks, bigger_buffers, smaller_buffers}) {
    SCOPED_TRACE(
        absl::StrCat("block ", o.block_bytes, " buffer ", o.buffer_bytes));
    auto store = LogStructuredStore::Open(path, o);
    EXPECT_FALSE(store.ok());
    EXPECT_THAT(store.status().message(), HasSubstr(path));
    const bool blocks_differ = o.block_bytes != kBlockBytes;
    EXPECT_THAT(std::string(store.status().message()),
                HasSubstr(absl::StrCat(blocks_differ ? o.block_bytes
                                                     : o.buffer_bytes)));
    EXPECT_TRUE(ReadFileBytes(path) == image) << "the file was changed";
  }
  // The right sizes still open it.
  Outcome o = RecoverFile(path, SmallOptions());
  EXPECT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.records.size(), 2u);
}

TEST(BadInput, RecordSizesOutsideOneToMax) {
  const std::string path = TestPath();
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const size_t max = (*store)->max_payload_bytes();
  EXPECT_EQ((*store)->Append("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Reserve(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string too_big(max + 1, 'x');
  absl::StatusOr<uint64_t> big = (*store)->Append(too_big);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr(absl::StrCat(max + 1)));
  EXPECT_EQ((*store)->Reserve(max + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Reserve(size_t{1} << 40).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The limits themselves work, and the store is unharmed.
  std::vector<Rec> w;
  w.push_back(AppendRec(**store, 30, 0, 1));
  w.push_back(AppendRec(**store, 30, 1, max));
  absl::StatusOr<StoreReservation> r =
      (*store)->Reserve(max, TagOf(30, 2, kDataRecordType));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->payload().size(), max);
  FillPayload(30, 2, r->payload());
  const uint64_t a = r->address();
  EXPECT_EQ((*store)->Commit(*std::move(r)), a);
  w.push_back(Rec{a, 30, 2, max});
  ASSERT_TRUE((*store)->Close().ok());
  Outcome o =
      RecoverFile(path, ModeOptions(RecoveryMode::kAbsoluteConsistency));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, w));
}

// A reservation dropped without Commit becomes padding no reader returns.
TEST(BadInput, AbandonedReservationIsNeverRead) {
  const std::string path = TestPath();
  std::vector<Rec> w;
  {
    auto store = LogStructuredStore::Open(path, SmallOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    w.push_back(AppendRec(**store, 31, 0, 50));
    {
      absl::StatusOr<StoreReservation> r = (*store)->Reserve(500);
      ASSERT_TRUE(r.ok()) << r.status();
      std::memset(r->payload().data(), 0x77, 500);
    }  // abandoned
    w.push_back(AppendRec(**store, 31, 1, 60));
    ASSERT_TRUE((*store)->Close().ok());
  }
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverFile(path, ModeOptions(mode, true));
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, w));
  }
}

TEST(BadInput, EveryCallAfterCloseFails) {
  const std::string path = TestPath();
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const Rec r = AppendRec(**store, 32, 0, 10);
  ASSERT_TRUE((*store)->Close().ok());
  LogStructuredStore& s = **store;
  const auto closed = absl::StatusCode::kFailedPrecondition;
  EXPECT_EQ(s.Append("x").status().code(), closed);
  EXPECT_EQ(s.Reserve(1).status().code(), closed);
  EXPECT_EQ(s.Read(r.address).status().code(), closed);
  EXPECT_EQ(s.NewLogReader().status().code(), closed);
  EXPECT_EQ(s.Flush().status().code(), closed);
  EXPECT_EQ(s.Sync().code(), closed);
  EXPECT_EQ(s.WaitStable(r.address).code(), closed);
  EXPECT_THAT(s.Append("x").status().message(), HasSubstr(path));
  EXPECT_TRUE(s.Close().ok());  // idempotent
  EXPECT_TRUE(s.Close().ok());
}

TEST(BadInput, SecondOpenOfAnOpenLogFails) {
  const std::string path = TestPath();
  auto first = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  const Rec r = AppendRec(**first, 33, 0, 10);
  ASSERT_TRUE((*first)->Sync().ok());
  const std::vector<std::byte> before = ReadFileBytes(path);
  for (RecoveryMode mode : kAllModes) {
    for (bool read_only : {false, true}) {
      SCOPED_TRACE(absl::StrCat(ModeName(mode), read_only ? " read-only" : ""));
      auto second =
          LogStructuredStore::Open(path, ModeOptions(mode, read_only));
      EXPECT_FALSE(second.ok());
      EXPECT_THAT(second.status().message(), HasSubstr(path));
    }
  }
  EXPECT_TRUE(ReadFileBytes(path) == before) << "a refused open wrote";
  // The first is unharmed.
  const Rec r2 = AppendRec(**first, 33, 1, 20);
  ASSERT_TRUE((*first)->Close().ok());
  Outcome o = RecoverFile(path, SmallOptions());
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, {r, r2}));
}

TEST(BadInput, ReadersShareAndExcludeAWriter) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, {{10, 20}});
  StoreOptions ro = SmallOptions();
  ro.read_only = true;
  auto a = LogStructuredStore::Open(path, ro);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = LogStructuredStore::Open(path, ro);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->Append("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto writer = LogStructuredStore::Open(path, SmallOptions());
  EXPECT_FALSE(writer.ok());
  absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**b);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(SameRecords(*got, w));
  ASSERT_TRUE((*a)->Close().ok());
  ASSERT_TRUE((*b)->Close().ok());
  writer = LogStructuredStore::Open(path, SmallOptions());
  EXPECT_TRUE(writer.ok()) << writer.status();
}

TEST(BadInput, MissingFileReadOnlyIsNotFoundAndNotCreated) {
  const std::string path = TestPath();
  StoreOptions ro = SmallOptions();
  ro.read_only = true;
  auto store = LogStructuredStore::Open(path, ro);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
}

TEST(BadInput, BadOptionsAreInvalidArgument) {
  const std::string path = TestPath();
  StoreOptions o = SmallOptions();
  o.block_bytes = 3000;
  EXPECT_EQ(LogStructuredStore::Open(path, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = SmallOptions();
  o.buffer_bytes = 4096 * 3 + 1;
  EXPECT_EQ(LogStructuredStore::Open(path, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0) << "refused options created the file";
}

TEST(BadInput, WaitStableAndSyncMakeRecordsStable) {
  const std::string path = TestPath();
  auto store = LogStructuredStore::Open(path, SmallOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const Rec a = AppendRec(**store, 34, 0, 100);
  ASSERT_TRUE((*store)->WaitStable(a.address).ok());
  EXPECT_GT((*store)->HiStable(), a.address);
  absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**store);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(SameRecords(*got, {a}));
  // Past the end of the log: not something to wait for.
  EXPECT_FALSE((*store)->WaitStable(a.address + (1 << 20)).ok());
}

}  // namespace
}  // namespace lss
