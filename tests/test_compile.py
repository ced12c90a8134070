"""--compile: the same results as eager mode, no graph breaks or recompiles, a clear error without a compiler."""

import glob
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 16, "--num-steps", 8, "--max-episode-steps", 6, "--total-timesteps", 256, "--eval-envs", 0]
TINY += ["--hidden-sizes", 16, 16, "--num-minibatches", 2, "--update-epochs", 2, "--critic-epochs", 2]
HAS_COMPILER = any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++"))


def logged_scalars(run_dir):
    """{tag: [values]} of a run's TensorBoard log, without the timing tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
    acc = EventAccumulator(path)
    acc.Reload()
    tags = [tag for tag in acc.Tags()["scalars"] if tag != "charts/SPS" and not tag.startswith("perf/")]
    return {tag: [event.value for event in acc.Scalars(tag)] for tag in tags}


def train(script, extra, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", TORCH_LOGS="graph_breaks,recompiles")
    cmd = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in TINY + extra]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (run_dir,) = glob.glob(os.path.join(str(cwd), "runs", "*"))
    return logged_scalars(run_dir), proc.stderr


@pytest.mark.parametrize("script", [mappo, happo])
def test_compile_without_a_cpp_compiler_is_refused_in_one_line(script, monkeypatch):
    monkeypatch.setattr(script.shutil, "which", lambda name: None)
    assert "--compile needs a C++ compiler on the PATH" in script.args_error(script.Args(compile=True))
    assert script.args_error(script.Args()) is None  # eager mode needs none


@pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_compiled_training_equals_eager_training(script, tmp_path):
    """Two iterations (rollout, GAE, actor and critic epochs, env step) with and without --compile:
    every logged scalar equal to float32 tolerance, and the compiled run without graph breaks or
    recompilations (each compiled function is traced once)."""
    (tmp_path / "eager").mkdir()
    (tmp_path / "compiled").mkdir()
    eager, _ = train(script, [], tmp_path / "eager")
    compiled, compile_log = train(script, ["--compile"], tmp_path / "compiled")
    assert "Graph break" not in compile_log and "Recompiling" not in compile_log, compile_log[-3000:]
    assert set(eager) == set(compiled) and len(eager["losses/value_loss"]) == 2
    for tag, values in eager.items():
        assert compiled[tag] == pytest.approx(values, rel=1e-3, abs=1e-5), tag
