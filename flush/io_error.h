// The project's one mapping from an errno to an absl::Status, so the same
// failure reads the same way whichever layer met it.

#ifndef LSS_FLUSH_IO_ERROR_H_
#define LSS_FLUSH_IO_ERROR_H_

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lss {

// "<what> failed: <strerror> (errno N)", where `what` names the operation,
// the file and the offset. EIO is DataLoss (the bytes may be gone); ENOSPC,
// EDQUOT and EFBIG are ResourceExhausted; EINVAL on an open file is Internal
// (a misaligned or malformed request is our bug); the rest follow
// absl::ErrnoToStatusCode.
absl::Status IoErrorStatus(int error, absl::string_view what);

// The operation did not run: io_uring cancelled it (a broken link) or the
// kernel asked for it to be issued again. Safe to resubmit, even a datasync.
inline bool IsTransientIoError(int error) {
  return error == EAGAIN || error == EINTR || error == ECANCELED;
}

}  // namespace lss

#endif  // LSS_FLUSH_IO_ERROR_H_
