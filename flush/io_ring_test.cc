// One test body over every IoRing: the fake, io_uring and the synchronous
// fallback, the real ones on files in $TEST_TMPDIR with and without
// O_DIRECT. It holds the fake to what the kernel does: tag routing,
// capacity, misalignment (C2), link cancel (C3) and the O_DIRECT alignment
// (C5). uring_io_ring_test covers the real rings in depth (C1 and more).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/io_ring.h"
#include "flush/sync_io_ring.h"
#include "flush/uring_io_ring.h"
#include "gtest/gtest.h"
#include "ring/aligned_buffer.h"
#include "testing/fake_io_ring.h"
#include "testing/payload.h"

namespace lss {
namespace {

using ::lss::testing::FakeIoRing;
using ::lss::testing::FakeIoRingOptions;
using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;

constexpr size_t kDepth = 8;

std::string TempPath(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name, ".", getpid());
}

// A ring and the fd it should use; owns the file for the real rings.
struct Target {
  std::unique_ptr<IoRing> ring;
  int fd = -1;
  bool direct = false;
  std::string path;
  ~Target() {
    if (!path.empty()) {
      close(fd);
      unlink(path.c_str());
    }
  }
};

struct FakeRing {
  static constexpr bool kDirect = false;
  static void Make(Target& t) {
    FakeIoRingOptions o;
    o.capacity = kDepth;
    t.ring = std::make_unique<FakeIoRing>(o);
    t.fd = 5;
  }
};
struct FakeDirectRing {
  static constexpr bool kDirect = true;
  static void Make(Target& t) {
    FakeIoRingOptions o;
    o.capacity = kDepth;
    o.direct_io_alignment = 512;
    t.ring = std::make_unique<FakeIoRing>(o);
    t.fd = 5;
  }
};

void OpenFile(Target& t, bool direct) {
  t.path = TempPath(direct ? "direct" : "buffered");
  t.fd = open(t.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0),
              0644);
  ASSERT_GE(t.fd, 0) << t.path << ": " << std::strerror(errno);
  t.direct = direct;
}

template <bool kIsDirect>
struct Uring {
  static constexpr bool kDirect = kIsDirect;
  static void Make(Target& t) {
    auto ring = UringIoRing::Create(kDepth);
    ASSERT_TRUE(ring.ok()) << ring.status();
    t.ring = *std::move(ring);
    OpenFile(t, kIsDirect);
  }
};
template <bool kIsDirect>
struct Sync {
  static constexpr bool kDirect = kIsDirect;
  static void Make(Target& t) {
    t.ring = std::make_unique<SyncIoRing>(kDepth);
    OpenFile(t, kIsDirect);
  }
};

template <typename T>
class IoRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    T::Make(t_);
    t_.direct = T::kDirect;
  }
  // Reaps until `n` completions have arrived.
  std::vector<IoCompletion> ReapAll(size_t n) {
    std::vector<IoCompletion> out;
    while (out.size() < n) {
      auto got = t_.ring->Reap(1, n - out.size(), out);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) break;
    }
    return out;
  }
  Target t_;
};

using Rings = ::testing::Types<FakeRing, FakeDirectRing, Uring<false>,
                               Uring<true>, Sync<false>, Sync<true>>;
TYPED_TEST_SUITE(IoRingTest, Rings);

TYPED_TEST(IoRingTest, WritesThenReadsBackByTagInAnyOrder) {
  IoRing& ring = *this->t_.ring;
  const size_t block = 4096;
  auto out = AlignedBuffer::Allocate(kDepth * block);
  auto in = AlignedBuffer::Allocate(kDepth * block);
  ASSERT_TRUE(out.ok() && in.ok());
  // Offsets out of order, so completions cannot be matched by position.
  const std::vector<uint64_t> slots = {5, 0, 7, 2, 6, 1, 4, 3};
  for (size_t i = 0; i < slots.size(); ++i) {
    auto chunk = out->span().subspan(i * block, block);
    FillPayload(9, slots[i], chunk);
    ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, chunk, slots[i] * block,
                                  100 + slots[i]));
  }
  ASSERT_TRUE(ring.Submit().ok());
  std::set<uint64_t> tags;
  for (const IoCompletion& c : this->ReapAll(slots.size())) {
    EXPECT_EQ(c.result, int32_t(block)) << "tag " << c.tag;
    EXPECT_TRUE(tags.insert(c.tag).second) << "tag " << c.tag << " twice";
  }
  EXPECT_EQ(tags.size(), slots.size());
  EXPECT_EQ(ring.pending(), 0u);
  for (uint64_t s = 0; s < kDepth; ++s) {
    ASSERT_TRUE(ring.PrepareRead(this->t_.fd, in->span().subspan(s * block, block),
                                 s * block, 200 + s));
  }
  ASSERT_TRUE(ring.Submit().ok());
  for (const IoCompletion& c : this->ReapAll(kDepth)) {
    const uint64_t s = c.tag - 200;
    ASSERT_EQ(c.result, int32_t(block));
    EXPECT_FALSE(FirstPayloadMismatch(9, s, in->span().subspan(s * block, block)))
        << "slot " << s;
  }
}

TYPED_TEST(IoRingTest, PrepareRefusesAtCapacityUntilReaped) {
  IoRing& ring = *this->t_.ring;
  auto buffer = AlignedBuffer::Allocate(4096);
  ASSERT_TRUE(buffer.ok());
  EXPECT_EQ(ring.capacity(), kDepth);
  for (size_t i = 0; i < kDepth; ++i) {
    ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, buffer->span(), 0, i)) << i;
  }
  EXPECT_FALSE(ring.PrepareWrite(this->t_.fd, buffer->span(), 0, 99));
  EXPECT_FALSE(ring.PrepareDataSync(this->t_.fd, 99));
  EXPECT_EQ(ring.pending(), kDepth);
  ASSERT_TRUE(ring.Submit().ok());
  std::vector<IoCompletion> one;
  ASSERT_TRUE(ring.Reap(1, 1, one).ok());
  EXPECT_EQ(ring.pending(), kDepth - 1);
  EXPECT_TRUE(ring.PrepareDataSync(this->t_.fd, 99));
  ASSERT_TRUE(ring.Submit().ok());
  EXPECT_EQ(this->ReapAll(kDepth).size(), kDepth);
}

// C2: each kind of misalignment fails with EINVAL under O_DIRECT (and is
// fine buffered).
TYPED_TEST(IoRingTest, MisalignedDirectIoIsEinval) {
  IoRing& ring = *this->t_.ring;
  auto buffer = AlignedBuffer::Allocate(8192);
  ASSERT_TRUE(buffer.ok());
  const auto aligned = buffer->span().subspan(0, 4096);
  ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, buffer->span().subspan(1, 4096), 0, 1));
  ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, aligned.subspan(0, 1000), 0, 2));
  ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, aligned, 100, 3));
  ASSERT_TRUE(ring.Submit().ok());
  for (const IoCompletion& c : this->ReapAll(3)) {
    if (this->t_.direct) {
      EXPECT_EQ(c.result, -EINVAL) << "tag " << c.tag;
    } else {
      EXPECT_GT(c.result, 0) << "tag " << c.tag;
    }
  }
}

// C3: a failed member of a chain cancels the rest; the cancelled fdatasync
// did not happen.
TYPED_TEST(IoRingTest, FailedLinkCancelsTheRestOfTheChain) {
  if (!this->t_.direct) GTEST_SKIP() << "needs O_DIRECT to make a write fail";
  IoRing& ring = *this->t_.ring;
  auto buffer = AlignedBuffer::Allocate(8192);
  ASSERT_TRUE(buffer.ok());
  ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, buffer->span().subspan(1, 4096), 0,
                                1, /*link_next=*/true));
  ASSERT_TRUE(ring.PrepareDataSync(this->t_.fd, 2));
  ASSERT_TRUE(ring.Submit().ok());
  std::vector<IoCompletion> done = this->ReapAll(2);
  std::sort(done.begin(), done.end(),
            [](const IoCompletion& a, const IoCompletion& b) { return a.tag < b.tag; });
  EXPECT_EQ(done[0].result, -EINVAL);
  EXPECT_EQ(done[1].result, -ECANCELED);
}

// C5: the alignment a ring reports is a power of two >= 512 that works.
TYPED_TEST(IoRingTest, DirectIoAlignmentWorks) {
  IoRing& ring = *this->t_.ring;
  const absl::StatusOr<size_t> a = ring.DirectIoAlignment(this->t_.fd);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GE(*a, 512u);
  EXPECT_EQ(*a & (*a - 1), 0u) << *a << " is not a power of two";
  auto buffer = AlignedBuffer::Allocate(*a, *a);
  ASSERT_TRUE(buffer.ok());
  ASSERT_TRUE(ring.PrepareWrite(this->t_.fd, buffer->span(), *a, 1));
  ASSERT_TRUE(ring.Submit().ok());
  EXPECT_EQ(this->ReapAll(1)[0].result, int32_t(*a));
}

}  // namespace
}  // namespace lss
