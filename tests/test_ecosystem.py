"""The optional interfaces in envs/ (TorchRL env, BenchMARL task, PettingZoo ParallelEnv) checked by
each library's own checker and against the raw env. Each test skips in one line when its library is
not installed (pip install -r requirements-ecosystem.txt && pip install --no-deps benchmarl==1.5.2)."""

import importlib.util
import os
import subprocess
import sys
import warnings

import pytest
import torch

import envs
from envs.cuboid_push import CuboidPushEnv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRA = "pip install -r requirements-ecosystem.txt && pip install --no-deps benchmarl==1.5.2"


def need(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed: {EXTRA}")


def random_actions(generator, num_envs):
    return torch.rand(num_envs, 2, 3, generator=generator) * 2.4 - 1.2  # some outside [-1, 1]: the env clips


# --- TorchRL ---------------------------------------------------------------------------------------
@need("torchrl", "tensordict")
def test_torchrl_env_passes_check_env_specs():
    from torchrl.envs.utils import check_env_specs

    from envs.torchrl_env import CuboidPushTorchRLEnv

    check_env_specs(CuboidPushTorchRLEnv(num_envs=6, seed=3, max_episode_steps=4), seed=0)
    env = CuboidPushTorchRLEnv(num_envs=6, seed=3)
    assert env.full_observation_spec[("agents", "observation")].shape == (6, 2, 8)
    assert env.full_observation_spec["state"].shape == (6, 23)
    assert env.full_action_spec[("agents", "action")].shape == (6, 2, 3)
    assert env.full_reward_spec[("agents", "reward")].shape == (6, 2, 1)
    assert set(env.done_keys) == {"done", "terminated", "truncated"}


@need("torchrl", "tensordict")
def test_torchrl_env_matches_the_raw_env_step_for_step_through_resets():
    """TorchRL's step_and_maybe_reset loop (what collectors run) against the raw env with the same
    seed and actions: observations, states, rewards and flags equal; ("next", ...) is the episode's
    last observation where one ended, the root the next episode's first."""
    from envs.torchrl_env import CuboidPushTorchRLEnv

    E, steps = 16, 60
    options = {"max_episode_steps": 7, "failure_distance": 1.2}  # time-outs and failures in 60 steps
    raw = CuboidPushEnv(E, seed=5, **options)
    env = CuboidPushTorchRLEnv(num_envs=E, seed=5, **options)
    obs, state = raw.reset()
    td = env.reset()
    torch.testing.assert_close(td["agents", "observation"], obs, rtol=0, atol=0)
    generator = torch.Generator().manual_seed(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        actions = random_actions(generator, E)
        obs, state, reward, terminated, truncated, info = raw.step(actions)
        td.set(("agents", "action"), actions)
        td, td_root = env.step_and_maybe_reset(td)
        nxt = td["next"]
        ended = terminated | truncated
        torch.testing.assert_close(nxt["agents", "reward"][..., 0], reward, rtol=0, atol=0)
        assert torch.equal(nxt["terminated"][:, 0], terminated) and torch.equal(nxt["truncated"][:, 0], truncated)
        assert torch.equal(nxt["done"][:, 0], ended)
        expect_last = torch.where(ended[:, None, None], info["final_obs"], obs)
        torch.testing.assert_close(nxt["agents", "observation"], expect_last, rtol=0, atol=0)
        torch.testing.assert_close(
            nxt["state"], torch.where(ended[:, None], info["final_state"], state), rtol=0, atol=0
        )
        torch.testing.assert_close(td_root["agents", "observation"], obs, rtol=0, atol=0)
        torch.testing.assert_close(td_root["state"], state, rtol=0, atol=0)
        assert not td_root["done"].any()
        ends["terminated"] += int(terminated.sum())
        ends["truncated"] += int(truncated.sum())
        td = td_root
    assert ends["terminated"] > 0 and ends["truncated"] > 0


@need("torchrl", "tensordict")
def test_torchrl_env_seeding_and_existing_env():
    from envs.torchrl_env import CuboidPushTorchRLEnv

    a, b = CuboidPushTorchRLEnv(num_envs=4, seed=0), CuboidPushTorchRLEnv(num_envs=4, seed=1)
    a.set_seed(7)
    b.set_seed(7)
    torch.testing.assert_close(a.reset()["state"], b.reset()["state"], rtol=0, atol=0)
    wrapped = CuboidPushTorchRLEnv(env=envs.make_env(3, seed=2))
    assert wrapped.batch_size == (3,)
    with pytest.raises(ValueError, match="existing env"):
        CuboidPushTorchRLEnv(env=envs.make_env(3), max_episode_steps=5)


# --- PettingZoo ------------------------------------------------------------------------------------
@need("pettingzoo", "gymnasium")
def test_pettingzoo_env_passes_parallel_api_and_seed_tests():
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    from envs.pettingzoo_env import CuboidPushParallelEnv

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports API slips as warnings
        parallel_api_test(CuboidPushParallelEnv(seed=0, max_episode_steps=200), num_cycles=300)
        parallel_seed_test(lambda: CuboidPushParallelEnv(max_episode_steps=40))


@need("pettingzoo", "gymnasium")
def test_pettingzoo_env_matches_the_raw_env_until_the_episode_ends():
    import numpy as np

    from envs.pettingzoo_env import CuboidPushParallelEnv

    env = CuboidPushParallelEnv(seed=4, max_episode_steps=25)
    raw = CuboidPushEnv(1, seed=4, max_episode_steps=25)
    observations, _ = env.reset()
    obs, state = raw.reset()
    np.testing.assert_array_equal(observations["robot_1"], obs[0, 1].numpy())
    np.testing.assert_array_equal(env.state(), state[0].numpy())
    generator = torch.Generator().manual_seed(1)
    ended_at = None
    for t in range(25):
        actions = random_actions(generator, 1)
        observations, rewards, terminations, truncations, infos = env.step(
            {agent: actions[0, i].numpy() for i, agent in enumerate(env.possible_agents)}
        )
        obs, state, reward, terminated, truncated, info = raw.step(actions)
        ended = bool(terminated[0] | truncated[0])
        expect = info["final_obs"] if ended else obs
        np.testing.assert_array_equal(observations["robot_0"], expect[0, 0].numpy())
        assert rewards["robot_1"] == pytest.approx(float(reward[0, 1]), abs=0)
        assert truncations["robot_0"] == bool(truncated[0])
        if ended:
            assert env.agents == [] and set(infos["robot_0"]) == {"success", "failure"}
            ended_at = t
            break
    assert ended_at == 24 and truncations["robot_0"]  # the time limit ended it
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})
    env.reset()
    with pytest.raises(ValueError, match="no action for"):
        env.step({"robot_0": np.zeros(3, np.float32)})


# --- BenchMARL -------------------------------------------------------------------------------------
@need("benchmarl", "torchrl")
def test_benchmarl_trains_mappo_on_the_task(tmp_path):
    """The documented command, shrunk: two iterations of BenchMARL's MAPPO (centralised critic on the
    state) from the command line; then the Python task's specs."""
    cmd = [sys.executable, "-m", "envs.benchmarl_task", "--algorithm", "mappo", "--seed", "1"]
    for key_value in (
        "max_n_frames=640",
        "on_policy_collected_frames_per_batch=320",
        "on_policy_n_envs_per_worker=32",
        "on_policy_minibatch_size=160",
        "on_policy_n_minibatch_iters=2",
        "evaluation=false",
    ):
        cmd += ["--experiment", key_value]
    cmd += ["--task-option", "max_episode_steps=8"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BenchMARL run folder" in proc.stdout
    frames = list(tmp_path.glob("runs/benchmarl/*/*/scalars/counters_total_frames.csv"))  # the default folder
    assert frames and frames[0].read_text().strip().splitlines()[-1].endswith("640.0")
    bad = subprocess.run(
        cmd[:3] + ["--experiment", "no_such_field=1"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown experiment field 'no_such_field'" in bad.stderr

    from envs.benchmarl_task import CuboidPushTask
    from envs.torchrl_env import CuboidPushTorchRLEnv

    task = CuboidPushTask.CUBOID_PUSH.get_task()
    env = task.get_env_fun(num_envs=4, continuous_actions=True, seed=0, device="cpu")()
    assert isinstance(env, CuboidPushTorchRLEnv) and task.max_steps(env) == 1001
    assert task.group_map(env) == {"agents": ["robot_0", "robot_1"]}
    assert list(task.state_spec(env).keys()) == ["state"] and "state" not in task.observation_spec(env).keys()
    assert task.observation_spec(env)["agents", "observation"].shape == (2, 8)
    with pytest.raises(ValueError, match="continuous actions only"):
        task.get_env_fun(num_envs=4, continuous_actions=False, seed=0, device="cpu")


@need("benchmarl", "torchrl")
def test_peers_launcher_resumes_and_evaluates(tmp_path, monkeypatch):
    """benchmarks/peers.py shrunk: evaluation rows every EVAL_EVERY iterations, the final evaluation,
    the update work per iteration (passes x mini-batches), and a stopped run resumed from its checkpoint
    with its CSV cut back to it."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import peers
    from benchmarl.experiment import Experiment

    monkeypatch.setattr(peers, "OUT", str(tmp_path / "out"))
    monkeypatch.setattr(peers, "WORK", str(tmp_path / "work"))
    monkeypatch.setattr(peers, "FRAMES_PER_BATCH", 256)
    monkeypatch.setattr(peers, "EVAL_EVERY", 2)
    monkeypatch.setattr(peers, "EVAL_ENVS", 4)
    layout = dict(peers.TASK_LAYOUT, on_policy_n_envs_per_worker=32, on_policy_collected_frames_per_batch=256)
    layout.update(on_policy_minibatch_size=128, on_policy_n_minibatch_iters=2, checkpoint_interval=512)
    layout.update(keep_checkpoints_num=2)
    monkeypatch.setattr(peers, "TASK_LAYOUT", layout)
    real_evaluate = envs.evaluate
    monkeypatch.setattr(envs, "evaluate", lambda act, n, seed=0: real_evaluate(act, n, seed=seed, max_episode_steps=10))
    optimiser_steps = []
    real_optimizer_loop = Experiment._optimizer_loop
    monkeypatch.setattr(
        Experiment, "_optimizer_loop", lambda self, group: optimiser_steps.append(1) or real_optimizer_loop(self, group)
    )
    peers.run("benchmarl_ippo_normal", 1, 1024)
    # on_policy_n_minibatch_iters counts passes: 4 iterations x 2 passes x (256 / 128) mini-batches
    assert len(optimiser_steps) == 16
    rows = peers.read_rows(peers.csv_path("benchmarl_ippo_normal", 1))
    kinds = [(r[0], int(r[1])) for r in rows]
    assert ("during_eval", 512) in kinds and ("eval", 1024) in kinds and kinds.count(("train", 768)) == 1
    assert peers.finished(peers.csv_path("benchmarl_ippo_normal", 1))
    path = peers.csv_path("benchmarl_ippo_normal", 1)
    with open(path) as f:  # as if stopped at 768 frames, after the checkpoint at 512
        lines = f.read().splitlines()[:5]
    lines[1] = lines[1].replace("train,256,", "train,256,-1", 1)  # a mark: kept rows are copied, not rerun
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert not peers.finished(path)
    for extra in glob_checkpoints(tmp_path, above=512):
        os.remove(extra)
    peers.run("benchmarl_ippo_normal", 1, 1024)
    rows = peers.read_rows(path)
    kinds = [(r[0], int(r[1])) for r in rows]
    assert rows[0][2].startswith("-1")  # resumed from the checkpoint at 512, not started again
    assert kinds.count(("train", 512)) == 1 and kinds.count(("train", 768)) == 1 and ("eval", 1024) in kinds


def glob_checkpoints(root, above):
    return [p for p in root.glob("work/*/*/checkpoints/checkpoint_*.pt") if int(p.stem.split("_")[1]) > above]


# --- --track (Weights & Biases) ---------------------------------------------------------------------
TINY = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 128, "--max-episode-steps", 6, "--eval-envs", 4]
TINY += ["--hidden-sizes", 16, 16, "--seed", 3]


@need("wandb")
@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_track_logs_to_wandb_offline_without_a_network(script, tmp_path):
    """WANDB_MODE=offline: the run's config and the synced TensorBoard scalars land in ./wandb (CleanRL's place)."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true")
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, os.path.join(ROOT, script), "--track", "--wandb-project-name", "ci"] + [str(a) for a in TINY]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    (record,) = offline.glob("run-*.wandb")
    data = record.read_bytes()
    assert run_dir.name.encode() in data  # the run's name and id: the run folder's
    assert b"charts/SPS" in data and b"losses/value_loss" in data  # TensorBoard scalars, synced


def test_track_without_wandb_is_a_one_line_error(tmp_path):
    """A missing wandb stops the script before it creates anything, naming the install line."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(
        "import importlib.util, sys\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a, **k: None if name == 'wandb' else _find(name, *a, **k)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(stub), ROOT]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "mappo_mapush.py"), "--track"] + [str(a) for a in TINY]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert (
        proc.stderr.strip() == "error: --track needs wandb: pip install wandb==0.31.0 (see requirements-ecosystem.txt)"
    )
    assert not (tmp_path / "runs").exists()


# --- MAPush's OpenRL stack (benchmarks/openrl_peer.py runs in its own venv; its adapter is tested here)
@need("gymnasium")
def test_openrl_adapter_is_shaped_like_mapush_wrapper():
    """numpy in and out; OpenRL's actions a reach the env as clip(0.5 a) (MAPush's command
    0.5 clip(0.5 a)); dones (E, 2) include time-outs; rewards (E, 2, 1); no terminal observation."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import numpy as np
    import openrl_peer

    E = 12
    adapter = openrl_peer.SurrogateOpenRLEnv(E, seed=2)
    adapter.env = CuboidPushEnv(E, seed=2, max_episode_steps=5)
    raw = CuboidPushEnv(E, seed=2, max_episode_steps=5)
    np.testing.assert_array_equal(adapter.reset(seed=2), raw.reset()[0].numpy())
    rng = np.random.default_rng(0)
    for _ in range(7):
        actions = rng.normal(0.0, 2.0, (E, 2, 3)).astype(np.float32)
        obs, rewards, dones, infos = adapter.step(actions)
        expect = raw.step(torch.from_numpy(np.clip(0.5 * actions, -1.0, 1.0)))
        np.testing.assert_array_equal(obs, expect[0].numpy())  # post-reset, as MAPush returns it
        np.testing.assert_array_equal(rewards, expect[2][:, :, None].numpy())
        assert dones.shape == (E, 2) and dones.dtype == bool and len(infos) == E
        np.testing.assert_array_equal(dones[:, 1], (expect[3] | expect[4]).numpy())
    assert int(adapter.ended) == E and adapter.steps == 7  # every env timed out once, at step 5
    assert set(adapter.batch_rewards(None)) == {f"reward_{t}" for t in envs.REWARD_TERMS}


def test_peers_summary_reports_evaluations_divergence_and_cpu_time(tmp_path, monkeypatch):
    """peers.py --plot's table: each run's evaluations, the last one, CPU hours and its status."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import peers

    monkeypatch.setattr(peers, "OUT", str(tmp_path))
    monkeypatch.setattr(peers, "DEFAULTS_DIR", str(tmp_path / "none"))
    header = ",".join(peers.HEADER) + "\n"
    (tmp_path / "benchmarl_mappo__seed1.csv").write_text(
        header + "train,983040,900,,,-14.1,1100,1000\nduring_eval,983040,,300,0.0366,,1196,1057\n"
        "train,1179648,700,,,7.6,1425,1270\ndiverged,1179648,,,,,1425,1270\n"
    )
    (tmp_path / "openrl_agn_mappo__seed1.csv").write_text(
        header + "during_eval,2000000,,300,0.25,,2000,1800\ntrain,4000000,1500,500,0.5,3.0,3000,3600\n"
        "eval,4000000,,300,0.5,,3100,3700\neval_finish_time_s,4000000,,,12.0,,,\n"
    )
    peers.summarise()
    table = (tmp_path / "summary.md").read_text()
    assert "| `benchmarl_mappo__seed1` | 1.0M: 3.7 % | 3.7 % | 0.35 h | diverged (NaN policy) at 1.18M |" in table
    assert "| `openrl_agn_mappo__seed1` | 2.0M: 25.0 %, 4.0M: 50.0 % | 50.0 % | 1.03 h | finished |" in table
