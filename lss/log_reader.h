// LogReader: the records of a LogStructuredStore in address order, streamed
// from the file.
//
// The reader keeps several large aligned reads in flight through the
// store's I/O ring (LogReaderOptions), checks each block and its records
// while the next reads arrive, and hands records out without copying: a
// record's payload points into the reader's own buffers.

#ifndef LSS_LSS_LOG_READER_H_
#define LSS_LSS_LOG_READER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lss/block_index.h"
#include "lss/format.h"
#include "ring/aligned_buffer.h"

namespace lss {

class LogStructuredStore;

struct LogReaderOptions {
  // Bytes per read: 4 KiB to 64 MiB, rounded up to the block size. A block
  // larger than this is read in several reads at once.
  size_t read_bytes = size_t{1} << 20;
  // Reads kept in flight: 1 to 1024.
  size_t reads_in_flight = 8;
  // Reads no block that starts at or past this address (0: no bound), so
  // a reader of part of the log reads little more than that part.
  uint64_t to = 0;
};

class LogReader {
 public:
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;
  // Waits for the reads still in flight (their memory is the reader's).
  ~LogReader();

  // Moves to the next record: true, or false at the end. DataLoss, naming
  // the file and offset, if a record fails its check; an I/O error names
  // the file and offset; FailedPrecondition once the store is closed. After
  // an error every later call returns it again.
  absl::StatusOr<bool> Next();
  // The current record. Its payload is a view into the reader's buffers,
  // valid until the next call to Next or the reader's destruction.
  const RecordView& record() const { return record_; }
  // Where the block that holds the current record starts (what Truncate
  // and Release count in).
  uint64_t block() const { return block_; }

 private:
  friend class LogStructuredStore;
  using Extent = BlockIndex::Extent;

  // File bytes [start, end) holding blocks extents_[first, last), read in
  // reads of at most read_bytes, or one salvaged range (no reads: its
  // records are read one by one).
  struct Segment {
    uint64_t start = 0;
    uint64_t end = 0;
    size_t first = 0;
    size_t last = 0;
    bool salvaged = false;
    AlignedBuffer buffer;
    uint64_t submitted = 0;  // bytes [start, start + submitted) asked
    struct Read {
      uint64_t ticket = 0;
      uint64_t offset = 0;
      uint64_t len = 0;
    };
    std::deque<Read> reads;  // in flight, in file order
  };

  LogReader(LogStructuredStore* store, std::vector<Extent> extents,
            uint64_t from, const LogReaderOptions& options);

  // Starts reads until reads_in_flight are out or every block is asked.
  absl::Status Fill();
  // Waits for the front segment's reads, then turns it into records_.
  absl::Status LoadFront();
  absl::Status LoadSalvaged(const Extent& extent);
  // Waits for one read; a failure leaks the memory the kernel may still
  // write into.
  absl::Status Finish(Segment& segment);
  // A buffer of at least `bytes`, reused where one is free.
  absl::StatusOr<AlignedBuffer> TakeBuffer(size_t bytes);

  LogStructuredStore* store_;
  const std::vector<Extent> extents_;
  const uint64_t from_;
  const size_t read_bytes_;
  const size_t reads_in_flight_;
  size_t next_extent_ = 0;  // the first extent no segment holds yet
  size_t in_flight_ = 0;
  std::deque<Segment> segments_;  // in file order; the front is parsed
  std::vector<AlignedBuffer> free_;
  std::vector<RecordView> records_;
  std::vector<uint64_t> blocks_;  // records_[i]'s block starts at blocks_[i]
  uint64_t block_ = 0;
  std::vector<std::string> salvaged_;  // payloads of a salvaged range
  size_t next_record_ = 0;
  bool front_loaded_ = false;
  absl::Status failure_;
  RecordView record_;
};

}  // namespace lss

#endif  // LSS_LSS_LOG_READER_H_
