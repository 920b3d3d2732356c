#include "ring/aligned_buffer.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

TEST(AlignedBufferTest, IsAlignedZeroedAndWritable) {
  for (size_t alignment : {512, 4096, 65536, 1 << 21}) {
    for (auto pages : {AlignedBuffer::Pages::kOrdinary,
                       AlignedBuffer::Pages::kHugeIfAvailable}) {
      absl::StatusOr<AlignedBuffer> b =
          AlignedBuffer::Allocate(3 * alignment, alignment, pages);
      ASSERT_TRUE(b.ok()) << b.status();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % alignment, 0u);
      EXPECT_EQ(b->size(), 3 * alignment);
      EXPECT_EQ(b->alignment(), alignment);
      EXPECT_TRUE(std::all_of(b->data(), b->data() + b->size(),
                              [](std::byte x) { return x == std::byte{0}; }));
      std::fill(b->data(), b->data() + b->size(), std::byte{0xFF});
    }
  }
}

TEST(AlignedBufferTest, HugePagesAreAdvisedWhereTheKernelOffersThem) {
  absl::StatusOr<AlignedBuffer> b = AlignedBuffer::Allocate(
      size_t{4} << 20, 4096, AlignedBuffer::Pages::kHugeIfAvailable);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % (size_t{2} << 20), 0u)
      << "huge pages need a 2 MiB aligned start";
  absl::StatusOr<AlignedBuffer> plain = AlignedBuffer::Allocate(
      size_t{4} << 20, 4096, AlignedBuffer::Pages::kOrdinary);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->huge_pages_advised());
}

TEST(AlignedBufferTest, RejectsBadSizesNamingTheValue) {
  auto zero = AlignedBuffer::Allocate(0, 4096);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("size 0"));
  auto ragged = AlignedBuffer::Allocate(4096 + 100, 4096);
  EXPECT_EQ(ragged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ragged.status().message(), HasSubstr("size 4196"));
  auto odd = AlignedBuffer::Allocate(3000 * 4, 3000);
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(odd.status().message(), HasSubstr("alignment 3000"));
}

TEST(AlignedBufferTest, MoveTransfersOwnership) {
  absl::StatusOr<AlignedBuffer> a = AlignedBuffer::Allocate(8192);
  ASSERT_TRUE(a.ok());
  std::byte* data = a->data();
  AlignedBuffer b = *std::move(a);
  EXPECT_EQ(b.data(), data);
  AlignedBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(c.size(), 8192u);
}

}  // namespace
}  // namespace lss
