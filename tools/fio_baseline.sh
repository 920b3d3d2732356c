#!/usr/bin/env bash
# Raw-device figures to put next to our benchmarks: fio with O_DIRECT on the
# same file system, median of three runs of each job. Write jobs end with an
# fsync, as every throughput figure of ours ends with one (the host caches
# writes). Usage:
#   tools/fio_baseline.sh [dir] [block size] [iodepth]    (defaults: $TMPDIR or /tmp, 1m, 8)
set -euo pipefail
dir=${1:-${TMPDIR:-/tmp}}
bs=${2:-1m}
depth=${3:-8}
file="$dir/fio_baseline.$$"
trap 'rm -f "$file"' EXIT

median() { sort -n | sed -n 2p; }

run() {  # rw end_fsync -> MiB/s
  for _ in 1 2 3; do
    fio --name=baseline --filename="$file" --size=1g --direct=1 \
      --ioengine=io_uring --rw="$1" --bs="$bs" --iodepth="$depth" \
      --end_fsync="$2" \
      --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]
print(round((j["write"]["bw_bytes"] + j["read"]["bw_bytes"]) / 2**20))'
  done | median
}

# fio lays the file out before its first write job, so writes are overwrites.
echo "fio write bs=$bs iodepth=$depth: $(run write 1) MiB/s"
echo "fio read  bs=$bs iodepth=$depth: $(run read 0) MiB/s"
