// Writes the seed corpus of the fuzz targets: valid encodings made with the
// format's own encoders, plus a few edge cases around each check. Usage:
//   bazel run //lss/fuzz:make_corpus -- "$PWD/lss/fuzz/corpus"
// Output is deterministic, so rerunning it leaves the checked-in files as
// they are.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "lss/crc32c.h"
#include "lss/format.h"

namespace {

using Bytes = std::vector<std::byte>;

std::filesystem::path root;

void Write(const std::string& target, const std::string& name,
           const Bytes& bytes) {
  const std::filesystem::path dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void Put(Bytes& b, size_t at, T value) {
  std::memcpy(b.data() + at, &value, sizeof(T));
}

lss::Superblock SampleSuperblock() {
  lss::Superblock sb;
  sb.block_bytes = 4096;
  sb.buffer_bytes = 65536;
  sb.store_id = 0x5EED5EED12345678ULL;
  sb.sequence = 7;
  sb.epoch = 3;
  sb.epoch_start = 3 * 65536;
  sb.data_start = 2 * 4096;
  sb.max_in_flight_bytes = 4 * 65536;
  sb.head = sb.data_start;
  sb.checkpoint = 2 * 65536 + 64;
  sb.holes = {{.begin = 3 * 65536, .end = 4 * 65536}};
  return sb;
}

Bytes Superblock(const lss::Superblock& sb, size_t size) {
  Bytes b(size);
  lss::EncodeSuperblock(sb, b);
  return b;
}

void Superblocks() {
  const std::string t = "superblock_fuzzer";
  Write(t, "valid", Superblock(SampleSuperblock(), lss::kSuperblockBytes));
  Write(t, "valid_slot_4096", Superblock(SampleSuperblock(), 4096));
  // CRC valid, version refused.
  Bytes newer = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  Put(newer, 8, lss::kFormatVersion + 1);
  Put(newer, 88, lss::Crc32c(newer.data(), 88));
  Write(t, "newer_version", newer);
  // A version 1 superblock (no head; CRC of [0, 72) at 72) still opens.
  Bytes v1 = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  Put(v1, 8, uint32_t{1});
  std::fill(v1.begin() + 72, v1.end(), std::byte{0});
  Put(v1, 72, lss::Crc32c(v1.data(), 72));
  Write(t, "version_1", v1);
  // A version 2 superblock (no checkpoint; CRC of [0, 80) at 80) too.
  Bytes v2 = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  Put(v2, 8, uint32_t{2});
  std::fill(v2.begin() + 80, v2.end(), std::byte{0});
  Put(v2, 80, lss::Crc32c(v2.data(), 80));
  Write(t, "version_2", v2);
  // A version 3 superblock (no holes; CRC of [0, 88) at 88) too.
  Bytes v3 = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  Put(v3, 8, uint32_t{3});
  std::fill(v3.begin() + 88, v3.end(), std::byte{0});
  Put(v3, 88, lss::Crc32c(v3.data(), 88));
  Write(t, "version_3", v3);
  // The most holes a superblock lists.
  lss::Superblock full = SampleSuperblock();
  full.holes.clear();
  for (uint64_t i = 0; i < lss::kMaxHoles; ++i) {
    full.holes.push_back({.begin = (4 + 2 * i) * 65536,
                          .end = (5 + 2 * i) * 65536});
  }
  Write(t, "most_holes", Superblock(full, lss::kSuperblockBytes));
  Write(t, "zero_fields", Superblock(lss::Superblock{}, lss::kSuperblockBytes));
  Bytes bad_crc = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  bad_crc[40] ^= std::byte{1};
  Write(t, "bad_crc", bad_crc);
  Bytes cut = Superblock(SampleSuperblock(), lss::kSuperblockBytes);
  cut.resize(lss::kSuperblockBytes - 1);
  Write(t, "cut_short", cut);
  Write(t, "empty", Bytes{});
}

constexpr uint64_t kAddress = 3 * 65536;

// A block at kAddress with one record for each payload length, a padding
// word after the first, sealed; `size` bytes long (>= used).
Bytes Block(const std::vector<size_t>& lengths, size_t size = 0) {
  size_t used = lss::kBlockHeaderBytes + lss::kRecordAlignment;
  for (size_t len : lengths) used += lss::RecordFootprint(len);
  Bytes b(std::max(size, used));
  size_t at = lss::kBlockHeaderBytes;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const size_t len = lengths[i];
    for (size_t k = 0; k < len; ++k) {
      b[at + lss::kRecordHeaderBytes + k] = static_cast<std::byte>('a' + k % 26);
    }
    const lss::RecordTag tag{i == 0 ? lss::kDataRecordType
                                    : lss::kFirstUserRecordType,
                             100 + i};
    lss::SealRecord(
        kAddress + at, tag, len,
        std::span<std::byte>(b).subspan(at, lss::RecordFootprint(len)));
    at += lss::RecordFootprint(len);
    if (i == 0) at += lss::kRecordAlignment;  // a zero word: padding
  }
  lss::SealBlock({.store_id = 0x5EED5EED12345678ULL,
                  .address = kAddress,
                  .epoch = 3,
                  .used = static_cast<uint32_t>(used)},
                 b);
  return b;
}

void Blocks() {
  const std::string t = "block_fuzzer";
  Write(t, "three_records", Block({1, 13, 40}));
  Write(t, "padded_to_4096", Block({100, 200}, 4096));
  Write(t, "header_only", Block({}));
  Bytes torn = Block({8, 16, 24});
  torn.resize(torn.size() - 12);  // used now runs past the input
  Write(t, "torn_tail", torn);
  Bytes bad_length = Block({5});
  Put<uint32_t>(bad_length, lss::kBlockHeaderBytes + 4, 0xFFFFFFF0u);
  Write(t, "record_length_huge", bad_length);
  Bytes bad_record_crc = Block({5, 6});
  bad_record_crc[lss::kBlockHeaderBytes + lss::kRecordHeaderBytes] ^=
      std::byte{0x80};
  Write(t, "record_crc_mismatch", bad_record_crc);
  Bytes odd_used = Block({3});
  Put<uint32_t>(odd_used, 32, static_cast<uint32_t>(odd_used.size() - 4));
  Write(t, "used_not_aligned", odd_used);
}

// Address (8 bytes), then the record's bytes.
Bytes Record(uint64_t address, size_t len, size_t extra = 0) {
  Bytes b(sizeof(address) + lss::RecordFootprint(len) + extra);
  Put(b, 0, address);
  std::span<std::byte> record =
      std::span<std::byte>(b).subspan(sizeof(address), lss::RecordFootprint(len));
  for (size_t k = 0; k < len; ++k) {
    record[lss::kRecordHeaderBytes + k] = static_cast<std::byte>(k);
  }
  lss::SealRecord(address, {lss::kDataRecordType, 42}, len, record);
  return b;
}

void Records() {
  const std::string t = "record_fuzzer";
  Write(t, "one_byte", Record(kAddress + 64, 1));
  Write(t, "aligned_payload", Record(kAddress + 64, 16, 8));
  Write(t, "high_address", Record(~uint64_t{0} - 7, 33));
  Bytes padding(16);
  Write(t, "padding", padding);
  Bytes zero_length = Record(64, 1);
  Put<uint32_t>(zero_length, 8 + 4, 0);
  Write(t, "zero_length", zero_length);
  Bytes cut = Record(64, 9);
  cut.resize(cut.size() - 8);  // footprint past the end
  Write(t, "cut_short", cut);
  Bytes wrong_address = Record(64, 4);
  Put<uint64_t>(wrong_address, 0, 72);
  Write(t, "wrong_address", wrong_address);
}

// Whole log files for recovery_fuzzer: block_bytes 512, buffer_bytes 4096,
// two 4096-byte superblock slots, so data starts at 8192.
constexpr uint64_t kStoreId = 0x5EED5EED12345678ULL;
constexpr uint64_t kLogStart = 8192;

void PutSuperblock(Bytes& file, uint64_t sequence, uint64_t epoch,
                   uint64_t epoch_start, std::vector<lss::Hole> holes = {}) {
  lss::Superblock sb;
  sb.block_bytes = 512;
  sb.buffer_bytes = 4096;
  sb.store_id = kStoreId;
  sb.sequence = sequence;
  sb.epoch = epoch;
  sb.epoch_start = epoch_start;
  sb.data_start = kLogStart;
  sb.max_in_flight_bytes = 2 * 4096;
  sb.holes = std::move(holes);
  lss::EncodeSuperblock(
      sb, std::span<std::byte>(file).subspan((sequence % 2) * 4096, 4096));
}

// Appends a block of records of `lengths` (none: a close marker) at the end
// of `file`, which must be 512-aligned; returns its address.
uint64_t PutBlock(Bytes& file, uint64_t epoch, uint64_t stable,
                  const std::vector<size_t>& lengths) {
  const uint64_t address = file.size();
  size_t used = lss::kBlockHeaderBytes;
  for (size_t len : lengths) used += lss::RecordFootprint(len);
  if (lengths.empty()) used += lss::kRecordAlignment;
  file.resize(address + (used + 511) / 512 * 512);
  std::span<std::byte> block = std::span<std::byte>(file).subspan(address);
  size_t at = lss::kBlockHeaderBytes;
  for (size_t i = 0; i < lengths.size(); ++i) {
    for (size_t k = 0; k < lengths[i]; ++k) {
      block[at + lss::kRecordHeaderBytes + k] =
          static_cast<std::byte>('A' + (i + k) % 26);
    }
    lss::SealRecord(address + at, {lss::kDataRecordType, i}, lengths[i],
                    block.subspan(at, lss::RecordFootprint(lengths[i])));
    at += lss::RecordFootprint(lengths[i]);
  }
  lss::SealBlock({.store_id = kStoreId,
                  .address = address,
                  .epoch = epoch,
                  .used = static_cast<uint32_t>(used),
                  .stable = stable},
                 block);
  return address;
}

void LogFiles() {
  const std::string t = "recovery_fuzzer";
  Write(t, "empty", Bytes{});
  // Opened once, closed cleanly: two blocks and the close marker.
  Bytes closed(kLogStart);
  PutSuperblock(closed, 1, 1, kLogStart);
  PutBlock(closed, 1, kLogStart, {10, 200, 33});
  PutBlock(closed, 1, kLogStart, {700, 1});
  PutBlock(closed, 1, closed.size(), {});
  Write(t, "closed_once", closed);
  // Opened twice: the second epoch starts at the first one's end.
  Bytes twice = closed;
  PutSuperblock(twice, 2, 2, twice.size());
  PutBlock(twice, 2, twice.size(), {3000});
  PutBlock(twice, 2, twice.size(), {});
  Write(t, "opened_twice", twice);
  // A crash: the last block torn (its second sector never written).
  Bytes torn(kLogStart);
  PutSuperblock(torn, 1, 1, kLogStart);
  PutBlock(torn, 1, kLogStart, {50});
  const uint64_t last = PutBlock(torn, 1, torn.size(), {900});
  std::fill(torn.begin() + last + 512, torn.begin() + last + 1024,
            std::byte{0});
  Write(t, "torn_tail", torn);
  // A released range (a hole punched, listed in the superblock) between
  // two blocks.
  Bytes released(kLogStart);
  PutBlock(released, 1, kLogStart, {100});
  const uint64_t gone = PutBlock(released, 1, kLogStart, {2000});
  const uint64_t after = PutBlock(released, 1, kLogStart, {40, 40});
  PutBlock(released, 1, released.size(), {});
  std::fill(released.begin() + gone, released.begin() + after, std::byte{0});
  PutSuperblock(released, 2, 1, kLogStart, {{.begin = gone, .end = after}});
  Write(t, "released", released);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus directory>\n");
    return 2;
  }
  root = argv[1];
  Superblocks();
  Blocks();
  Records();
  LogFiles();
  return 0;
}
