"""Turns the benchmarks' --json output into PNG plots.

    ./bazelw run //tools:plots -- --out=docs/plots [--input=DIR]

Reads from DIR (default docs/plots/data), each file optional:
  lssbench.jsonl   one lssbench --json line (its last stdout line) per run
  peerbench.json   peerbench --json (its last stdout line)
  fio.json         {"write_mb_per_s": .., "read_mb_per_s": .., "source": ..}
                   fio's sequential figures (tools/fio_baseline.sh)
  pagebench.json   pagebench --json
  source.txt       where the data came from; printed under every plot

and writes one PNG per plot whose data is there, saying on stderr which it
skipped and why. Relative paths are taken from the workspace under
`bazel run` (BUILD_WORKSPACE_DIRECTORY), else from the current directory.
"""

import argparse
import collections
import json
import math
import os
import random
import statistics
import sys

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

# Peers in peerbench's order, and their colours in every plot.
SYSTEMS = ["ours", "rocksdb", "leveldb", "fio"]
COLOURS = {"ours": "C0", "rocksdb": "C1", "leveldb": "C2", "fio": "C7"}
LABELS = {"ours": "this store", "rocksdb": "RocksDB", "leveldb": "LevelDB",
          "fio": "fio"}


class Data:
  """Whatever benchmark output DIR holds."""

  def __init__(self, directory):
    self.lssbench = []
    path = os.path.join(directory, "lssbench.jsonl")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        self.lssbench = [json.loads(line) for line in f if line.strip()]
    self.peerbench = _load(os.path.join(directory, "peerbench.json"))
    self.fio = _load(os.path.join(directory, "fio.json"))
    self.pagebench = _load(os.path.join(directory, "pagebench.json"))
    self.source = ""
    path = os.path.join(directory, "source.txt")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        self.source = f.read().strip()

  def fio_mb_per_s(self, direction):
    """fio's sequential MB/s, and what it is, or (None, None)."""
    key = direction + "_mb_per_s"
    if self.fio and key in self.fio:
      return self.fio[key], "fio " + direction
    medians = (self.peerbench or {}).get("medians", {})
    metric = "w1_mb_per_s" if direction == "write" else "w4_mb_per_s"
    if "fio" in medians.get(metric, {}):
      return medians[metric]["fio"], "fio " + direction + " (peerbench)"
    return None, None


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _finish(fig, data, out, name):
  if data.source:
    fig.text(0.01, 0.005, data.source, fontsize=7, color="0.4",
             va="bottom", wrap=True)
  # Room for the footnote: about 0.035 of the figure per line of it.
  lines = sum(1 + len(l) // 160 for l in data.source.splitlines()) \
      if data.source else 0
  fig.tight_layout(rect=(0, min(0.4, 0.035 * lines), 1, 1))
  path = os.path.join(out, name)
  # No timestamp or version in the file: the same data makes the same file.
  fig.savefig(path, dpi=100, metadata={"Software": None})
  plt.close(fig)
  return path


def plot_append(data, out):
  """Append MB/s against record size (one line per thread count) and
  against threads (one line per record size), next to fio's write."""
  # Default policy and durability only, so a median never mixes settings.
  runs = [r for r in data.lssbench
          if "append_mb_per_s" in r and "record_bytes" in r and
          "threads" in r and
          r.get("policy", "tail_localized") == "tail_localized" and
          r.get("durability", "on_wait") in ("on_wait", "none")]
  if not runs:
    return None, "no lssbench runs (lssbench.jsonl)"
  by = {}
  for r in runs:
    by.setdefault((r["threads"], r["record_bytes"]), []).append(
        r["append_mb_per_s"])
  medians = {k: statistics.median(v) for k, v in by.items()}
  threads = sorted({t for t, _ in medians})
  sizes = sorted({s for _, s in medians})
  fio, fio_label = data.fio_mb_per_s("write")

  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
  for t in threads:
    xs = [s for s in sizes if (t, s) in medians]
    left.plot(xs, [medians[(t, s)] for s in xs], marker="o",
              label=f"{t} thread{'s' if t != 1 else ''}")
  left.set_xscale("log", base=2)
  left.set_xticks(sizes)
  left.set_xticklabels([_size(s) for s in sizes])
  left.set_xlabel("record size")
  left.set_title("append throughput against record size\n"
                 "(median of runs; default policy and durability)")
  for s in sizes:
    xs = [t for t in threads if (t, s) in medians]
    right.plot(xs, [medians[(t, s)] for t in xs], marker="o",
               label=f"{_size(s)} records")
  right.set_xticks(threads)
  right.set_xlabel("threads")
  right.set_title("append throughput against threads")
  for ax in (left, right):
    if fio is not None:
      ax.axhline(fio, color=COLOURS["fio"], linestyle="--", label=fio_label)
    ax.set_ylabel("MB/s (to the final sync)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return _finish(fig, data, out, "append_throughput.png"), None


def plot_durable(data, out):
  """W3: durable appends/s and p99 against threads, per system."""
  medians = (data.peerbench or {}).get("medians", {})
  threads = sorted((data.peerbench or {}).get("w3_threads", []))
  threads = [t for t in threads if f"w3_t{t}_appends_per_s" in medians]
  if not threads:
    return None, "no W3 figures in peerbench.json"
  fig, (rate, p99) = plt.subplots(1, 2, figsize=(11, 4.5))
  for system in SYSTEMS:
    xs = [t for t in threads
          if system in medians.get(f"w3_t{t}_appends_per_s", {})]
    if not xs:
      continue
    style = {"marker": "o", "color": COLOURS[system],
             "label": LABELS[system]}
    rate.plot(xs, [medians[f"w3_t{t}_appends_per_s"][system] for t in xs],
              **style)
    ys = [medians.get(f"w3_t{t}_p99_us", {}).get(system) for t in xs]
    if all(y is not None for y in ys):
      p99.plot(xs, [y / 1000 for y in ys], **style)
  fio_ops = medians.get("w3_fio_ops_per_s", {}).get("fio")
  if fio_ops is not None:
    rate.axhline(fio_ops, color=COLOURS["fio"], linestyle="--",
                 label="fio 4 KiB write + fdatasync")
  rate.set_title("durable 128 B appends (put, then wait until durable)")
  rate.set_ylabel("appends/s")
  p99.set_title("append-to-durable latency, p99")
  p99.set_ylabel("ms")
  for ax in (rate, p99):
    ax.set_xscale("log", base=2)
    ax.set_xticks(threads)
    ax.set_xticklabels([str(t) for t in threads])
    ax.set_xlabel("threads")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return _finish(fig, data, out, "durable_appends.png"), None


def read_back_panels(data):
  """The read-back plot's panels, [(title, unit, [(label, value, colour)])],
  or (None, why not)."""
  bars = []  # (label, MB/s, colour)
  # Runs that dropped the cache and ran fio on their log; runs with
  # --device=false carry zeros for fio and for random reads.
  cold = [r for r in data.lssbench if "reader_mb_per_s" in r and
          r.get("fio_read_mb_per_s", 0) > 0]
  scans = [r["recovery_mb_per_s"] for r in data.lssbench
           if "recovery_mb_per_s" in r]
  if cold:
    # Runs that drop the cache and time the reader and fio on the same log.
    for key, label in (("recovery_mb_per_s",
                        "this store: Open visiting\nevery record (cold)"),
                       ("reader_mb_per_s", "this store: LogReader\n(cold)")):
      bars.append((label, statistics.median(r[key] for r in cold),
                   COLOURS["ours"]))
    bars.append(("fio sequential read\n(lssbench, same runs)",
                 statistics.median(r["fio_read_mb_per_s"] for r in cold),
                 COLOURS["fio"]))
  elif scans:
    # lssbench reads the log it just wrote: the page cache is warm.
    bars.append(("this store: recovery scan\n(lssbench, cache warm)",
                 statistics.median(scans), COLOURS["ours"]))
  w4 = (data.peerbench or {}).get("medians", {}).get("w4_mb_per_s", {})
  for system in SYSTEMS:
    if system in w4 and system != "fio":
      bars.append((f"{LABELS[system]}: reopen + read\n(peerbench W4)",
                   w4[system], COLOURS[system]))
  if not bars:
    return None, ("no read-back figures (lssbench recovery_mb_per_s, "
                  "peerbench w4_mb_per_s)")
  # fio from the same peerbench run as W4 when there is one.
  if "fio" in w4:
    fio, fio_label = w4["fio"], "fio read\n(peerbench W4)"
  else:
    fio, fio_label = data.fio_mb_per_s("read")
  if fio is not None:
    bars.append((fio_label, fio, COLOURS["fio"]))
  # Random reads by address, next to fio's 4 KiB random reads at the same
  # depth on the same log, when the runs have them.
  random = [r for r in cold if r.get("read_1_per_s", 0) > 0 and
            r.get("read_many_per_s", 0) > 0]
  panels = [("reading the log back", "MB/s", bars)]
  if random:
    med = lambda key: statistics.median(r[key] for r in random)
    depth = int(med("read_outstanding")) if "read_outstanding" in random[0] \
        else 32
    panels.append(("random reads by address", "reads/s", [
        ("Read, one at a time", med("read_1_per_s"), COLOURS["ours"]),
        ("fio randread\ndepth 1", med("fio_randread_1_iops"), COLOURS["fio"]),
        (f"ReadMany,\n{depth} outstanding at most", med("read_many_per_s"),
         COLOURS["ours"]),
        (f"fio randread\ndepth {depth}",
         med("fio_randread_outstanding_iops"), COLOURS["fio"]),
    ]))
  return panels, None


def plot_read_back(data, out):
  """Read-back MB/s: lssbench's recovery scan and peerbench's W4, next to
  fio's read; random reads by address next to fio's."""
  panels, why_not = read_back_panels(data)
  if panels is None:
    return None, why_not
  fig, axes = plt.subplots(
      1, len(panels), figsize=(13 + 5 * (len(panels) - 1), 5),
      gridspec_kw={"width_ratios": [len(p[2]) for p in panels]})
  if len(panels) == 1:
    axes = [axes]
  for ax, (title, unit, items) in zip(axes, panels):
    ax.bar(range(len(items)), [b[1] for b in items],
           color=[b[2] for b in items])
    ax.set_xticks(range(len(items)))
    ax.set_xticklabels([b[0] for b in items], fontsize=7)
    for i, b in enumerate(items):
      ax.annotate(f"{b[1]:,.0f}", (i, b[1]), ha="center", va="bottom",
                  fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
  return _finish(fig, data, out, "read_back.png"), None


def plot_write_amplification(data, out):
  """Write amplification against utilization, from pagebench."""
  runs = [r for r in (data.pagebench or {}).get("runs", [])
          if "utilization" in r and "write_amplification" in r and
          r.get("cleaning", "on") == "on"]
  if not runs:
    return None, "no pagebench data (pagebench.json)"
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for label in sorted({_workload(r) for r in runs}):
    points = sorted((r["utilization"], r["write_amplification"]) for r in runs
                    if _workload(r) == label)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
            label=label)
  model = [u / 100 for u in range(30, 91, 5)]
  ax.plot(model, [_fifo_model(u) for u in model], linestyle="--",
          color="gray", label="FIFO cleaning model (memoryless updates)")
  greedy = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9]
  ax.plot(greedy, [_greedy_model(u) for u in greedy], linestyle=":",
          marker="x", color="black",
          label="greedy cleaning, simulated (uniform updates)")
  ax.legend(fontsize=8)
  ax.set_xlabel("utilization")
  ax.set_ylabel("write amplification")
  ax.set_title("write amplification against utilization")
  ax.grid(alpha=0.3)
  return _finish(fig, data, out, "write_amplification.png"), None


def _workload(run):
  dist = run.get("distribution", "uniform")
  # Runs from before the policy was a flag cleaned oldest first.
  policy = run.get("cleaner_policy", "oldest").replace("_", "-")
  if run.get("flush_every") == 1 and run.get("max_flushed_pieces") == 1:
    return f"{dist}, {policy}, every update a whole-page flush"
  return f"{dist}, {policy}"


def _fifo_model(u):
  """Write amplification of a FIFO cleaner at utilization u when each write
  replaces a random page: the live fraction s of the head region solves
  s = exp(-(1 - s) / u), and each byte written costs 1 / (1 - s)."""
  s = 0.0
  for _ in range(200):
    s = math.exp(-(1 - s) / u)
  return 1 / (1 - s)


def _greedy_model(u, segments=128, per_segment=64, rounds=12, seed=1):
  """Write amplification of greedy cleaning at utilization u, simulated:
  u x segments x per_segment pages, each update rewrites a random page at
  the tail; when fewer than two segments are free, the segment with the
  fewest live pages is cleaned (its live pages rewritten at the tail).
  Counted after two passes' worth of warm-up updates."""
  rng = random.Random(seed)
  pages = int(u * segments * per_segment)
  members = [set() for _ in range(segments)]
  where = {}
  free = collections.deque(range(segments))
  closed = set()
  tail = {"segment": free.popleft(), "used": 0}

  def write(page):
    if tail["used"] == per_segment:
      closed.add(tail["segment"])
      tail["segment"] = free.popleft()
      tail["used"] = 0
    if page in where:
      members[where[page]].discard(page)
    members[tail["segment"]].add(page)
    where[page] = tail["segment"]
    tail["used"] += 1

  def clean():
    victim = min(closed, key=lambda seg: len(members[seg]))
    closed.discard(victim)
    moved = list(members[victim])
    for page in moved:
      write(page)
    free.append(victim)
    return len(moved)

  for page in range(pages):
    write(page)
  updates = relocated = 0
  for i in range(pages * rounds):
    counted = i >= 2 * pages
    if tail["used"] == per_segment:
      while len(free) < 2:
        moved = clean()
        relocated += moved if counted else 0
    write(rng.randrange(pages))
    updates += 1 if counted else 0
  return (updates + relocated) / updates


PLOTS = [plot_append, plot_durable, plot_read_back, plot_write_amplification]


def _size(n):
  for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
    if n >= scale and n % scale == 0:
      return f"{n // scale} {unit}"
  return f"{n} B"


def _resolve(path):
  base = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
  return os.path.join(base, path)  # an absolute path stays as it is


def render(input_dir, out_dir, log=sys.stderr):
  """Writes every plot the data allows; returns the paths written."""
  data = Data(input_dir)
  os.makedirs(out_dir, exist_ok=True)
  written = []
  for plot in PLOTS:
    path, why = plot(data, out_dir)
    if path:
      written.append(path)
      print(f"plots: wrote {path}", file=log)
    else:
      print(f"plots: skipped {plot.__name__[5:]}: {why}", file=log)
  return written


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="directory for the PNGs")
  parser.add_argument("--input", default="docs/plots/data",
                      help="directory of benchmark JSON")
  args = parser.parse_args(argv)
  input_dir = _resolve(args.input)
  if not os.path.isdir(input_dir):
    parser.error(f"--input={args.input}: no such directory")
  written = render(input_dir, _resolve(args.out))
  return 0 if written else 1


if __name__ == "__main__":
  sys.exit(main())
