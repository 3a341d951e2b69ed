"""benchmarks/scan.py and scan_check.py, the GPU check's first two steps, run end to end on CPU."""

import json

from benchmarks import scan, scan_check


def test_scan_table(tmp_path):
  out = tmp_path / "scan.json"
  scan.main(["--small", "--impls", "reference,sequential,auto", "--modes", "fwd", "--reps", "2",
             "--channels", "16", "--state", "4", "--out", str(out)])
  result = json.loads(out.read_text())
  rows = result["rows"]
  assert [(r["batch"], r["length"], r["impl"]) for r in rows] == [
      (b, l, impl) for b, l in scan.SMALL_SHAPES for impl in ("reference", "sequential", "auto")]
  for shape in scan.SMALL_SHAPES:
    ratios = [r["ratio_to_fastest"] for r in rows if (r["batch"], r["length"]) == shape]
    assert min(ratios) == 1.0 and all(r["seconds"] > 0 for r in rows)
  assert len(result["targets"]) == len(scan.SMALL_SHAPES)  # auto / fastest, fwd, per shape


def test_scan_check_passes_in_interpret_mode(tmp_path):
  out = tmp_path / "check.json"
  assert scan_check.main(["--small", "--out", str(out)]) == 0
  checks = json.loads(out.read_text())["checks"]
  assert len(checks) == 2 and all(c["ok"] for c in checks)
  assert all(0 < max(c["errors"].values()) <= c["tol"] for c in checks)


def test_timed_calls_count_every_call():
  calls = []
  assert scan.timed(lambda: calls.append(1) or 0.0, 7) >= 0
  assert len(calls) == 7
  assert scan.calls_per_sync(lambda: 0.0, min_time=1.0) == 1000  # near-free calls: the cap
