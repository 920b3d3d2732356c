#include "testing/test_log.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "flush/file.h"
#include "gtest/gtest.h"
#include "testing/payload.h"

namespace lss::testing {

StoreOptions SmallLogOptions() {
  StoreOptions o;
  o.buffer_bytes = 64 << 10;
  o.preallocate_bytes = 1 << 20;
  o.allow_buffered_fallback = true;
  return o;
}

std::vector<uint64_t> FillLog(LogStructuredStore& store, uint64_t first,
                              uint64_t count, size_t bytes) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i < first + count; ++i) {
    absl::StatusOr<uint64_t> a = store.Append(Payload(0, i, bytes));
    EXPECT_TRUE(a.ok()) << a.status();
    out.push_back(a.value_or(0));
    if (i % 20 == 19) {
      EXPECT_TRUE(store.Flush().ok());
    }
  }
  EXPECT_TRUE(store.Sync().ok());
  return out;
}

void FlipBitAt(const std::string& path, uint64_t offset) {
  absl::StatusOr<std::unique_ptr<File>> file =
      OpenPosixFile(path, FileOptions{.direct_io = false, .lock = false});
  ASSERT_TRUE(file.ok()) << file.status();
  std::byte b{0};
  ASSERT_TRUE((*file)->ReadAt(offset, {&b, 1}).ok());
  b ^= std::byte{1};
  ASSERT_TRUE((*file)->WriteAt(offset, {&b, 1}).ok());
}

std::string WritePolicyName(WritePolicy p) {
  return p == WritePolicy::kTailLocalized ? "kTailLocalized" : "kSerialized";
}

std::string DescribeStoreOptions(const StoreOptions& o) {
  return absl::StrCat(
      "policy=", WritePolicyName(o.policy),
      " durability=", o.durability == Durability::kSync ? "kSync" : "kOnWait",
      " buffer_bytes=", o.buffer_bytes, " ring_size=", o.ring_size,
      " direct_io=", o.direct_io, " preallocate_bytes=", o.preallocate_bytes);
}

}  // namespace lss::testing
