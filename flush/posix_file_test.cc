// OpenPosixFile when openers race for a file that one of them created and
// then gave up on: the one left must end up with the file at the path,
// never with a nameless one (whose acknowledged writes would vanish).

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "flush/file.h"
#include "gtest/gtest.h"
#include "testing/temp_path.h"

namespace lss {
namespace {

using ::lss::testing::TempPath;

// How many of this process's descriptors are open on the file `st`.
int DescriptorsOn(const struct stat& st) {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    struct stat other;
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    if (stat(link.c_str(), &other) == 0 && other.st_dev == st.st_dev &&
        other.st_ino == st.st_ino) {
      ++n;
    }
  }
  closedir(dir);
  return n;
}

TEST(PosixFileTest, AnOpenerWaitingOnAFileItsCreatorRemovedOpensThePath) {
  const std::string path = TempPath("race.log");
  FileOptions options;
  options.create = true;
  options.direct_io = false;
  options.lock_wait = std::chrono::milliseconds(20000);
  absl::StatusOr<std::unique_ptr<File>> creator = OpenPosixFile(path, options);
  ASSERT_TRUE(creator.ok()) << creator.status();
  ASSERT_TRUE((*creator)->created());
  struct stat first;
  ASSERT_EQ(fstat((*creator)->fd(), &first), 0);

  absl::StatusOr<std::unique_ptr<File>> waiter = absl::UnknownError("unset");
  std::atomic<bool> returned{false};
  std::thread t([&] {
    waiter = OpenPosixFile(path, options);
    returned = true;
  });
  // The waiter has the creator's file open (and waits for its lock) once a
  // second descriptor on it exists; if it returned first, it failed, and
  // the assertions below say how.
  while (!returned && DescriptorsOn(first) < 2) std::this_thread::yield();
  // The creator gives up, as a failed Open does: remove, then release.
  ASSERT_TRUE((*creator)->Unlink().ok());
  creator->reset();
  t.join();

  ASSERT_TRUE(waiter.ok()) << waiter.status();
  struct stat mine, named;
  ASSERT_EQ(fstat((*waiter)->fd(), &mine), 0);
  ASSERT_EQ(stat(path.c_str(), &named), 0) << "the path is gone";
  EXPECT_EQ(mine.st_ino, named.st_ino) << "the waiter holds a nameless file";
  EXPECT_TRUE((*waiter)->created());
}

// A File removes its name only while the name is still its own.
TEST(PosixFileTest, UnlinkLeavesAnotherFileAtThePathAlone) {
  const std::string path = TempPath("own.log");
  FileOptions options;
  options.create = true;
  options.direct_io = false;
  absl::StatusOr<std::unique_ptr<File>> old = OpenPosixFile(path, options);
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_EQ(unlink(path.c_str()), 0);
  absl::StatusOr<std::unique_ptr<File>> now = OpenPosixFile(path, options);
  ASSERT_TRUE(now.ok()) << now.status();
  ASSERT_TRUE((*old)->Unlink().ok());
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << "removed another file's name";
}

// A reader that asks for no lock opens a file a writer holds, and holds up
// neither that writer nor the next one; a locking reader is refused.
TEST(PosixFileTest, AReaderWithoutTheLockOpensBesideAWriter) {
  const std::string path = TempPath("shared.log");
  FileOptions writing;
  writing.create = true;
  writing.direct_io = false;
  absl::StatusOr<std::unique_ptr<File>> writer = OpenPosixFile(path, writing);
  ASSERT_TRUE(writer.ok()) << writer.status();
  FileOptions reading;
  reading.read_only = true;
  reading.direct_io = false;
  EXPECT_EQ(OpenPosixFile(path, reading).status().code(),
            absl::StatusCode::kFailedPrecondition);
  reading.lock = false;
  absl::StatusOr<std::unique_ptr<File>> reader = OpenPosixFile(path, reading);
  ASSERT_TRUE(reader.ok()) << reader.status();
  writer->reset();
  absl::StatusOr<std::unique_ptr<File>> next = OpenPosixFile(path, writing);
  EXPECT_TRUE(next.ok()) << next.status();
}

}  // namespace
}  // namespace lss
