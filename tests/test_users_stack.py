"""Checkpoints across the two supported stacks and the Isaac Gym workflow, on whichever stack runs the suite.

The users train on Python 3.8 with torch 1.13.1 (requirements-isaacgym-py38.txt); .ci/run runs this suite
there and on Python 3.11 with torch 2.13 (requirements.txt), and sets MAPUSH_OTHER_STACK_PYTHON to the
other stack's interpreter so that a checkpoint written by one is read by the other, both ways.
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, checkpoint_of

import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 4, "--num-steps", 4, "--max-episode-steps", 6, "--hidden-sizes", 16, 16]
TINY += ["--num-minibatches", 2, "--update-epochs", 2, "--critic-epochs", 2]
FAKE_ISAACGYM = os.path.join(ROOT, "tests", "fake_isaacgym_run.py")
OTHER_STACK = os.environ.get("MAPUSH_OTHER_STACK_PYTHON")


def run(python, args, cwd, launcher=()):
    """`python [launcher] args` in cwd; its stdout, or the test fails with its output."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("MAPUSH_ROOT", None)  # the fake Isaac Gym run uses the fake of MAPush
    cmd = [python, *launcher] + [str(a) for a in args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def version_of(python):
    return run(python, ["-c", "import sys, torch; print(sys.version.split()[0], torch.__version__)"], ROOT).strip()


@pytest.mark.parametrize("script", [mappo, happo])
def test_floats_survive_a_checkpoint_and_nothing_else_changes(script, tmp_path):
    """torch 1.13's weights_only loader refuses Python floats: they are saved as 0-d float64 tensors."""
    tree = {"args": {"lr": 5e-4, "clip": (0.5, float("inf")), "n": 3, "on": True, "name": "a", "none": None}}
    tree["optimizer0"] = {"state": {0: {"step": torch.tensor(7.0)}}, "param_groups": [{"betas": (0.9, 0.999)}]}
    path = str(tmp_path / "floats.pt")
    torch.save(script.floats_as_tensors(tree), path)
    raw = torch.load(path, weights_only=True)  # what any supported torch reads safely
    assert isinstance(raw["args"]["lr"], torch.Tensor) and raw["args"]["n"] == 3 and raw["args"]["name"] == "a"
    back = script.floats_as_tensors(raw, back=True)
    assert back["args"] == tree["args"] and back["optimizer0"]["param_groups"] == tree["optimizer0"]["param_groups"]
    step = back["optimizer0"]["state"][0]["step"]
    assert isinstance(step, torch.Tensor) and step.dtype == torch.float32  # a tensor stays a tensor


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_an_isaacgym_run_is_evaluated_by_its_printed_command_and_resumed(script, tmp_path):
    """Train with --backend isaacgym (the adapter over a fake of MAPush), then run the evaluation command
    the script prints, as printed, and resume the run: on this stack, in fresh processes."""
    flags = ["--backend", "isaacgym"] + TINY
    out = run(
        sys.executable, [os.path.join(ROOT, script)] + flags + ["--total-timesteps", 32], tmp_path, [FAKE_ISAACGYM]
    )
    (printed,) = re.findall(r"^evaluate with: (.*)$", out, re.MULTILINE)
    command = shlex.split(printed)
    assert command[:4] == [sys.executable, os.path.join(ROOT, script), "--backend", "isaacgym"]
    path = command[command.index("--eval-checkpoint") + 1]
    assert os.path.isabs(path) and path.startswith(str(tmp_path))
    # The printed command from another folder, with the stand-in for Isaac Gym before the script.
    (tmp_path / "elsewhere").mkdir()
    evaluated = run(command[0], command[1:], tmp_path / "elsewhere", [FAKE_ISAACGYM])
    metrics = re.search(r"evaluation of .* on 300 envs: \{'success_rate': ([\d.]+),", evaluated)
    assert metrics and float(metrics.group(1)) == pytest.approx(1 / 300)  # the fake's env 0 succeeds
    resumed = run(
        sys.executable,
        [os.path.join(ROOT, script)] + flags + ["--total-timesteps", 64, "--resume", path, "--eval-envs", 0],
        tmp_path,
        [FAKE_ISAACGYM],
    )
    assert f"resumed {path} at iteration 2, global_step=32" in resumed and "iter 4/4 " in resumed


@pytest.mark.skipif(not OTHER_STACK, reason="one stack here: .ci/run sets MAPUSH_OTHER_STACK_PYTHON to the other's")
@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_a_checkpoint_of_the_other_stack_is_evaluated_and_resumed_here(script, tmp_path):
    assert version_of(OTHER_STACK) != version_of(sys.executable)  # really the other stack
    run(OTHER_STACK, [os.path.join(ROOT, script)] + TINY + ["--total-timesteps", 16, "--eval-envs", 0], tmp_path)
    path, _ = checkpoint_of(tmp_path)
    out = run(sys.executable, [os.path.join(ROOT, script), "--eval-checkpoint", path, "--eval-envs", 3], tmp_path)
    assert "success_rate" in out
    out = run(
        sys.executable, [os.path.join(ROOT, script)] + TINY + ["--total-timesteps", 32, "--resume", path], tmp_path
    )
    assert f"resumed {path} at iteration 1, global_step=16" in out and "iter 2/2 " in out


@pytest.mark.skipif(
    importlib.util.find_spec("openrl") is None,
    reason="openrl not installed (the users' stack has it: requirements-isaacgym-py38.txt)",
)
def test_openrl_circular_import_is_off_mapush_s_import_path(tmp_path):
    """docs/isaacgym.md: OpenRL 0.2.0's callbacks module cannot be imported first, while the module that
    MAPush's mqe imports for every task loads."""
    run(sys.executable, ["-c", "from openrl.modules.ppo_module import PPOModule"], tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", "import openrl.utils.callbacks.callbacks"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "partially initialized module 'openrl.utils.callbacks.callbacks'" in proc.stderr
