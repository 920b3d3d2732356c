// LogReader: the records of a LogStructuredStore in address order, read from
// the file or from flush buffers still resident.

#ifndef LSS_LSS_LOG_READER_H_
#define LSS_LSS_LOG_READER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "lss/format.h"

namespace lss {

class LogStructuredStore;

class LogReader {
 public:
  // Moves to the next record: true, or false at the end. DataLoss, naming
  // the file and offset, if a record fails its check; FailedPrecondition
  // once the store is closed.
  absl::StatusOr<bool> Next();
  // The current record; valid until the next call to Next.
  const RecordView& record() const { return record_; }

 private:
  friend class LogStructuredStore;
  LogReader(LogStructuredStore* store, std::vector<uint64_t> blocks,
            uint64_t from)
      : store_(store), blocks_(std::move(blocks)), from_(from) {}

  // Loads the next block's records into records_.
  absl::Status LoadBlock(uint64_t base);

  LogStructuredStore* store_;
  std::vector<uint64_t> blocks_;  // block addresses to visit, in order
  size_t next_block_ = 0;
  uint64_t from_;
  std::vector<std::byte> block_;
  std::vector<RecordView> records_;
  std::vector<std::string> salvaged_;  // payloads of a salvaged range
  size_t next_record_ = 0;
  RecordView record_;
};

}  // namespace lss

#endif  // LSS_LSS_LOG_READER_H_
