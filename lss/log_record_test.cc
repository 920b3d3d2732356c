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
// How LevelDB's cases map onto this format. LevelDB splits records into
// FIRST/MIDDLE/LAST fragments across 32 KiB blocks; here a record never
// spans blocks: a block is one written flush buffer with its own CRC, and
// each record has a CRC over its address. So:
//   Empty, ReadWrite, ManyBlocks, OpenForAppend, RandomRead: as in LevelDB.
//   Fragmentation -> LargeRecords: records up to max_payload_bytes(), a
//     full buffer each; nothing larger is accepted.
//   MarginalTrailer / ShortTrailer / AlignedEof -> a buffer filled exactly
//     to its end, one left with less room than the smallest record (the
//     next record starts the next block), and a log ending on a block end.
//   BadRecordType -> the record type is opaque to the store and round
//     trips; type 0 is refused (it is padding); a damaged type field fails
//     the record CRC even when the block CRC was recomputed.
//   TruncatedTrailingRecordIsIgnored / BadLengthAtEndIsIgnored /
//     ChecksumMismatch / PartialLastIsIgnored / MissingLastIsIgnored -> the
//     last block torn, truncated, or with a bad length or checksum: cut
//     under kTolerateCorruptedTail and kPointInTime, DataLoss under
//     kAbsoluteConsistency (RocksDB's ...IsNotIgnored), skipped under
//     kSkipCorrupted.
//   BadLength / mid-log ChecksumMismatch / Unexpected*Type (a block from
//     elsewhere: wrong address, other store, newer epoch) -> damage in the
//     middle of the log: DataLoss under kTolerateCorruptedTail and
//     kAbsoluteConsistency, the prefix under kPointInTime, everything else
//     under kSkipCorrupted.
//   MissingFirst (no LevelDB twin) -> the last block's first sector zero,
//     its later sectors written; and the same zeroed sector, or an epoch
//     field damaged to an older epoch, in the middle of the log (RELIABILITY
//     3.A4's "zero a 512 B sector").
//   ErrorJoinsRecords -> a damaged block between two good ones never makes
//     records of its neighbours run together (kSkipCorrupted).
//   AlignedEof's converse -> a file ending inside the last block where only
//     record padding (zeros) is missing: whole, and readable.
//   OpenForAppend after a cut -> the new epoch's first block is shorter than
//     the torn block it replaces; a clean Close must then reopen clean.
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
#include <map>
#include <memory>
#include <optional>
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
#include "lss/log_structured_store.h"
#include "testing/payload.h"
#include "testing/process.h"

namespace lss {
namespace {

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

// ------------------------------------------------------------ File bytes

std::vector<std::byte> ReadFileBytes(const std::string& path) {
  std::vector<std::byte> out;
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << strerror(errno);
    return out;
  }
  struct stat st;
  fstat(fd, &st);
  out.resize(st.st_size);
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = pread(fd, out.data() + got, out.size() - got, got);
    if (n <= 0) break;
    got += n;
  }
  close(fd);
  EXPECT_EQ(got, out.size()) << path;
  return out;
}

void WriteFileBytes(const std::string& path, std::span<const std::byte> bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        pwrite(fd, bytes.data() + done, bytes.size() - done, done);
    ASSERT_GT(n, 0) << strerror(errno);
    done += n;
  }
  close(fd);
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
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << got.size() << " records, expected " << want.size();
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

// Writes a log: one block per entry of `blocks` (record sizes; Flush after
// each), then Sync and Close. Returns the records in address order.
std::vector<Rec> WriteBlocks(const std::string& path,
                             const std::vector<std::vector<size_t>>& blocks,
                             uint64_t stream = 1,
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
  }
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_TRUE((*store)->Close().ok());
  return out;
}

// ------------------------------------------------------------ Block map

struct BlockInfo {
  uint64_t base = 0;
  uint32_t used = 0;
  uint64_t epoch = 0;
};

// The blocks of a log image, walked with format.h alone (the oracle).
std::vector<BlockInfo> ParseBlocks(std::span<const std::byte> image,
                                   uint64_t data_start = 2 * kBlockBytes) {
  std::vector<BlockInfo> out;
  uint64_t at = data_start;
  while (at + kBlockHeaderBytes <= image.size()) {
    BlockHeader h;
    if (!ParseBlockHeader(image.subspan(at), h) || h.address != at ||
        h.used <= kBlockHeaderBytes || at + h.used > image.size() ||
        !BlockCrcMatches(image.subspan(at, h.used))) {
      break;
    }
    out.push_back({at, h.used, h.epoch});
    at += RoundUp(h.used, kBlockBytes);
  }
  return out;
}

uint64_t LogEnd(const std::vector<BlockInfo>& blocks) {
  return blocks.empty()
             ? 2 * kBlockBytes
             : blocks.back().base + RoundUp(blocks.back().used, kBlockBytes);
}

// Recomputes the CRC of the block at `base` (after a deliberate change of
// its records, so that only the record check can catch it).
void Reseal(std::vector<std::byte>& image, uint64_t base) {
  BlockHeader h;
  ASSERT_TRUE(ParseBlockHeader(std::span(image).subspan(base), h));
  SealBlock(h, std::span(image).subspan(base, h.used));
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

Outcome RecoverImage(const std::string& path, std::span<const std::byte> image,
                     const StoreOptions& options) {
  WriteFileBytes(path, image);
  return RecoverFile(path, options);
}

// The damage is in the last block, `bad` (nothing valid follows it).
void ExpectTornTail(const std::string& path,
                    const std::vector<std::byte>& image,
                    const std::vector<Rec>& written, const BlockInfo& bad) {
  const std::vector<Rec> prefix =
      Prefix(written, RecordsBelow(written, bad.base));
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    if (mode == RecoveryMode::kAbsoluteConsistency) {
      if (o.status.ok()) {
        ADD_FAILURE() << "a damaged last block opened OK under "
                         "kAbsoluteConsistency: "
                      << o.records.size() << " of " << written.size()
                      << " records; end: " << o.report.end;
        continue;
      }
      EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss) << o.status;
      EXPECT_THAT(o.status.message(), HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.status.message(), bad.base, bad.used));
      EXPECT_TRUE(o.after == image) << "a refused open changed the file";
      continue;
    }
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, prefix));
    EXPECT_EQ(o.report.records, prefix.size());
    EXPECT_EQ(o.report.tail, bad.base);
    if (mode != RecoveryMode::kSkipCorrupted) {
      EXPECT_TRUE(o.report.cut);
      EXPECT_THAT(o.report.end, HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.report.end, bad.base, bad.used));
    } else {
      EXPECT_TRUE(o.after == image) << "a read-only open changed the file";
    }
  }
}

// The damage is in the block at `bad`, and valid blocks follow it beyond the
// in-flight horizon (ring_size x buffer_bytes): damage in the middle.
void ExpectMidLog(const std::string& path, const std::vector<std::byte>& image,
                  const std::vector<Rec>& written, const BlockInfo& bad,
                  bool within_horizon = false) {
  const std::vector<Rec> prefix =
      Prefix(written, RecordsBelow(written, bad.base));
  std::vector<Rec> all_but_bad;
  for (const Rec& r : written) {
    if (r.address < bad.base || r.address >= bad.base + bad.used) {
      all_but_bad.push_back(r);
    }
  }
  ASSERT_GT(all_but_bad.size(), prefix.size()) << "nothing follows the damage";
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    const bool refuse =
        mode == RecoveryMode::kAbsoluteConsistency ||
        (mode == RecoveryMode::kTolerateCorruptedTail && !within_horizon);
    if (refuse) {
      if (o.status.ok()) {
        ADD_FAILURE() << "damage in the middle of the log (valid blocks "
                         "follow beyond the in-flight horizon) opened OK: "
                      << o.records.size() << " of " << written.size()
                      << " records kept, the rest dropped; end: "
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
      EXPECT_TRUE(SameRecords(o.records, all_but_bad));
      EXPECT_EQ(o.report.records, all_but_bad.size());
      ASSERT_EQ(o.report.skipped.size(), 1u);
      EXPECT_THAT(o.report.skipped[0], HasSubstr(path));
      EXPECT_TRUE(NamesBlock(o.report.skipped[0], bad.base, bad.used));
      EXPECT_TRUE(o.after == image) << "a read-only open changed the file";
    } else {
      EXPECT_TRUE(SameRecords(o.records, prefix));
      EXPECT_EQ(o.report.records, prefix.size());
      EXPECT_EQ(o.report.tail, bad.base);
      EXPECT_TRUE(o.report.cut) << o.report.end;
      EXPECT_TRUE(NamesBlock(o.report.end, bad.base, bad.used));
    }
  }
}

// Seven blocks: two small, a small one (index 2, the usual victim), three
// full 64 KiB buffers (so block 5 starts past block 2 + 128 KiB, the
// horizon), and a small last one.
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
  ASSERT_EQ(blocks.size(), 4u);
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
    const std::vector<BlockInfo> blocks = ParseBlocks(ReadFileBytes(path));
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
      EXPECT_EQ(o.report.tail, LogEnd(blocks));
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
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks.size(), 7u);
  const size_t victim = RecordsBelow(w, blocks[2].base) + 1;
  image[w[victim].address + 16] ^= std::byte{0x02};
  Reseal(image, blocks[2].base);
  ExpectMidLog(path, image, w, blocks[2]);
}

TEST(LevelDbParity, BadRecordTypeAtEnd) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  image[w.back().address + 16] ^= std::byte{0x40};
  Reseal(image, blocks.back().base);
  ExpectTornTail(path, image, w, blocks.back());
}

TEST(LevelDbParity, TruncatedTrailingRecord) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  const std::vector<std::byte> full = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(full);
  const BlockInfo& last = blocks.back();
  // The used bytes may end in record padding (zeros): cut so that the last
  // non-zero byte is lost.
  uint64_t last_non_zero = last.base + last.used - 1;
  while (full[last_non_zero] == std::byte{0}) --last_non_zero;
  for (uint64_t cut : {last_non_zero, last_non_zero - 99,
                       last.base + kBlockHeaderBytes + 10, last.base + 20}) {
    SCOPED_TRACE(absl::StrCat("file cut at ", cut));
    ExpectTornTail(path,
                   std::vector<std::byte>(full.begin(), full.begin() + cut), w,
                   last);
  }
}

// A file that ends inside the last block's used bytes, where only zeros
// (record padding) are missing. Every block write covers the whole padded
// block, so the file lost its end: the block is torn like any other, and
// whatever recovery keeps reads back.
TEST(LevelDbParity, TruncatedInTheZeroPaddingOfTheLastBlock) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {300, 301};  // 4 and 3 bytes of record padding
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(full).back();
  ASSERT_EQ(full[last.base + last.used - 1], std::byte{0});
  const std::vector<std::byte> image(full.begin(),
                                     full.begin() + last.base + last.used - 1);
  ExpectTornTail(path, image, w, last);
}

TEST(LevelDbParity, TruncatedInsideALargeLastBlock) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.pop_back();  // the last block is a full 64 KiB buffer
  const std::vector<Rec> w = WriteBlocks(path, plan);
  const std::vector<std::byte> full = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(full).back();
  for (uint64_t cut : {last.base + 4096, last.base + 4097, last.base + 33000,
                       last.base + last.used - 8}) {
    SCOPED_TRACE(absl::StrCat("file cut at ", cut));
    ExpectTornTail(path,
                   std::vector<std::byte>(full.begin(), full.begin() + cut), w,
                   last);
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
    ExpectMidLog(path, image, w, blocks[2]);
  }
}

TEST(LevelDbParity, BadLengthAtEnd) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(image).back();
  const uint32_t len = 5000;  // runs past the block's used bytes
  std::memcpy(image.data() + w.back().address + 4, &len, 4);
  Reseal(image, last.base);
  ExpectTornTail(path, image, w, last);
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
    ExpectMidLog(path, image, w, blocks[2]);
  }
}

TEST(LevelDbParity, ChecksumMismatchAtEnd) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(image).back();
  image[last.base + last.used - 3] ^= std::byte{1};
  ExpectTornTail(path, image, w, last);
}

// Damage within the in-flight horizon of the cut: under the default mode it
// reads as a torn tail (a later buffer may have been written first), so the
// log is cut there and the valid block after it is dropped.
TEST(LevelDbParity, ChecksumMismatchWithinTheInFlightHorizon) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  image[blocks[5].base + 1000] ^= std::byte{1};
  ExpectMidLog(path, image, w, blocks[5], /*within_horizon=*/true);
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
    ExpectMidLog(path, image, w, b);
  }
  {
    SCOPED_TRACE("another store's block");
    std::vector<std::byte> image = pristine;
    image[b.base + 8] ^= std::byte{0x01};
    Reseal(image, b.base);
    ExpectMidLog(path, image, w, b);
  }
  {
    SCOPED_TRACE("a block from a later epoch");
    std::vector<std::byte> image = pristine;
    const uint64_t epoch = 9;
    std::memcpy(image.data() + b.base + 24, &epoch, 8);
    Reseal(image, b.base);
    ExpectMidLog(path, image, w, b);
  }
}

// PartialLastIsIgnored: a three-page last block of which only the first page
// reached the disk.
TEST(LevelDbParity, PartialLastBlock) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {3000, 3000, 3000};  // three pages
  const std::vector<Rec> w = WriteBlocks(path, plan);
  std::vector<std::byte> image = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(image).back();
  ASSERT_GT(last.used, 2 * kBlockBytes);
  std::fill(image.begin() + last.base + kBlockBytes, image.end(), std::byte{0});
  ExpectTornTail(path, image, w, last);
  // And with only the last page missing.
  image = ReadFileBytes(path);
  std::fill(image.begin() + last.base + 2 * kBlockBytes, image.end(),
            std::byte{0});
  ExpectTornTail(path, image, w, last);
}

// MissingFirst: the last block's later pages reached the disk but not its
// first (a torn write; also what a zeroed sector at its start looks like).
// RELIABILITY.md 3.A4: under kAbsoluteConsistency damage to a written block
// is a non-OK status naming the file and offset. The other modes keep the
// prefix.
TEST(LevelDbParity, LastBlockMissingItsFirstSector) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan.back() = {3000, 3000, 3000};
  const std::vector<Rec> w = WriteBlocks(path, plan);
  std::vector<std::byte> image = ReadFileBytes(path);
  const BlockInfo last = ParseBlocks(image).back();
  std::fill(image.begin() + last.base, image.begin() + last.base + 512,
            std::byte{0});
  const std::vector<Rec> prefix = Prefix(w, RecordsBelow(w, last.base));
  for (RecoveryMode mode : kAllModes) {
    SCOPED_TRACE(ModeName(mode));
    Outcome o = RecoverImage(path, image, ModeOptions(mode));
    if (mode == RecoveryMode::kAbsoluteConsistency) {
      EXPECT_EQ(o.status.code(), absl::StatusCode::kDataLoss)
          << "a torn last block (first sector zero, later sectors written) "
             "was accepted as a clean end; status: "
          << o.status << "; records: " << o.records.size() << " of "
          << w.size();
      EXPECT_THAT(o.status.message(), HasSubstr(absl::StrCat(last.base)));
      continue;
    }
    ASSERT_TRUE(o.status.ok()) << o.status;
    EXPECT_TRUE(SameRecords(o.records, prefix));
    EXPECT_EQ(o.report.tail, last.base);
  }
}

// A zeroed sector over the header of a block in the middle (RELIABILITY
// 3.A4's "zero a 512 B sector"). The header then looks like unwritten
// space, but valid blocks follow far beyond anything a crash can leave in
// flight: the log is damaged in the middle (log_structured_store.h:
// kTolerateCorruptedTail "a valid block further than writes can have been
// in flight past the cut means the damage is in the middle of the log:
// DataLoss, and nothing is cut"; kAbsoluteConsistency "any valid block past
// the end is DataLoss").
TEST(LevelDbParity, ZeroedHeaderSectorMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  std::fill(image.begin() + blocks[2].base,
            image.begin() + blocks[2].base + 512, std::byte{0});
  ExpectMidLog(path, image, w, blocks[2]);
}

// The epoch field of a block in the middle damaged to an older epoch: it
// reads as a stale block, but valid blocks of the current epoch follow far
// beyond the horizon. Same contract as above.
TEST(LevelDbParity, EpochFieldDamagedMidLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks[2].epoch, 1u);
  image[blocks[2].base + 24] ^= std::byte{0x01};  // epoch 1 -> 0
  ExpectMidLog(path, image, w, blocks[2]);
}

// ErrorJoinsRecords: damage across the boundary of two blocks loses both
// blocks' records and nothing else; no record is stitched from the two.
TEST(LevelDbParity, DamageAcrossTwoBlocksDoesNotJoinRecords) {
  const std::string path = TestPath();
  std::vector<std::vector<size_t>> plan = MidLogPlan();
  plan[1] = {500, 700, 2600};  // block 1 ends 152 bytes before a page end
  const std::vector<Rec> w = WriteBlocks(path, plan);
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  const uint64_t boundary = blocks[2].base;
  ASSERT_GT(blocks[1].base + blocks[1].used, boundary - 256);
  std::fill(image.begin() + boundary - 256, image.begin() + boundary + 256,
            std::byte{0x5A});
  std::vector<Rec> keep;
  for (const Rec& r : w) {
    if (r.address < blocks[1].base || r.address >= blocks[3].base) {
      keep.push_back(r);
    }
  }
  Outcome o =
      RecoverImage(path, image, ModeOptions(RecoveryMode::kSkipCorrupted));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(SameRecords(o.records, keep));
  EXPECT_EQ(o.report.skipped.size(), 1u) << "blocks 1-2 are one skipped range";
  o = RecoverImage(path, image, ModeOptions(RecoveryMode::kPointInTime));
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_TRUE(
      SameRecords(o.records, Prefix(w, RecordsBelow(w, blocks[1].base))));
}

// The initial-offset family: a reader from any address returns exactly the
// records that start at or after it.
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
  const std::vector<Rec> w = WriteBlocks(path, plan);
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
    std::vector<Rec> want = Prefix(w, RecordsBelow(w, last.base));
    {
      auto store = LogStructuredStore::Open(path, SmallOptions());
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE((*store)->recovery().cut);
      ASSERT_EQ((*store)->recovery().tail, last.base);
      // One block of two pages where the torn one had three.
      for (int i = 0; i < 3; ++i) {
        want.push_back(AppendRec(**store, 40, i, 100 + 2000 * i));
      }
      ASSERT_EQ(want[want.size() - 3].address, last.base + kBlockHeaderBytes);
      ASSERT_TRUE((*store)->Close().ok());
    }
    const std::vector<std::byte> after = ReadFileBytes(path);
    const std::vector<BlockInfo> now = ParseBlocks(after);
    ASSERT_EQ(now.back().base, last.base);
    ASSERT_EQ(now.back().epoch, 2u);
    for (RecoveryMode mode : kAllModes) {
      SCOPED_TRACE(ModeName(mode));
      WriteFileBytes(path, after);
      Outcome o = RecoverFile(path, ModeOptions(mode, /*read_only=*/true));
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
  const std::vector<Rec> w = WriteBlocks(path, {{100, 200}, {3000}}, 1, o);
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

// Life 1 writes blocks 0..9. Block 5 is damaged; kPointInTime cuts there
// and life 2 writes one block of the same size at block 5's address, so
// life-1 block 6 (intact, with a valid CRC; put back after life 2 cleared
// it) begins exactly where the log now ends. It must read as the end (stale epoch) in every mode, with nothing
// reported as corrupt.
TEST(StaleAndZeroTail, BlocksOfAnEarlierEpochReadAsTheEnd) {
  const std::string path = TestPath();
  const std::vector<size_t> same(10, 1000);  // 10 x 1024 + 64: 3 pages
  const std::vector<Rec> w1 = WriteBlocks(
      path, std::vector<std::vector<size_t>>(10, same), /*stream=*/1);
  std::vector<std::byte> image = ReadFileBytes(path);
  const std::vector<BlockInfo> blocks = ParseBlocks(image);
  ASSERT_EQ(blocks.size(), 10u);
  image[blocks[5].base + 100] ^= std::byte{1};
  WriteFileBytes(path, image);
  std::vector<Rec> expected = Prefix(w1, RecordsBelow(w1, blocks[5].base));
  {
    auto store =
        LogStructuredStore::Open(path, ModeOptions(RecoveryMode::kPointInTime));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->recovery().cut);
    ASSERT_EQ((*store)->recovery().tail, blocks[5].base);
    for (size_t i = 0; i < same.size(); ++i) {
      expected.push_back(AppendRec(**store, 2, i, same[i]));
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  // Opening cleared the space past the cut; put life 1's blocks 6..9 back,
  // as if that clearing had never reached the disk.
  const std::vector<std::byte> life1 = image;
  image = ReadFileBytes(path);
  ASSERT_GE(image.size(), life1.size());
  std::copy(life1.begin() + blocks[6].base, life1.end(),
            image.begin() + blocks[6].base);
  WriteFileBytes(path, image);
  const std::vector<BlockInfo> now = ParseBlocks(image);
  ASSERT_EQ(now.size(), 10u);  // the walk sees block 6 of life 1 after it
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
    if (b + 3 < s.blocks.size()) continue;
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
      if (o.status.ok()) {
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
    const bool in_last = len > s.blocks.back().base;
    if (len < 2 * kBlockBytes || checked % (in_last ? 4 : 37) != 0) continue;
    ++writable;
    const std::string copy = TestPath("copy");
    WriteFileBytes(copy, std::span(s.image).first(len));
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

    // The oracle. Which blocks lose their integrity: those with a changed
    // byte in their used range; with a changed byte in the current
    // superblock's checksummed bytes, the previous superblock (epoch 1)
    // governs and every epoch-2 block is foreign to it.
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
    if (superblock_hit) {
      for (size_t b = 0; b < s.blocks.size(); ++b) {
        if (s.blocks[b].epoch == 2) hit.insert(b);
      }
    }
    damaged_blocks += !hit.empty();
    const std::optional<size_t> first =
        hit.empty() ? std::nullopt : std::optional<size_t>(*hit.begin());
    const std::vector<Rec> prefix =
        Prefix(s.written, first ? RecordsBelow(s.written, s.blocks[*first].base)
                                : s.written.size());
    std::vector<Rec> survivors;
    for (const Rec& r : s.written) {
      bool lost = false;
      for (size_t b : hit) {
        lost |= r.address >= s.blocks[b].base &&
                r.address < s.blocks[b].base + s.blocks[b].used;
      }
      if (!lost) survivors.push_back(r);
    }

    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), lo),
              static_cast<ssize_t>(bytes.size()));
    for (RecoveryMode mode :
         {RecoveryMode::kPointInTime, RecoveryMode::kAbsoluteConsistency,
          RecoveryMode::kSkipCorrupted}) {
      const std::string where = absl::StrCat(trial, " ", ModeName(mode));
      StoreOptions options = ModeOptions(mode, /*read_only=*/true);
      options.direct_io = direct_io;
      auto store = LogStructuredStore::Open(path, options);
      if (!store.ok()) {
        if (mode != RecoveryMode::kAbsoluteConsistency || !first) {
          fail(absl::StrCat(ModeName(mode), ": open failed"),
               absl::StrCat(where, ": ", store.status().ToString()));
        } else if (store.status().code() != absl::StatusCode::kDataLoss ||
                   !absl::StrContains(store.status().message(), path) ||
                   !NamesOffsetIn(
                       store.status().message(), s.blocks[*first].base,
                       s.blocks[*first].base + s.blocks[*first].used)) {
          fail("kAbsoluteConsistency: DataLoss does not name the damaged block",
               absl::StrCat(where, ": ", store.status().ToString(),
                            "; expected offset ", s.blocks[*first].base));
        }
        continue;
      }
      absl::StatusOr<std::vector<LogRecord>> got = ReadAll(**store);
      if (!got.ok()) {
        fail(absl::StrCat(ModeName(mode), ": reader failed"),
             absl::StrCat(where, ": ", got.status().ToString()));
        continue;
      }
      // Never a record that was not written, never out of place.
      const ::testing::AssertionResult is_prefix =
          SameRecords(*got, Prefix(s.written, got->size()));
      if (mode != RecoveryMode::kSkipCorrupted && !is_prefix) {
        fail(absl::StrCat(ModeName(mode), ": not a prefix of what was written"),
             absl::StrCat(where, ": ", is_prefix.message()));
        continue;
      }
      if (mode == RecoveryMode::kSkipCorrupted) {
        const ::testing::AssertionResult same = SameRecords(*got, survivors);
        if (!same) {
          fail("kSkipCorrupted: not every record outside the damage",
               absl::StrCat(where, ": ", same.message()));
        }
        continue;
      }
      const ::testing::AssertionResult same = SameRecords(*got, prefix);
      if (!same) {
        fail(absl::StrCat(ModeName(mode), ": wrong prefix"),
             absl::StrCat(where, ": ", same.message()));
        continue;
      }
      if (mode == RecoveryMode::kAbsoluteConsistency && first) {
        // Damage that zeroes every used byte of the last block makes it
        // unwritten space, with nothing past the end to contradict it.
        // Anywhere else (a zeroed header with later sectors still written
        // included: LastBlockMissingItsFirstSector), an OK open is a missed
        // corruption.
        const BlockInfo& block = s.blocks[*first];
        const bool last_block = *first + 1 == s.blocks.size();
        std::vector<std::byte> used(s.image.begin() + block.base,
                                    s.image.begin() + block.base + block.used);
        for (uint64_t p = std::max(lo, block.base);
             p < std::min(hi, block.base + block.used); ++p) {
          used[p - block.base] = bytes[p - lo];
        }
        const bool reads_as_end =
            std::all_of(used.begin(), used.end(),
                        [](std::byte b) { return b == std::byte{0}; });
        if (!(last_block && reads_as_end)) {
          fail("kAbsoluteConsistency: damage to a written block opened OK",
               absl::StrCat(where, ": recovered ", got->size(), " of ",
                            s.written.size(),
                            "; end: ", (*store)->recovery().end));
        }
      }
      if (mode == RecoveryMode::kPointInTime && first &&
          !NamesOffsetIn((*store)->recovery().end, s.blocks[*first].base,
                         s.blocks[*first].base + s.blocks[*first].used)) {
        fail("kPointInTime: the end does not name the damaged block",
             absl::StrCat(where, ": ", (*store)->recovery().end));
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

TEST(Idempotence, RecoverTwiceGivesTheSameLog) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
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
  // Recovery for writing cuts once; after that the log is clean.
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
  }
  Outcome strict =
      RecoverFile(path, ModeOptions(RecoveryMode::kAbsoluteConsistency));
  ASSERT_TRUE(strict.status.ok()) << strict.status;
  EXPECT_TRUE(SameRecords(strict.records, prefix));
}

TEST(Idempotence, RecoverAppendRecoverKeepsThePrefixAndAddsTheNew) {
  const std::string path = TestPath();
  const std::vector<Rec> w = WriteBlocks(path, MidLogPlan());
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
