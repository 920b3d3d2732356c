// Real-ring tests (RELIABILITY.md section 3 C) for UringIoRing and
// SyncIoRing: each typed test runs over both rings, on files opened buffered
// and with O_DIRECT under $TEST_TMPDIR.

#include "flush/uring_io_ring.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/io_ring.h"
#include "flush/io_ring_factory.h"
#include "flush/sync_io_ring.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ring/aligned_buffer.h"

namespace lss {
namespace {

using ::testing::HasSubstr;

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : ::testing::TempDir();
}

absl::StatusOr<std::unique_ptr<IoRing>> MakeUring(unsigned depth) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> ring =
      UringIoRing::Create(depth);
  if (!ring.ok()) return ring.status();
  return std::unique_ptr<IoRing>(*std::move(ring));
}

absl::StatusOr<std::unique_ptr<IoRing>> MakeSync(unsigned depth) {
  return std::unique_ptr<IoRing>(new SyncIoRing(depth));
}

struct UringBuffered {
  static constexpr const char* kName = "UringBuffered";
  static constexpr bool kDirect = false;
  static constexpr auto Make = MakeUring;
};
struct UringDirect {
  static constexpr const char* kName = "UringDirect";
  static constexpr bool kDirect = true;
  static constexpr auto Make = MakeUring;
};
struct SyncBuffered {
  static constexpr const char* kName = "SyncBuffered";
  static constexpr bool kDirect = false;
  static constexpr auto Make = MakeSync;
};
struct SyncDirect {
  static constexpr const char* kName = "SyncDirect";
  static constexpr bool kDirect = true;
  static constexpr auto Make = MakeSync;
};

struct ConfigName {
  template <typename Config>
  static std::string GetName(int) {
    return Config::kName;
  }
};

// Each operation's result by tag; a tag seen twice fails the test.
std::map<uint64_t, int32_t> ByTag(const std::vector<IoCompletion>& done) {
  std::map<uint64_t, int32_t> by_tag;
  for (const IoCompletion& c : done) {
    EXPECT_TRUE(by_tag.emplace(c.tag, c.result).second)
        << "tag " << c.tag << " completed twice";
  }
  return by_tag;
}

void Fill(std::span<std::byte> bytes, unsigned seed) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::byte>((i * 131 + seed * 7 + 1) & 0xFF);
  }
}

// Runs `body` in a forked child, which then exits 0 unless `body` exited
// first. Returns what the child wrote to the fd it was given, and its wait
// status.
struct ChildResult {
  std::string output;
  int wait_status = 0;
};
ChildResult RunInChild(const std::function<void(int out_fd)>& body) {
  ChildResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    const int error = errno;
    ADD_FAILURE() << "pipe2: " << std::strerror(error);
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    ADD_FAILURE() << "fork: " << std::strerror(error);
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    body(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  char chunk[256];
  ssize_t n;
  while ((n = read(fds[0], chunk, sizeof(chunk))) != 0) {
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      ADD_FAILURE() << "read from child: " << std::strerror(error);
      break;
    }
    result.output.append(chunk, static_cast<size_t>(n));
  }
  close(fds[0]);
  while (waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

template <typename Config>
class IoRingTest : public ::testing::Test {
 protected:
  static constexpr unsigned kDepth = 64;

  void SetUp() override {
    MakeRing(kDepth, ring_);
    if (ring_ == nullptr) return;  // skipped or failed
    path_ = absl::StrCat(
        TestDir(), "/", Config::kName, "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        ".dat");
    fd_ = open(path_.c_str(),
               O_RDWR | O_CREAT | O_TRUNC | (Config::kDirect ? O_DIRECT : 0),
               0644);
    if (fd_ < 0 && errno == EINVAL && Config::kDirect) {
      GTEST_SKIP() << "open(" << path_ << ", O_DIRECT): EINVAL: O_DIRECT is "
                   << "unsupported on this file system";
    }
    ASSERT_GE(fd_, 0) << "open " << path_ << ": " << std::strerror(errno);
    absl::StatusOr<size_t> alignment = ring_->DirectIoAlignment(fd_);
    ASSERT_TRUE(alignment.ok()) << alignment.status();
    align_ = *alignment;
  }

  void TearDown() override {
    ring_.reset();
    if (fd_ >= 0) {
      close(fd_);
      unlink(path_.c_str());
    }
  }

  // Sets `ring` to a ring of `depth`, or leaves it null after skipping the
  // test (io_uring is disabled here) or failing it.
  void MakeRing(unsigned depth, std::unique_ptr<IoRing>& ring) {
    absl::StatusOr<std::unique_ptr<IoRing>> made = Config::Make(depth);
    if (absl::IsPermissionDenied(made.status()) ||
        absl::IsUnimplemented(made.status())) {
      GTEST_SKIP() << "io_uring is disabled here: " << made.status();
    }
    ASSERT_TRUE(made.ok()) << made.status();
    ring = *std::move(made);
  }

  // `size` bytes (rounded up to the alignment) at an aligned address.
  AlignedBuffer Buffer(size_t size, unsigned seed = 0) {
    const size_t rounded = (size + align_ - 1) / align_ * align_;
    absl::StatusOr<AlignedBuffer> buffer = AlignedBuffer::Allocate(
        rounded, align_, AlignedBuffer::Pages::kOrdinary);
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) return AlignedBuffer();
    Fill(buffer->span(), seed);
    return *std::move(buffer);
  }

  // Submits what is queued on `ring` and reaps everything pending.
  static std::vector<IoCompletion> SubmitAndReapAll(IoRing& ring) {
    std::vector<IoCompletion> done;
    const absl::Status submitted = ring.Submit();
    EXPECT_TRUE(submitted.ok()) << submitted;
    while (submitted.ok() && ring.pending() > 0) {
      absl::StatusOr<size_t> n = ring.Reap(ring.pending(), SIZE_MAX, done);
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok()) break;
    }
    return done;
  }

  // The file's bytes at [offset, offset + size), read without O_DIRECT and
  // without the ring under test.
  std::string ReadBack(uint64_t offset, size_t size) {
    const int fd = open(path_.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0) << path_ << ": " << std::strerror(errno);
    std::string bytes(size, '\0');
    const ssize_t n = pread(fd, bytes.data(), size, static_cast<off_t>(offset));
    EXPECT_EQ(n, static_cast<ssize_t>(size))
        << path_ << " at " << offset << ": " << std::strerror(errno);
    close(fd);
    return bytes;
  }

  // Bytes starting one past an aligned address. Linux 6.18 rejects a
  // misaligned O_DIRECT buffer only where it is split at a page boundary into
  // pieces that are not multiples of the block size, so these cross pages.
  std::span<const std::byte> MisalignedAddress(const AlignedBuffer& buffer) {
    const size_t size = 2 * std::max<size_t>(align_, 4096);
    EXPECT_GE(buffer.size(), size + 1);
    return buffer.span().subspan(1, size);
  }

  off_t FileSize() {
    struct stat st = {};
    EXPECT_EQ(fstat(fd_, &st), 0) << std::strerror(errno);
    return st.st_size;
  }

  static std::string AsString(std::span<const std::byte> bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()),
                       bytes.size());
  }

  std::unique_ptr<IoRing> ring_;
  std::string path_;
  int fd_ = -1;
  size_t align_ = 0;
};

using Configs =
    ::testing::Types<UringBuffered, UringDirect, SyncBuffered, SyncDirect>;
TYPED_TEST_SUITE(IoRingTest, Configs, ConfigName);

TYPED_TEST(IoRingTest, WritesAndReadsBackAtSeveralOffsets) {
  const size_t a = this->align_;
  struct Extent {
    uint64_t offset;
    size_t size;
  };
  std::vector<Extent> extents = {
      {0, a}, {a, 2 * a}, {7 * a, 3 * a}, {1 << 20, 16 * a}, {2 << 20, a}};
  if (!TypeParam::kDirect) {
    extents.push_back({5 * a + 3, 100});  // buffered I/O needs no alignment
  }
  std::vector<AlignedBuffer> written;
  for (size_t i = 0; i < extents.size(); ++i) {
    written.push_back(this->Buffer(extents[i].size, static_cast<unsigned>(i)));
    ASSERT_TRUE(this->ring_->PrepareWrite(
        this->fd_, written[i].span().first(extents[i].size), extents[i].offset,
        100 + i));
  }
  std::map<uint64_t, int32_t> wrote =
      ByTag(this->SubmitAndReapAll(*this->ring_));
  ASSERT_EQ(wrote.size(), extents.size());
  for (size_t i = 0; i < extents.size(); ++i) {
    EXPECT_EQ(wrote[100 + i], static_cast<int32_t>(extents[i].size))
        << "write at " << extents[i].offset;
    EXPECT_EQ(this->ReadBack(extents[i].offset, extents[i].size),
              this->AsString(written[i].span().first(extents[i].size)))
        << "at " << extents[i].offset;
  }

  std::vector<AlignedBuffer> read;
  for (size_t i = 0; i < extents.size(); ++i) {
    read.push_back(this->Buffer(extents[i].size, 99));
    ASSERT_TRUE(this->ring_->PrepareRead(this->fd_,
                                         read[i].span().first(extents[i].size),
                                         extents[i].offset, 200 + i));
  }
  std::map<uint64_t, int32_t> got = ByTag(this->SubmitAndReapAll(*this->ring_));
  ASSERT_EQ(got.size(), extents.size());
  for (size_t i = 0; i < extents.size(); ++i) {
    EXPECT_EQ(got[200 + i], static_cast<int32_t>(extents[i].size))
        << "read at " << extents[i].offset;
    EXPECT_EQ(this->AsString(read[i].span().first(extents[i].size)),
              this->AsString(written[i].span().first(extents[i].size)))
        << "at " << extents[i].offset;
  }
}

// Completions come back in any order, so each one must carry its own
// operation's result: give every operation a different, recognisable one.
TYPED_TEST(IoRingTest, EveryCompletionCarriesItsOwnTagsResult) {
  const size_t a = this->align_;
  constexpr int kWrites = 24;
  AlignedBuffer data = this->Buffer(kWrites * a);
  std::map<uint64_t, int32_t> expected;
  uint64_t offset = 0;
  for (int i = 0; i < kWrites; ++i) {
    const size_t size = static_cast<size_t>(i % 4 + 1) * a;
    const uint64_t tag = (static_cast<uint64_t>(i) * 37 % kWrites) << 32 | 5;
    ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, data.span().first(size),
                                          offset, tag));
    expected[tag] = static_cast<int32_t>(size);
    offset += size;
  }
  ASSERT_TRUE(this->ring_->PrepareDataSync(this->fd_, 7001));
  expected[7001] = 0;
  ASSERT_TRUE(this->ring_->PrepareWrite(-1, data.span().first(a), 0, 7002));
  expected[7002] = -EBADF;
  std::vector<IoCompletion> done;
  ASSERT_TRUE(this->ring_->Submit().ok());
  while (this->ring_->pending() > 0) {
    absl::StatusOr<size_t> n = this->ring_->Reap(1, 1, done);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_EQ(*n, 1u);
  }
  EXPECT_EQ(ByTag(done), expected);

  // Past the end of the file a read transfers nothing.
  AlignedBuffer sink = this->Buffer(a);
  ASSERT_TRUE(this->ring_->PrepareRead(this->fd_, sink.span().first(a),
                                       offset + 64 * a, 7003));
  EXPECT_EQ(ByTag(this->SubmitAndReapAll(*this->ring_)),
            (std::map<uint64_t, int32_t>{{7003, 0}}));
}

TYPED_TEST(IoRingTest, PrepareFailsAtCapacityAndSucceedsAfterReaping) {
  std::unique_ptr<IoRing> ring;
  this->MakeRing(4, ring);
  ASSERT_NE(ring, nullptr);
  ASSERT_EQ(ring->capacity(), 4u);
  const size_t a = this->align_;
  AlignedBuffer data = this->Buffer(a);
  for (uint64_t tag = 0; tag < 4; ++tag) {
    ASSERT_TRUE(ring->PrepareWrite(this->fd_, data.span(), tag * a, tag));
  }
  EXPECT_EQ(ring->pending(), 4u);
  EXPECT_FALSE(ring->PrepareWrite(this->fd_, data.span(), 8 * a, 99));
  EXPECT_FALSE(ring->PrepareRead(this->fd_, data.span(), 0, 99));
  EXPECT_FALSE(ring->PrepareDataSync(this->fd_, 99));
  ASSERT_TRUE(ring->Submit().ok());
  // Submitted but not reaped still counts.
  EXPECT_EQ(ring->pending(), 4u);
  EXPECT_FALSE(ring->PrepareDataSync(this->fd_, 99));

  std::vector<IoCompletion> done;
  EXPECT_EQ(ring->Reap(5, 5, done).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "waiting for more than is pending would never return";
  absl::StatusOr<size_t> one = ring->Reap(1, 1, done);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(*one, 1u);
  EXPECT_EQ(ring->pending(), 3u);
  EXPECT_TRUE(ring->PrepareDataSync(this->fd_, 10));
  EXPECT_FALSE(ring->PrepareDataSync(this->fd_, 99));
  std::vector<IoCompletion> rest = this->SubmitAndReapAll(*ring);
  done.insert(done.end(), rest.begin(), rest.end());
  const std::map<uint64_t, int32_t> expected = {{0, static_cast<int32_t>(a)},
                                                {1, static_cast<int32_t>(a)},
                                                {2, static_cast<int32_t>(a)},
                                                {3, static_cast<int32_t>(a)},
                                                {10, 0}};
  EXPECT_EQ(ByTag(done), expected) << "nothing refused ran";
  EXPECT_EQ(ring->pending(), 0u);

  // With nothing pending, Submit has nothing to do and Reap(0) never blocks.
  EXPECT_TRUE(ring->Submit().ok());
  absl::StatusOr<size_t> none = ring->Reap(0, 8, done);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0u);
}

// C1: the kernel really does complete a write short. RLIMIT_FSIZE cuts an
// aligned write in half; the next write, wholly past the limit, is EFBIG.
TYPED_TEST(IoRingTest, WriteCrossingTheFileSizeLimitIsShortThenEfbig) {
  const size_t half = std::max<size_t>(4096, this->align_);
  const uint64_t offset = 2 * half;  // k * 512 for k = offset / 512
  const rlim_t limit = offset + half;
  AlignedBuffer data = this->Buffer(2 * half);
  const int fd = this->fd_;
  ChildResult child = RunInChild([&](int out) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit fsize = {limit, limit};
    if (setrlimit(RLIMIT_FSIZE, &fsize) != 0) _exit(2);
    // A ring of the child's own: the parent's is not shared across fork.
    absl::StatusOr<std::unique_ptr<IoRing>> ring = TypeParam::Make(4);
    if (!ring.ok()) _exit(3);
    int32_t results[2] = {0, 0};
    const uint64_t offsets[2] = {offset, limit};
    for (int i = 0; i < 2; ++i) {
      std::vector<IoCompletion> done;
      if (!(*ring)->PrepareWrite(fd, data.span(), offsets[i], i) ||
          !(*ring)->Submit().ok() || !(*ring)->Reap(1, 1, done).ok() ||
          done.size() != 1) {
        _exit(4);
      }
      results[i] = done[0].result;
    }
    if (write(out, results, sizeof(results)) != sizeof(results)) _exit(5);
  });
  ASSERT_TRUE(WIFEXITED(child.wait_status) &&
              WEXITSTATUS(child.wait_status) == 0)
      << "child wait status " << child.wait_status;
  ASSERT_EQ(child.output.size(), 2 * sizeof(int32_t));
  int32_t results[2];
  std::memcpy(results, child.output.data(), sizeof(results));
  EXPECT_GT(results[0], 0);
  EXPECT_LT(results[0], static_cast<int32_t>(2 * half));
  EXPECT_EQ(results[0], static_cast<int32_t>(half)) << "stops at the limit";
  EXPECT_EQ(results[1], -EFBIG);
  EXPECT_EQ(this->FileSize(), static_cast<off_t>(limit));
}

// C2: under O_DIRECT a misaligned address, length or offset is EINVAL; the
// same operations on a buffered file succeed.
TYPED_TEST(IoRingTest, MisalignedDirectIoIsEinval) {
  const size_t a = this->align_;
  AlignedBuffer data = this->Buffer(3 * std::max<size_t>(a, 4096));
  const std::span<const std::byte> bytes = data.span();
  struct Case {
    const char* what;
    std::span<const std::byte> data;
    uint64_t offset;
  };
  const Case cases[] = {
      {"address", this->MisalignedAddress(data), 0},
      {"length", bytes.first(a + 1), 0},
      {"offset", bytes.first(a), a + 1},
  };
  for (uint64_t tag = 0; tag < 3; ++tag) {
    ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, cases[tag].data,
                                          cases[tag].offset, tag));
  }
  std::map<uint64_t, int32_t> got = ByTag(this->SubmitAndReapAll(*this->ring_));
  ASSERT_EQ(got.size(), 3u);
  for (uint64_t tag = 0; tag < 3; ++tag) {
    const int32_t expected = TypeParam::kDirect
                                 ? -EINVAL
                                 : static_cast<int32_t>(cases[tag].data.size());
    EXPECT_EQ(got[tag], expected) << "misaligned " << cases[tag].what;
  }
}

// C3: a failed or short member of a chain cancels the rest of the chain,
// which ends at the first operation queued without link_next.
TYPED_TEST(IoRingTest, ChainStopsAtItsFirstFailedOrShortMember) {
  const size_t a = this->align_;
  AlignedBuffer data = this->Buffer(3 * std::max<size_t>(a, 4096));
  const std::span<const std::byte> aligned = data.span().first(a);
  const std::span<const std::byte> misaligned = this->MisalignedAddress(data);
  ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, misaligned, 0, 1, true));
  ASSERT_TRUE(this->ring_->PrepareDataSync(this->fd_, 2, true));
  ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, aligned, 4 * a, 3));
  ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, aligned, a, 4));
  std::map<uint64_t, int32_t> got = ByTag(this->SubmitAndReapAll(*this->ring_));
  const int32_t len = static_cast<int32_t>(a);
  if (TypeParam::kDirect) {
    EXPECT_EQ(got,
              (std::map<uint64_t, int32_t>{
                  {1, -EINVAL}, {2, -ECANCELED}, {3, -ECANCELED}, {4, len}}));
    EXPECT_EQ(this->FileSize(), static_cast<off_t>(2 * a))
        << "the cancelled write at " << 4 * a << " ran";
  } else {
    EXPECT_EQ(got, (std::map<uint64_t, int32_t>{
                       {1, static_cast<int32_t>(misaligned.size())},
                       {2, 0},
                       {3, len},
                       {4, len}}));
  }

  // A short read, here at the end of the file, cancels its chain too.
  const off_t size = this->FileSize();
  AlignedBuffer sink = this->Buffer(static_cast<size_t>(size) + a);
  ASSERT_TRUE(this->ring_->PrepareRead(this->fd_, sink.span(), 0, 5, true));
  ASSERT_TRUE(this->ring_->PrepareDataSync(this->fd_, 6));
  EXPECT_EQ(ByTag(this->SubmitAndReapAll(*this->ring_)),
            (std::map<uint64_t, int32_t>{{5, static_cast<int32_t>(size)},
                                         {6, -ECANCELED}}));
}

// C5: the alignment DirectIoAlignment reports is one O_DIRECT accepts.
TYPED_TEST(IoRingTest, DirectIoAlignmentIsAPowerOfTwoThatWorks) {
  const size_t a = this->align_;
  ::testing::Test::RecordProperty("direct_io_alignment", static_cast<int>(a));
  EXPECT_GE(a, 512u);
  EXPECT_EQ(a & (a - 1), 0u) << a << " is not a power of two";
  EXPECT_EQ((fcntl(this->fd_, F_GETFL) & O_DIRECT) != 0, TypeParam::kDirect);
  AlignedBuffer data = this->Buffer(a, 3);
  AlignedBuffer back = this->Buffer(a, 4);
  ASSERT_TRUE(this->ring_->PrepareWrite(this->fd_, data.span(), a, 1));
  ASSERT_EQ(ByTag(this->SubmitAndReapAll(*this->ring_)),
            (std::map<uint64_t, int32_t>{{1, static_cast<int32_t>(a)}}));
  ASSERT_TRUE(this->ring_->PrepareRead(this->fd_, back.span(), a, 2));
  ASSERT_EQ(ByTag(this->SubmitAndReapAll(*this->ring_)),
            (std::map<uint64_t, int32_t>{{2, static_cast<int32_t>(a)}}));
  EXPECT_EQ(this->AsString(back.span()), this->AsString(data.span()));

  absl::StatusOr<size_t> bad = this->ring_->DirectIoAlignment(-1);
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("fd -1"));
}

// One thread prepares and submits, another reaps, as the appender runs them.
TYPED_TEST(IoRingTest, SubmitterAndReaperThreadsCompleteEveryTagOnce) {
  constexpr uint64_t kWrites = 10000;
  std::unique_ptr<IoRing> ring;
  this->MakeRing(32, ring);
  ASSERT_NE(ring, nullptr);
  const size_t a = this->align_;
  AlignedBuffer data = this->Buffer(a);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t submitted = 0;  // guarded by mu
  bool failed = false;     // guarded by mu
  auto fail = [&] {
    std::lock_guard<std::mutex> lock(mu);
    failed = true;
    cv.notify_all();
  };

  std::thread submitter([&] {
    for (uint64_t tag = 0; tag < kWrites;) {
      uint64_t batch = 0;
      while (tag < kWrites &&
             ring->PrepareWrite(this->fd_, data.span(), tag % 256 * a, tag)) {
        ++tag;
        ++batch;
      }
      std::unique_lock<std::mutex> lock(mu);
      if (batch > 0) {
        lock.unlock();
        const absl::Status status = ring->Submit();
        EXPECT_TRUE(status.ok()) << status;
        if (!status.ok()) return fail();
        lock.lock();
        submitted += batch;
        cv.notify_all();
      } else {
        cv.wait(lock,
                [&] { return ring->pending() < ring->capacity() || failed; });
        if (failed) return;
      }
    }
  });

  std::vector<int> seen(kWrites, 0);
  std::thread reaper([&] {
    std::vector<IoCompletion> done;
    for (uint64_t reaped = 0; reaped < kWrites;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return submitted > reaped || failed; });
        if (failed) return;
      }
      done.clear();
      const absl::StatusOr<size_t> n = ring->Reap(1, 64, done);
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok()) return fail();
      for (const IoCompletion& c : done) {
        EXPECT_EQ(c.result, static_cast<int32_t>(a)) << "tag " << c.tag;
        if (c.tag < kWrites) {
          ++seen[c.tag];
        } else {
          ADD_FAILURE() << "unknown tag " << c.tag;
        }
      }
      reaped += *n;
      std::lock_guard<std::mutex> lock(mu);
      cv.notify_all();  // room for the submitter
    }
  });
  submitter.join();
  reaper.join();
  for (uint64_t tag = 0; tag < kWrites; ++tag) {
    ASSERT_EQ(seen[tag], 1) << "tag " << tag;
  }
  EXPECT_EQ(ring->pending(), 0u);
}

TEST(UringIoRingTest, CreateRejectsBadDepthsNamingThem) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> zero = UringIoRing::Create(0);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("depth 0"));
  absl::StatusOr<std::unique_ptr<UringIoRing>> huge =
      UringIoRing::Create(1u << 20);
  if (absl::IsPermissionDenied(huge.status()) ||
      absl::IsUnimplemented(huge.status())) {
    GTEST_SKIP() << "io_uring is disabled here: " << huge.status();
  }
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), HasSubstr("queue depth 1048576"));
  EXPECT_THAT(huge.status().message(), HasSubstr("errno 22"));
}

TEST(UringIoRingTest, DestructorReapsWhatIsInFlightAndDropsWhatIsQueued) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> ring = UringIoRing::Create(8);
  if (absl::IsPermissionDenied(ring.status()) ||
      absl::IsUnimplemented(ring.status())) {
    GTEST_SKIP() << "io_uring is disabled here: " << ring.status();
  }
  ASSERT_TRUE(ring.ok()) << ring.status();
  const std::string path = TestDir() + "/destructor.dat";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  std::vector<std::byte> data(4096, std::byte{0x5A});
  for (uint64_t i = 0; i < 2; ++i) {
    ASSERT_TRUE((*ring)->PrepareWrite(fd, data, i * data.size(), i));
  }
  ASSERT_TRUE((*ring)->Submit().ok());
  // Queued, never handed to the kernel.
  ASSERT_TRUE((*ring)->PrepareWrite(fd, data, 8 * data.size(), 2));
  ring->reset();
  struct stat st = {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(2 * data.size()));
  close(fd);
  unlink(path.c_str());
}

// Makes every io_uring_enter of the calling thread (only) wait for a verdict
// from whoever reads the returned seccomp listener fd; -1 if no filter can
// be installed here. The filter stays until the thread exits.
int TrapIoUringEnterOnThisThread() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program = {static_cast<unsigned short>(std::size(filter)),
                        filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return static_cast<int>(syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                                  SECCOMP_FILTER_FLAG_NEW_LISTENER, &program));
}

// Answers the io_uring_enter calls trapped by `listener`: the first
// `refusals` fail with `err`, later ones run. Returns once every thread
// under the filter has exited, with the number of calls answered.
int AnswerIoUringEnter(int listener, int refusals, int err) {
  int calls = 0;
  for (;;) {
    pollfd p = {listener, POLLIN, 0};
    const int n = poll(&p, 1, /*timeout_ms=*/60'000);
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      ADD_FAILURE() << "poll on the seccomp listener: "
                    << std::strerror(error);
      return calls;
    }
    if (n == 0) {
      ADD_FAILURE() << "no io_uring_enter to answer, nor an exit, in 60 s";
      return calls;
    }
    if ((p.revents & POLLIN) == 0) return calls;  // POLLHUP: thread gone
    seccomp_notif request = {};
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) {
      const int error = errno;
      if (error == EINTR) continue;
      ADD_FAILURE() << "SECCOMP_IOCTL_NOTIF_RECV: " << std::strerror(error);
      return calls;
    }
    seccomp_notif_resp response = {};
    response.id = request.id;
    if (calls < refusals) {
      response.error = -err;
    } else {
      response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    }
    ++calls;
    // ENOENT: the call was interrupted meanwhile and will be trapped anew.
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &response) != 0) --calls;
  }
}

// Submits one write through a ring whose io_uring_enter calls the kernel
// refuses `refusals` times with `err`, with nothing else in flight. Sets
// `calls` to the number of io_uring_enter calls Submit made.
absl::Status SubmitWhileRefused(int refusals, int err, int& calls) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> ring = UringIoRing::Create(4);
  if (!ring.ok()) return ring.status();
  const std::string path = TestDir() + "/refused.dat";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, "open " + path);
  }
  std::vector<std::byte> data(4096, std::byte{0x3C});
  std::promise<int> listener_promise;
  std::future<int> listener_future = listener_promise.get_future();
  absl::Status submitted;
  std::thread submitter([&] {
    const int listener = TrapIoUringEnterOnThisThread();
    listener_promise.set_value(listener);
    if (listener < 0) return;
    if (!(*ring)->PrepareWrite(fd, data, 0, /*tag=*/1)) {
      submitted = absl::InternalError("PrepareWrite refused");
      return;
    }
    submitted = (*ring)->Submit();
  });
  const int listener = listener_future.get();
  if (listener >= 0) {
    calls = AnswerIoUringEnter(listener, refusals, err);
    close(listener);
  }
  submitter.join();
  if (listener < 0) {
    close(fd);
    return absl::UnavailableError("cannot install a seccomp filter here");
  }
  if (submitted.ok()) {
    std::vector<IoCompletion> done;
    const absl::StatusOr<size_t> reaped = (*ring)->Reap(1, 4, done);
    if (!reaped.ok()) {
      submitted = reaped.status();
    } else if (done.size() != 1 || done[0].tag != 1 ||
               done[0].result != 4096) {
      submitted = absl::InternalError("the write did not complete whole");
    }
  }
  close(fd);
  unlink(path.c_str());
  return submitted;
}

// EBUSY or EAGAIN from io_uring_submit when no operation is in flight (as
// when another thread reaped every completion just before) is transient:
// Submit retries rather than failing the ring for good.
TEST(UringIoRingTest, SubmitRetriesEagainAndEbusyWithNothingInFlight) {
  for (const int err : {EAGAIN, EBUSY}) {
    SCOPED_TRACE(std::strerror(err));
    int calls = 0;
    const absl::Status s = SubmitWhileRefused(/*refusals=*/3, err, calls);
    if (absl::IsPermissionDenied(s) || absl::IsUnimplemented(s)) {
      GTEST_SKIP() << "io_uring is disabled here: " << s;
    }
    if (absl::IsUnavailable(s)) GTEST_SKIP() << s;
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(calls, 4) << "three refused calls, then one that ran";
  }
}

// A kernel that keeps refusing still ends Submit, with an error saying so.
TEST(UringIoRingTest, SubmitGivesUpOnRefusalsThatDoNotClear) {
  int calls = 0;
  const absl::Status s =
      SubmitWhileRefused(/*refusals=*/1'000'000, EAGAIN, calls);
  if (absl::IsPermissionDenied(s) || absl::IsUnimplemented(s)) {
    GTEST_SKIP() << "io_uring is disabled here: " << s;
  }
  if (absl::IsUnavailable(s)) GTEST_SKIP() << s;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GT(calls, 1);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("(errno ", EAGAIN, ") ",
                                                  calls, " times in a row")));
  EXPECT_THAT(s.message(), HasSubstr("no operation in flight"));
}

// Without io_uring (a seccomp filter makes io_uring_setup fail with `err`,
// as container runtimes do), CreateIoRing falls back to SyncIoRing for EPERM
// and ENOSYS and says so once on stderr; any other error is returned.
void ExpectCreateIoRingWith(int err, int expected_exit,
                            const std::string& expected_stderr) {
  SCOPED_TRACE(std::strerror(err));
  ChildResult child = RunInChild([err](int out) {
    if (dup2(out, STDERR_FILENO) < 0) _exit(10);
    // Syscall numbers alone: io_uring_setup has one number on every ABI.
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO |
                     (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program = {static_cast<unsigned short>(std::size(filter)),
                          filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      _exit(77);
    }
    absl::StatusOr<std::unique_ptr<IoRing>> ring = CreateIoRing(8);
    if (!ring.ok()) {
      _exit(ring.status().code() == absl::StatusCode::kInvalidArgument ? 3 : 4);
    }
    if (dynamic_cast<SyncIoRing*>(ring->get()) == nullptr) _exit(5);
    if ((*ring)->capacity() != 8) _exit(6);
  });
  ASSERT_TRUE(WIFEXITED(child.wait_status))
      << "child wait status " << child.wait_status;
  if (WEXITSTATUS(child.wait_status) == 77) {
    GTEST_SKIP() << "cannot install a seccomp filter here";
  }
  EXPECT_EQ(WEXITSTATUS(child.wait_status), expected_exit);
  EXPECT_EQ(child.output, expected_stderr);
}

TEST(IoRingFactoryTest, FallsBackToSyncIoRingWhenIoUringIsDisabled) {
  ExpectCreateIoRingWith(EPERM, 0,
                         "lss: io_uring unavailable (Operation not "
                         "permitted); using synchronous pwrite/fdatasync\n");
  ExpectCreateIoRingWith(ENOSYS, 0,
                         "lss: io_uring unavailable (Function not "
                         "implemented); using synchronous pwrite/fdatasync\n");
  ExpectCreateIoRingWith(EINVAL, 3, "");
  ExpectCreateIoRingWith(EACCES, 4, "");
}

TEST(IoRingFactoryTest, GivesAUringIoRingWhereIoUringWorks) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> probe = UringIoRing::Create(8);
  if (!probe.ok()) GTEST_SKIP() << "io_uring unusable here: " << probe.status();
  absl::StatusOr<std::unique_ptr<IoRing>> ring = CreateIoRing(8);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_NE(dynamic_cast<UringIoRing*>(ring->get()), nullptr);
  EXPECT_EQ((*ring)->capacity(), 8u);
  EXPECT_EQ(CreateIoRing(0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lss
