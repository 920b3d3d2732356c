// Opens a log, appends 23 bytes, syncs, reads them back and closes; prints
// the address and the file's size. Exits 1 if anything fails.
//
//   bazel run //:hello_lss -- /tmp/hello.log

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lss/log_structured_store.h"

namespace {

absl::Status Hello(const std::string& path) {
  lss::StoreOptions options;
  options.allow_buffered_fallback = true;  // where O_DIRECT is refused (tmpfs)
  auto store = lss::LogStructuredStore::Open(path, options);
  if (!store.ok()) return store.status();
  const std::string payload = "hello from another repo";
  absl::StatusOr<uint64_t> address = (*store)->Append(payload);
  if (!address.ok()) return address.status();
  if (absl::Status s = (*store)->Sync(); !s.ok()) return s;
  absl::StatusOr<lss::LogRecord> record = (*store)->Read(*address);
  if (!record.ok()) return record.status();
  if (record->payload != payload) {
    return absl::InternalError("read back \"" + record->payload + "\"");
  }
  if (absl::Status s = (*store)->Close(); !s.ok()) return s;
  std::printf("%zu bytes durable at %llu and read back; %s is %llu bytes\n",
              payload.size(), static_cast<unsigned long long>(*address),
              path.c_str(),
              static_cast<unsigned long long>(std::filesystem::file_size(path)));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s LOG_PATH\n", argv[0]);
    return 64;
  }
  if (absl::Status s = Hello(argv[1]); !s.ok()) {
    std::fprintf(stderr, "hello_lss: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
