#include "testing/sim_store.h"

#include <chrono>
#include <memory>

#include "absl/status/statusor.h"
#include "flush/io_ring.h"

namespace lss::testing {

StoreOptions SimStoreOptions(SimDisk& disk, const SimStoreKnobs& knobs) {
  StoreOptions o;
  o.block_bytes = knobs.block_bytes;
  o.buffer_bytes = knobs.buffer_bytes;
  o.ring_size = knobs.ring_size;
  o.queue_depth = knobs.queue_depth;
  o.preallocate_bytes = knobs.preallocate_bytes;
  o.lock_wait = std::chrono::milliseconds(0);
  o.file_opener = disk.opener();
  FakeIoRingOptions ring = knobs.ring;
  ring.direct_io_alignment = knobs.direct_io_alignment;
  ring.disk = &disk;
  o.io_ring_factory =
      [ring](unsigned depth) -> absl::StatusOr<std::unique_ptr<IoRing>> {
    FakeIoRingOptions r = ring;
    r.capacity = depth;
    return std::make_unique<FakeIoRing>(r);
  };
  return o;
}

}  // namespace lss::testing
