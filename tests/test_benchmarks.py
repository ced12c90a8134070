"""The learning-run launcher parses the scripts' console output, skips finished runs and plots."""

import csv
import importlib.util
import os
import subprocess
import sys

from conftest import ROOT


def test_learning_launcher_records_resumes_and_plots(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "learning_runs.py"), "--configs", "happo_mean"]
    cmd += ["--seeds", "3", "--total-timesteps", "128", "--results-dir", str(tmp_path), "--"]
    cmd += [
        "--num-envs",
        "8",
        "--num-steps",
        "8",
        "--max-episode-steps",
        "6",
        "--eval-envs",
        "4",
        "--hidden-sizes",
        "8",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    first = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = list(csv.DictReader(open(tmp_path / "happo_mean__seed3.csv")))
    train = [r for r in rows if r["kind"] == "train"]
    assert [int(r["global_step"]) for r in train] == [64, 128]
    assert all(r["success_rate"] != "" and int(r["episodes"]) > 0 for r in train)  # 6-step episodes end
    assert [r["kind"] for r in rows if r["kind"].startswith("eval")] == [
        "eval",
        "eval_finish_time_s",
        "eval_collaboration",
    ]
    assert (tmp_path / "summary.md").exists()
    if importlib.util.find_spec("matplotlib") is not None:  # a benchmark-only dependency
        assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    again = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert "skip happo_mean seed 3: finished" in again.stdout
