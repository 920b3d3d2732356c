#include "tools/peer_store.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "leveldb/db.h"
#include "leveldb/write_batch.h"
#include "lss/log_structured_store.h"
#include "rocksdb/db.h"

namespace lss {
namespace {

// Ours: one log file, every record one Append.
class OurStore final : public PeerStore {
 public:
  explicit OurStore(std::unique_ptr<LogStructuredStore> store)
      : store_(std::move(store)) {}

  absl::Status Put(absl::string_view record, bool durable) override {
    absl::StatusOr<uint64_t> address = store_->Append(record);
    if (!address.ok()) return address.status();
    return durable ? store_->WaitStable(*address) : absl::OkStatus();
  }
  absl::Status Sync() override { return store_->Sync(); }
  absl::StatusOr<ScanTotals> Scan() override {
    absl::StatusOr<std::unique_ptr<LogReader>> reader = store_->NewLogReader(0);
    if (!reader.ok()) return reader.status();
    ScanTotals totals;
    for (;;) {
      absl::StatusOr<bool> next = (*reader)->Next();
      if (!next.ok()) return next.status();
      if (!*next) return totals;
      ++totals.records;
      totals.bytes += (*reader)->record().payload.size();
    }
  }
  absl::Status Close() override { return store_->Close(); }

 private:
  std::unique_ptr<LogStructuredStore> store_;
};

// RocksDB and LevelDB share their API's shape, so one class serves both;
// an Api struct names the library's types and the calls that differ.
struct RocksDbApi {
  using DB = rocksdb::DB;
  using Iterator = rocksdb::Iterator;
  using ReadOptions = rocksdb::ReadOptions;
  using Slice = rocksdb::Slice;
  using Status = rocksdb::Status;
  using WriteOptions = rocksdb::WriteOptions;
  static constexpr const char* kName = "rocksdb";

  static Status Open(const std::string& dir, DB** db) {
    rocksdb::Options options;
    options.create_if_missing = true;
    // Large memtables and no compactions: the writes measured are the WAL's
    // (memtables still flush to level-0 tables in the background).
    options.write_buffer_size = size_t{256} << 20;
    options.disable_auto_compactions = true;
    // The log does not compress; neither should its peers' tables.
    options.compression = rocksdb::kNoCompression;
    return DB::Open(options, dir, db);
  }
  // One fdatasync of the WAL, covering every write before it.
  static Status Sync(DB* db) { return db->SyncWAL(); }
  static Status Close(DB* db) { return db->Close(); }
};

struct LevelDbApi {
  using DB = leveldb::DB;
  using Iterator = leveldb::Iterator;
  using ReadOptions = leveldb::ReadOptions;
  using Slice = leveldb::Slice;
  using Status = leveldb::Status;
  using WriteOptions = leveldb::WriteOptions;
  static constexpr const char* kName = "leveldb";

  static Status Open(const std::string& dir, DB** db) {
    leveldb::Options options;
    options.create_if_missing = true;
    options.write_buffer_size = size_t{256} << 20;
    options.compression = leveldb::kNoCompression;
    return DB::Open(options, dir, db);
  }
  // LevelDB has no call that only syncs its log: an empty batch written
  // with sync appends a 12-byte header to the log and syncs it.
  static Status Sync(DB* db) {
    WriteOptions sync;
    sync.sync = true;
    leveldb::WriteBatch empty;
    return db->Write(sync, &empty);
  }
  static Status Close(DB*) { return Status::OK(); }
};

template <typename Api>
class KeyValueStore final : public PeerStore {
 public:
  static absl::StatusOr<std::unique_ptr<PeerStore>> Open(
      const std::string& dir) {
    typename Api::DB* db = nullptr;
    const typename Api::Status s = Api::Open(dir, &db);
    std::unique_ptr<KeyValueStore> store(new KeyValueStore(dir, db));
    if (!s.ok()) return store->Error("open", s);
    return store;
  }
  ~KeyValueStore() override { static_cast<void>(Close()); }

  absl::Status Put(absl::string_view record, bool durable) override {
    typename Api::WriteOptions options;
    options.sync = durable;
    const typename Api::Slice key(record.data(), kKeyBytes);
    const typename Api::Slice value(record.data() + kKeyBytes,
                                    record.size() - kKeyBytes);
    return Error("put", db_->Put(options, key, value));
  }
  absl::Status Sync() override { return Error("sync", Api::Sync(db_.get())); }
  absl::StatusOr<ScanTotals> Scan() override {
    std::unique_ptr<typename Api::Iterator> it(
        db_->NewIterator(typename Api::ReadOptions()));
    ScanTotals totals;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++totals.records;
      totals.bytes += it->key().size() + it->value().size();
    }
    if (absl::Status s = Error("scan", it->status()); !s.ok()) return s;
    return totals;
  }
  absl::Status Close() override {
    if (db_ == nullptr) return absl::OkStatus();
    const typename Api::Status s = Api::Close(db_.get());
    db_.reset();
    return Error("close", s);
  }

 private:
  KeyValueStore(std::string dir, typename Api::DB* db)
      : dir_(std::move(dir)), db_(db) {}

  absl::Status Error(const char* what, const typename Api::Status& s) const {
    if (s.ok()) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat(dir_, ": ", Api::kName, " ", what, ": ", s.ToString()));
  }

  const std::string dir_;
  std::unique_ptr<typename Api::DB> db_;
};

}  // namespace

const char* PeerName(Peer peer) {
  switch (peer) {
    case Peer::kOurs:
      return "ours";
    case Peer::kRocksDb:
      return RocksDbApi::kName;
    case Peer::kLevelDb:
      return LevelDbApi::kName;
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<PeerStore>> OpenPeerStore(
    Peer peer, const std::string& dir, const PeerOptions& options) {
  switch (peer) {
    case Peer::kOurs: {
      StoreOptions store_options;
      store_options.durability = options.durability;
      store_options.zero_ahead_bytes = options.zero_ahead_bytes;
      // As lssbench: a file system without O_DIRECT (tmpfs) still runs,
      // with a warning, since the comparison then changes.
      store_options.allow_buffered_fallback = true;
      absl::StatusOr<std::unique_ptr<LogStructuredStore>> store =
          LogStructuredStore::Open(dir + "/log", store_options);
      if (!store.ok()) return store.status();
      if (!(*store)->direct_io()) {
        std::fprintf(stderr,
                     "peerbench: %s: O_DIRECT refused, ours runs "
                     "buffered\n",
                     (*store)->path().c_str());
      }
      return std::make_unique<OurStore>(*std::move(store));
    }
    case Peer::kRocksDb:
      return KeyValueStore<RocksDbApi>::Open(dir);
    case Peer::kLevelDb:
      return KeyValueStore<LevelDbApi>::Open(dir);
  }
  return absl::InvalidArgumentError("unknown peer");
}

}  // namespace lss
