// Append, sync, read back by address, then reopen and replay the log in
// address order with a LogReader (README: Using the store).
//
//   ./bazelw run //examples:append_sync_read -- /tmp/demo.log

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "examples/example.h"
#include "lss/log_structured_store.h"

namespace lss_examples {

absl::Status RunExample(const std::string& path) {
  const std::vector<std::string> lines = {"hello", "log-structured", "world"};
  lss::StoreOptions options;  // O_DIRECT, 4 x 4 MiB buffers, kTailLocalized
  options.allow_buffered_fallback = true;  // where O_DIRECT is refused (tmpfs)

  std::vector<uint64_t> addresses;
  {
    auto store = lss::LogStructuredStore::Open(path, options);
    if (!store.ok()) return store.status();  // names the file and the reason
    for (const std::string& line : lines) {
      absl::StatusOr<uint64_t> a = (*store)->Append(line);  // an LSS address
      if (!a.ok()) return a.status();
      addresses.push_back(*a);
    }
    if (absl::Status s = (*store)->Sync(); !s.ok()) return s;  // all durable
    absl::StatusOr<lss::LogRecord> r = (*store)->Read(addresses[0]);
    if (!r.ok()) return r.status();
    absl::PrintF("appended %d records, synced, read \"%s\" back at %d\n",
                 lines.size(), r->payload, r->address);
    if (r->payload != lines[0]) {
      return absl::InternalError(absl::StrCat("read \"", r->payload, "\""));
    }
    if (absl::Status s = (*store)->Close(); !s.ok()) return s;
  }

  // Reopening recovers the log; a reader replays it in address order.
  auto store = lss::LogStructuredStore::Open(path, options);
  if (!store.ok()) return store.status();
  auto reader = (*store)->NewLogReader(/*from=*/0);
  if (!reader.ok()) return reader.status();
  size_t i = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) return more.status();
    if (!*more) break;
    const lss::RecordView& record = (*reader)->record();
    absl::PrintF("replayed \"%s\" at %d\n", record.payload, record.address);
    if (i == lines.size() || record.address != addresses[i] ||
        record.payload != lines[i]) {
      return absl::InternalError(absl::StrCat(
          "record ", i, " replays as \"", record.payload, "\" at ",
          record.address));
    }
    ++i;
  }
  if (i != lines.size()) {
    return absl::InternalError(
        absl::StrCat("replayed ", i, " of ", lines.size(), " records"));
  }
  return (*store)->Close();
}

}  // namespace lss_examples
