// ProgressLine draws only to a terminal (a pseudo-terminal here), at most
// once per interval, and erases its line when done.

#include "tools/progress.h"

#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace lss {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr uint64_t kMiB = 1 << 20;

// Everything written to the pseudo-terminal so far, without blocking.
std::string Drain(int master) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

class ProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(openpty(&master_, &slave_, nullptr, nullptr, nullptr), 0);
    ASSERT_EQ(fcntl(master_, F_SETFL, O_NONBLOCK), 0);
  }
  void TearDown() override {
    close(master_);
    close(slave_);
  }
  ProgressOptions Options(int fd) {
    ProgressOptions o;
    o.fd = fd;
    o.interval_ns = kSecond / 4;
    o.now_ns = [this] { return now_; };
    return o;
  }

  int master_ = -1, slave_ = -1;
  int64_t now_ = 0;
};

TEST_F(ProgressTest, DrawsToATerminalOncePerInterval) {
  ProgressLine p("lsstool verify", 400 * kMiB, Options(slave_));
  ASSERT_TRUE(p.enabled());
  now_ = kSecond / 10;
  p.Update(10 * kMiB);  // before the first interval ends: nothing
  EXPECT_EQ(Drain(master_), "");
  now_ = kSecond;
  p.Update(100 * kMiB);
  EXPECT_EQ(Drain(master_),
            "\r\033[Klsstool verify: 100.0 MiB of 400.0 MiB (25%), "
            "100.0 MiB/s, 3 s left");
  now_ += kSecond / 10;
  p.Update(110 * kMiB);
  EXPECT_EQ(Drain(master_), "");
  p.Done();
  EXPECT_EQ(Drain(master_), "\r\033[K");
  now_ += kSecond;
  p.Update(200 * kMiB);
  EXPECT_EQ(Drain(master_), "");
}

TEST_F(ProgressTest, NothingWhenNotATerminal) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  {
    ProgressLine p("peerbench", 100 * kMiB, Options(fds[1]));
    EXPECT_FALSE(p.enabled());
    for (int i = 1; i <= 10; ++i) {
      now_ = i * kSecond;
      p.Update(i * 10 * kMiB);
    }
  }
  EXPECT_EQ(Drain(fds[0]), "");
  close(fds[0]);
  close(fds[1]);
}

TEST_F(ProgressTest, NothingErasedIfNothingWasDrawn) {
  {
    ProgressLine p("quick", 1, Options(slave_));
    p.Update(1);
  }
  EXPECT_EQ(Drain(master_), "");
}

TEST(ProgressFormat, UnknownTotalAndZeroRate) {
  EXPECT_EQ(ProgressLine::Format("x", 1536, 0, 2.0), "x: 1.5 KiB, 768 B/s");
  EXPECT_EQ(ProgressLine::Format("x", 0, 2048, 0), "x: 0 B of 2.0 KiB (0%)");
  EXPECT_EQ(ProgressLine::Format("x", 2048, 2048, 1.0),
            "x: 2.0 KiB of 2.0 KiB (100%), 2.0 KiB/s");
}

}  // namespace
}  // namespace lss
