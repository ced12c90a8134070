"""Nothing lost, clear errors: bad flag values, Ctrl-C, run folders, checkpoints, env arguments."""

import fcntl
import glob
import os
import shlex
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, checkpoint_of, run_script

import envs
import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 8, "--num-steps", 8, "--max-episode-steps", 6, "--eval-envs", 2, "--hidden-sizes", 16]


def run_failing(script, args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script", [mappo, happo])
@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(num_envs=0), "--num-envs must be >= 1, got 0"),
        (dict(num_envs=-5), "--num-envs must be >= 1, got -5"),
        (dict(num_steps=0), "--num-steps must be >= 1"),
        (dict(num_minibatches=0), "--num-minibatches must be >= 1"),
        (dict(num_minibatches=1000), "--num-minibatches 1000 must divide the batch of 32768 env steps"),
        (dict(total_timesteps=1000), "--total-timesteps 1000 is smaller than one batch of 32768"),
        (dict(actor_lr=0.0), "--actor-lr must be > 0"),
        (dict(gamma=1.5), "--gamma must be in (0, 1]"),
        (dict(eval_envs=-1), "--eval-envs and --eval-every must be >= 0"),
        (dict(hidden_sizes=()), "--hidden-sizes needs one or more positive widths"),
        (dict(std_max=-1.0), "--std-max must be > 0"),
        (dict(max_grad_norm=0.0), "--max-grad-norm must be > 0, got 0.0"),
        (dict(max_grad_norm=-1.0), "--max-grad-norm must be > 0"),
        (dict(reward_scale=float("nan")), "--reward-scale must be a finite number, got nan"),
        (dict(ent_coef=float("nan")), "--ent-coef must be a finite number"),
        (dict(actor_lr=float("inf")), "--actor-lr must be a finite number, got inf"),
        (dict(seed=2**70), "--seed must be in [0, 2**32), got 1180591620717411303424"),
        (dict(seed=-1), "--seed must be in [0, 2**32), got -1"),
        (dict(resume="a", eval_checkpoint="b"), "--resume and --eval-checkpoint exclude each other"),
        (dict(env_options=("max_episode_steps=10",)), "max_episode_steps=10: give the time limit as --max-episode"),
        (dict(eval_every=5, eval_envs=0), "--eval-every and --eval-checkpoint need --eval-envs > 0"),
        (dict(eval_checkpoint="x.cleanrl_model", eval_envs=0), "need --eval-envs > 0, got --eval-envs 0"),
        (dict(env_options=("team_reward",)), "--env-options: takes NAME=VALUE with a number or True/False"),
        (dict(env_options=("gravity=2",)), "--env-options: unknown task option(s) ['gravity']; accepted: ["),
        (dict(env_options=("substeps=2.5",)), "--env-options: task option substeps=2.5: takes a whole number"),
        (dict(env_options=("target_radius_range=5",)), "--env-options: task option target_radius_range=5: takes"),
    ],
)
def test_bad_flag_values_are_named_with_the_accepted_range(script, flags, message):
    assert message in script.args_error(script.Args(**flags))


def test_happo_refuses_an_inverted_factor_clip():
    assert "--factor-clip needs 0 <= LOW <= HIGH, got 2.0 0.5" in happo.args_error(happo.Args(factor_clip=(2.0, 0.5)))
    inf = float("inf")  # before: accepted, then every factor inf and a "diverged" message
    assert "--factor-clip must be a finite number, got (inf, inf)" in happo.args_error(
        happo.Args(factor_clip=(inf, inf))
    )
    assert happo.args_error(happo.Args(factor_clip=(0.5, 2.0))) is None


def test_defaults_are_valid_and_a_bad_value_stops_the_script_in_one_line(tmp_path):
    assert mappo.args_error(mappo.Args()) is None and happo.args_error(happo.Args()) is None
    proc = run_failing("mappo_mapush.py", ["--num-envs", 0], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --num-envs must be >= 1, got 0"  # no traceback
    assert not (tmp_path / "runs").exists()  # refused before anything was created


def test_a_partial_last_batch_is_said_not_dropped_silently(tmp_path):
    out = run_script("mappo_mapush.py", TINY + ["--total-timesteps", 100, "--eval-envs", 0], tmp_path)
    assert "note: training 64 env steps, whole batches of 64" in out


def test_the_default_run_length_is_whole_batches_without_a_note(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, os.path.join(ROOT, "mappo_mapush.py")] + [str(a) for a in TINY]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("iter 1/"):
            proc.kill()
            break
    proc.communicate(timeout=60)
    assert lines[-1].startswith(f"iter 1/{20_000_000 // 64} ") and not any("note:" in line for line in lines)


def test_a_bare_resume_keeps_the_checkpoints_run_length(tmp_path):
    """--resume without --total-timesteps continues to the length the run was started with, not to 20M."""
    run_script("mappo_mapush.py", TINY + ["--total-timesteps", 64, "--eval-envs", 0], tmp_path)
    path, checkpoint = checkpoint_of(tmp_path)
    checkpoint["args"]["total_timesteps"] = 128  # as a run of 2 iterations stopped after the first
    torch.save(checkpoint, path)
    out = run_script("mappo_mapush.py", TINY + ["--eval-envs", 0, "--resume", path], tmp_path)
    assert "iter 2/2 " in out and "iter 3/" not in out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_a_terminal_gets_a_progress_bar_and_a_pipe_the_plain_line(tmp_path):
    flags = TINY + ["--total-timesteps", 128, "--eval-envs", 0]
    leader, follower = os.openpty()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "happo_mapush.py")] + [str(a) for a in flags]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    on_terminal = b"".join(chunks).decode()
    assert "[##########          ] iter 1/2 " in on_terminal and "[####################] iter 2/2 " in on_terminal
    piped = run_script("happo_mapush.py", flags, tmp_path)
    assert "\niter 1/2 " in piped and "[#" not in piped


@pytest.mark.parametrize("script, stop", [("mappo_mapush.py", "SIGINT"), ("happo_mapush.py", "SIGTERM")])
def test_ctrl_c_saves_and_prints_the_resume_command_which_continues(tmp_path, script, stop):
    """Ctrl-C and SIGTERM (kill, Slurm, docker stop): save, print a copy-paste safe command, exit 128 + signal.
    The SIGTERM run starts in a folder with a space, with a space in --exp-name too."""
    sig, name = (signal.SIGINT, "Ctrl-C") if stop == "SIGINT" else (signal.SIGTERM, "SIGTERM")
    cwd = tmp_path / ("a folder" if stop == "SIGTERM" else "plain")
    cwd.mkdir()
    extra = ["--exp-name", "my run"] if stop == "SIGTERM" else []
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in TINY + ["--total-timesteps", 64000] + extra]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # stop once training is under way
        lines.append(line)
        if line.startswith("iter 2/"):
            proc.send_signal(sig)
            break
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + sig, out
    assert f"{name}: saving after this iteration" in out and "Traceback" not in out
    path, checkpoint = checkpoint_of(cwd)  # loads with weights_only=True
    stopped_at = checkpoint["iteration"]
    assert 2 <= stopped_at < 1000
    resumed = shlex.split(out.strip().splitlines()[-1])  # the printed command, as a shell reads it
    assert resumed[0] == sys.executable and resumed[-2:] == ["--resume", os.path.relpath(path, cwd)]
    # The printed command continues the run (run it shortened to one more iteration).
    resumed[resumed.index("--total-timesteps") + 1] = str(64 * (stopped_at + 1))
    out = run_script(resumed[1], resumed[2:], cwd)
    assert f"resumed {resumed[-1]} at iteration {stopped_at}" in out and f"iter {stopped_at + 1}/" in out


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mappo.time, "time", lambda: 1_800_000_000.0)
    started = [mappo.start_run(mappo.Args(), resumed=None) for _ in range(2)]  # (folder, lock file, writer)
    first, second = (run_dir for run_dir, _, _ in started)
    assert first == "runs/mapush__mappo_mapush__1__1800000000" and second == first + f"_{os.getpid()}"
    assert os.path.isdir(first) and os.path.isdir(second)
    for _, lock, writer in started:
        writer.close()
        lock.close()


class NotPlainData:
    """Pickled objects of arbitrary classes can run code when loaded; weights_only refuses them."""


@pytest.mark.parametrize("script", [mappo, happo])
def test_missing_corrupt_foreign_or_unsafe_checkpoints_give_one_clear_line(tmp_path, script):
    cpu = torch.device("cpu")
    with pytest.raises(SystemExit, match="no checkpoint file at"):
        script.load_checkpoint(str(tmp_path / "missing.cleanrl_model"), cpu)
    corrupt = tmp_path / "corrupt.cleanrl_model"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="is not a readable checkpoint"):
        script.load_checkpoint(str(corrupt), cpu)
    unsafe = tmp_path / "unsafe.cleanrl_model"
    torch.save({"algo": script.__name__[:5], "payload": NotPlainData()}, str(unsafe))
    with pytest.raises(SystemExit, match="is not a readable checkpoint"):
        script.load_checkpoint(str(unsafe), cpu)
    foreign = tmp_path / "foreign.cleanrl_model"
    torch.save({"algo": "mappo" if script is happo else "happo"}, str(foreign))
    with pytest.raises(SystemExit, match=f"is not a checkpoint of {script.__name__}.py"):
        script.load_checkpoint(str(foreign), cpu)
    older = tmp_path / "older.cleanrl_model"  # layout 1: no "layout" key
    torch.save({"algo": script.__name__[:5], "actors": [], "actor_optimizers": []}, str(older))
    with pytest.raises(SystemExit, match="has checkpoint layout 1 .* evaluate or resume it with the version"):
        script.load_checkpoint(str(older), cpu)


def test_eval_checkpoint_of_a_missing_file_is_one_line(tmp_path):
    proc = run_failing("happo_mapush.py", ["--eval-checkpoint", tmp_path / "nope.cleanrl_model"], tmp_path)
    assert (
        proc.returncode == 1
        and proc.stderr.strip() == f"error: no checkpoint file at {tmp_path / 'nope.cleanrl_model'}"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_envs=2, device="gpu"), "unknown device 'gpu'"),
        (dict(num_envs=2.5), "num_envs must be a positive whole number, got 2.5"),
        (dict(num_envs=0), "num_envs must be a positive whole number, got 0"),
        (dict(num_envs=2, seed=None), "seed must be a whole number, got None"),
    ],
)
def test_make_env_refuses_bad_arguments_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        envs.make_env(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_make_env_on_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        envs.make_env(2, device="cuda")


def test_an_unwritable_video_path_keeps_the_metrics(tmp_path):
    messages = []
    act = lambda obs: torch.zeros(obs.shape[:-1] + (3,))  # noqa: E731
    video = str(tmp_path / "no_such_folder" / "eval.gif")
    metrics = envs.evaluate(act, 2, "cpu", 0, "torch", video, max_episode_steps=4, log=messages.append)
    assert set(metrics) == {"success_rate", "finish_time_s", "collaboration_degree"}
    assert any(m.startswith("evaluation video not written") for m in messages)


def test_every_evaluation_runs_on_the_task_the_policy_trained_on(tmp_path):
    """--env-options reach the periodic, the final and the --eval-checkpoint evaluation (a 10 m success
    radius: every episode succeeds at once, trained or not)."""
    flags = TINY + ["--total-timesteps", 128, "--env-options", "success_radius=10.0", "--eval-every", 1]
    out = run_script("happo_mapush.py", flags, tmp_path)
    evaluations = [line for line in out.splitlines() if line.startswith("evaluation ")]
    assert len(evaluations) == 2 and all("'success_rate': 1.0" in line for line in evaluations), evaluations
    assert evaluations[0].startswith("evaluation at global_step=64 ") and evaluations[1].startswith("evaluation on")
    path, _ = checkpoint_of(tmp_path)
    out = run_script("happo_mapush.py", ["--eval-checkpoint", path, "--eval-envs", 2], tmp_path)
    assert "'success_rate': 1.0" in out.strip().splitlines()[-1]


def test_a_diverging_run_stops_in_one_line_before_saving(tmp_path):
    """Learning rates of 1e30 blow the networks up in the first update: one line naming what went
    non-finite, exit 1, and no checkpoint written after it (it saves every iteration otherwise)."""
    flags = TINY + ["--total-timesteps", 640, "--actor-lr", 1e30, "--critic-lr", 1e30, "--checkpoint-minutes", 1e-9]
    proc = run_failing("mappo_mapush.py", flags, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the run diverged at iteration 1: losses/policy_loss")
    assert "try a lower --actor-lr / --critic-lr" in proc.stderr
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*"))
    assert not glob.glob(os.path.join(run_dir, "*.cleanrl_model"))
    with open(os.path.join(run_dir, "run.lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at its exit


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_one_run_per_run_folder_held_by_a_lock_that_ends_with_its_process(tmp_path, script):
    """run.lock is flock-ed while a run lives: a second run in the folder gets one line naming the file; the
    kernel frees it however a run ends, so its content (junk, empty, a reused process id) never matters."""
    run_script(script, TINY + ["--total-timesteps", 64, "--eval-envs", 0], tmp_path)
    path, _ = checkpoint_of(tmp_path)
    lock = os.path.join(os.path.dirname(path), "run.lock")
    with open(lock, "a") as held:  # a run still going: this test's process holds the lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: the finished run let it go
        proc = run_failing(script, TINY + ["--total-timesteps", 128, "--resume", path], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == f"error: another run holds {lock}; wait for it or stop it"
    for content in ["junk", "", "1"]:  # before: a traceback, or "in use by another run (process 1)" for good
        with open(lock, "w") as f:
            f.write(content)
        run_script(script, TINY + ["--total-timesteps", 64, "--resume", path, "--eval-envs", 0], tmp_path)
    killed = subprocess.Popen(  # a run killed with SIGKILL (or out of memory) leaves the folder usable
        [sys.executable, os.path.join(ROOT, script), *map(str, TINY + ["--total-timesteps", 64000, "--resume", path])],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in killed.stdout:
        if line.startswith("iter "):
            killed.kill()
            break
    killed.communicate(timeout=60)
    out = run_script(script, TINY + ["--total-timesteps", 128, "--resume", path, "--eval-envs", 0], tmp_path)
    assert "iter 2/2 " in out


def test_exp_name_backend_and_run_folder_are_checked_before_anything_is_made(tmp_path):
    assert "--exp-name must be a plain name" in mappo.args_error(mappo.Args(exp_name="a/b"))
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "runs").write_text("a file where the runs folder should go")
    proc = run_failing("happo_mapush.py", TINY + ["--total-timesteps", 64], blocked)
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot create a run folder in")
    assert "Traceback" not in proc.stderr
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        if os.access(str(readonly), os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        proc = run_failing("mappo_mapush.py", TINY + ["--total-timesteps", 64], readonly)
        assert proc.returncode == 1 and proc.stderr.startswith("error: cannot create a run folder in")
        assert "Traceback" not in proc.stderr
    finally:
        readonly.chmod(0o755)


def test_help_into_a_closed_pipe_prints_no_traceback(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "happo_mapush.py"), "--help"],
        stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT),
    )  # fmt: skip
    os.close(write_end)
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_ctrl_c_during_the_final_evaluation_stops_it_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    flags = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 64, "--hidden-sizes", 16, "--eval-envs", 300]
    cmd = [sys.executable, os.path.join(ROOT, "mappo_mapush.py")] + [str(a) for a in flags]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("model saved to"):  # the final evaluation (1001 steps of 300 envs) starts
            proc.send_signal(signal.SIGINT)
            break
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "stopped during the final evaluation; the model is saved: evaluate it with --eval-checkpoint" in out
    assert "saving after this iteration" not in out
