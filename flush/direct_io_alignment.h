// What O_DIRECT I/O on a file must align memory, offsets and lengths to.

#ifndef LSS_FLUSH_DIRECT_IO_ALIGNMENT_H_
#define LSS_FLUSH_DIRECT_IO_ALIGNMENT_H_

#include <cstddef>

#include "absl/status/statusor.h"

namespace lss {

// statx(STATX_DIOALIGN) where the kernel reports it (the larger of the memory
// and offset alignments); else the device's logical block size; else 4096,
// the safe larger choice. Never a hard-coded 512.
absl::StatusOr<size_t> QueryDirectIoAlignment(int fd);

}  // namespace lss

#endif  // LSS_FLUSH_DIRECT_IO_ALIGNMENT_H_
