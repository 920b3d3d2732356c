// RunAndKill's three endings (killed after ready, hung, clean exit), the
// shared mapping that carries a child's findings back, how a child reports
// a failure (FailChildOnce, ChildErrors), and RunCommand.

#include "testing/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lss::testing {
namespace {

constexpr int64_t kMs = 1000000;

struct Shared {
  std::atomic<uint64_t> high;
  char message[16];
};

[[noreturn]] void SleepForever() {
  for (;;) pause();
}

TEST(RunAndKillTest, KillsTheDelayAfterTheReadyByte) {
  SharedMapping<Shared> shared;
  KillPlan plan;
  plan.delay_ns = 5 * kMs;
  plan.watchdog_ns = 10000 * kMs;
  const int64_t start = NowNanos();
  const absl::StatusOr<ChildRun> run = RunAndKill(
      [&](int ready_fd) {
        FetchMax(shared->high, 7);
        CopyMessage(shared->message, sizeof(shared->message),
                    "a message longer than sixteen bytes");
        const char c = 1;
        if (write(ready_fd, &c, 1) != 1) _exit(2);
        SleepForever();
      },
      plan);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_LT(NowNanos() - start, plan.watchdog_ns / 2)
      << "killed by the watchdog, not after the delay";
  EXPECT_TRUE(run->ready);
  EXPECT_FALSE(run->hung);
  ASSERT_TRUE(WIFSIGNALED(run->status)) << WaitStatusString(run->status);
  EXPECT_EQ(WTERMSIG(run->status), SIGKILL);
  EXPECT_EQ(shared->high.load(), 7u);
  EXPECT_STREQ(shared->message, "a message longe") << "cut and terminated";
}

TEST(RunAndKillTest, AChildThatNeverGetsReadyIsKilledAsHung) {
  KillPlan plan;
  plan.delay_ns = 1 * kMs;
  plan.watchdog_ns = 20 * kMs;
  const absl::StatusOr<ChildRun> run =
      RunAndKill([](int) { SleepForever(); }, plan);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_FALSE(run->ready);
  EXPECT_TRUE(run->hung);
  EXPECT_TRUE(WIFSIGNALED(run->status));
}

TEST(RunAndKillTest, FromForkKillsWithoutWaitingForReady) {
  KillPlan plan;
  plan.from_fork = true;
  plan.delay_ns = 1 * kMs;
  plan.watchdog_ns = 10000 * kMs;
  const int64_t start = NowNanos();
  const absl::StatusOr<ChildRun> run =
      RunAndKill([](int) { SleepForever(); }, plan);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_LT(NowNanos() - start, plan.watchdog_ns / 2)
      << "killed by the watchdog, not after the delay";
  EXPECT_FALSE(run->hung);
  ASSERT_TRUE(WIFSIGNALED(run->status)) << WaitStatusString(run->status);
  EXPECT_EQ(WTERMSIG(run->status), SIGKILL);
}

TEST(RunAndKillTest, ACleanChildExitsByItself) {
  KillPlan plan;
  plan.clean = true;
  plan.watchdog_ns = 10000 * kMs;
  const absl::StatusOr<ChildRun> run = RunAndKill(
      [](int ready_fd) {
        const char c = 1;
        if (write(ready_fd, &c, 1) != 1) _exit(2);
        _exit(5);
      },
      plan);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->ready);
  EXPECT_FALSE(run->hung);
  ASSERT_TRUE(WIFEXITED(run->status)) << WaitStatusString(run->status);
  EXPECT_EQ(WEXITSTATUS(run->status), 5);
  EXPECT_EQ(WaitStatusString(run->status), "exit code 5");
}

TEST(RunChildTest, ReturnsTheWaitStatus) {
  const absl::StatusOr<int> status = RunChild([] { _exit(3); });
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(WaitStatusString(*status), "exit code 3");
}

TEST(RunCommandTest, SendsOutputToTheFilesAndReturnsTheWaitStatus) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const absl::StatusOr<int> status =
      RunCommand({"sh", "-c", "echo out; echo err >&2; exit 4"},
                 dir + "/stdout", dir + "/stderr");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(WaitStatusString(*status), "exit code 4");
  std::ifstream out(dir + "/stdout"), err(dir + "/stderr");
  std::string line;
  EXPECT_TRUE(std::getline(out, line));
  EXPECT_EQ(line, "out");
  EXPECT_TRUE(std::getline(err, line));
  EXPECT_EQ(line, "err");
}

TEST(RunCommandTest, ACommandThatDoesNotExistIsAnError) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const absl::StatusOr<int> status = RunCommand(
      {"no-such-command-lss"}, dir + "/stdout", dir + "/stderr");
  EXPECT_FALSE(status.ok());
}

struct Report {
  std::atomic<uint32_t> failed;
  uint32_t ok;
  char message[64];
};

TEST(FailChildOnceTest, TheFirstOfManyThreadsExitsWithItsMessage) {
  SharedMapping<Report> report;
  const absl::StatusOr<int> status = RunChild([&] {
    // Each thread fails once it sees every thread started: several race.
    // Their messages differ in length, so two copies would show.
    std::atomic<int> started{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        started.fetch_add(1);
        while (started.load() < 4) std::this_thread::yield();
        FailChildOnce(report->failed, report->message,
                      sizeof(report->message),
                      absl::StrCat("thread ", t, std::string(8 * t, '.')));
      });
    }
    for (std::thread& th : threads) th.join();
    _exit(0);
  });
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(WIFEXITED(*status)) << WaitStatusString(*status);
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  EXPECT_EQ(report->failed.load(), 1u);
  const std::string message = report->message;
  ASSERT_EQ(message.size() % 8, 0u) << message;
  const int t = static_cast<int>(message.size() / 8) - 1;
  EXPECT_EQ(message, absl::StrCat("thread ", t, std::string(8 * t, '.')));
}

TEST(FailChildOnceTest, ALaterFailureWaitsForTheFirstToEndTheChild) {
  SharedMapping<Report> report;
  report->failed.store(1);
  KillPlan plan;
  plan.clean = true;
  plan.watchdog_ns = 200 * kMs;
  const absl::StatusOr<ChildRun> run = RunAndKill(
      [&](int) {
        FailChildOnce(report->failed, report->message,
                      sizeof(report->message), "second");
      },
      plan);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->hung) << "it exited: " << WaitStatusString(run->status);
  EXPECT_STREQ(report->message, "") << "a later failure wrote its message";
}

TEST(ChildErrorsTest, NoneExitsZeroWithOk) {
  SharedMapping<Report> report;
  const absl::StatusOr<int> status = RunChild([&] {
    ChildErrors errors(2);
    errors.ExitWith(report->ok, report->message, sizeof(report->message));
  });
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(WIFEXITED(*status)) << WaitStatusString(*status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_EQ(report->ok, 1u);
  EXPECT_STREQ(report->message, "");
}

TEST(ChildErrorsTest, KeepsTheFirstFewAndExitsOne) {
  SharedMapping<Report> report;
  const absl::StatusOr<int> status = RunChild([&] {
    ChildErrors errors(2);
    if (!errors.empty()) _exit(2);
    errors.Add("first");
    errors.Add("second");
    errors.Add("third");
    if (errors.empty()) _exit(2);
    errors.ExitWith(report->ok, report->message, sizeof(report->message));
  });
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(WIFEXITED(*status)) << WaitStatusString(*status);
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_EQ(report->ok, 0u);
  EXPECT_STREQ(report->message, "first\nsecond\n");
}

TEST(EnvU64Test, UnsetOrEmptyGivesTheFallback) {
  unsetenv("LSS_PROCESS_TEST_KNOB");
  EXPECT_EQ(EnvU64("LSS_PROCESS_TEST_KNOB", 9), 9u);
  setenv("LSS_PROCESS_TEST_KNOB", "", 1);
  EXPECT_EQ(EnvU64("LSS_PROCESS_TEST_KNOB", 9), 9u);
  setenv("LSS_PROCESS_TEST_KNOB", "1234", 1);
  EXPECT_EQ(EnvU64("LSS_PROCESS_TEST_KNOB", 9), 1234u);
}

}  // namespace
}  // namespace lss::testing
