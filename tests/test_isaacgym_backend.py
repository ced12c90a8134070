"""Isaac Gym adapter, tested against a fake of MAPush's mqe package (no Isaac Gym, no GPU here)."""

import importlib
import math
import os
import subprocess
import sys
import types

import pytest
import torch
from conftest import ROOT

import envs
import envs.isaacgym_push as ig

FAKE_MAPUSH = os.path.join(ROOT, "tests", "fake_mapush")


@pytest.fixture
def fake_mapush(monkeypatch):
    """Pretend Isaac Gym is loaded and point MAPUSH_ROOT at the fake MAPush checkout."""
    gymapi = types.ModuleType("isaacgym.gymapi")
    gymapi.SIM_PHYSX = 1
    monkeypatch.setitem(sys.modules, "isaacgym.gymapi", gymapi)
    monkeypatch.setattr(envs, "isaacgym", types.ModuleType("isaacgym"))
    monkeypatch.setenv("MAPUSH_ROOT", FAKE_MAPUSH)
    monkeypatch.setattr(ig, "require_isaacgym", lambda device: None)  # the fake runs on the CPU
    for name in [m for m in sys.modules if m == "mqe" or m.startswith("mqe.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m == "mqe" or m.startswith("mqe.")]:
        del sys.modules[name]


def make(num_envs=3, **options):
    return envs.make_env(num_envs, device="cpu", seed=0, backend="isaacgym", **options)


def test_shapes_state_frame_and_reset(fake_mapush):
    env = make()
    assert env.backend == "isaacgym" and env.max_episode_steps == 1001  # MAPush's counter must exceed 1000
    assert env.env.action_scale.device == env.device  # remade from MAPush's cuda:0 tensor (here on "meta")
    obs, state = env.reset()
    assert obs.shape == (3, 2, 8) and state.shape == (3, 23) and obs.dtype == torch.float32
    s = dict(zip(envs.STATE_LAYOUT, state[1].tolist()))
    # Env origins (10 i, 5) and the box spawn (12, 0) are removed: the box starts at the origin.
    assert s["box_x"] == pytest.approx(0.0) and s["box_y"] == pytest.approx(0.0)
    assert s["target_x"] == pytest.approx(2.0) and s["r0_x"] == pytest.approx(-1.2) and s["r1_y"] == pytest.approx(1.25)
    assert s["box_cos_yaw"] == pytest.approx(1.0) and s["r0_vx"] == 0.0


def test_step_rewards_success_failure_and_final_state(fake_mapush):
    env = make()
    env.reset()
    actions = torch.zeros(3, 2, 3)
    actions[..., 0] = 1.0  # 0.5 m/s forward (MAPush's wrapper scales by 0.5)
    obs, state, reward, terminated, truncated, info = env.step(actions)
    torch.testing.assert_close(reward, torch.tensor([[0.0, -0.02], [0.01, -0.02], [0.02, -0.02]]))
    s = dict(zip(envs.STATE_LAYOUT, state[1].tolist()))
    assert s["box_x"] == pytest.approx(0.1, abs=1e-5) and s["box_vx"] == pytest.approx(5.0)
    assert s["r0_vx"] == pytest.approx(0.5, abs=1e-4)  # finite-difference velocity, world frame
    assert s["r0_wz"] == pytest.approx(5.0, abs=1e-3)  # 0.1 rad per 0.02 s step
    # Step 2: env 2 falls (exception) -> terminated, failure, -5; its final state is the pre-step one.
    before = state.clone()
    obs, state, reward, terminated, truncated, info = env.step(actions)
    assert terminated.tolist() == [False, False, True] and not truncated.any()
    assert info["failure"].tolist() == [False, False, True] and not info["success"].any()
    assert reward[2, 0].item() == pytest.approx(0.02 - 5.0)
    torch.testing.assert_close(info["final_state"], before)
    assert info["episode_length"][2].item() == 2
    assert state[2, 0].item() == pytest.approx(0.0)  # env 2 restarted: box back at its spawn
    assert state[2, 13].item() == 0.0  # and no velocity across the reset
    assert state[2, 11].item() == pytest.approx(math.cos(0.3))  # the new episode's yaw, not MAPush's stale one
    # Step 3: env 0 reaches the target -> terminated with success.
    obs, state, reward, terminated, truncated, info = env.step(actions)
    assert terminated.tolist() == [True, False, False] and info["success"].tolist() == [True, False, False]
    assert reward[0, 0].item() == pytest.approx(10.0)
    torch.testing.assert_close(info["episode_return"][0], torch.tensor([10.0, 9.94]))  # +10 to both


def test_resuming_starts_fresh_episodes(fake_mapush):
    """The simulator cannot be saved: state_dict() is empty, loading it resets, anything else is refused."""
    env = make()
    env.reset()
    env.step(torch.zeros(3, 2, 3))
    assert env.state_dict() == {}
    obs, state = env.load_state_dict({})
    assert torch.equal(state, make().reset()[1])  # back at the spawn poses
    with pytest.raises(ValueError, match="cannot restore"):
        env.load_state_dict({"physics": torch.zeros(21, 3)})


def test_time_limit_is_truncation(fake_mapush):
    env = make(max_episode_steps=4)
    env.reset()
    ended = None
    for t in range(1, 8):
        obs, state, reward, terminated, truncated, info = env.step(torch.zeros(3, 2, 3))
        if truncated[1]:
            ended = t
            assert not terminated[1] and not info["success"][1] and not info["failure"][1]
            assert info["episode_length"][1].item() == t
            break
    assert ended == 4  # max_episode_steps counts the steps of a timed-out episode, as in the torch backend
    assert env.env.env.max_episode_length == 3  # MAPush ends an episode when its counter exceeds this


def test_failure_on_the_time_limit_step_is_a_failure(fake_mapush, monkeypatch):
    """MAPush gives -5 to an exception on the step its episode times out: that ending is a failure."""
    env = make(4, max_episode_steps=4)  # imports the fake mqe from MAPUSH_ROOT
    monkeypatch.setattr(sys.modules["mqe.envs.utils"], "FALL_AT_TIME_LIMIT", True)
    env.reset()
    for _ in range(4):
        obs, state, reward, terminated, truncated, info = env.step(torch.zeros(4, 2, 3))
    assert terminated[1] and not truncated[1] and info["failure"][1] and not info["success"][1]
    assert reward[1, 0].item() == pytest.approx(0.01 - 5.0)
    assert truncated[3] and not terminated[3] and not info["failure"][3]  # a plain time-out


def test_runs_from_any_folder(fake_mapush, monkeypatch, tmp_path):
    """MAPush's asset paths are relative to its root; the adapter roots them at the checkout."""
    monkeypatch.chdir(tmp_path)
    env = make()
    control = env.env_cfg.control
    assert control.actuator_network_path == os.path.join(FAKE_MAPUSH, "resources", "actuator_nets")
    assert os.path.isdir(control.locomotion_policy_dir) and os.path.isabs(control.locomotion_policy_dir)
    assert os.listdir(str(tmp_path)) == []  # nothing written where the user started


def test_missing_mapush_dependency_names_the_install_line(fake_mapush, monkeypatch):
    real_import = importlib.import_module

    def fail_on_openrl(name, *args):
        if name == "mqe.envs.utils":
            raise ModuleNotFoundError("No module named 'openrl'", name="openrl")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fail_on_openrl)
    with pytest.raises(ModuleNotFoundError, match="MAPush's mqe imports 'openrl'.*requirements-isaacgym-py38.txt"):
        ig._import_mqe()


def test_reward_terms_team_reward_and_collision_option(fake_mapush):
    env = make(team_reward=True, collision_punishment_scale=-0.0008)
    assert env.env.collision_punishment_scale == -0.0008
    env.reset()
    _, _, reward, _, _, info = env.step(torch.zeros(3, 2, 3))
    torch.testing.assert_close(reward[:, 0], reward[:, 1])
    torch.testing.assert_close(reward[:, 0], torch.tensor([-0.02, -0.01, 0.0]))
    # MAPush's reward_buffer adds approach and OCB per agent, the other terms once per env.
    torch.testing.assert_close(info["reward_terms"][:5], torch.tensor([0.001, -0.002, -0.003, 0.0015, 0.004]))
    _, _, _, _, _, info = env.step(torch.zeros(3, 2, 3))
    assert info["reward_terms"][6].item() == pytest.approx(-5.0 / 3)  # one exception among 3 envs


def test_bad_input_raises(fake_mapush):
    env = make()
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="unknown option"):
        make(box_friction_range=(0.3, 0.4))


def test_missing_pieces_fail_fast_with_install_help(monkeypatch):
    monkeypatch.setattr(envs, "isaacgym", None)
    with pytest.raises(RuntimeError, match="Isaac Gym could not be imported.*docs/isaacgym.md"):
        ig.require_isaacgym("cuda:0")
    monkeypatch.setattr(envs, "isaacgym", types.ModuleType("isaacgym"))
    monkeypatch.delenv("MAPUSH_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="MAPush's mqe package could not be imported"):
        ig.require_isaacgym("cuda:0")
    monkeypatch.setenv("MAPUSH_ROOT", FAKE_MAPUSH)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(RuntimeError, match="CUDA only"):
        ig.require_isaacgym("cpu")
    for name in [m for m in sys.modules if m == "mqe" or m.startswith("mqe.")]:
        del sys.modules[name]


def test_auto_backend_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(envs, "isaacgym", None)
    assert envs.resolve_backend("auto", "cuda:0") == "torch"
    assert envs.resolve_backend("auto", "cpu") == "torch"
    assert envs.make_env(2, backend="auto").backend == "torch"


def run_with_isaacgym_backend(script, extra_args, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), "--backend", "isaacgym", "--num-envs", "4"]
        + ["--num-steps", "4", "--total-timesteps", "64"]
        + extra_args,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_script_with_isaacgym_backend_fails_fast_without_it(tmp_path):
    if envs.isaacgym is not None:
        pytest.skip("Isaac Gym is installed here")
    proc = run_with_isaacgym_backend("happo_mapush.py", [], tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: Isaac Gym could not be imported")
    assert "--backend torch" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), "runs"))  # refused before anything was made


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_eval_every_is_refused_with_isaacgym_backend(script, tmp_path):
    # Isaac Gym allows one simulation per process, so periodic evaluation (a second set of envs)
    # is refused before anything is built, whether or not Isaac Gym is installed.
    proc = run_with_isaacgym_backend(script, ["--eval-every", "2"], tmp_path)
    assert proc.returncode != 0
    assert "--eval-every needs the torch backend" in proc.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), "runs"))
