"""Helpers shared by the script tests: run a training script in a temp dir, read its outputs."""

import glob
import os
import re
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


def checkpoint_of(cwd):
    """The checkpoint of the single run under cwd, loaded."""
    import torch

    paths = [p for p in glob.glob(os.path.join(single_run_dir(cwd), "*.cleanrl_model")) if "_best." not in p]
    assert len(paths) == 1, paths
    return paths[0], torch.load(paths[0], weights_only=True)  # tensors and plain data only


def assert_resume_is_exact(script, tiny_args, batch, tmp_path):
    """Train 3 iterations straight, and 1 iteration then --resume to 3: identical networks,
    optimisers, value normaliser and console lines (orders, success, returns) after iteration 1.
    Episodes must span the iteration boundary (tiny_args sets a short time limit) so that the
    environment state, not only the networks, has to be restored. The split run also evaluates
    after every iteration (--eval-every 1), which must not change what it learns either."""
    import torch

    straight, split = tmp_path / "straight", tmp_path / "split"
    straight.mkdir()
    split.mkdir()
    flags = list(tiny_args)  # every run saves a checkpoint at its end
    out_straight = run_script(script, flags + ["--total-timesteps", 3 * batch], straight)
    run_script(script, flags + ["--total-timesteps", batch, "--eval-every", 1], split)
    path, _ = checkpoint_of(split)
    out_resumed = run_script(
        script, flags + ["--total-timesteps", 3 * batch, "--resume", path, "--eval-every", 1], split
    )
    assert f"resumed {path} at iteration 1, global_step={batch}" in out_resumed
    evals = [line for line in out_resumed.splitlines() if line.startswith("evaluation at global_step=")]
    assert [line.split()[2] for line in evals] == [f"global_step={2 * batch}"]  # the 3rd: the final evaluation

    def iteration_lines(out):  # without the timing-dependent SPS, elapsed time and ETA
        return [re.sub(r" (SPS|elapsed|eta)=\S+", "", line) for line in out.splitlines() if line.startswith("iter ")]

    assert iteration_lines(out_resumed) == iteration_lines(out_straight)[1:]
    _, a = checkpoint_of(straight)
    _, b = checkpoint_of(split)
    assert a["global_step"] == b["global_step"] == 3 * batch and a["iteration"] == b["iteration"] == 3
    saved_state = ["actors", "critic", "value_norm", "obs_encoder", "state_encoder", "env"]
    saved_state += [key for key in a if key.startswith(("optimizer", "rng"))]  # every optimiser, every RNG
    assert "optimizer1" in saved_state and "rng0" in saved_state
    for key in saved_state:
        leaves_a, leaves_b = leaves(a[key]), leaves(b[key])
        assert len(leaves_a) == len(leaves_b) > 0, key
        for x, y in zip(leaves_a, leaves_b):
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, key


def leaves(tree):
    """Tensors and numbers of a nested dict / list (a state_dict), in a fixed order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree, key=str) for leaf in leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in leaves(item)]
    return [tree]
