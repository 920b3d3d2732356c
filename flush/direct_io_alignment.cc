#include "flush/direct_io_alignment.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flush/io_error.h"

namespace lss {
namespace {

constexpr size_t kFallbackAlignment = 4096;

// The logical block size of the device holding the file, from sysfs (a
// partition keeps its queue/ directory one level up).
size_t LogicalBlockSize(dev_t dev) {
  const std::string base =
      absl::StrCat("/sys/dev/block/", major(dev), ":", minor(dev));
  for (const char* rel : {"/queue/logical_block_size",
                          "/../queue/logical_block_size"}) {
    std::ifstream in(base + rel);
    size_t size = 0;
    if (in >> size && size > 0) return size;
  }
  return 0;
}

}  // namespace

absl::StatusOr<size_t> QueryDirectIoAlignment(int fd) {
  struct statx stx = {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN) != 0 && stx.stx_dio_offset_align > 0) {
    return std::max<size_t>(stx.stx_dio_mem_align, stx.stx_dio_offset_align);
  }
  struct stat st = {};
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    return IoErrorStatus(error, absl::StrCat("fstat of fd ", fd));
  }
  if (S_ISBLK(st.st_mode)) {
    int size = 0;
    if (ioctl(fd, BLKSSZGET, &size) == 0 && size > 0) return size_t(size);
  } else if (size_t size = LogicalBlockSize(st.st_dev); size > 0) {
    return size;
  }
  return kFallbackAlignment;
}

}  // namespace lss
