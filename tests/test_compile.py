"""--compile: the same results as eager mode, no graph breaks or recompiles; a clear error where it cannot run
(no C++ compiler, torch < 2, torch in a path with a space)."""

import glob
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

import envs
import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 16, "--num-steps", 8, "--max-episode-steps", 6, "--total-timesteps", 256, "--eval-envs", 0]
TINY += ["--hidden-sizes", 16, 16, "--num-minibatches", 2, "--update-epochs", 2, "--critic-epochs", 2]
COMPILE_PROBLEM = envs.compile_problem()  # None where torch.compile can run here


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
    return logged_scalars(run_dir), proc.stderr, proc.stdout


@pytest.mark.parametrize("script", [mappo, happo])
def test_compile_where_it_cannot_run_is_refused_in_one_line(script, monkeypatch, tmp_path):
    assert script.args_error(script.Args()) is None  # eager mode needs none of it
    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn, raising=False)  # as torch >= 2 has
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "--compile needs a C++ compiler on the PATH" in script.args_error(script.Args(compile=True))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(torch, "__file__", "/home/me/my envs/py311/lib/python3.11/site-packages/torch/__init__.py")
    message = script.args_error(script.Args(compile=True))
    assert "path with a space (/home/me/my envs/py311/" in message and "a torch bug" in message
    monkeypatch.delattr(torch, "compile")  # torch 1.13, the Isaac Gym stack's
    expected = (
        f"--compile needs torch >= 2.0 (torch.compile); this is torch {torch.__version__}, or leave --compile out"
    )
    assert script.args_error(script.Args(compile=True)) == expected
    with pytest.raises(ValueError, match="compile=True needs torch >= 2.0"):
        envs.make_env(2, compile=True)
    monkeypatch.undo()
    # The script itself, here without a C++ compiler on the PATH (or on torch 1.13): one line, nothing created.
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=str(tmp_path / "no-compilers-here"))
    script_path = os.path.join(ROOT, script.__name__ + ".py")
    proc = subprocess.run(
        [sys.executable, script_path, "--compile"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: --compile needs ") and proc.stderr.count("\n") == 1
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.skipif(COMPILE_PROBLEM is not None, reason=f"torch.compile {COMPILE_PROBLEM}")
@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_compiled_training_equals_eager_training(script, tmp_path):
    """Two iterations (rollout, GAE, actor and critic epochs, env step) with and without --compile:
    every logged scalar equal to float32 tolerance, and the compiled run without graph breaks or
    recompilations (each compiled function is traced once)."""
    (tmp_path / "eager").mkdir()
    (tmp_path / "compiled").mkdir()
    eager, _, _ = train(script, [], tmp_path / "eager")
    compiled, compile_log, console = train(script, ["--compile"], tmp_path / "compiled")
    lines = console.splitlines()  # said before the long first iteration, whose time gives no ETA
    first = next(k for k, line in enumerate(lines) if line.startswith("iter 1/"))
    assert any(line.startswith("compiling: ") for line in lines[:first]) and lines[first].endswith(" eta=?")
    assert "Graph break" not in compile_log and "Recompiling" not in compile_log, compile_log[-3000:]
    assert set(eager) == set(compiled) and len(eager["losses/value_loss"]) == 2
    for tag, values in eager.items():
        assert compiled[tag] == pytest.approx(values, rel=1e-3, abs=1e-5), tag
