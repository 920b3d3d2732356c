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
  lss::Superblock newer = SampleSuperblock();
  newer.version = 2;  // CRC valid, version refused
  Write(t, "newer_version", Superblock(newer, lss::kSuperblockBytes));
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
  return 0;
}
