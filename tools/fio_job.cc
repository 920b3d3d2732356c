#include "tools/fio_job.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "testing/process.h"

namespace lss {
namespace {

using Json = nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs one fio job on `path` and returns its entry of fio's "jobs" array.
// fio's output lands next to `path` (and goes with its directory).
absl::StatusOr<Json> RunFio(const std::string& path,
                            const std::vector<std::string>& job) {
  std::vector<std::string> argv = {
      "fio", "--name=peerbench", "--filename=" + path, "--output-format=json"};
  argv.insert(argv.end(), job.begin(), job.end());
  const std::string out = path + ".fio.json", err = path + ".fio.stderr";
  absl::StatusOr<int> status = testing::RunCommand(argv, out, err);
  if (!status.ok()) return status.status();
  const std::string command = absl::StrJoin(argv, " ");
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat(command, ": ",
                                            testing::WaitStatusString(*status),
                                            ": ", ReadAll(err), ReadAll(out)));
  }
  // fio may print notes before the JSON object.
  const std::string text = ReadAll(out);
  const size_t start = text.find('{');
  Json json = Json::parse(start == std::string::npos ? "" : text.substr(start),
                          nullptr, /*allow_exceptions=*/false);
  const Json::json_pointer first("/jobs/0");
  if (json.is_discarded() || !json.contains(first)) {
    return absl::InternalError(
        absl::StrCat(command, ": no job in fio's JSON output (", out, ")"));
  }
  Json result = json[first];
  if (result.value("error", 0) != 0) {
    return absl::InternalError(
        absl::StrCat(command, ": fio's job error ", result.value("error", 0)));
  }
  return result;
}

// The number at `pointer` (a JSON pointer) in a job's output.
absl::StatusOr<double> Number(const Json& job, const std::string& pointer) {
  const Json::json_pointer p(pointer);
  if (!job.contains(p) || !job[p].is_number()) {
    return absl::InternalError(
        absl::StrCat("fio's JSON output has no number at ", pointer));
  }
  return job[p].get<double>();
}

}  // namespace

absl::StatusOr<double> FioSequential(const std::string& path, uint64_t bytes,
                                     bool write) {
  absl::StatusOr<Json> job =
      RunFio(path, {absl::StrCat("--size=", bytes), "--direct=1",
                    "--ioengine=io_uring", write ? "--rw=write" : "--rw=read",
                    "--bs=1m", "--iodepth=8",
                    write ? "--end_fsync=1" : "--end_fsync=0"});
  if (!job.ok()) return job.status();
  absl::StatusOr<double> bw =
      Number(*job, write ? "/write/bw_bytes" : "/read/bw_bytes");
  if (!bw.ok()) return bw.status();
  return *bw / 1e6;
}

absl::StatusOr<FioSyncedWrites> FioSyncedWriteJob(const std::string& path,
                                                  double seconds) {
  // Time-based on a 1 GiB file: at a few thousand pairs a second the writes
  // stay in never-written (fallocated) space, as the log's appends do.
  absl::StatusOr<Json> job = RunFio(
      path,
      {"--size=1g", "--direct=1", "--ioengine=psync", "--rw=write", "--bs=4k",
       "--iodepth=1", "--fdatasync=1", "--time_based",
       absl::StrCat("--runtime=",
                    std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000)),
                    "ms")});
  if (!job.ok()) return job.status();
  FioSyncedWrites figures;
  for (auto [pointer, out] : {
           std::pair{"/write/iops", &figures.ops_per_s},
           std::pair{"/write/clat_ns/percentile/50.000000",
                     &figures.write_p50_us},
           std::pair{"/sync/lat_ns/percentile/50.000000", &figures.sync_p50_us},
       }) {
    absl::StatusOr<double> v = Number(*job, pointer);
    if (!v.ok()) return v.status();
    *out = v.value();
  }
  figures.write_p50_us /= 1000;
  figures.sync_p50_us /= 1000;
  return figures;
}

absl::StatusOr<FioRandomReads> FioRandomReadJob(const std::string& path,
                                                uint64_t bytes, int depth,
                                                double seconds) {
  absl::StatusOr<Json> job = RunFio(
      path,
      {absl::StrCat("--size=", bytes), "--direct=1", "--ioengine=io_uring",
       "--rw=randread", "--bs=4k", absl::StrCat("--iodepth=", depth),
       "--lat_percentiles=1", "--time_based",
       absl::StrCat("--runtime=",
                    std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000)),
                    "ms")});
  if (!job.ok()) return job.status();
  FioRandomReads figures;
  for (auto [pointer, out] : {
           std::pair{"/read/iops", &figures.iops},
           std::pair{"/read/lat_ns/percentile/50.000000", &figures.p50_us},
           std::pair{"/read/lat_ns/percentile/99.000000", &figures.p99_us},
           std::pair{"/read/clat_ns/percentile/50.000000",
                     &figures.clat_p50_us},
       }) {
    absl::StatusOr<double> v = Number(*job, pointer);
    if (!v.ok()) return v.status();
    *out = v.value();
  }
  figures.p50_us /= 1000;
  figures.p99_us /= 1000;
  figures.clat_p50_us /= 1000;
  return figures;
}

}  // namespace lss
