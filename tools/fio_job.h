// fio as peerbench's fourth peer: the device's own figures for the same
// workloads, from fio run as a subprocess with --output-format=json, on a
// file in the directory the other systems write to.

#ifndef LSS_TOOLS_FIO_JOB_H_
#define LSS_TOOLS_FIO_JOB_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace lss {

// Sequential O_DIRECT writes (the job ending with an fsync) or reads of the
// first `bytes` of `path`, 1 MiB requests, 8 in flight through io_uring, as
// tools/fio_baseline.sh runs them. Returns fio's bandwidth in MB/s.
absl::StatusOr<double> FioSequential(const std::string& path, uint64_t bytes,
                                     bool write);

// 4 KiB O_DIRECT writes at depth 1, each followed by an fdatasync
// (--fdatasync=1, psync engine), for `seconds`.
struct FioSyncedWrites {
  // Write + fdatasync pairs per second: fio's write IOPS, whose runtime
  // includes the fdatasyncs, so 1 / ops_per_s is the mean time per pair.
  double ops_per_s = 0;
  // fio reports the two calls' latencies apart: the write's completion
  // latency (write.clat_ns) and the fdatasync's (sync.lat_ns). A pair's p50
  // is taken as the sum of the two p50s; percentiles do not add exactly,
  // but the write's spread is small next to the sync's.
  double write_p50_us = 0;
  double sync_p50_us = 0;
  double p50_us() const { return write_p50_us + sync_p50_us; }
};
absl::StatusOr<FioSyncedWrites> FioSyncedWriteJob(const std::string& path,
                                                  double seconds);

// 4 KiB O_DIRECT random reads of the first `bytes` of `path` through
// io_uring, `depth` in flight, for `seconds`.
struct FioRandomReads {
  double iops = 0;
  // Total latency (fio's lat: submission + completion), what a caller of a
  // read waits; with io_uring the submission holds the device doorbell, a
  // VM exit here, so completion latency alone (clat) understates it.
  double p50_us = 0;
  double p99_us = 0;
  double clat_p50_us = 0;  // completion latency only
};
absl::StatusOr<FioRandomReads> FioRandomReadJob(const std::string& path,
                                                uint64_t bytes, int depth,
                                                double seconds);

}  // namespace lss

#endif  // LSS_TOOLS_FIO_JOB_H_
