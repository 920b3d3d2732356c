#include "lss/log_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace lss::testing {

std::vector<std::byte> ReadFileBytes(const std::string& path) {
  std::vector<std::byte> out;
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << strerror(errno);
    return out;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ADD_FAILURE() << "fstat " << path << ": " << strerror(errno);
    close(fd);
    return out;
  }
  out.resize(st.st_size);
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = pread(fd, out.data() + got, out.size() - got, got);
    if (n <= 0) break;
    got += n;
  }
  close(fd);
  EXPECT_EQ(got, out.size()) << path;
  out.resize(got);
  return out;
}

void WriteFileBytes(const std::string& path, std::span<const std::byte> bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        pwrite(fd, bytes.data() + done, bytes.size() - done, done);
    ASSERT_GT(n, 0) << strerror(errno);
    done += n;
  }
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0) << strerror(errno);
  if (static_cast<uint64_t>(st.st_size) != bytes.size()) {
    ASSERT_EQ(ftruncate(fd, bytes.size()), 0) << strerror(errno);
  }
  close(fd);
}

bool IntactBlockAt(std::span<const std::byte> image, uint64_t at,
                   uint32_t block_bytes, uint64_t buffer_bytes, BlockHeader& h,
                   uint64_t store_id) {
  const auto padded = [&](uint64_t used) {
    return (used + block_bytes - 1) / block_bytes * block_bytes;
  };
  if (!(at + kBlockHeaderBytes <= image.size() &&
        ParseBlockHeader(image.subspan(at), h) && h.address == at &&
        h.used > kBlockHeaderBytes && h.used <= buffer_bytes &&
        at + padded(h.used) <= image.size() &&
        BlockCrcMatches(image.subspan(at, h.used)))) {
    return false;
  }
  if (store_id != 0 && h.store_id != store_id) return false;
  const std::span<const std::byte> block = image.subspan(at, h.used);
  std::string reason;
  for (size_t r = kBlockHeaderBytes; r < block.size();) {
    RecordView view;
    switch (ParseRecord(at + r, block.subspan(r), view, reason)) {
      case RecordParse::kPadding:
        r += kRecordAlignment;
        break;
      case RecordParse::kRecord:
        r += RecordFootprint(view.payload.size());
        break;
      case RecordParse::kCorrupt:
        return false;
    }
  }
  return true;
}

uint64_t StoreIdOf(std::span<const std::byte> image, uint32_t block_bytes) {
  for (uint64_t slot : {uint64_t{0}, SuperblockSlotBytes(block_bytes)}) {
    if (image.size() < slot + kSuperblockBytes) continue;
    absl::StatusOr<Superblock> sb =
        DecodeSuperblock(image.subspan(slot, kSuperblockBytes), "");
    if (sb.ok()) return sb->store_id;
  }
  return 0;
}

}  // namespace lss::testing
