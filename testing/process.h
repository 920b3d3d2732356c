// Helpers for tests that fork children and kill them: a zeroed struct shared
// with the children, how a child reports its failures, waiting on a pipe
// with a deadline, reaping a child, running a command, and knobs read from
// the environment.

#ifndef LSS_TESTING_PROCESS_H_
#define LSS_TESTING_PROCESS_H_

#include <sys/mman.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lss::testing {

// One T in anonymous shared memory, so it survives fork() and a child's
// writes are visible to the parent. Starts out zero-filled.
template <typename T>
class SharedMapping {
 public:
  SharedMapping() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      perror("mmap");
      std::abort();
    }
    ptr_ = static_cast<T*>(p);
  }
  ~SharedMapping() { munmap(ptr_, sizeof(T)); }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  T* operator->() const { return ptr_; }
  T* get() const { return ptr_; }

 private:
  T* ptr_;
};

// Copies `s` into the `cap`-byte array `dst` (typically in a SharedMapping),
// cut to fit, always NUL-terminated.
void CopyMessage(char* dst, size_t cap, const std::string& s);

// Ends a child process at its first failure, from any of its threads: the
// first caller (by `failed`, 0 to 1) copies `message` into `out` and exits
// with code 3; the others wait for that exit.
[[noreturn]] void FailChildOnce(std::atomic<uint32_t>& failed, char* out,
                                size_t cap, const std::string& message);

// What a checking child found wrong: the first `keep` errors. It ends with
// ExitWith: exit 0 and `ok` = 1 if none, else exit 1 with them in
// `message`, a line each.
class ChildErrors {
 public:
  explicit ChildErrors(size_t keep) : keep_(keep) {}
  void Add(std::string e) {
    if (errors_.size() < keep_) errors_.push_back(std::move(e));
  }
  bool empty() const { return errors_.empty(); }
  [[noreturn]] void ExitWith(uint32_t& ok, char* message, size_t cap) const;

 private:
  size_t keep_;
  std::vector<std::string> errors_;
};

// Raises `a` to `v` unless it is already higher (release order).
void FetchMax(std::atomic<uint64_t>& a, uint64_t v);

// How a kill loop ends one child that writes a byte to its ready pipe
// whenever it is worth killing (say, once its store is open).
struct KillPlan {
  // Let the child exit by itself instead of killing it.
  bool clean = false;
  // Kill `delay_ns` after the fork; otherwise `delay_ns` after the child's
  // latest ready byte.
  bool from_fork = false;
  int64_t delay_ns = 0;
  // How long the child may take to send its first ready byte (or, if
  // `clean`, to exit); past it the child is killed as hung.
  int64_t watchdog_ns = 0;
};

struct ChildRun {
  int status = 0;      // wait status
  bool ready = false;  // it sent at least one ready byte
  bool hung = false;   // the watchdog killed it
};

// Forks; the child runs `child(ready_fd)`, which must not return (it ends
// with _exit, or is killed). The parent follows `plan` and reaps the child.
// Fails only if the pipe or the fork does.
absl::StatusOr<ChildRun> RunAndKill(const std::function<void(int)>& child,
                                    const KillPlan& plan);

// Forks; the child runs `child`, which must not return. Returns the child's
// wait status once it has ended.
absl::StatusOr<int> RunChild(const std::function<void()>& child);

// Runs the command `argv` (argv[0] is searched in PATH when it has no
// slash) with stdout and stderr sent to the files named (created or
// truncated), and returns its wait status once it has ended. Fails if a
// file cannot be opened or the command cannot be started.
absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv,
                               const std::string& stdout_path,
                               const std::string& stderr_path);

// What a command run by RunTool printed, and how it ended.
struct ToolRun {
  int wait_status = 0;
  int exit_code = -1;  // -1: a signal ended it
  std::string out;
  std::string err;
};

// RunCommand with stdout and stderr caught in the files `dir`/stdout and
// `dir`/stderr (overwritten), then read back.
absl::StatusOr<ToolRun> RunTool(const std::vector<std::string>& argv,
                                const std::string& dir);

// The environment variable as a number, or `fallback` if unset or empty.
uint64_t EnvU64(const char* name, uint64_t fallback);

// CLOCK_MONOTONIC in nanoseconds.
int64_t NowNanos();

// Waits for `fd` to become readable or hang up, up to `timeout_ns`.
// Returns poll's revents, or 0 on timeout.
short PollFor(int fd, int64_t timeout_ns);

// "exit code N", "signal N (name)" or the raw status.
std::string WaitStatusString(int status);

// Reaps `pid` (retrying EINTR) and returns its wait status.
int WaitChild(pid_t pid);

}  // namespace lss::testing

#endif  // LSS_TESTING_PROCESS_H_
