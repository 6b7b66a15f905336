"""A small run of bench/public_statistics.py: the benchmark still runs end to end (it
fills a database, serves the page and the same-size static file, and recomputes a year).
Its timings and targets are for docs/benchmarks.md, not for this test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_public_statistics_small_run_prints_both_ratios():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "public_statistics.py"), "--cases", "3000", "--db", "sqlite", "--runs", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert run.returncode in (0, 1), run.stderr[-3000:]
    assert "ratios: page/static" in run.stdout and "recompute/bare" in run.stdout
    assert not (ROOT / "whistle" / "static" / "_bench_same_size.html").exists()
