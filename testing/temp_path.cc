#include "testing/temp_path.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace lss::testing {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string TempPath(const std::string& name) {
  std::string path = TempDir() + "/" + name;
  unlink(path.c_str());
  return path;
}

}  // namespace lss::testing
