// Paths for tests' scratch files.

#ifndef LSS_TESTING_TEMP_PATH_H_
#define LSS_TESTING_TEMP_PATH_H_

#include <string>

namespace lss::testing {

// Returns `name` under $TEST_TMPDIR (or /tmp when it is unset), after
// unlinking whatever is there, so each test starts without the file.
std::string TempPath(const std::string& name);

// $TEST_TMPDIR, or /tmp when it is unset.
std::string TempDir();

}  // namespace lss::testing

#endif  // LSS_TESTING_TEMP_PATH_H_
