"""Helpers shared by the script tests: run a training script in a temp dir, read its outputs."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, args, cwd):
    """Run ROOT/script with CLI args in cwd; returns stdout (fails the test with the log on error)."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"{script} {' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def event_tags(run_dir):
    """All scalar tags written to the TensorBoard event file(s) under run_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        acc = EventAccumulator(path)
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def single_run_dir(cwd):
    dirs = glob.glob(os.path.join(str(cwd), "runs", "*"))
    assert len(dirs) == 1, dirs
    return dirs[0]
