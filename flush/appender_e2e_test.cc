// End to end on a real file: threads append self-describing records through
// the ring and the appender over io_uring (and the synchronous fallback),
// with and without O_DIRECT, under both write policies and durabilities.
// After WaitStable of the end, the file read back with plain pread holds
// every record byte for byte at its address.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flush/appender.h"
#include "flush/io_ring.h"
#include "flush/sync_io_ring.h"
#include "flush/uring_io_ring.h"
#include "gtest/gtest.h"
#include "ring/aligned_buffer.h"
#include "ring/flush_buffer_ring.h"
#include "testing/payload.h"

namespace lss {
namespace {

using ::lss::testing::FillPayload;
using ::lss::testing::FirstPayloadMismatch;

using Record = ::lss::testing::AppendedRecord;

enum class Backend { kUring, kSync };

using Param = std::tuple<Backend, bool /*direct*/, WritePolicy, Durability>;

std::string Name(const Param& p) {
  return absl::StrCat(
      std::get<0>(p) == Backend::kUring ? "Uring" : "Sync",
      std::get<1>(p) ? "Direct" : "Buffered",
      std::get<2>(p) == WritePolicy::kSerialized ? "Serialized"
                                                 : "TailLocalized",
      std::get<3>(p) == Durability::kSync ? "Sync" : "NoSync");
}

class AppenderEndToEndTest : public ::testing::TestWithParam<Param> {};

TEST_P(AppenderEndToEndTest, EveryRecordIsInTheFileAtItsAddress) {
  const auto [backend, direct, policy, durability] = GetParam();
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/", Name(GetParam()), ".log");
  const int fd =
      open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0),
           0644);
  if (fd < 0 && direct && errno == EINVAL) {
    GTEST_SKIP() << "O_DIRECT unsupported on " << path;
  }
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);

  std::unique_ptr<IoRing> io;
  if (backend == Backend::kUring) {
    auto uring = UringIoRing::Create(32);
    ASSERT_TRUE(uring.ok()) << uring.status();
    io = *std::move(uring);
  } else {
    io = std::make_unique<SyncIoRing>(32);
  }
  const absl::StatusOr<size_t> alignment = io->DirectIoAlignment(fd);
  ASSERT_TRUE(alignment.ok()) << alignment.status();
  ASSERT_LE(*alignment, 4096u);

  AppenderOptions options;
  options.fd = fd;
  options.path = path;
  options.policy = policy;
  options.durability = durability;
  options.direct_io = direct;
  options.alignment = *alignment;
  auto appender = std::make_unique<Appender>(io.get(), options);
  FlushBufferRingOptions ring_options;
  ring_options.buffer_bytes = 64 * 1024;
  ring_options.ring_size = 4;
  auto ring = FlushBufferRing::Create(ring_options, appender.get());
  ASSERT_TRUE(ring.ok()) << ring.status();
  appender->set_ring(ring->get());

  constexpr int kThreads = 4;
  constexpr int kRecords = 2000;
  std::vector<std::vector<Record>> records(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::uniform_int_distribution<size_t> size(1, 9000);
      for (int i = 0; i < kRecords; ++i) {
        absl::StatusOr<Reservation> r = (*ring)->Reserve(size(rng));
        ASSERT_TRUE(r.ok()) << r.status();
        FillPayload(t, i, r->data());
        records[t].push_back({uint64_t(t), uint64_t(i), r->address(),
                              r->data().size()});
        (*ring)->Commit(*std::move(r));
      }
    });
  }
  for (auto& t : threads) t.join();
  const absl::StatusOr<uint64_t> end = (*ring)->SealCurrent();
  ASSERT_TRUE(end.ok()) << end.status();
  ASSERT_TRUE(appender->WaitStable(*end).ok()) << appender->status();
  appender.reset();  // drains before the ring goes
  ring->reset();

  const int reader = open(path.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  std::vector<std::byte> bytes;
  for (const auto& per_thread : records) {
    for (const Record& r : per_thread) {
      bytes.resize(r.len);
      ASSERT_EQ(pread(reader, bytes.data(), r.len, r.address),
                static_cast<ssize_t>(r.len))
          << "record " << r.stream << "/" << r.index << " at " << r.address;
      const auto bad = FirstPayloadMismatch(r.stream, r.index, bytes);
      ASSERT_FALSE(bad.has_value())
          << "record " << r.stream << "/" << r.index << " at " << r.address
          << " differs at byte " << *bad;
    }
  }
  close(reader);
  close(fd);
  unlink(path.c_str());
}

// Buffers are sealed, and their writes submitted, by whichever thread
// happens to fill or seal them, and that thread may exit at once. io_uring
// issues the fdatasync linked behind a write from the task_work of the
// thread that submitted the pair, and completes it with EFAULT, unrun, if
// that thread has exited: a sync that never ran must be issued again, not
// fail the appender. O_DIRECT overwrites, so each write is issued at once
// and completes after its thread is gone.
TEST(AppenderThreadExitTest, ALinkedSyncOutlivesTheThreadThatSubmittedIt) {
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/thread_exit.log");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT,
                      0644);
  if (fd < 0 && errno == EINVAL) {
    GTEST_SKIP() << "O_DIRECT unsupported on " << path;
  }
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  constexpr size_t kBuffer = size_t{1} << 20;
  constexpr int kRounds = 8;
  {
    absl::StatusOr<AlignedBuffer> zeros = AlignedBuffer::Allocate(
        kBuffer, 4096, AlignedBuffer::Pages::kOrdinary);
    ASSERT_TRUE(zeros.ok()) << zeros.status();
    for (int i = 0; i < kRounds; ++i) {
      ASSERT_EQ(pwrite(fd, zeros->data(), kBuffer, off_t{i} * kBuffer),
                static_cast<ssize_t>(kBuffer));
    }
    ASSERT_EQ(fdatasync(fd), 0);
  }
  auto uring = UringIoRing::Create(32);
  ASSERT_TRUE(uring.ok()) << uring.status();
  const absl::StatusOr<size_t> alignment = (*uring)->DirectIoAlignment(fd);
  ASSERT_TRUE(alignment.ok()) << alignment.status();
  AppenderOptions options;
  options.fd = fd;
  options.path = path;
  options.durability = Durability::kSync;  // every write gets a linked sync
  options.alignment = *alignment;
  auto appender = std::make_unique<Appender>(uring->get(), options);
  FlushBufferRingOptions ring_options;
  ring_options.buffer_bytes = kBuffer;
  ring_options.ring_size = 2;
  auto ring = FlushBufferRing::Create(ring_options, appender.get());
  ASSERT_TRUE(ring.ok()) << ring.status();
  appender->set_ring(ring->get());

  for (int i = 0; i < kRounds; ++i) {
    uint64_t end = 0;
    std::thread([&] {
      absl::StatusOr<Reservation> r = (*ring)->Reserve(kBuffer - 4096);
      ASSERT_TRUE(r.ok()) << r.status();
      FillPayload(0, i, r->data());
      (*ring)->Commit(*std::move(r));
      absl::StatusOr<uint64_t> sealed = (*ring)->SealCurrent();
      ASSERT_TRUE(sealed.ok()) << sealed.status();
      end = *sealed;
    }).join();
    ASSERT_GT(end, 0u);
    const absl::Status s = appender->WaitStable(end);
    ASSERT_TRUE(s.ok()) << "round " << i << ": " << s;
  }
  appender.reset();
  ring->reset();
  close(fd);
  unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Files, AppenderEndToEndTest,
    ::testing::Combine(::testing::Values(Backend::kUring, Backend::kSync),
                       ::testing::Bool(),
                       ::testing::Values(WritePolicy::kTailLocalized,
                                         WritePolicy::kSerialized),
                       ::testing::Values(Durability::kOnWait, Durability::kSync)),
    [](const auto& info) { return Name(info.param); });

}  // namespace
}  // namespace lss
