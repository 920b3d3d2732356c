"""Renders every plot from the samples in tools/testdata and checks that
each file is a PNG (signature, then an IHDR chunk with a real size); a plot
without data is skipped, not drawn empty."""

import io
import json
import os
import shutil
import struct
import tempfile
import unittest

from tools import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
  """(width, height) of a PNG file; raises AssertionError if it is not one."""
  with open(path, "rb") as f:
    head = f.read(24)
  assert head[:8] == PNG_SIGNATURE, f"{path}: not a PNG signature"
  length, kind = struct.unpack(">I4s", head[8:16])
  assert kind == b"IHDR" and length == 13, f"{path}: no IHDR chunk first"
  return struct.unpack(">II", head[16:24])


class PlotsTest(unittest.TestCase):

  def setUp(self):
    self.testdata = os.path.join(os.path.dirname(__file__), "testdata")
    self.out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

  def render(self, input_dir):
    log = io.StringIO()
    written = plots.render(input_dir, self.out, log=log)
    return {os.path.basename(p) for p in written}, log.getvalue()

  def test_every_plot_with_data_is_a_png(self):
    written, log = self.render(self.testdata)
    self.assertEqual(written, {"append_throughput.png",
                               "durable_appends.png", "read_back.png",
                               "write_amplification.png"})
    for name in written:
      width, height = png_size(os.path.join(self.out, name))
      self.assertGreater(width, 400, name)
      self.assertGreater(height, 200, name)
    self.assertNotIn("skipped", log)

  def test_pagebench_data_draws_its_plot(self):
    data = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    with open(os.path.join(data, "pagebench.json"), "w") as f:
      json.dump({"runs": [{"utilization": u, "write_amplification": w}
                          for u, w in ((0.5, 1.4), (0.8, 2.9))]}, f)
    written, _ = self.render(data)
    self.assertEqual(written, {"write_amplification.png"})
    png_size(os.path.join(self.out, "write_amplification.png"))

  def test_the_greedy_model_matches_the_analytic_figures(self):
    # Uniform updates: greedy cleaning is close to the FIFO model (the
    # issue's targets, 1.3 at 0.5 and 2.3 at 0.75, come from it), and
    # write amplification grows with utilization.
    for u in (0.5, 0.75):
      self.assertAlmostEqual(plots._greedy_model(u), plots._fifo_model(u),
                             delta=0.1)
    self.assertLess(plots._greedy_model(0.75), 2.3)
    self.assertLess(plots._greedy_model(0.3), plots._greedy_model(0.6))

  def test_missing_fields_are_skipped(self):
    # lssbench lines without a read-back figure, and no peerbench: the
    # append plot still draws, the others are skipped with the reason.
    data = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    with open(os.path.join(self.testdata, "lssbench.jsonl")) as f, \
         open(os.path.join(data, "lssbench.jsonl"), "w") as g:
      for line in f:
        run = json.loads(line)
        del run["recovery_mb_per_s"]
        g.write(json.dumps(run) + "\n")
    written, log = self.render(data)
    self.assertEqual(written, {"append_throughput.png"})
    self.assertIn("skipped durable: no W3 figures", log)
    self.assertIn("skipped read_back: no read-back figures", log)

  def test_read_back_takes_only_runs_that_measured_the_device(self):
    # A run with --device=false has zeros where fio and random reads would
    # be; they must not pull the medians down.
    data = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    measured = {"recovery_mb_per_s": 900, "reader_mb_per_s": 800,
                "fio_read_mb_per_s": 1000, "read_1_per_s": 10000,
                "read_many_per_s": 50000, "fio_randread_1_iops": 12000,
                "fio_randread_outstanding_iops": 60000,
                "read_outstanding": 32}
    unmeasured = dict.fromkeys(measured, 0)
    unmeasured.update(recovery_mb_per_s=2000, reader_mb_per_s=2000)
    with open(os.path.join(data, "lssbench.jsonl"), "w") as f:
      for run in (measured, unmeasured, unmeasured):
        f.write(json.dumps(run) + "\n")
    panels, _ = plots.read_back_panels(plots.Data(data))
    values = {label: value for _, _, items in panels
              for label, value, _ in items}
    self.assertEqual(values["fio sequential read\n(lssbench, same runs)"],
                     1000)
    self.assertEqual(values["this store: LogReader\n(cold)"], 800)
    self.assertEqual(values["Read, one at a time"], 10000)
    self.assertEqual(values["fio randread\ndepth 32"], 60000)

  def test_an_empty_input_draws_nothing_and_fails(self):
    empty = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    self.assertEqual(plots.main(["--input", empty, "--out", self.out]), 1)
    self.assertEqual(os.listdir(self.out), [])

  def tearDown(self):
    shutil.rmtree(self.out, ignore_errors=True)


if __name__ == "__main__":
  unittest.main()
