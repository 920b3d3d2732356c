// The on-disk format (lss/format.h) and its checksum, without a store:
// CRC32C known vectors, the superblock, records, block headers and the
// integers of record payloads. Every test here checks a promise of
// format.h that a wrong encoder or a weaker check would break.

#include "lss/format.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lss/crc32c.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

template <typename T>
T GetAt(std::span<const std::byte> in, size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  return v;
}

template <typename T>
void PutAt(std::span<std::byte> out, size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void FlipBit(std::span<std::byte> bytes, size_t bit) {
  bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
}

uint32_t Crc(absl::string_view s, uint32_t crc = 0) {
  return Crc32c(s.data(), s.size(), crc);
}

// ------------------------------------------------------ Payload integers

TEST(PayloadIntegersTest, ComeBackInOrderAndLittleEndian) {
  std::string out;
  PutU32(out, 0x04030201u);
  PutU64(out, 0x0c0b0a0908070605ull);
  ASSERT_EQ(out, absl::string_view("\x01\x02\x03\x04\x05\x06\x07\x08"
                                   "\x09\x0a\x0b\x0c", 12));
  absl::string_view in = out;
  uint32_t a = 0;
  uint64_t b = 0;
  ASSERT_TRUE(GetU32(in, a));
  ASSERT_TRUE(GetU64(in, b));
  EXPECT_EQ(a, 0x04030201u);
  EXPECT_EQ(b, 0x0c0b0a0908070605ull);
  EXPECT_TRUE(in.empty());
}

TEST(PayloadIntegersTest, TooFewBytesLeaveTheViewAsItWas) {
  const std::string seven(7, '\x7f');
  absl::string_view in = seven;
  uint64_t v = 42;
  EXPECT_FALSE(GetU64(in, v));
  EXPECT_EQ(in.size(), 7u);
  EXPECT_EQ(v, 42u);
  in.remove_prefix(4);
  uint32_t w = 42;
  EXPECT_FALSE(GetU32(in, w));
  EXPECT_EQ(in.size(), 3u);
  EXPECT_EQ(w, 42u);
}

// ---------------------------------------------------------------- CRC32C

TEST(Crc32cTest, StandardCheckValue) {
  EXPECT_EQ(Crc("123456789"), 0xE3069283u);
}

TEST(Crc32cTest, EmptyInputIsZeroAndLeavesAChainUnchanged) {
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
  EXPECT_EQ(Crc32c(nullptr, 0, 0x12345678u), 0x12345678u);
}

// RFC 3720 (iSCSI), appendix B.4: the CRC32C test vectors.
TEST(Crc32cTest, Rfc3720Vectors) {
  std::string zeros(32, '\0');
  std::string ones(32, '\xff');
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Crc(zeros), 0x8A9136AAu);
  EXPECT_EQ(Crc(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, ChainingEqualsOneCallAtEverySplit) {
  std::mt19937_64 rng(42);
  std::string data(3000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc(data);
  for (size_t split = 0; split <= data.size(); ++split) {
    const absl::string_view a = absl::string_view(data).substr(0, split);
    const absl::string_view b = absl::string_view(data).substr(split);
    ASSERT_EQ(Crc(b, Crc(a)), whole) << "split at " << split;
  }
}

TEST(Crc32cTest, ChainingWithThreePieces) {
  EXPECT_EQ(Crc("789", Crc("456", Crc("123"))), 0xE3069283u);
}

TEST(Crc32cTest, EveryBitFlipChangesTheChecksum) {
  std::string data = "the quick brown fox jumps over the lazy dog, twice over";
  const uint32_t base = Crc(data);
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    std::string d = data;
    d[bit / 8] = static_cast<char>(d[bit / 8] ^ (1 << (bit % 8)));
    ASSERT_NE(Crc(d), base) << "bit " << bit;
  }
}

// ------------------------------------------------------------ Superblock

Superblock SampleSuperblock() {
  Superblock sb;
  sb.block_bytes = 4096;
  sb.buffer_bytes = uint64_t{1} << 22;
  sb.store_id = 0x1122334455667788ULL;
  sb.sequence = 17;
  sb.epoch = 5;
  sb.epoch_start = 123 * 4096;
  sb.data_start = 2 * 4096;
  sb.max_in_flight_bytes = uint64_t{16} << 20;
  sb.head = 9 * 4096;
  sb.checkpoint = 11 * 4096 + 64;
  sb.holes = {{.begin = 20 * 4096, .end = 30 * 4096},
              {.begin = 40 * 4096, .end = 41 * 4096}};
  return sb;
}

void ExpectSameSuperblock(const Superblock& a, const Superblock& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.block_bytes, b.block_bytes);
  EXPECT_EQ(a.buffer_bytes, b.buffer_bytes);
  EXPECT_EQ(a.store_id, b.store_id);
  EXPECT_EQ(a.sequence, b.sequence);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.epoch_start, b.epoch_start);
  EXPECT_EQ(a.data_start, b.data_start);
  EXPECT_EQ(a.max_in_flight_bytes, b.max_in_flight_bytes);
  EXPECT_EQ(a.head, b.head);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
  EXPECT_EQ(a.holes, b.holes);
}

constexpr absl::string_view kWhere = "/some/dir/store.log: superblock slot 1";

TEST(SuperblockTest, RoundTrip) {
  const Superblock sb = SampleSuperblock();
  std::vector<std::byte> slot(SuperblockSlotBytes(sb.block_bytes));
  EncodeSuperblock(sb, slot);
  absl::StatusOr<Superblock> back = DecodeSuperblock(slot, kWhere);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameSuperblock(*back, sb);
}

TEST(SuperblockTest, RoundTripFromExactlyTheEncodedBytes) {
  const Superblock sb = SampleSuperblock();
  std::vector<std::byte> bytes(kSuperblockBytes);
  EncodeSuperblock(sb, bytes);
  absl::StatusOr<Superblock> back = DecodeSuperblock(bytes, kWhere);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameSuperblock(*back, sb);
}

// The layout documented in format.h and FORMAT.md, byte by byte.
TEST(SuperblockTest, LayoutMatchesTheDocumentedOffsets) {
  const Superblock sb = SampleSuperblock();
  std::vector<std::byte> b(kSuperblockBytes, std::byte{0xEE});
  EncodeSuperblock(sb, b);
  EXPECT_EQ(std::memcmp(b.data(), "LSSLOG\0\1", 8), 0);
  EXPECT_EQ(GetAt<uint64_t>(b, 0), kSuperblockMagic);
  EXPECT_EQ(GetAt<uint32_t>(b, 8), kFormatVersion);
  EXPECT_EQ(GetAt<uint32_t>(b, 12), sb.block_bytes);
  EXPECT_EQ(GetAt<uint64_t>(b, 16), sb.buffer_bytes);
  EXPECT_EQ(GetAt<uint64_t>(b, 24), sb.store_id);
  EXPECT_EQ(GetAt<uint64_t>(b, 32), sb.sequence);
  EXPECT_EQ(GetAt<uint64_t>(b, 40), sb.epoch);
  EXPECT_EQ(GetAt<uint64_t>(b, 48), sb.epoch_start);
  EXPECT_EQ(GetAt<uint64_t>(b, 56), sb.data_start);
  EXPECT_EQ(GetAt<uint64_t>(b, 64), sb.max_in_flight_bytes);
  EXPECT_EQ(GetAt<uint64_t>(b, 72), sb.head);
  EXPECT_EQ(GetAt<uint64_t>(b, 80), sb.checkpoint);
  EXPECT_EQ(GetAt<uint32_t>(b, 88), Crc32c(b.data(), 88));
  EXPECT_EQ(GetAt<uint32_t>(b, 92), 2u);
  EXPECT_EQ(GetAt<uint64_t>(b, 96), sb.holes[0].begin);
  EXPECT_EQ(GetAt<uint64_t>(b, 104), sb.holes[0].end);
  EXPECT_EQ(GetAt<uint64_t>(b, 112), sb.holes[1].begin);
  EXPECT_EQ(GetAt<uint64_t>(b, 120), sb.holes[1].end);
  EXPECT_EQ(GetAt<uint32_t>(b, 128), Crc32c(b.data(), 128));
  EXPECT_EQ(GetAt<uint32_t>(b, 132), 0u);
}

// Logs written before holes: CRC of [0, 88) at 88; they open without any.
TEST(SuperblockTest, Version3DecodesWithoutHoles) {
  Superblock sb = SampleSuperblock();
  std::vector<std::byte> b(4096, std::byte{0});
  EncodeSuperblock(sb, b);
  const uint32_t three = 3;
  std::memcpy(b.data() + 8, &three, 4);
  std::fill(b.begin() + 88, b.end(), std::byte{0});
  const uint32_t crc = Crc32c(b.data(), 88);
  std::memcpy(b.data() + 88, &crc, 4);
  absl::StatusOr<Superblock> back = DecodeSuperblock(b, kWhere);
  ASSERT_TRUE(back.ok()) << back.status();
  sb.holes.clear();
  ExpectSameSuperblock(*back, sb);
}

// A hole list whose CRC holds but which cannot have been written: DataLoss
// naming the slot.
TEST(SuperblockTest, ABadHoleListIsDataLoss) {
  const auto decode = [](std::vector<Hole> holes, uint32_t count) {
    Superblock sb = SampleSuperblock();
    sb.holes = holes;
    std::vector<std::byte> b(4096, std::byte{0});
    EncodeSuperblock(sb, b);
    std::memcpy(b.data() + 92, &count, 4);
    const size_t crc_at = 96 + 16 * size_t{count};
    if (crc_at + 4 <= b.size()) {
      const uint32_t crc = Crc32c(b.data(), crc_at);
      std::memcpy(b.data() + crc_at, &crc, 4);
    }
    return DecodeSuperblock(b, kWhere).status();
  };
  const uint64_t k = 4096;
  EXPECT_TRUE(decode({{20 * k, 30 * k}}, 1).ok());
  const std::vector<std::vector<Hole>> bad = {
      {{8 * k, 10 * k}},                     // below the head
      {{9 * k, 10 * k}},                     // at the head
      {{20 * k, 20 * k}},                    // empty
      {{20 * k + 512, 30 * k}},              // not block-aligned
      {{20 * k, 30 * k}, {30 * k, 31 * k}},  // touching
      {{20 * k, 30 * k}, {25 * k, 35 * k}},  // overlapping
      {{40 * k, 50 * k}, {20 * k, 30 * k}},  // out of order
  };
  for (const std::vector<Hole>& holes : bad) {
    const absl::Status s =
        decode(holes, static_cast<uint32_t>(holes.size()));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss)
        << holes.front().begin << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(kWhere));
  }
  // A bit flipped in the list: its own checksum.
  {
    std::vector<std::byte> b(4096, std::byte{0});
    EncodeSuperblock(SampleSuperblock(), b);
    FlipBit(b, 100 * 8);
    const absl::Status s = DecodeSuperblock(b, kWhere).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
  const absl::Status many = decode({}, kMaxHoles + 1);
  EXPECT_EQ(many.code(), absl::StatusCode::kDataLoss) << many;
  EXPECT_THAT(many.message(), HasSubstr("holes"));
}

// Logs written before checkpoints: CRC of [0, 80) at 80; they open without
// one.
TEST(SuperblockTest, Version2DecodesWithoutACheckpoint) {
  Superblock sb = SampleSuperblock();
  std::vector<std::byte> b(4096, std::byte{0});
  EncodeSuperblock(sb, b);
  const uint32_t two = 2;
  std::memcpy(b.data() + 8, &two, 4);
  std::fill(b.begin() + 80, b.end(), std::byte{0});
  const uint32_t crc = Crc32c(b.data(), 80);
  std::memcpy(b.data() + 80, &crc, 4);
  absl::StatusOr<Superblock> back = DecodeSuperblock(b, kWhere);
  ASSERT_TRUE(back.ok()) << back.status();
  sb.checkpoint = 0;
  sb.holes.clear();
  ExpectSameSuperblock(*back, sb);
  FlipBit(b, 60 * 8);
  EXPECT_EQ(DecodeSuperblock(b, kWhere).status().code(),
            absl::StatusCode::kDataLoss);
}

// Logs written before the head existed: CRC of [0, 72) at 72; they open
// with the head at the data start.
TEST(SuperblockTest, Version1DecodesWithTheHeadAtTheDataStart) {
  Superblock sb = SampleSuperblock();
  std::vector<std::byte> b(4096, std::byte{0});
  EncodeSuperblock(sb, b);
  const uint32_t one = 1;
  std::memcpy(b.data() + 8, &one, 4);
  std::fill(b.begin() + 72, b.end(), std::byte{0});
  const uint32_t crc = Crc32c(b.data(), 72);
  std::memcpy(b.data() + 72, &crc, 4);
  absl::StatusOr<Superblock> back = DecodeSuperblock(b, kWhere);
  ASSERT_TRUE(back.ok()) << back.status();
  sb.head = sb.data_start;
  sb.checkpoint = 0;
  sb.holes.clear();
  ExpectSameSuperblock(*back, sb);
  FlipBit(b, 100 * 8);  // past the bytes version 1 covers: ignored
  EXPECT_TRUE(DecodeSuperblock(b, kWhere).ok());
  FlipBit(b, 50 * 8);
  EXPECT_EQ(DecodeSuperblock(b, kWhere).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SuperblockTest, SlotBytesAreAtLeastOnePage) {
  EXPECT_EQ(SuperblockSlotBytes(512), 4096u);
  EXPECT_EQ(SuperblockSlotBytes(4096), 4096u);
  EXPECT_EQ(SuperblockSlotBytes(65536), 65536u);
}

TEST(SuperblockTest, WrongMagicIsInvalidArgumentNamingWhere) {
  std::vector<std::byte> slot(4096);
  EncodeSuperblock(SampleSuperblock(), slot);
  for (size_t bit = 0; bit < 64; ++bit) {
    std::vector<std::byte> bad = slot;
    FlipBit(bad, bit);
    absl::StatusOr<Superblock> r = DecodeSuperblock(bad, kWhere);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << "bit " << bit << ": " << r.status();
    ASSERT_THAT(r.status().message(), HasSubstr(kWhere));
  }
}

TEST(SuperblockTest, ZerosAndTextAreNotALogFile) {
  std::vector<std::byte> zeros(4096);
  absl::StatusOr<Superblock> r = DecodeSuperblock(zeros, kWhere);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(kWhere));

  const std::string text(200, 'x');
  r = DecodeSuperblock(std::as_bytes(std::span(text)), kWhere);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(kWhere));
}

TEST(SuperblockTest, InputShorterThanASuperblockIsRejected) {
  std::vector<std::byte> slot(kSuperblockBytes);
  EncodeSuperblock(SampleSuperblock(), slot);
  for (size_t n = 0; n < kSuperblockBytes; ++n) {
    absl::StatusOr<Superblock> r =
        DecodeSuperblock(std::span<const std::byte>(slot).first(n), kWhere);
    ASSERT_FALSE(r.ok()) << "accepted " << n << " bytes";
    ASSERT_THAT(r.status().message(), HasSubstr(kWhere));
  }
}

// Every bit of [8, 92) is covered by the CRC (the magic gives
// InvalidArgument instead, tested above).
TEST(SuperblockTest, EveryBitFlipAfterTheMagicIsDataLossNamingWhere) {
  std::vector<std::byte> slot(4096);
  EncodeSuperblock(SampleSuperblock(), slot);
  for (size_t bit = 64; bit < 92 * 8; ++bit) {
    std::vector<std::byte> bad = slot;
    FlipBit(bad, bit);
    absl::StatusOr<Superblock> r = DecodeSuperblock(bad, kWhere);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kDataLoss)
        << "bit " << bit << ": " << r.status();
    ASSERT_THAT(r.status().message(), HasSubstr(kWhere));
  }
}

TEST(SuperblockTest, NewerVersionIsFailedPreconditionNamingWhere) {
  Superblock sb = SampleSuperblock();
  sb.version = kFormatVersion + 1;
  std::vector<std::byte> slot(4096);
  EncodeSuperblock(sb, slot);
  absl::StatusOr<Superblock> r = DecodeSuperblock(slot, kWhere);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(kWhere));
  EXPECT_THAT(r.status().message(),
              HasSubstr(absl::StrCat(kFormatVersion + 1)));
}

// --------------------------------------------------------------- Records

constexpr uint64_t kAddress = 0x12345678ULL * 8;

// A sealed record with a payload of `len` bytes, followed by `slack` more
// bytes of whatever (as if it sat in a block).
std::vector<std::byte> SealedRecord(uint64_t address, RecordTag tag, size_t len,
                                    uint64_t salt = 0) {
  std::vector<std::byte> rec(RecordFootprint(len), std::byte{0xAB});
  for (size_t i = 0; i < len; ++i) {
    rec[kRecordHeaderBytes + i] = static_cast<std::byte>(i * 7 + salt + 1);
  }
  SealRecord(address, tag, len, rec);
  return rec;
}

TEST(RecordTest, FootprintIsHeaderPlusPayloadRoundedToEight) {
  EXPECT_EQ(RecordFootprint(1), 32u);
  EXPECT_EQ(RecordFootprint(8), 32u);
  EXPECT_EQ(RecordFootprint(9), 40u);
  EXPECT_EQ(RecordFootprint(16), 40u);
  for (size_t n = 1; n < 200; ++n) {
    EXPECT_EQ(RecordFootprint(n) % kRecordAlignment, 0u);
    EXPECT_GE(RecordFootprint(n), kRecordHeaderBytes + n);
    EXPECT_LT(RecordFootprint(n), kRecordHeaderBytes + n + kRecordAlignment);
  }
}

TEST(RecordTest, SealThenParseRoundTrip) {
  for (size_t len : {1, 2, 7, 8, 9, 15, 16, 17, 100, 4000, 65000}) {
    SCOPED_TRACE(absl::StrCat("len=", len));
    const RecordTag tag{kFirstUserRecordType + 3, 0xFEEDFACECAFEBEEFULL};
    std::vector<std::byte> rec = SealedRecord(kAddress, tag, len);
    // Layout: length, key, type, zero, then zero padding.
    EXPECT_EQ(GetAt<uint32_t>(rec, 4), len);
    EXPECT_EQ(GetAt<uint64_t>(rec, 8), tag.key);
    EXPECT_EQ(GetAt<uint32_t>(rec, 16), tag.type);
    EXPECT_EQ(GetAt<uint32_t>(rec, 20), 0u);
    for (size_t i = kRecordHeaderBytes + len; i < rec.size(); ++i) {
      ASSERT_EQ(rec[i], std::byte{0}) << "padding byte " << i;
    }
    RecordView view;
    std::string reason;
    ASSERT_EQ(ParseRecord(kAddress, rec, view, reason), RecordParse::kRecord)
        << reason;
    EXPECT_EQ(view.address, kAddress);
    EXPECT_EQ(view.tag.type, tag.type);
    EXPECT_EQ(view.tag.key, tag.key);
    ASSERT_EQ(view.payload.size(), len);
    EXPECT_EQ(static_cast<const void*>(view.payload.data()),
              static_cast<const void*>(rec.data() + kRecordHeaderBytes));
    for (size_t i = 0; i < len; ++i) {
      ASSERT_EQ(static_cast<std::byte>(view.payload[i]),
                static_cast<std::byte>(i * 7 + 1));
    }
  }
}

TEST(RecordTest, DefaultTagIsADataRecord) {
  std::vector<std::byte> rec = SealedRecord(kAddress, RecordTag{}, 5);
  RecordView view;
  std::string reason;
  ASSERT_EQ(ParseRecord(kAddress, rec, view, reason), RecordParse::kRecord);
  EXPECT_EQ(view.tag.type, kDataRecordType);
  EXPECT_EQ(view.tag.key, 0u);
}

TEST(RecordTest, ParsesFromTheStartOfALongerSpan) {
  // Two records back to back, as in a block; then zeros.
  std::vector<std::byte> a = SealedRecord(kAddress, {kDataRecordType, 1}, 13);
  std::vector<std::byte> b =
      SealedRecord(kAddress + a.size(), {kDataRecordType, 2}, 40, 5);
  std::vector<std::byte> block = a;
  block.insert(block.end(), b.begin(), b.end());
  block.resize(block.size() + 64);
  RecordView view;
  std::string reason;
  ASSERT_EQ(ParseRecord(kAddress, block, view, reason), RecordParse::kRecord);
  EXPECT_EQ(view.tag.key, 1u);
  EXPECT_EQ(view.payload.size(), 13u);
  ASSERT_EQ(ParseRecord(kAddress + a.size(),
                        std::span<const std::byte>(block).subspan(a.size()),
                        view, reason),
            RecordParse::kRecord);
  EXPECT_EQ(view.tag.key, 2u);
  EXPECT_EQ(view.payload.size(), 40u);
  EXPECT_EQ(ParseRecord(
                kAddress + a.size() + b.size(),
                std::span<const std::byte>(block).subspan(a.size() + b.size()),
                view, reason),
            RecordParse::kPadding);
}

TEST(RecordTest, ParsedAtAnotherAddressIsCorrupt) {
  std::vector<std::byte> rec = SealedRecord(kAddress, {}, 33);
  for (uint64_t other : {kAddress + 8, kAddress - 8, kAddress + 4096,
                         uint64_t{0}, kAddress ^ (uint64_t{1} << 40)}) {
    RecordView view;
    std::string reason;
    EXPECT_EQ(ParseRecord(other, rec, view, reason), RecordParse::kCorrupt)
        << "at " << other;
    EXPECT_FALSE(reason.empty());
  }
}

// Every bit the record CRC covers: the header (CRC and fields) and the
// payload.
TEST(RecordTest, EverySingleBitFlipOfHeaderAndPayloadIsDetected) {
  for (size_t len : {1, 5, 8, 24, 61, 256}) {
    SCOPED_TRACE(absl::StrCat("len=", len));
    const std::vector<std::byte> rec =
        SealedRecord(kAddress, {kFirstUserRecordType, 99}, len);
    for (size_t bit = 0; bit < (kRecordHeaderBytes + len) * 8; ++bit) {
      std::vector<std::byte> bad = rec;
      FlipBit(bad, bit);
      RecordView view;
      std::string reason;
      const RecordParse p = ParseRecord(kAddress, bad, view, reason);
      ASSERT_NE(p, RecordParse::kRecord) << "bit " << bit << " undetected";
      if (p == RecordParse::kCorrupt) {
        ASSERT_FALSE(reason.empty());
      }
    }
  }
}

// The same, with the record followed by more bytes of its block (as
// ParseRecord sees it in a block): a flipped length bit must not make the
// parser accept a longer or shorter record.
TEST(RecordTest, EverySingleBitFlipIsDetectedInsideALargerBlock) {
  const size_t len = 48;
  std::vector<std::byte> block = SealedRecord(kAddress, {}, len);
  const size_t rec_bytes = block.size();
  std::vector<std::byte> next = SealedRecord(kAddress + rec_bytes, {}, 100, 9);
  block.insert(block.end(), next.begin(), next.end());
  for (size_t bit = 0; bit < rec_bytes * 8; ++bit) {
    std::vector<std::byte> bad = block;
    FlipBit(bad, bit);
    RecordView view;
    std::string reason;
    ASSERT_NE(ParseRecord(kAddress, bad, view, reason), RecordParse::kRecord)
        << "bit " << bit << " undetected";
  }
}

// The alignment padding after a payload is outside the record CRC (format.h:
// the CRC covers [4, 24 + length)); the block CRC covers it instead. A flip
// there must not change what the record parses to.
TEST(RecordTest, PaddingFlipsLeaveTheRecordUnchanged) {
  const size_t len = 13;  // 3 bytes of padding
  const std::vector<std::byte> rec = SealedRecord(kAddress, {}, len);
  ASSERT_EQ(rec.size(), 40u);
  for (size_t bit = (kRecordHeaderBytes + len) * 8; bit < rec.size() * 8;
       ++bit) {
    std::vector<std::byte> bad = rec;
    FlipBit(bad, bit);
    RecordView view;
    std::string reason;
    ASSERT_EQ(ParseRecord(kAddress, bad, view, reason), RecordParse::kRecord)
        << "bit " << bit << ": " << reason;
    ASSERT_EQ(view.payload.size(), len);
    ASSERT_EQ(
        std::memcmp(view.payload.data(), rec.data() + kRecordHeaderBytes, len),
        0);
  }
}

TEST(RecordTest, ZeroWordIsPadding) {
  std::vector<std::byte> zeros(8);
  RecordView view;
  std::string reason;
  EXPECT_EQ(ParseRecord(kAddress, zeros, view, reason), RecordParse::kPadding);
  // A zero word followed by a real record is still padding (skip 8 bytes).
  std::vector<std::byte> rec = SealedRecord(kAddress + 8, {}, 10);
  std::vector<std::byte> padded(8);
  padded.insert(padded.end(), rec.begin(), rec.end());
  EXPECT_EQ(ParseRecord(kAddress, padded, view, reason), RecordParse::kPadding);
  EXPECT_EQ(
      ParseRecord(kAddress + 8, std::span<const std::byte>(padded).subspan(8),
                  view, reason),
      RecordParse::kRecord);
  // A whole zero block is padding all the way.
  std::vector<std::byte> block(4096);
  for (size_t at = 0; at < block.size(); at += 8) {
    ASSERT_EQ(ParseRecord(kAddress + at,
                          std::span<const std::byte>(block).subspan(at), view,
                          reason),
              RecordParse::kPadding);
  }
}

TEST(RecordTest, ANonZeroWordIsNotPadding) {
  for (size_t byte = 0; byte < 8; ++byte) {
    std::vector<std::byte> word(32);
    word[byte] = std::byte{1};
    RecordView view;
    std::string reason;
    EXPECT_EQ(ParseRecord(kAddress, word, view, reason), RecordParse::kCorrupt)
        << "byte " << byte;
  }
}

TEST(RecordTest, HeaderCutShortIsCorrupt) {
  std::vector<std::byte> rec = SealedRecord(kAddress, {}, 8);
  for (size_t n = 1; n < kRecordHeaderBytes; ++n) {
    RecordView view;
    std::string reason;
    EXPECT_EQ(ParseRecord(kAddress, std::span<const std::byte>(rec).first(n),
                          view, reason),
              RecordParse::kCorrupt)
        << n << " bytes";
    EXPECT_FALSE(reason.empty());
  }
}

TEST(RecordTest, LengthOverrunningTheInputIsCorrupt) {
  const size_t len = 100;
  std::vector<std::byte> rec = SealedRecord(kAddress, {}, len);
  // The input ends before the record's footprint does.
  for (size_t n = kRecordHeaderBytes; n < rec.size(); ++n) {
    RecordView view;
    std::string reason;
    ASSERT_EQ(ParseRecord(kAddress, std::span<const std::byte>(rec).first(n),
                          view, reason),
              RecordParse::kCorrupt)
        << n << " bytes";
    ASSERT_THAT(reason, HasSubstr("length"));
  }
  // Lengths that run far past the input, up to the largest u32.
  for (uint32_t bad_len : {uint32_t{101}, uint32_t{4096}, uint32_t{1} << 31,
                           uint32_t{0xFFFFFFF0}, uint32_t{0xFFFFFFFF}}) {
    std::vector<std::byte> bad = rec;
    PutAt(std::span<std::byte>(bad), 4, bad_len);
    RecordView view;
    std::string reason;
    EXPECT_EQ(ParseRecord(kAddress, bad, view, reason), RecordParse::kCorrupt)
        << "length " << bad_len;
    EXPECT_FALSE(reason.empty());
  }
}

TEST(RecordTest, LengthZeroIsCorrupt) {
  std::vector<std::byte> rec = SealedRecord(kAddress, {}, 8);
  PutAt(std::span<std::byte>(rec), 4, uint32_t{0});
  // Even with a CRC that matches the zero length.
  const uint32_t crc = Crc32c(rec.data() + 4, kRecordHeaderBytes - 4,
                              Crc32c(&kAddress, sizeof(kAddress)));
  PutAt(std::span<std::byte>(rec), 0, crc);
  RecordView view;
  std::string reason;
  EXPECT_EQ(ParseRecord(kAddress, rec, view, reason), RecordParse::kCorrupt);
  EXPECT_THAT(reason, HasSubstr("length"));
}

// The CRC is over the address (u64) then bytes [4, 24 + length), per
// format.h: computing it independently must match.
TEST(RecordTest, ChecksumCoversAddressThenHeaderAndPayload) {
  const size_t len = 21;
  std::vector<std::byte> rec = SealedRecord(kAddress, {7, 8}, len);
  const uint32_t expected = Crc32c(rec.data() + 4, kRecordHeaderBytes - 4 + len,
                                   Crc32c(&kAddress, sizeof(kAddress)));
  EXPECT_EQ(GetAt<uint32_t>(rec, 0), expected);
}

// ---------------------------------------------------------------- Blocks

std::vector<std::byte> SampleBlock(const BlockHeader& h, size_t size = 4096) {
  std::vector<std::byte> block(size);
  size_t at = kBlockHeaderBytes;
  uint64_t i = 0;
  while (at + RecordFootprint(30) <= h.used) {
    std::vector<std::byte> rec =
        SealedRecord(h.address + at, {kDataRecordType, i++}, 30);
    std::memcpy(block.data() + at, rec.data(), rec.size());
    at += rec.size();
  }
  SealBlock(h, block);
  return block;
}

BlockHeader SampleHeader() {
  BlockHeader h;
  h.store_id = 0xABCDEF0123456789ULL;
  h.address = 77 * 4096;
  h.epoch = 3;
  h.used = kBlockHeaderBytes + 5 * RecordFootprint(30);
  return h;
}

TEST(BlockTest, SealParseRoundTrip) {
  const BlockHeader h = SampleHeader();
  std::vector<std::byte> block = SampleBlock(h);
  BlockHeader back;
  ASSERT_TRUE(ParseBlockHeader(block, back));
  EXPECT_EQ(back.store_id, h.store_id);
  EXPECT_EQ(back.address, h.address);
  EXPECT_EQ(back.epoch, h.epoch);
  EXPECT_EQ(back.used, h.used);
  EXPECT_TRUE(BlockCrcMatches(std::span<const std::byte>(block).first(h.used)));
}

TEST(BlockTest, LayoutMatchesTheDocumentedOffsets) {
  const BlockHeader h = SampleHeader();
  std::vector<std::byte> block(4096, std::byte{0x5A});
  SealBlock(h, block);
  EXPECT_EQ(std::memcmp(block.data() + 4, "LSSB", 4), 0);
  EXPECT_EQ(GetAt<uint32_t>(block, 4), kBlockMagic);
  EXPECT_EQ(GetAt<uint64_t>(block, 8), h.store_id);
  EXPECT_EQ(GetAt<uint64_t>(block, 16), h.address);
  EXPECT_EQ(GetAt<uint64_t>(block, 24), h.epoch);
  EXPECT_EQ(GetAt<uint32_t>(block, 32), h.used);
  for (size_t i = 36; i < kBlockHeaderBytes; ++i) {
    ASSERT_EQ(block[i], std::byte{0}) << "header byte " << i;
  }
  EXPECT_EQ(GetAt<uint32_t>(block, 0), Crc32c(block.data() + 4, h.used - 4));
}

TEST(BlockTest, BytesPastUsedDoNotMatter) {
  const BlockHeader h = SampleHeader();
  std::vector<std::byte> block = SampleBlock(h);
  for (size_t i = h.used; i < block.size(); ++i) block[i] = std::byte{0xFF};
  EXPECT_TRUE(BlockCrcMatches(std::span<const std::byte>(block).first(h.used)));
}

// A flip anywhere in [0, used) must be caught by a reader that trusts the
// header only after the CRC over the used bytes the header claims.
TEST(BlockTest, EverySingleBitFlipIsDetected) {
  const BlockHeader h = SampleHeader();
  const std::vector<std::byte> block = SampleBlock(h);
  for (size_t bit = 0; bit < h.used * 8; ++bit) {
    std::vector<std::byte> bad = block;
    FlipBit(bad, bit);
    BlockHeader got;
    bool detected = !ParseBlockHeader(bad, got) ||
                    got.used < kBlockHeaderBytes + 4 || got.used > bad.size();
    if (!detected) {
      detected =
          !BlockCrcMatches(std::span<const std::byte>(bad).first(got.used));
    }
    ASSERT_TRUE(detected) << "bit " << bit << " undetected";
  }
}

TEST(BlockTest, RecordPaddingIsCoveredByTheBlockCrc) {
  BlockHeader h = SampleHeader();
  std::vector<std::byte> block(4096);
  const size_t len = 13;
  std::vector<std::byte> rec =
      SealedRecord(h.address + kBlockHeaderBytes, {}, len);
  std::memcpy(block.data() + kBlockHeaderBytes, rec.data(), rec.size());
  h.used = static_cast<uint32_t>(kBlockHeaderBytes + rec.size());
  SealBlock(h, block);
  for (size_t byte = kBlockHeaderBytes + kRecordHeaderBytes + len;
       byte < h.used; ++byte) {
    std::vector<std::byte> bad = block;
    bad[byte] ^= std::byte{0x10};
    EXPECT_FALSE(BlockCrcMatches(std::span<const std::byte>(bad).first(h.used)))
        << "padding byte " << byte;
  }
}

TEST(BlockTest, ZerosAndShortInputHaveNoHeader) {
  std::vector<std::byte> zeros(4096);
  BlockHeader h;
  EXPECT_FALSE(ParseBlockHeader(zeros, h));
  std::vector<std::byte> block = SampleBlock(SampleHeader());
  for (size_t n = 0; n < kBlockHeaderBytes; ++n) {
    EXPECT_FALSE(
        ParseBlockHeader(std::span<const std::byte>(block).first(n), h))
        << n << " bytes";
  }
}

TEST(BlockTest, ResealingAfterAChangeMatchesAgain) {
  BlockHeader h = SampleHeader();
  std::vector<std::byte> block = SampleBlock(h);
  block[kBlockHeaderBytes + 30] ^= std::byte{1};
  ASSERT_FALSE(
      BlockCrcMatches(std::span<const std::byte>(block).first(h.used)));
  SealBlock(h, block);
  EXPECT_TRUE(BlockCrcMatches(std::span<const std::byte>(block).first(h.used)));
}

}  // namespace
}  // namespace lss
