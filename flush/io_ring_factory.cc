#include "flush/io_ring_factory.h"

#include <cstdio>
#include <string>

#include "flush/sync_io_ring.h"
#include "flush/uring_io_ring.h"

namespace lss {

absl::StatusOr<std::unique_ptr<IoRing>> CreateIoRing(unsigned queue_depth) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> uring =
      UringIoRing::Create(queue_depth);
  if (uring.ok()) return std::unique_ptr<IoRing>(*std::move(uring));
  // EPERM and ENOSYS: io_uring is disabled here, not broken.
  if (absl::IsPermissionDenied(uring.status()) ||
      absl::IsUnimplemented(uring.status())) {
    std::fprintf(stderr,
                 "lss: io_uring unavailable (%s); using synchronous "
                 "pwrite/fdatasync\n",
                 std::string(uring.status().message()).c_str());
    return std::unique_ptr<IoRing>(new SyncIoRing(queue_depth));
  }
  return uring.status();
}

}  // namespace lss
