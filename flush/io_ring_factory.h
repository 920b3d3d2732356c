// Picks the IoRing for this host.

#ifndef LSS_FLUSH_IO_RING_FACTORY_H_
#define LSS_FLUSH_IO_RING_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss {

// A UringIoRing of `queue_depth`; or, where io_uring is disabled
// (io_uring_queue_init fails with EPERM or ENOSYS, as in many containers), a
// SyncIoRing of the same capacity, after one line on stderr saying so. Other
// failures are returned.
absl::StatusOr<std::unique_ptr<IoRing>> CreateIoRing(unsigned queue_depth);

}  // namespace lss

#endif  // LSS_FLUSH_IO_RING_FACTORY_H_
