// StoreOptions for a LogStructuredStore on a SimDisk (testing/sim_disk.h):
// the disk's FileOpener, and FakeIoRings (testing/fake_io_ring.h) that
// execute on the same disk with O_DIRECT alignment.

#ifndef LSS_TESTING_SIM_STORE_H_
#define LSS_TESTING_SIM_STORE_H_

#include <cstddef>
#include <cstdint>

#include "lss/log_structured_store.h"
#include "testing/fake_io_ring.h"
#include "testing/sim_disk.h"

namespace lss::testing {

// What differs between the tests' stores on a simulated disk: a small
// geometry by default.
struct SimStoreKnobs {
  uint32_t block_bytes = 512;
  size_t buffer_bytes = 8192;
  size_t ring_size = 2;
  unsigned queue_depth = 16;
  uint64_t preallocate_bytes = 64 << 10;
  // The O_DIRECT alignment of the rings' requests.
  size_t direct_io_alignment = 512;
  // Each ring's options (seed, reordering, delays, injected faults); its
  // capacity, direct_io_alignment and disk are set from the above.
  FakeIoRingOptions ring;
};

// StoreOptions with `knobs`, lock_wait 0, disk.opener() and an
// io_ring_factory making FakeIoRings on `disk` (which must outlive the
// store); other fields keep their defaults.
StoreOptions SimStoreOptions(SimDisk& disk, const SimStoreKnobs& knobs);

}  // namespace lss::testing

#endif  // LSS_TESTING_SIM_STORE_H_
