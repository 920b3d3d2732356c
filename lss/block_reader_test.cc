// BlockReader and ForEachRecord on hand-made files: each verdict of
// block_reader.h (valid, end, corrupt) for each rule a block must pass, with
// the file and offset in every reason, and reads through an O_DIRECT fd of a
// file whose size is not a multiple of the block size (a torn tail).

#include "lss/block_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/format.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBuffer = 65536;
constexpr uint64_t kStoreId = 0x5EED5EED12345678ULL;
constexpr uint64_t kDataStart = 2 * kBlock;

Superblock MakeSuperblock(uint64_t epoch, uint64_t epoch_start) {
  Superblock sb;
  sb.block_bytes = kBlock;
  sb.buffer_bytes = kBuffer;
  sb.store_id = kStoreId;
  sb.sequence = 1;
  sb.epoch = epoch;
  sb.epoch_start = epoch_start;
  sb.data_start = kDataStart;
  sb.max_in_flight_bytes = 2 * kBuffer;
  return sb;
}

// A block at `address` with `n` records of `len` bytes (key = first_key +
// i), padded to the block size.
std::vector<std::byte> MakeBlock(uint64_t address, uint64_t epoch, int n,
                                 size_t len, uint64_t first_key = 0,
                                 uint64_t store_id = kStoreId) {
  size_t used = kBlockHeaderBytes + n * RecordFootprint(len);
  std::vector<std::byte> block((used + kBlock - 1) / kBlock * kBlock);
  size_t at = kBlockHeaderBytes;
  for (int i = 0; i < n; ++i) {
    for (size_t k = 0; k < len; ++k) {
      block[at + kRecordHeaderBytes + k] =
          static_cast<std::byte>(first_key + i + k);
    }
    SealRecord(address + at, {kDataRecordType, first_key + i}, len,
               std::span<std::byte>(block).subspan(at, RecordFootprint(len)));
    at += RecordFootprint(len);
  }
  BlockHeader h{store_id, address, epoch, static_cast<uint32_t>(used)};
  SealBlock(h, block);
  return block;
}

class BlockReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& ch : name) {
      if (ch == '/') ch = '_';
    }
    path_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name, ".log");
    image_.assign(kDataStart, std::byte{0});
  }

  uint64_t Put(const std::vector<std::byte>& block) {
    const uint64_t at = image_.size();
    image_.insert(image_.end(), block.begin(), block.end());
    return at;
  }

  // Writes the image (its first `size` bytes) and opens it for reading.
  void WriteAndOpen(bool direct = false, size_t size = SIZE_MAX) {
    if (size == SIZE_MAX) size = image_.size();
    const int w = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(w, 0) << strerror(errno);
    ASSERT_EQ(write(w, image_.data(), size), static_cast<ssize_t>(size));
    close(w);
    absl::StatusOr<std::unique_ptr<File>> file =
        OpenPosixFile(path_, {.read_only = true, .direct_io = direct});
    if (direct && file.status().code() ==
                      absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << "no O_DIRECT on " << path_;
    }
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = *std::move(file);
    file_size_ = size;
  }

  BlockReader Reader(const Superblock& sb) {
    absl::StatusOr<BlockReader> r =
        BlockReader::Create(file_.get(), sb, file_size_);
    EXPECT_TRUE(r.ok()) << r.status();
    return *std::move(r);
  }

  BlockCheck CheckAt(BlockReader& reader, uint64_t address,
                     uint64_t prev_epoch = 0) {
    absl::StatusOr<BlockCheck> c = reader.Check(address, prev_epoch);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return BlockCheck{BlockVerdict::kCorrupt, "I/O error", {}};
    return *c;
  }

  void ExpectReasonNames(const BlockCheck& c, uint64_t offset) {
    EXPECT_THAT(c.reason, HasSubstr(path_));
    EXPECT_THAT(c.reason, HasSubstr(absl::StrCat(offset)));
  }

  std::string path_;
  std::vector<std::byte> image_;
  std::unique_ptr<File> file_;
  uint64_t file_size_ = 0;
};

TEST_F(BlockReaderTest, ValidBlocksAndTheirRecords) {
  const uint64_t a = Put(MakeBlock(kDataStart, 1, 3, 100));
  const uint64_t b = Put(MakeBlock(image_.size(), 1, 150, 300, 3));  // > 1 page
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));

  BlockCheck c = CheckAt(reader, a);
  ASSERT_EQ(c.verdict, BlockVerdict::kValid) << c.reason;
  EXPECT_EQ(c.header.address, a);
  EXPECT_EQ(c.header.epoch, 1u);
  EXPECT_EQ(c.header.store_id, kStoreId);
  EXPECT_EQ(reader.block().size(),
            kBlockHeaderBytes + 3 * RecordFootprint(100));
  std::vector<uint64_t> keys;
  ASSERT_TRUE(ForEachRecord(reader.block(), a, path_, [&](const RecordView& r) {
                keys.push_back(r.tag.key);
                EXPECT_EQ(r.payload.size(), 100u);
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(keys, ::testing::ElementsAre(0, 1, 2));

  c = CheckAt(reader, b, 1);
  ASSERT_EQ(c.verdict, BlockVerdict::kValid) << c.reason;
  keys.clear();
  ASSERT_TRUE(ForEachRecord(reader.block(), b, path_, [&](const RecordView& r) {
                keys.push_back(r.tag.key);
                return absl::OkStatus();
              }).ok());
  ASSERT_EQ(keys.size(), 150u);
  EXPECT_EQ(keys.front(), 3u);
  EXPECT_EQ(keys.back(), 152u);
  EXPECT_GT(reader.bytes_read(), 0u);
}

TEST_F(BlockReaderTest, EndOfFileAndZerosAreTheEnd) {
  Put(MakeBlock(kDataStart, 1, 1, 10));
  image_.resize(image_.size() + 3 * kBlock);  // preallocated zeros
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  BlockCheck c = CheckAt(reader, kDataStart + kBlock);
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
  EXPECT_TRUE(c.unwritten);
  ExpectReasonNames(c, kDataStart + kBlock);
  c = CheckAt(reader, image_.size());
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
  c = CheckAt(reader, image_.size() + 10 * kBlock);
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
}

TEST_F(BlockReaderTest, GarbageIsCorrupt) {
  std::vector<std::byte> junk(kBlock, std::byte{0x41});
  const uint64_t a = Put(junk);
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  BlockCheck c = CheckAt(reader, a);
  EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt);
  ExpectReasonNames(c, a);
}

TEST_F(BlockReaderTest, AnotherStoresBlockIsCorrupt) {
  const uint64_t a = Put(MakeBlock(kDataStart, 1, 2, 50, 0, kStoreId + 1));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  BlockCheck c = CheckAt(reader, a);
  EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt);
  ExpectReasonNames(c, a);
}

TEST_F(BlockReaderTest, BlockClaimingAnotherAddressIsCorrupt) {
  // A valid block sealed for the next address, then copied here.
  const uint64_t a = Put(MakeBlock(kDataStart + kBlock, 1, 2, 50));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  BlockCheck c = CheckAt(reader, a);
  EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt);
  ExpectReasonNames(c, a);
}

TEST_F(BlockReaderTest, UsedLengthOutOfRangeIsCorrupt) {
  for (uint32_t used : {uint32_t{0}, uint32_t{kBlockHeaderBytes},
                        static_cast<uint32_t>(kBuffer + 8)}) {
    SCOPED_TRACE(absl::StrCat("used=", used));
    image_.assign(kDataStart, std::byte{0});
    std::vector<std::byte> block(kBuffer + kBlock);
    // SealBlock requires used >= header and <= span: seal a valid block,
    // then overwrite its used length (the CRC no longer matches either, so
    // the reason must name the length check, which comes first).
    BlockHeader h{kStoreId, kDataStart, 1, kBlockHeaderBytes + 8};
    SealBlock(h, block);
    std::memcpy(block.data() + 32, &used, 4);
    Put(block);
    file_.reset();
    WriteAndOpen();
    BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
    BlockCheck c = CheckAt(reader, kDataStart);
    EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt) << c.reason;
    EXPECT_THAT(c.reason, HasSubstr(absl::StrCat("used length ", used)));
  }
}

TEST_F(BlockReaderTest, EpochNewerThanTheSuperblockIsCorrupt) {
  const uint64_t a = Put(MakeBlock(kDataStart, 3, 2, 50));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(2, kDataStart));
  BlockCheck c = CheckAt(reader, a);
  EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt);
  ExpectReasonNames(c, a);
}

// Life 1 wrote blocks at A, B, C; life 2 started at B (epoch_start) and
// wrote B again. C, left from life 1, is stale: the end, not corruption.
TEST_F(BlockReaderTest, StaleBlockPastEpochStartIsTheEnd) {
  const uint64_t a = Put(MakeBlock(kDataStart, 1, 2, 50));
  const uint64_t b = Put(MakeBlock(kDataStart + kBlock, 2, 2, 50));
  const uint64_t c_addr = Put(MakeBlock(kDataStart + 2 * kBlock, 1, 2, 50));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(2, b));
  BlockCheck c = CheckAt(reader, a, 0);
  EXPECT_EQ(c.verdict, BlockVerdict::kValid) << c.reason;
  c = CheckAt(reader, b, 1);
  EXPECT_EQ(c.verdict, BlockVerdict::kValid) << c.reason;
  c = CheckAt(reader, c_addr, 2);
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
  EXPECT_FALSE(c.unwritten) << "a stale block is written space";
  ExpectReasonNames(c, c_addr);
  // Stale however it is reached (FindValid checks with prev_epoch 0).
  c = CheckAt(reader, c_addr, 0);
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
  absl::StatusOr<std::optional<uint64_t>> found =
      reader.FindValid(c_addr, image_.size());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
}

TEST_F(BlockReaderTest, EpochGoingBackwardsBeforeEpochStartIsTheEnd) {
  const uint64_t a = Put(MakeBlock(kDataStart, 2, 2, 50));
  const uint64_t b = Put(MakeBlock(kDataStart + kBlock, 1, 2, 50));
  Put(MakeBlock(kDataStart + 2 * kBlock, 3, 2, 50));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(3, kDataStart + 2 * kBlock));
  EXPECT_EQ(CheckAt(reader, a, 0).verdict, BlockVerdict::kValid);
  BlockCheck c = CheckAt(reader, b, 2);
  EXPECT_EQ(c.verdict, BlockVerdict::kEnd) << c.reason;
  // The same block after an epoch-1 predecessor is fine.
  EXPECT_EQ(CheckAt(reader, b, 1).verdict, BlockVerdict::kValid);
}

TEST_F(BlockReaderTest, ChecksumMismatchIsCorruptAtEveryByteOfTheUsedRange) {
  const std::vector<std::byte> good = MakeBlock(kDataStart, 1, 4, 40);
  const size_t used = kBlockHeaderBytes + 4 * RecordFootprint(40);
  for (size_t byte = 0; byte < used; ++byte) {
    image_.assign(kDataStart, std::byte{0});
    std::vector<std::byte> bad = good;
    bad[byte] ^= std::byte{0x80};
    Put(bad);
    file_.reset();
    WriteAndOpen();
    BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
    BlockCheck c = CheckAt(reader, kDataStart);
    // The epoch field too: the CRC is checked before the stale rule.
    ASSERT_EQ(c.verdict, BlockVerdict::kCorrupt) << "byte " << byte;
    ASSERT_THAT(c.reason, HasSubstr(path_));
  }
}

// A record that fails its own CRC inside a block whose CRC was recomputed
// (e.g. a bug in the writer): the block is corrupt, naming the record's
// offset.
TEST_F(BlockReaderTest, CorruptRecordInsideAValidBlockIsCorrupt) {
  std::vector<std::byte> block = MakeBlock(kDataStart, 1, 3, 40);
  const size_t second = kBlockHeaderBytes + RecordFootprint(40);
  block[second + kRecordHeaderBytes + 5] ^= std::byte{1};
  BlockHeader h;
  ASSERT_TRUE(ParseBlockHeader(block, h));
  SealBlock(h, block);
  ASSERT_TRUE(BlockCrcMatches(std::span<const std::byte>(block).first(h.used)));
  Put(block);
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  BlockCheck c = CheckAt(reader, kDataStart);
  EXPECT_EQ(c.verdict, BlockVerdict::kCorrupt);
  EXPECT_THAT(c.reason, HasSubstr(path_));
  EXPECT_THAT(c.reason, HasSubstr(absl::StrCat(kDataStart + second)));
}

TEST_F(BlockReaderTest, ForEachRecordSkipsPaddingAndStopsAtCorruption) {
  std::vector<std::byte> block(kBlock);
  size_t at = kBlockHeaderBytes;
  auto add = [&](uint64_t key, size_t len) {
    SealRecord(kDataStart + at, {kDataRecordType, key}, len,
               std::span<std::byte>(block).subspan(at, RecordFootprint(len)));
    at += RecordFootprint(len);
  };
  add(1, 10);
  at += 3 * kRecordAlignment;  // an abandoned reservation: zeros
  add(2, 17);
  const size_t bad_at = at;
  add(3, 8);
  add(4, 8);
  const size_t used = at;
  std::vector<uint64_t> keys;
  auto collect = [&](const RecordView& r) {
    keys.push_back(r.tag.key);
    return absl::OkStatus();
  };
  std::span<const std::byte> used_bytes =
      std::span<const std::byte>(block).first(used);
  ASSERT_TRUE(ForEachRecord(used_bytes, kDataStart, path_, collect).ok());
  EXPECT_THAT(keys, ::testing::ElementsAre(1, 2, 3, 4));

  block[bad_at + 8] ^= std::byte{4};  // key of record 3
  keys.clear();
  absl::Status s = ForEachRecord(used_bytes, kDataStart, path_, collect);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr(path_));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(kDataStart + bad_at)));
  EXPECT_THAT(keys, ::testing::ElementsAre(1, 2));

  // The visitor's error stops the walk and is returned as is.
  block[bad_at + 8] ^= std::byte{4};
  keys.clear();
  s = ForEachRecord(used_bytes, kDataStart, path_, [&](const RecordView& r) {
    keys.push_back(r.tag.key);
    return r.tag.key == 2 ? absl::CancelledError("enough") : absl::OkStatus();
  });
  EXPECT_EQ(s, absl::CancelledError("enough"));
  EXPECT_THAT(keys, ::testing::ElementsAre(1, 2));
}

TEST_F(BlockReaderTest, FindValidSkipsDamageAndReportsNothingWhenNoneIsLeft) {
  const uint64_t a = Put(MakeBlock(kDataStart, 1, 2, 50));
  std::vector<std::byte> bad = MakeBlock(kDataStart + kBlock, 1, 2, 50);
  bad[100] ^= std::byte{1};
  const uint64_t b = Put(bad);
  Put(std::vector<std::byte>(2 * kBlock, std::byte{0x77}));
  const uint64_t d = Put(MakeBlock(kDataStart + 4 * kBlock, 1, 1, 5000));
  WriteAndOpen();
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  absl::StatusOr<std::optional<uint64_t>> f = reader.FindValid(a, file_size_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, std::optional<uint64_t>(a));
  f = reader.FindValid(b, file_size_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, std::optional<uint64_t>(d));
  f = reader.FindValid(b + 1, file_size_);  // rounds up to a block
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, std::optional<uint64_t>(d));
  f = reader.FindValid(b, d);  // limit excludes d
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->has_value());
  f = reader.FindValid(d + kBlock, file_size_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->has_value());
}

// A torn tail: the file ends inside the last block. Through a buffered fd
// and through an O_DIRECT fd (the file size is then not a multiple of the
// block size), the block reads as corrupt, and the blocks before it still
// read as valid: no I/O error.
class TornTailTest : public BlockReaderTest,
                     public ::testing::WithParamInterface<bool> {};

TEST_P(TornTailTest, FileEndingInsideABlockIsCorruptNotAnError) {
  const uint64_t a = Put(MakeBlock(kDataStart, 1, 2, 50));
  const uint64_t b =
      Put(MakeBlock(kDataStart + kBlock, 1, 30, 400));  // 4 pages
  const size_t full = image_.size();
  const uint64_t used_b = kBlockHeaderBytes + 30 * RecordFootprint(400);
  for (size_t size : {b + 1, b + 100, b + kBlock, b + kBlock + 7,
                      static_cast<size_t>(b + used_b - 1)}) {
    SCOPED_TRACE(absl::StrCat("file size ", size));
    file_.reset();
    WriteAndOpen(GetParam(), size);
    if (file_ == nullptr) return;
    BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
    absl::StatusOr<BlockCheck> c = reader.Check(a, 0);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->verdict, BlockVerdict::kValid) << c->reason;
    c = reader.Check(b, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->verdict, BlockVerdict::kCorrupt) << c->reason;
  }
  // Cut in the zero padding: every block write covers its padding, so this
  // file lost its end too; the block is torn, not half valid.
  file_.reset();
  WriteAndOpen(GetParam(), b + used_b + 1);
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  absl::StatusOr<BlockCheck> c = reader.Check(b, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->verdict, BlockVerdict::kCorrupt) << c->reason;
  EXPECT_THAT(c->reason, ::testing::HasSubstr("past the end of the file"));
  // The whole padded block is there: valid.
  file_.reset();
  WriteAndOpen(GetParam(), full);
  BlockReader whole = Reader(MakeSuperblock(1, kDataStart));
  c = whole.Check(b, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->verdict, BlockVerdict::kValid) << c->reason;
}

// Salvage asks for bytes at any record boundary, outside the window the
// block's check loaded. Through O_DIRECT too, Load reads from the block
// boundary below (an unaligned read would fail with EINVAL) and Bytes sees
// the file's bytes there.
TEST_P(TornTailTest, LoadAtAnUnalignedAddressReadsTheFile) {
  Put(MakeBlock(kDataStart, 1, 2, 50));
  Put(MakeBlock(kDataStart + kBlock, 1, 30, 400));
  WriteAndOpen(GetParam());
  if (file_ == nullptr) return;
  BlockReader reader = Reader(MakeSuperblock(1, kDataStart));
  for (uint64_t at : {kDataStart + 8, kDataStart + kBlock + 4088,
                      kDataStart + kBlock + 5000}) {
    SCOPED_TRACE(absl::StrCat("address ", at));
    ASSERT_TRUE(reader.Load(at, 1000).ok());
    const std::span<const std::byte> got = reader.Bytes(at, 1000);
    const size_t n = std::min<size_t>(1000, image_.size() - at);
    EXPECT_EQ(std::memcmp(got.data(), image_.data() + at, n), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(BufferedAndDirect, TornTailTest,
                         ::testing::Values(false, true), [](const auto& info) {
                           return info.param ? "Direct" : "Buffered";
                         });

}  // namespace
}  // namespace lss
