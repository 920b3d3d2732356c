#include "flush/io_ring_factory.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "flush/sync_io_ring.h"
#include "flush/uring_io_ring.h"

namespace lss {

absl::StatusOr<std::unique_ptr<IoRing>> CreateIoRing(unsigned queue_depth) {
  absl::StatusOr<std::unique_ptr<UringIoRing>> uring =
      UringIoRing::Create(queue_depth);
  if (uring.ok()) return std::unique_ptr<IoRing>(*std::move(uring));
  // UringIoRing::Create gives these two codes to EPERM and ENOSYS alone.
  int disabled_errno = 0;
  if (absl::IsPermissionDenied(uring.status())) disabled_errno = EPERM;
  if (absl::IsUnimplemented(uring.status())) disabled_errno = ENOSYS;
  if (disabled_errno == 0) return uring.status();
  std::fprintf(stderr,
               "lss: io_uring unavailable (%s); using synchronous "
               "pwrite/fdatasync\n",
               std::strerror(disabled_errno));
  return std::unique_ptr<IoRing>(new SyncIoRing(queue_depth));
}

}  // namespace lss
