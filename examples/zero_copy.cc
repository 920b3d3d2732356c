// Zero-copy appends: Reserve space in a flush buffer, build the record there,
// Commit. A reservation dropped without Commit becomes padding that no
// reader returns (README: Zero-copy appends).
//
//   ./bazelw run //examples:zero_copy -- /tmp/demo.log

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "examples/example.h"
#include "lss/log_structured_store.h"

namespace lss_examples {
namespace {

// A reading as the log stores it: sensor id, then millidegrees, each 8
// bytes in host byte order.
constexpr size_t kReadingBytes = 16;
constexpr uint32_t kReadingType = lss::kFirstUserRecordType;

}  // namespace

absl::Status RunExample(const std::string& path) {
  lss::StoreOptions options;
  options.allow_buffered_fallback = true;  // where O_DIRECT is refused (tmpfs)
  auto store = lss::LogStructuredStore::Open(path, options);
  if (!store.ok()) return store.status();

  std::vector<uint64_t> addresses;
  for (int64_t sensor = 1; sensor <= 3; ++sensor) {
    lss::RecordTag tag;
    tag.type = kReadingType;
    tag.key = static_cast<uint64_t>(sensor);
    absl::StatusOr<lss::StoreReservation> r =
        (*store)->Reserve(kReadingBytes, tag);
    if (!r.ok()) return r.status();
    // Written straight into the flush buffer: no copy of the record first.
    const std::span<std::byte> out = r->payload();
    const int64_t millidegrees = 20000 + 500 * sensor;
    std::memcpy(out.data(), &sensor, 8);
    std::memcpy(out.data() + 8, &millidegrees, 8);
    addresses.push_back((*store)->Commit(*std::move(r)));
  }
  {
    // Never committed: its space becomes padding when it goes away.
    absl::StatusOr<lss::StoreReservation> dropped =
        (*store)->Reserve(kReadingBytes);
    if (!dropped.ok()) return dropped.status();
  }
  if (absl::Status s = (*store)->Sync(); !s.ok()) return s;
  absl::PrintF("committed %d readings in place, dropped one reservation\n",
               addresses.size());

  for (size_t i = 0; i < addresses.size(); ++i) {
    absl::StatusOr<lss::LogRecord> r = (*store)->Read(addresses[i]);
    if (!r.ok()) return r.status();
    int64_t sensor = 0;
    int64_t millidegrees = 0;
    std::memcpy(&sensor, r->payload.data(), 8);
    std::memcpy(&millidegrees, r->payload.data() + 8, 8);
    absl::PrintF("read sensor %d: %d m°C at %d\n", sensor, millidegrees,
                 r->address);
    if (r->tag.type != kReadingType || r->tag.key != i + 1 ||
        sensor != static_cast<int64_t>(i + 1) ||
        millidegrees != 20000 + 500 * sensor) {
      return absl::InternalError(
          absl::StrCat("reading ", i, " at ", addresses[i], " reads back as "
                       "sensor ", sensor, ", ", millidegrees, " m°C"));
    }
  }

  // The dropped reservation left nothing a reader returns.
  auto reader = (*store)->NewLogReader();
  if (!reader.ok()) return reader.status();
  size_t replayed = 0;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next();
    if (!more.ok()) return more.status();
    if (!*more) break;
    ++replayed;
  }
  absl::PrintF("replayed %d records\n", replayed);
  if (replayed != addresses.size()) {
    return absl::InternalError(absl::StrCat(
        "replayed ", replayed, " records; committed ", addresses.size()));
  }
  return (*store)->Close();
}

}  // namespace lss_examples
