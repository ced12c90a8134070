"""Habits of real use that must not lose work or mislead: a console whose reader goes away, a closed
terminal, a full disk, W&B, flags that cannot apply, one-sample batches, failures before training."""

import glob
import importlib.util
import os
import resource
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, checkpoint_of, run_script, single_run_dir

TINY = ["--num-envs", 8, "--num-steps", 8, "--max-episode-steps", 6, "--eval-envs", 2, "--hidden-sizes", 16]
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
needs_wandb = pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")


def start(script, args, cwd, **popen):
    cmd = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args]
    return subprocess.Popen(cmd, cwd=cwd, env=popen.pop("env", ENV), text=True, **popen)


def run(script, args, cwd, env=ENV, **popen):
    cmd = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **popen)


def read_until(stream, prefix):
    """Lines of a text stream up to and including the first that starts with prefix."""
    lines = []
    for line in stream:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError("".join(lines))


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_a_reader_that_goes_away_costs_nothing(tmp_path, script):
    """`| head -n 3`: the run goes on to its end and saves (before: BrokenPipeError at the 4th line, no
    checkpoint). `| tee log`, then Ctrl-C, which also ends tee: the run saves and the resume command
    reaches stderr (before: BrokenPipeError in the stop message, exit 1, no checkpoint)."""
    head = start(script, TINY + ["--total-timesteps", 640], tmp_path / ".", stdout=subprocess.PIPE)
    read_until(head.stdout, "iter 1/")
    head.stdout.close()  # head has printed its lines and exited
    assert head.wait(timeout=300) == 0
    checkpoint_of(tmp_path)  # the end of the run: model saved

    teed = tmp_path / "teed"
    teed.mkdir()
    tee = start(script, TINY + ["--total-timesteps", 64000], teed, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    read_until(tee.stdout, "iter 2/")
    tee.stdout.close()  # Ctrl-C ends tee, then reaches the run
    tee.send_signal(signal.SIGINT)
    stderr = tee.communicate(timeout=120)[1]
    assert tee.returncode == 130 and "Traceback" not in stderr, stderr
    path, checkpoint = checkpoint_of(teed)
    assert "Ctrl-C: saving after this iteration" in stderr and "stopped; checkpoint saved. Continue with:" in stderr
    resume = shlex.split(stderr.strip().splitlines()[-1])
    assert resume[-2:] == ["--resume", os.path.relpath(path, teed)] and checkpoint["iteration"] >= 2


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_a_closed_terminal_saves_and_says_how_to_resume(tmp_path):
    """SIGHUP (a terminal or SSH session closed without nohup or tmux), before: exit 129, no message,
    no save, a stale run.lock."""
    proc = start("mappo_mapush.py", TINY + ["--total-timesteps", 64000], tmp_path, stdout=subprocess.PIPE)
    lines = read_until(proc.stdout, "iter 2/")
    proc.send_signal(signal.SIGHUP)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGHUP and "SIGHUP: saving after this iteration" in out, out
    path, checkpoint = checkpoint_of(tmp_path)
    assert checkpoint["iteration"] >= 2 and shlex.split(out.strip().splitlines()[-1])[-1] == os.path.relpath(
        path, tmp_path
    )
    out = run_script("mappo_mapush.py", TINY + ["--resume", path, "--total-timesteps", 64 * 4], tmp_path)
    assert "iter 4/4" in out  # the lock went with the process


def limit_file_size():  # in the child: writes beyond 300 kB fail (EFBIG), as on a full disk (ENOSPC)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_a_failed_save_names_the_disk_and_training_goes_on(tmp_path):
    """A checkpoint (~1 MB with 256-wide layers) that cannot be written (EFBIG here, ENOSPC on a full disk):
    one warning per save with the free space of the disk, no half-written file, training goes on; the end
    says the model is not saved. Before: torch's `unexpected pos` traceback at the first save (on torch
    1.13 an abort), the run lost, a .tmp file left."""
    flags = TINY + ["--hidden-sizes", 256, 256, "--total-timesteps", 128, "--checkpoint-minutes", 1e-9]
    proc = run("mappo_mapush.py", flags, tmp_path, preexec_fn=limit_file_size)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and "iter 2/2 " in proc.stdout  # after each iteration and at the end
    assert "not saved (File too large); " in warnings[0] and " GB free on the disk of " in warnings[0], warnings[0]
    assert proc.stderr.strip().startswith("error: the trained model is not saved (the warning above says why)")
    assert not glob.glob(str(tmp_path / "runs/*/*.tmp"))


@needs_wandb
def test_wandb_logs_each_scalar_once_and_says_an_offline_run_does_not_resume(tmp_path):
    """W&B's folder inside the run folder made it read its own copies of the event file: each scalar
    twice (and TensorBoard saw 4 event files). An offline run cannot be resumed: a note says so."""
    env = dict(ENV, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = run("mappo_mapush.py", TINY + ["--total-timesteps", 128, "--track"], tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    run_dir = single_run_dir(tmp_path)
    assert len(glob.glob(f"{run_dir}/**/events.out.tfevents.*", recursive=True)) == 1
    assert glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "*.wandb"))  # W&B's own copy, in ./wandb
    path, _ = checkpoint_of(tmp_path)
    proc = run("mappo_mapush.py", TINY + ["--total-timesteps", 192, "--track", "--resume", path], tmp_path, env=env)
    assert proc.returncode == 0 and "note: W&B cannot resume an offline run" in proc.stdout, proc.stderr


@needs_wandb
@pytest.mark.parametrize(
    "flags, env, message",
    [
        (["--track"], {"WANDB_MODE": "online", "HOME": "{tmp}"}, "error: --track: W&B did not start (No API key"),
        (["--track", "--exp-name", "a:b"], {"WANDB_MODE": "offline"}, "error: --track: W&B did not start (Run ID"),
    ],
)
def test_wandb_failing_to_start_is_one_line_and_leaves_no_run_folder(tmp_path, flags, env, message):
    env = {key: value.format(tmp=tmp_path) for key, value in env.items()}
    env = dict({k: v for k, v in ENV.items() if not k.startswith("WANDB_")}, **env)
    proc = run("happo_mapush.py", TINY + ["--total-timesteps", 64] + flags, tmp_path, env=env)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr and not glob.glob(str(tmp_path / "runs" / "*"))


def test_num_envs_beyond_memory_is_one_line_before_the_run_folder(tmp_path):
    proc = run("mappo_mapush.py", ["--num-envs", 2_000_000_000, "--eval-envs", 0], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: --num-envs 2000000000 x --num-steps 64 does not fit in cpu memory (")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "script, flags",
    [
        ("happo_mapush.py", []),  # before: "diverged: factor/position1/std, factor/final/std not finite"
        ("mappo_mapush.py", ["--value-target", "team-sum"]),  # before: "diverged: losses/explained_variance"
    ],
)
def test_a_batch_of_one_env_step_is_no_divergence(tmp_path, script, flags):
    """The std or variance of one sample is undefined (nan); it is logged as such, and nothing diverged."""
    one_step = ["--num-envs", 1, "--num-steps", 1, "--num-minibatches", 1, "--total-timesteps", 2]
    out = run_script(script, one_step + ["--eval-envs", 0, "--hidden-sizes", 8] + flags, tmp_path)
    assert "iter 2/2 " in out


def test_eval_checkpoint_says_the_task_flags_it_does_not_use(tmp_path):
    run_script("mappo_mapush.py", TINY + ["--total-timesteps", 64, "--eval-envs", 0], tmp_path)
    path, _ = checkpoint_of(tmp_path)
    out = run_script(
        "mappo_mapush.py", ["--eval-checkpoint", path, "--eval-envs", 2, "--max-episode-steps", 50], tmp_path
    )
    assert "note: --env-options and --max-episode-steps are not used: a checkpoint is evaluated on its own task" in out


def test_the_printed_resume_command_after_resume_equals_path_has_one_resume(tmp_path):
    run_script("happo_mapush.py", TINY + ["--total-timesteps", 64, "--eval-envs", 0], tmp_path)
    path, _ = checkpoint_of(tmp_path)
    proc = start(
        "happo_mapush.py", TINY + ["--total-timesteps", 64000, f"--resume={path}"], tmp_path, stdout=subprocess.PIPE
    )
    lines = read_until(proc.stdout, "iter 3/")
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    command = shlex.split(out.strip().splitlines()[-1])
    assert proc.returncode == 130 and [a for a in command if a.startswith("--resume")] == ["--resume"], command


def test_a_stop_during_the_final_evaluation_quotes_the_path(tmp_path):
    cwd = tmp_path / "a folder"
    cwd.mkdir()
    flags = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 64, "--hidden-sizes", 16, "--eval-envs", 300]
    proc = start(
        "mappo_mapush.py", flags + ["--exp-name", "my run"], cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines = read_until(proc.stdout, "model saved to")  # the final evaluation (300 envs, 1001 steps) starts
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    path, _ = checkpoint_of(cwd)
    last = out.strip().splitlines()[-1]
    assert proc.returncode == 130 and shlex.split(last.split("--eval-checkpoint ")[1]) == [os.path.relpath(path, cwd)]
