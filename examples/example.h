// The one function each example defines; example_main.cc runs it on the log
// path from the command line and turns its Status into the exit code.

#ifndef LSS_EXAMPLES_EXAMPLE_H_
#define LSS_EXAMPLES_EXAMPLE_H_

#include <string>

#include "absl/status/status.h"

namespace lss_examples {

// Works on a log at `path` (created if missing), prints what it did, and
// returns an error if anything did not come back as written.
absl::Status RunExample(const std::string& path);

}  // namespace lss_examples

#endif  // LSS_EXAMPLES_EXAMPLE_H_
