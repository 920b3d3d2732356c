// ReadBatch against FakeIoRing: every fault the fake injects into reads,
// rings too small for the batch, the end of the file, and the pool's rings.

#include "flush/read_batch.h"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fake_io_ring.h"

namespace lss {
namespace {

using ::lss::testing::FakeIoRing;
using ::lss::testing::FakeIoRingOptions;
using ::testing::HasSubstr;

constexpr int kFd = 7;
constexpr size_t kAlign = 512;

// A fake holding `bytes` of a known pattern at kFd, for read rings to read.
struct Image {
  // The writer is buffered: the content need not be aligned.
  explicit Image(size_t bytes) : writer(FakeIoRingOptions{}) {
    content.resize(bytes);
    for (size_t i = 0; i < bytes; ++i) {
      content[i] = static_cast<char>('a' + (i * 7 + i / 512) % 26);
    }
    EXPECT_TRUE(writer.PrepareWrite(
        kFd, std::as_bytes(std::span(content.data(), content.size())), 0, 1));
    EXPECT_TRUE(writer.Submit().ok());
    std::vector<IoCompletion> done;
    EXPECT_EQ(*writer.Reap(1, 1, done), 1u);
    EXPECT_EQ(done[0].result, static_cast<int32_t>(bytes));
  }
  std::string content;
  FakeIoRing writer;
};

ReadTarget Target() {
  return ReadTarget{.fd = kFd,
                    .path = "/logs/x.log",
                    .direct_io = true,
                    .alignment = kAlign};
}

// Makes fakes reading `image`, counting how many it made.
ReadRingPool::Factory Fakes(const Image& image, FakeIoRingOptions options,
                            int* made) {
  return [&image, options, made](unsigned depth)
             -> absl::StatusOr<std::unique_ptr<IoRing>> {
    FakeIoRingOptions o = options;
    o.capacity = depth;
    o.direct_io_alignment = kAlign;
    o.reads_images_of = &image.writer;
    ++*made;
    return std::make_unique<FakeIoRing>(o);
  };
}

struct Buffer {
  explicit Buffer(size_t bytes)
      : data(static_cast<std::byte*>(std::aligned_alloc(kAlign, bytes))),
        size(bytes) {}
  ~Buffer() { std::free(data); }
  std::span<std::byte> span() const { return {data, size}; }
  std::string str(size_t n) const {
    return std::string(reinterpret_cast<const char*>(data), n);
  }
  std::byte* data;
  size_t size;
};

// Many more reads than the ring holds, completing out of order, short,
// and failing with EAGAIN and EINTR before they run: each read returns
// once, with its own bytes.
TEST(ReadBatchTest, EveryReadReturnsOnceWithItsBytesWhateverTheRingDoes) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const Image image(1 << 20);
    int made = 0;
    ReadRingPool pool(Fakes(image,
                            FakeIoRingOptions{.seed = seed,
                                              .reorder = true,
                                              .max_delay_reaps = 3,
                                              .eagain_one_in = 5,
                                              .eintr_one_in = 7,
                                              .short_read_one_in = 3},
                            &made),
                      4);
    std::vector<std::unique_ptr<Buffer>> buffers;
    std::map<uint64_t, uint64_t> offsets;  // by tag
    {
      ReadBatch batch(pool, Target());
      for (uint64_t tag = 0; tag < 60; ++tag) {
        const uint64_t offset = (tag * 7919 % 2000) * kAlign;
        const size_t len = kAlign * (1 + tag % 9);
        buffers.push_back(std::make_unique<Buffer>(len));
        offsets[tag] = offset;
        batch.Add(offset, buffers.back()->span(), tag);
      }
      std::map<uint64_t, int> seen;
      while (std::optional<ReadBatch::Done> done = batch.Next()) {
        ASSERT_TRUE(done->status.ok()) << done->status;
        ASSERT_FALSE(done->abandoned);
        ++seen[done->tag];
        const Buffer& b = *buffers[done->tag];
        ASSERT_EQ(done->bytes_read, b.size);
        ASSERT_EQ(b.str(b.size), image.content.substr(offsets[done->tag],
                                                      b.size));
      }
      ASSERT_EQ(seen.size(), 60u);
      for (const auto& [tag, n] : seen) ASSERT_EQ(n, 1) << "tag " << tag;
    }
    EXPECT_EQ(made, 1);
  }
}

// O_DIRECT stops short and unaligned only at the end of the file: what was
// there is read, and the read says where the file ended.
TEST(ReadBatchTest, PastTheEndOfTheFileIsOutOfRangeWithTheBytesBefore) {
  const Image image(10000);
  int made = 0;
  ReadRingPool pool(Fakes(image, {}, &made), 8);
  Buffer straddling(4096), beyond(4096);
  ReadBatch batch(pool, Target());
  batch.Add(8192, straddling.span(), 1);
  batch.Add(16384, beyond.span(), 2);
  std::map<uint64_t, ReadBatch::Done> done;
  while (std::optional<ReadBatch::Done> d = batch.Next()) done[d->tag] = *d;
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(done[1].bytes_read, 10000u - 8192u);
  EXPECT_EQ(straddling.str(10000 - 8192), image.content.substr(8192));
  EXPECT_EQ(done[2].status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(done[2].bytes_read, 0u);
  EXPECT_THAT(done[2].status.message(), HasSubstr("/logs/x.log"));
  EXPECT_THAT(done[2].status.message(), HasSubstr("16384"));
}

// EIO is reported, naming the file and offset; a transient failure that
// never stops is given up after max_retries, not retried for ever.
TEST(ReadBatchTest, ErrorsNameTheFileAndOffsetAndRetriesEnd) {
  const Image image(1 << 16);
  int made = 0;
  {
    ReadRingPool pool(
        Fakes(image, FakeIoRingOptions{.read_eio_one_in = 1}, &made), 8);
    Buffer b(4096);
    ReadBatch batch(pool, Target());
    batch.Add(8192, b.span(), 5);
    std::optional<ReadBatch::Done> d = batch.Next();
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->tag, 5u);
    EXPECT_EQ(d->status.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(d->status.message(), HasSubstr("/logs/x.log"));
    EXPECT_THAT(d->status.message(), HasSubstr("offset 8192"));
    EXPECT_FALSE(batch.Next().has_value());
  }
  {
    ReadRingPool pool(
        Fakes(image, FakeIoRingOptions{.eagain_one_in = 1}, &made), 8);
    Buffer b(4096);
    ReadTarget target = Target();
    target.max_retries = 3;
    ReadBatch batch(pool, target);
    batch.Add(0, b.span(), 1);
    std::optional<ReadBatch::Done> d = batch.Next();
    ASSERT_TRUE(d.has_value());
    EXPECT_FALSE(d->status.ok());
    EXPECT_THAT(d->status.message(), HasSubstr("/logs/x.log"));
  }
}

// A ring is made only when every ring is leased, and kept for the next
// batch.
TEST(ReadBatchTest, ThePoolMakesARingPerBatchAliveAtOnce) {
  const Image image(1 << 16);
  int made = 0;
  ReadRingPool pool(Fakes(image, {}, &made), 8);
  Buffer b(4096);
  for (int i = 0; i < 3; ++i) {
    ReadBatch batch(pool, Target());
    batch.Add(0, b.span(), 0);
    ASSERT_TRUE(batch.Next()->status.ok());
  }
  EXPECT_EQ(made, 1);
  {
    ReadBatch first(pool, Target());
    ReadBatch second(pool, Target());
    ReadBatch third(pool, Target());
  }
  EXPECT_EQ(made, 3);
}

// The kernel refuses another ring while one is leased: the batch waits for
// that ring to come back instead of failing its reads.
TEST(ReadBatchTest, WhenNoRingCanBeMadeABatchWaitsForALeasedOne) {
  const Image image(1 << 16);
  std::atomic<int> calls{0};
  ReadRingPool pool(
      [&](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
        if (calls.fetch_add(1) > 0) {
          return absl::ResourceExhaustedError("io_uring_setup: ENOMEM");
        }
        return std::make_unique<FakeIoRing>(
            FakeIoRingOptions{.capacity = depth,
                              .direct_io_alignment = kAlign,
                              .reads_images_of = &image.writer});
      },
      8);
  auto first = std::make_unique<ReadBatch>(pool, Target());
  Buffer b(4096);
  absl::Status second_read = absl::UnknownError("not read");
  std::thread second([&] {
    ReadBatch batch(pool, Target());
    batch.Add(4096, b.span(), 1);
    second_read = batch.Next()->status;
  });
  while (calls.load() < 2) std::this_thread::yield();  // refused, waiting
  first.reset();
  second.join();
  EXPECT_TRUE(second_read.ok()) << second_read;
  EXPECT_EQ(b.str(4096), image.content.substr(4096, 4096));
  EXPECT_EQ(calls.load(), 2);
}

// No ring to be had: every read fails with the reason, none abandoned.
TEST(ReadBatchTest, WithoutARingEveryReadFailsWithTheReason) {
  ReadRingPool pool(
      [](unsigned) -> absl::StatusOr<std::unique_ptr<IoRing>> {
        return absl::ResourceExhaustedError("io_uring_setup: ENOMEM");
      },
      8);
  Buffer b(4096);
  ReadBatch batch(pool, Target());
  batch.Add(0, b.span(), 1);
  batch.Add(4096, b.span(), 2);
  int n = 0;
  while (std::optional<ReadBatch::Done> d = batch.Next()) {
    ++n;
    EXPECT_EQ(d->status.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(d->status.message(), HasSubstr("/logs/x.log"));
    EXPECT_THAT(d->status.message(), HasSubstr("ENOMEM"));
    EXPECT_FALSE(d->abandoned);
  }
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace lss
