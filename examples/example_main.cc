// main() for the examples: usage LOG_PATH; exit 0 when the example's checks
// pass, 1 with the error when they do not, 64 on a usage error.

#include <cstdio>

#include "absl/status/status.h"
#include "examples/example.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s LOG_PATH\n", argv[0]);
    return 64;
  }
  if (absl::Status s = lss_examples::RunExample(argv[1]); !s.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], s.ToString().c_str());
    return 1;
  }
  return 0;
}
