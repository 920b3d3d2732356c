// Whole-file recovery: arbitrary bytes as a log file (block_bytes 512,
// buffer_bytes 4096) opened in every RecoveryMode, on testing/'s in-memory
// disk. Open returns OK or an error naming the file; it never crashes,
// hangs or allocates without bound. When it opens, every record the replay
// returns reads back alike by address, and a writable open can append, sync
// and close, after which the log reopens with that record.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "lss/log_structured_store.h"
#include "ring/check.h"
#include "testing/fake_io_ring.h"
#include "testing/sim_disk.h"
#include "testing/sim_store.h"

namespace lss {
namespace {

constexpr char kPath[] = "/fuzz/log";

StoreOptions Options(testing::SimDisk& disk, RecoveryMode mode) {
  testing::SimStoreKnobs knobs;
  knobs.buffer_bytes = 4096;
  knobs.queue_depth = 8;
  knobs.preallocate_bytes = 0;
  StoreOptions o = testing::SimStoreOptions(disk, knobs);
  o.recovery = mode;
  return o;
}

void CheckNamesFile(const absl::Status& s) {
  LSS_CHECK(s.message().find(kPath) != absl::string_view::npos,
            "an error that does not name the file");
}

void OneMode(const uint8_t* data, size_t size, RecoveryMode mode) {
  testing::SimDiskOptions disk_options;
  disk_options.direct_io_alignment = 512;
  testing::SimDisk disk(disk_options);
  {
    FileOptions create;
    create.create = true;
    create.direct_io = false;
    absl::StatusOr<std::unique_ptr<File>> file = disk.opener()(kPath, create);
    LSS_CHECK(file.ok(), "the in-memory disk refused a file");
    if (size > 0) {
      LSS_CHECK((*file)->WriteAt(0, {reinterpret_cast<const std::byte*>(data),
                                     size}).ok(),
                "the in-memory disk refused a write");
    }
  }
  absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
      LogStructuredStore::Open(kPath, Options(disk, mode));
  if (!store.ok()) {
    CheckNamesFile(store.status());
    return;
  }
  {
    // The reader must not outlive the store, which is replaced below.
    absl::StatusOr<std::unique_ptr<LogReader>> reader =
        (*store)->NewLogReader();
    LSS_CHECK(reader.ok(), "NewLogReader failed on an open store");
    for (;;) {
      absl::StatusOr<bool> next = (*reader)->Next();
      LSS_CHECK(next.ok(), "replay failed on a block recovery kept");
      if (!*next) break;
      const RecordView& r = (*reader)->record();
      absl::StatusOr<LogRecord> again = (*store)->Read(r.address);
      LSS_CHECK(again.ok() && again->payload == r.payload,
                "Read disagrees with the replay");
    }
  }
  if (mode == RecoveryMode::kSkipCorrupted) return;
  absl::StatusOr<uint64_t> a = (*store)->Append("fuzz");
  LSS_CHECK(a.ok(), "Append failed on a writable store");
  LSS_CHECK((*store)->WaitStable(*a).ok(), "WaitStable failed");
  LSS_CHECK((*store)->Close().ok(), "Close failed");
  store = LogStructuredStore::Open(kPath, Options(disk, RecoveryMode::
                                                          kAbsoluteConsistency));
  LSS_CHECK(store.ok(), "a cleanly closed log does not reopen");
  absl::StatusOr<LogRecord> r = (*store)->Read(*a);
  LSS_CHECK(r.ok() && r->payload == "fuzz", "the appended record is lost");
}

}  // namespace
}  // namespace lss

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (size_t{1} << 20)) return 0;  // a bounded file
  for (lss::RecoveryMode mode :
       {lss::RecoveryMode::kTolerateCorruptedTail,
        lss::RecoveryMode::kAbsoluteConsistency,
        lss::RecoveryMode::kPointInTime, lss::RecoveryMode::kSkipCorrupted}) {
    lss::OneMode(data, size, mode);
  }
  return 0;
}
