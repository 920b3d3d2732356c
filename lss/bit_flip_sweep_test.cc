// Every single-bit flip and every truncation of a small, cleanly closed log
// file, each opened on a real file (lss/recovery.h's contract, exhaustively
// over one small file):
//
//   (a) each bit of the file flipped in turn (both 4096-byte superblock
//       slots included), opened with the default options: the open either
//       fails with DataLoss naming the file and leaves it byte for byte, or
//       it succeeds and every acknowledged record (all of them: the log was
//       closed) reads back byte for byte through Read and a LogReader, no
//       other record is returned, and every block that verified in the
//       damaged file before the open is still there byte for byte after the
//       open and after Close.
//   (b) each truncation (every length in the superblock area and the last
//       two blocks, every 512th elsewhere), with the same checks. What a
//       truncated file still proves is computed here from format.h alone:
//       the current superblock's epoch start and the `stable` of every
//       intact block of its epoch (watermark W), against the end T of the
//       longest run of whole blocks. T < W: acknowledged records were cut
//       away and the file proves it, so the open must be DataLoss. T >= W:
//       nothing left proves the records past T acknowledged (the close
//       marker, and the blocks whose `stable` proved them, went with the
//       cut), so the open must succeed with exactly the records below T. A
//       file too short to hold the current superblock's magic may also be
//       refused as "not a log file"; one of zeros only is a new log.
//   (c) (a) again under kSkipCorrupted: never a record that was not
//       written, never an error but DataLoss or InvalidArgument naming the
//       file, and every record whose bytes the flip left alone.
//
// The file: block_bytes 512, buffer_bytes 4096, written in two sessions
// (so both superblock slots hold one), each record followed by WaitStable
// or Sync, each session closed. I/O is buffered (direct_io = false): the
// recovery decisions under test are the same either way, O_DIRECT only
// changes how bytes reach the device, and buffered I/O keeps the ~110,000
// writable opens within the shards' time. Each sweep is split into pieces
// (value-parameterised tests) that Bazel's shards share out.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lss/format.h"
#include "lss/log_image.h"
#include "lss/log_structured_store.h"
#include "testing/payload.h"

namespace lss {
namespace {

using testing::ReadFileBytes;
using testing::WriteFileBytes;

constexpr uint32_t kBlockBytes = 512;
constexpr size_t kBufferBytes = 4096;
constexpr uint64_t kSlotBytes = 4096;
constexpr uint64_t kDataStart = 2 * kSlotBytes;
// Pieces each sweep is cut into; BUILD's shard_count shares them out.
constexpr int kFlipPieces = 24;
constexpr int kSkipPieces = 2;
constexpr int kTruncatePieces = 2;

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

StoreOptions Options(RecoveryMode mode = RecoveryMode::kTolerateCorruptedTail) {
  StoreOptions o;
  o.buffer_bytes = kBufferBytes;
  o.block_bytes = kBlockBytes;
  o.ring_size = 2;
  o.queue_depth = 8;
  o.direct_io = false;  // see the file comment
  o.preallocate_bytes = 0;  // the file ends where the log does
  o.recovery = mode;
  return o;
}

// A record written to the log, and what it must read back as.
struct Written {
  uint64_t address = 0;
  uint64_t key = 0;
  std::string payload;
};

struct Block {
  uint64_t base = 0;
  uint32_t used = 0;
  uint64_t epoch = 0;
  uint64_t stable = 0;
};

struct Log {
  std::vector<std::byte> image;
  std::vector<Written> records;  // in address order, all acknowledged
  std::vector<Block> blocks;     // the log's, in address order
  Superblock current;            // slot 0, sequence 2
};

bool IntactAt(std::span<const std::byte> image, uint64_t at, BlockHeader& h,
              uint64_t store_id = 0) {
  return testing::IntactBlockAt(image, at, kBlockBytes, kBufferBytes, h,
                                store_id);
}

uint64_t StoreIdOf(std::span<const std::byte> image) {
  return testing::StoreIdOf(image, kBlockBytes);
}

// Every block that verifies anywhere in `image`: what no open may change.
std::vector<Block> IntactBlocks(std::span<const std::byte> image) {
  std::vector<Block> out;
  BlockHeader h;
  const uint64_t store_id = StoreIdOf(image);
  for (uint64_t at = kDataStart; at < image.size(); at += kBlockBytes) {
    if (IntactAt(image, at, h, store_id)) {
      out.push_back({at, h.used, h.epoch, h.stable});
    }
  }
  return out;
}

std::string Unchanged(std::span<const std::byte> before,
                      std::span<const std::byte> after,
                      const std::vector<Block>& intact) {
  for (const Block& b : intact) {
    if (after.size() < b.base + b.used ||
        !std::equal(before.begin() + b.base, before.begin() + b.base + b.used,
                    after.begin() + b.base)) {
      return absl::StrCat("the intact block at ", b.base, " (epoch ", b.epoch,
                          ") changed");
    }
  }
  return "";
}

std::string TmpPath(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
}

// Writes the log once per process (the store id is random, so each shard
// has its own file; the layout is the same).
const Log& TheLog() {
  static const Log* log = [] {
    auto* out = new Log;
    const std::string path = TmpPath("bit_flip_source.log");
    unlink(path.c_str());
    // Sizes chosen so blocks take one to three 512-byte pages.
    const std::vector<std::vector<size_t>> sessions = {{100, 700, 40},
                                                       {300, 1200, 20}};
    uint64_t index = 0;
    for (const std::vector<size_t>& sizes : sessions) {
      auto store = LogStructuredStore::Open(path, Options());
      EXPECT_TRUE(store.ok()) << store.status();
      if (!store.ok()) return out;
      for (size_t i = 0; i < sizes.size(); ++i, ++index) {
        Written w;
        w.key = 1000 + index;
        w.payload.resize(sizes[i]);
        testing::FillPayload(7, index,
                             std::as_writable_bytes(std::span(w.payload)));
        absl::StatusOr<uint64_t> a =
            (*store)->Append(w.payload, RecordTag{kDataRecordType, w.key});
        EXPECT_TRUE(a.ok()) << a.status();
        if (!a.ok()) return out;
        w.address = *a;
        // Acknowledged: by a wait on its address, or by Sync.
        const absl::Status s =
            i % 2 == 0 ? (*store)->WaitStable(*a) : (*store)->Sync();
        EXPECT_TRUE(s.ok()) << s;
        out->records.push_back(std::move(w));
      }
      EXPECT_TRUE((*store)->Close().ok());
    }
    out->image = ReadFileBytes(path);
    BlockHeader h;
    for (uint64_t at = kDataStart; IntactAt(out->image, at, h);
         at += RoundUp(h.used, kBlockBytes)) {
      out->blocks.push_back({at, h.used, h.epoch, h.stable});
    }
    absl::StatusOr<Superblock> sb = DecodeSuperblock(out->image, "slot 0");
    EXPECT_TRUE(sb.ok()) << sb.status();
    if (sb.ok()) out->current = *sb;
    return out;
  }();
  return *log;
}

// The premise every sweep rests on.
TEST(BitFlipSweep, TheLogIsAsDescribed) {
  const Log& log = TheLog();
  ASSERT_EQ(log.records.size(), 6u);
  EXPECT_EQ(log.current.sequence, 2u);
  EXPECT_EQ(log.current.epoch, 2u);
  absl::StatusOr<Superblock> older = DecodeSuperblock(
      std::span(log.image).subspan(kSlotBytes), "slot 1");
  ASSERT_TRUE(older.ok()) << older.status();
  EXPECT_EQ(older->sequence, 1u);
  // Six data blocks and two close markers; the file ends with the log.
  ASSERT_EQ(log.blocks.size(), 8u);
  const Block& last = log.blocks.back();
  EXPECT_EQ(last.base + RoundUp(last.used, kBlockBytes), log.image.size());
  EXPECT_EQ(last.used, kBlockHeaderBytes + 8);
  EXPECT_EQ(last.stable, last.base);
  EXPECT_EQ(log.current.epoch_start,
            log.blocks[3].base + RoundUp(log.blocks[3].used, kBlockBytes));
  std::cout << "log file: " << log.image.size() << " bytes, "
            << log.image.size() * 8 << " bits, " << log.blocks.size()
            << " blocks\n";
}

// Tallies for the summary line of each piece.
struct Counts {
  uint64_t trials = 0;
  uint64_t refused = 0;
  uint64_t ok = 0;
  uint64_t failures = 0;
};

class Failures {
 public:
  void Add(const std::string& what, const std::string& detail) {
    if (count_[what]++ == 0) first_[what] = detail;
  }
  void Report(uint64_t trials) const {
    for (const auto& [what, n] : count_) {
      ADD_FAILURE() << n << " of " << trials << " trials: " << what
                    << "\n  first: " << first_.at(what);
    }
  }
  uint64_t total() const {
    uint64_t n = 0;
    for (const auto& [what, c] : count_) n += c;
    return n;
  }

 private:
  std::map<std::string, uint64_t> count_;
  std::map<std::string, std::string> first_;
};

// Reads every record through a LogReader and Read: "" when they are
// exactly `want`, byte for byte, else what differs.
std::string ReadBack(LogStructuredStore& store,
                     const std::vector<Written>& want) {
  absl::StatusOr<std::unique_ptr<LogReader>> reader = store.NewLogReader(0);
  if (!reader.ok()) return reader.status().ToString();
  size_t n = 0;
  for (;; ++n) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) return absl::StrCat("LogReader: ", more.status().ToString());
    if (!*more) break;
    const RecordView& r = (*reader)->record();
    if (n >= want.size()) {
      return absl::StrCat("LogReader returned an extra record at ", r.address);
    }
    const Written& w = want[n];
    if (r.address != w.address || r.tag.key != w.key ||
        r.payload != w.payload) {
      return absl::StrCat("LogReader record ", n, " at ", r.address,
                          " is not the one written at ", w.address);
    }
  }
  if (n != want.size()) {
    return absl::StrCat("LogReader returned ", n, " records of ", want.size());
  }
  for (const Written& w : want) {
    absl::StatusOr<LogRecord> r = store.Read(w.address);
    if (!r.ok()) return absl::StrCat("Read(", w.address, "): ", r.status().ToString());
    if (r->tag.key != w.key || r->payload != w.payload) {
      return absl::StrCat("Read(", w.address, ") differs from what was written");
    }
  }
  return "";
}

// Opens `image` (written to `path`) with default options and checks the
// contract when `image` must either be refused or give back `want`.
// `may_refuse`/`must_refuse` narrow which.
enum class Expect { kEither, kRefuse, kRecords };

void OpenAndCheck(const std::string& path, const std::vector<std::byte>& image,
                  const std::vector<Written>& want, Expect expect,
                  bool may_be_foreign, const std::string& trial,
                  Counts& counts, Failures& failures) {
  WriteFileBytes(path, image);
  const std::vector<Block> intact = IntactBlocks(image);
  ++counts.trials;
  auto store = LogStructuredStore::Open(path, Options());
  if (!store.ok()) {
    ++counts.refused;
    const absl::Status& s = store.status();
    const bool foreign =
        may_be_foreign && s.code() == absl::StatusCode::kInvalidArgument;
    if (s.code() != absl::StatusCode::kDataLoss && !foreign) {
      failures.Add("refused with a code other than DataLoss",
                   absl::StrCat(trial, ": ", s.ToString()));
    } else if (!absl::StrContains(s.message(), path)) {
      failures.Add("the error does not name the file",
                   absl::StrCat(trial, ": ", s.ToString()));
    }
    if (expect == Expect::kRecords) {
      failures.Add("refused, but nothing left proves lost records",
                   absl::StrCat(trial, ": ", s.ToString()));
    }
    if (ReadFileBytes(path) != image) {
      failures.Add("a refused open changed the file", trial);
    }
    return;
  }
  ++counts.ok;
  if (expect == Expect::kRefuse) {
    failures.Add("opened, but the file proves acknowledged records lost",
                 absl::StrCat(trial, ": ", (*store)->recovery().records,
                              " records, tail ", (*store)->recovery().tail,
                              ", acknowledged ",
                              (*store)->recovery().acknowledged, "; end: ",
                              (*store)->recovery().end));
  }
  if (const std::string bad = ReadBack(**store, want); !bad.empty()) {
    failures.Add("records read back wrong",
                 absl::StrCat(trial, ": ", bad, "; end: ",
                              (*store)->recovery().end));
  }
  if (const std::string bad = Unchanged(image, ReadFileBytes(path), intact);
      !bad.empty()) {
    failures.Add("the open changed an intact block",
                 absl::StrCat(trial, ": ", bad));
  }
  if (const absl::Status s = (*store)->Close(); !s.ok()) {
    failures.Add("Close failed", absl::StrCat(trial, ": ", s.ToString()));
  }
  if (const std::string bad = Unchanged(image, ReadFileBytes(path), intact);
      !bad.empty()) {
    failures.Add("Close changed an intact block (nothing was appended)",
                 absl::StrCat(trial, ": ", bad));
  }
}

void Summarise(const char* sweep, int piece, const Counts& c,
               const Failures& f) {
  std::cout << sweep << " piece " << piece << ": " << c.trials
            << " trials, " << c.refused << " opens refused, " << c.ok
            << " opens OK, " << f.total() << " failures\n";
  f.Report(c.trials);
}

// ------------------------------------------------------------ (a)

class FlipEveryBit : public ::testing::TestWithParam<int> {};

TEST_P(FlipEveryBit, RefusedUnchangedOrEverythingBack) {
  const Log& log = TheLog();
  ASSERT_EQ(log.blocks.size(), 8u);
  const uint64_t bits = log.image.size() * 8;
  const uint64_t from = bits * GetParam() / kFlipPieces;
  const uint64_t to = bits * (GetParam() + 1) / kFlipPieces;
  const std::string path = TmpPath(absl::StrCat("flip_", GetParam(), ".log"));
  Counts counts;
  Failures failures;
  std::vector<std::byte> image = log.image;
  for (uint64_t bit = from; bit < to; ++bit) {
    const std::byte mask{static_cast<unsigned char>(1u << (bit % 8))};
    image[bit / 8] ^= mask;
    OpenAndCheck(path, image, log.records, Expect::kEither,
                 /*may_be_foreign=*/false,
                 absl::StrCat("bit ", bit % 8, " of byte ", bit / 8), counts,
                 failures);
    image[bit / 8] ^= mask;
  }
  Summarise("flip", GetParam(), counts, failures);
}

INSTANTIATE_TEST_SUITE_P(Pieces, FlipEveryBit, ::testing::Range(0, kFlipPieces));

// ------------------------------------------------------------ (c)

class FlipEveryBitSkipCorrupted : public ::testing::TestWithParam<int> {};

TEST_P(FlipEveryBitSkipCorrupted, OnlyWrittenRecordsAndEveryUntouchedOne) {
  const Log& log = TheLog();
  ASSERT_EQ(log.blocks.size(), 8u);
  const uint64_t bits = log.image.size() * 8;
  const uint64_t from = bits * GetParam() / kSkipPieces;
  const uint64_t to = bits * (GetParam() + 1) / kSkipPieces;
  const std::string path = TmpPath(absl::StrCat("skip_", GetParam(), ".log"));
  WriteFileBytes(path, log.image);
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  Counts counts;
  Failures failures;
  for (uint64_t bit = from; bit < to; ++bit) {
    const std::string trial =
        absl::StrCat("bit ", bit % 8, " of byte ", bit / 8);
    const uint64_t at = bit / 8;
    const std::byte flipped =
        log.image[at] ^ std::byte{static_cast<unsigned char>(1u << (bit % 8))};
    // Read-only: the file cannot change, so flip and restore in place.
    ASSERT_EQ(pwrite(fd, &flipped, 1, at), 1);
    ++counts.trials;
    auto store =
        LogStructuredStore::Open(path, Options(RecoveryMode::kSkipCorrupted));
    if (!store.ok()) {
      ++counts.refused;
      const absl::StatusCode code = store.status().code();
      if ((code != absl::StatusCode::kDataLoss &&
           code != absl::StatusCode::kInvalidArgument) ||
          !absl::StrContains(store.status().message(), path)) {
        failures.Add("refused other than DataLoss/InvalidArgument naming "
                     "the file",
                     absl::StrCat(trial, ": ", store.status().ToString()));
      }
    } else {
      ++counts.ok;
      std::vector<Written> untouched;
      for (const Written& w : log.records) {
        const uint64_t end = w.address + RecordFootprint(w.payload.size());
        if (at < w.address || at >= end) untouched.push_back(w);
      }
      absl::StatusOr<std::unique_ptr<LogReader>> reader =
          (*store)->NewLogReader(0);
      ASSERT_TRUE(reader.ok()) << reader.status();
      size_t next = 0;  // into log.records
      size_t returned = 0;
      for (;;) {
        absl::StatusOr<bool> more = (*reader)->Next();
        if (!more.ok()) {
          failures.Add("LogReader failed",
                       absl::StrCat(trial, ": ", more.status().ToString()));
          break;
        }
        if (!*more) break;
        ++returned;
        const RecordView& r = (*reader)->record();
        while (next < log.records.size() &&
               log.records[next].address < r.address) {
          ++next;
        }
        if (next == log.records.size() ||
            log.records[next].address != r.address ||
            log.records[next].key != r.tag.key ||
            log.records[next].payload != r.payload) {
          failures.Add("a record that was not written",
                       absl::StrCat(trial, ": at ", r.address));
        }
      }
      for (const Written& w : untouched) {
        absl::StatusOr<LogRecord> r = (*store)->Read(w.address);
        if (!r.ok() || r->payload != w.payload || r->tag.key != w.key) {
          failures.Add("an untouched record is not returned",
                       absl::StrCat(trial, ": record at ", w.address, ": ",
                                    r.status().ToString()));
          break;
        }
      }
      if (returned < untouched.size()) {
        failures.Add("the LogReader misses untouched records",
                     absl::StrCat(trial, ": ", returned, " of ",
                                  untouched.size()));
      }
    }
    ASSERT_EQ(pwrite(fd, &log.image[at], 1, at), 1);
  }
  close(fd);
  Summarise("skip", GetParam(), counts, failures);
}

INSTANTIATE_TEST_SUITE_P(Pieces, FlipEveryBitSkipCorrupted,
                         ::testing::Range(0, kSkipPieces));

// ------------------------------------------------------------ (b)

// What a file cut to `len` bytes must do, computed from format.h alone.
struct TruncationOracle {
  Expect expect = Expect::kEither;
  bool may_be_foreign = false;
  std::vector<Written> want;  // when it opens
  std::string why;
};

TruncationOracle Judge(const Log& log, uint64_t len) {
  TruncationOracle o;
  const std::span<const std::byte> image =
      std::span(log.image).first(len);
  std::vector<std::byte> slot(kSuperblockBytes, std::byte{0});
  for (uint64_t i = 0; i < kSuperblockBytes && i < len; ++i) slot[i] = image[i];
  absl::StatusOr<Superblock> current = DecodeSuperblock(slot, "slot 0");
  if (!current.ok()) {
    // Slot 0 (the current superblock) is cut, and slot 1 lies past the end.
    // Zeros only: a creator that died before its first superblock, a new
    // log. Else damage to the only slot left: DataLoss; with fewer than
    // 8 bytes of it the magic itself is gone, and "not a log file" is all
    // that can be said.
    const bool zeros = std::all_of(image.begin(), image.end(),
                                   [](std::byte b) { return b == std::byte{0}; });
    o.expect = zeros ? Expect::kRecords : Expect::kRefuse;
    o.may_be_foreign = len < 8;
    o.why = zeros ? "no superblock, zeros only" : "the current superblock cut";
    return o;
  }
  // The longest run of whole blocks, and the watermark.
  uint64_t tail = kDataStart;
  for (const Block& b : log.blocks) {
    if (b.base != tail || len < b.base + RoundUp(b.used, kBlockBytes)) break;
    tail = b.base + RoundUp(b.used, kBlockBytes);
  }
  uint64_t watermark = current->epoch_start;
  for (const Block& b : log.blocks) {
    if (b.epoch == current->epoch &&
        len >= b.base + RoundUp(b.used, kBlockBytes)) {
      watermark = std::max(watermark, b.stable);
    }
  }
  if (tail < watermark) {
    o.expect = Expect::kRefuse;
    o.why = absl::StrCat("tail ", tail, " below the proven ", watermark);
    return o;
  }
  o.expect = Expect::kRecords;
  for (const Written& w : log.records) {
    if (w.address < tail) o.want.push_back(w);
  }
  o.why = absl::StrCat("tail ", tail, " at or past the proven ", watermark);
  return o;
}

class TruncateEverywhere : public ::testing::TestWithParam<int> {};

TEST_P(TruncateEverywhere, RefusedWhenProvenLostElseThePrefix) {
  const Log& log = TheLog();
  ASSERT_EQ(log.blocks.size(), 8u);
  const uint64_t size = log.image.size();
  // Every length in the superblock area and in the last two blocks (the
  // last data block and the close marker), every 512th elsewhere.
  const uint64_t fine_from = log.blocks[log.blocks.size() - 2].base;
  std::vector<uint64_t> lengths;
  for (uint64_t len = 0; len <= size;) {
    lengths.push_back(len);
    // Block boundaries, and halfway into each block.
    len += len < kDataStart || len >= fine_from ? 1 : kBlockBytes / 2;
  }
  const std::string path =
      TmpPath(absl::StrCat("truncate_", GetParam(), ".log"));
  Counts counts;
  Failures failures;
  uint64_t cut_with_nothing_proving = 0;
  for (size_t i = GetParam(); i < lengths.size(); i += kTruncatePieces) {
    const uint64_t len = lengths[i];
    const TruncationOracle o = Judge(log, len);
    if (o.expect == Expect::kRecords && len < size &&
        o.want.size() < log.records.size()) {
      ++cut_with_nothing_proving;
    }
    OpenAndCheck(path,
                 std::vector<std::byte>(log.image.begin(),
                                        log.image.begin() + len),
                 o.want, o.expect, o.may_be_foreign,
                 absl::StrCat("truncated to ", len, " of ", size, " (", o.why,
                              ")"),
                 counts, failures);
  }
  Summarise("truncate", GetParam(), counts, failures);
  std::cout << "  of which cut acknowledged records nothing left proves: "
            << cut_with_nothing_proving << "\n";
}

INSTANTIATE_TEST_SUITE_P(Pieces, TruncateEverywhere,
                         ::testing::Range(0, kTruncatePieces));

}  // namespace
}  // namespace lss
