#include "testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flush/io_error.h"

extern char** environ;

namespace lss::testing {

void CopyMessage(char* dst, size_t cap, const std::string& s) {
  const size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

void FailChildOnce(std::atomic<uint32_t>& failed, char* out, size_t cap,
                   const std::string& message) {
  if (failed.exchange(1) == 0) {
    CopyMessage(out, cap, message);
    _exit(3);
  }
  for (;;) pause();
}

void ChildErrors::ExitWith(uint32_t& ok, char* message, size_t cap) const {
  if (!errors_.empty()) {
    std::string all;
    for (const std::string& e : errors_) absl::StrAppend(&all, e, "\n");
    CopyMessage(message, cap, all);
    _exit(1);
  }
  ok = 1;
  _exit(0);
}

void FetchMax(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_release,
                                             std::memory_order_relaxed)) {
  }
}

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

short PollFor(int fd, int64_t timeout_ns) {
  pollfd p{fd, POLLIN, 0};
  const int64_t deadline = NowNanos() + timeout_ns;
  for (;;) {
    const int64_t left = std::max<int64_t>(0, deadline - NowNanos());
    timespec ts{static_cast<time_t>(left / 1000000000),
                static_cast<long>(left % 1000000000)};
    const int n = ppoll(&p, 1, &ts, nullptr);
    if (n > 0) return p.revents;
    if (n == 0) return 0;
    if (errno != EINTR) {
      perror("ppoll");
      std::abort();
    }
  }
}

std::string WaitStatusString(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("wait status ", status);
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      std::abort();
    }
  }
  return status;
}

absl::StatusOr<ChildRun> RunAndKill(const std::function<void(int)>& child,
                                    const KillPlan& plan) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    const int error = errno;
    return IoErrorStatus(error, "pipe2 for a child's ready pipe");
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    return IoErrorStatus(error, "fork");
  }
  if (pid == 0) {
    close(fds[0]);
    child(fds[1]);
    _exit(127);  // `child` must not return
  }
  close(fds[1]);
  const int ready_fd = fds[0];
  const bool kill_after_ready = !plan.from_fork && !plan.clean;
  ChildRun run;
  bool exited = false;
  int64_t deadline = NowNanos() + (plan.from_fork && !plan.clean
                                        ? plan.delay_ns
                                        : plan.watchdog_ns);
  for (;;) {
    const int64_t left = deadline - NowNanos();
    if (left <= 0 || PollFor(ready_fd, left) == 0) break;
    char c;
    if (read(ready_fd, &c, 1) != 1) {
      exited = true;  // EOF: the child's end of the pipe closed
      break;
    }
    run.ready = true;
    if (kill_after_ready) deadline = NowNanos() + plan.delay_ns;
  }
  if (!exited) {
    run.hung = plan.clean || (!run.ready && !plan.from_fork);
    kill(pid, SIGKILL);
  }
  run.status = WaitChild(pid);
  // Only now: a child whose "ready" write met a closed pipe would die of
  // SIGPIPE before the kill, and look like a crash of its own.
  close(ready_fd);
  return run;
}

absl::StatusOr<int> RunChild(const std::function<void()>& child) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    return IoErrorStatus(error, "fork");
  }
  if (pid == 0) {
    child();
    _exit(127);  // `child` must not return
  }
  return WaitChild(pid);
}

absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv,
                               const std::string& stdout_path,
                               const std::string& stderr_path) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: no command");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  // The files are opened in the child, so a path that cannot be opened
  // fails the spawn itself (glibc reports the child's errno here).
  const int error = posix_spawnp(&pid, args[0], &actions, nullptr,
                                 args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return IoErrorStatus(error, absl::StrCat("start ", argv[0], " (stdout to ",
                                             stdout_path, ", stderr to ",
                                             stderr_path, ")"));
  }
  return WaitChild(pid);
}

absl::StatusOr<ToolRun> RunTool(const std::vector<std::string>& argv,
                                const std::string& dir) {
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  absl::StatusOr<int> status = RunCommand(argv, out, err);
  if (!status.ok()) return status.status();
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  ToolRun run;
  run.wait_status = *status;
  run.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  run.out = read(out);
  run.err = read(err);
  return run;
}

}  // namespace lss::testing
