// PeerStore: the one interface peerbench drives the store and its peers
// (RocksDB, LevelDB) through, so every workload runs the same code against
// each of them. BENCHMARKS.md ("Peer benchmark") lists the calls and the
// options of each.

#ifndef LSS_TOOLS_PEER_STORE_H_
#define LSS_TOOLS_PEER_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flush/appender.h"
#include "lss/log_structured_store.h"

namespace lss {

enum class Peer { kOurs, kRocksDb, kLevelDb };

// "ours", "rocksdb" or "leveldb".
const char* PeerName(Peer peer);

// Every record starts with its key (unique per writer); the key-value
// stores store the rest as the value, the log stores the whole record as
// its payload. So each system is handed the same bytes per record.
inline constexpr size_t kKeyBytes = 16;

struct ScanTotals {
  uint64_t records = 0;
  uint64_t bytes = 0;  // key + value, or payload: the record's size
};

class PeerStore {
 public:
  virtual ~PeerStore() = default;
  // Writes `record` (at least kKeyBytes); with `durable`, returns once it
  // is durable. Safe to call from several threads.
  virtual absl::Status Put(absl::string_view record, bool durable) = 0;
  // Makes everything put before the call durable.
  virtual absl::Status Sync() = 0;
  // Reads every record back, in the system's own order.
  virtual absl::StatusOr<ScanTotals> Scan() = 0;
  // Releases the files. Must not race with other calls.
  virtual absl::Status Close() = 0;
};

struct PeerOptions {
  // Ours only: when the log issues fdatasyncs (StoreOptions::durability).
  Durability durability = Durability::kOnWait;
  // Ours only: StoreOptions::zero_ahead_bytes.
  uint64_t zero_ahead_bytes = StoreOptions().zero_ahead_bytes;
};

// Opens (creating if needed) `peer`'s store in the directory `dir`. Errors
// name the directory, the system and its reason.
absl::StatusOr<std::unique_ptr<PeerStore>> OpenPeerStore(
    Peer peer, const std::string& dir, const PeerOptions& options);

}  // namespace lss

#endif  // LSS_TOOLS_PEER_STORE_H_
