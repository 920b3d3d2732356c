#include "flush/io_error.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lss {

absl::Status IoErrorStatus(int error, absl::string_view what) {
  const std::string message = absl::StrCat(
      what, " failed: ", std::strerror(error), " (errno ", error, ")");
  switch (error) {
    case EIO:
      return absl::DataLossError(message);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    case EINVAL:
      return absl::InternalError(absl::StrCat(
          message, "; a misaligned or malformed request is a bug"));
    default:
      return absl::Status(absl::ErrnoToStatusCode(error), message);
  }
}

}  // namespace lss
