#include "testing/temp_path.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace lss::testing {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  unlink(path.c_str());
  return path;
}

}  // namespace lss::testing
