"""The torch backend and the Isaac Gym adapter against MAPush's own code (see tests/mapush_code.py).

Runs when MAPUSH_ROOT points to a MAPush checkout (or `mqe` is installed); skips in one line otherwise.
"""

import importlib.util
import math
import os
from types import SimpleNamespace

import pytest
import torch
from mapush_code import SKIP_REASON, make_surrogate_sim_class, mapush_imported, mapush_root

import envs.isaacgym_push as ig
from envs.cuboid_push import (
    FRICTION,
    PHYSICS_ROWS,
    REWARD_TERMS,
    TARGET_X,
    TARGET_Y,
    TaskConfig,
    box_target_distance,
    observe,
    reward_terms,
    spawn_physics,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = mapush_root()
if ROOT is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

# MAPush's wrapper attribute of each reward term, in REWARD_TERMS order.
SCALES = (
    "target_reward_scale",
    "approach_reward_scale",
    "collision_punishment_scale",
    "push_reward_scale",
    "ocb_reward_scale",
    "reach_target_reward_scale",
    "exception_punishment_scale",
)
ANGLES = (4, 7)  # observation features that are angles in [0, 2 pi)


@pytest.fixture(scope="module")
def mapush():
    """MAPush's mqe imported once for this module, with the simulator replaced."""
    monkeypatch = pytest.MonkeyPatch()
    with mapush_imported(ROOT, monkeypatch) as utils:
        import sys

        sim_class = make_surrogate_sim_class(sys.modules["mqe.envs.npc.go1_object"].Go1Object)
        monkeypatch.setitem(utils.ENV_DICT["go1push_mid"], "class", sim_class)
        yield utils
    monkeypatch.undo()


def mqe_args(num_envs, seed=0):
    """What MAPush's make_mqe_env reads from its args (CPU, no simulator)."""
    return SimpleNamespace(
        num_envs=num_envs,
        seed=seed,
        record_video=False,
        headless=True,
        physics_engine=1,
        sim_device="cpu",
        device="cpu",
        use_gpu=False,
        use_gpu_pipeline=False,
        subscenes=0,
        num_threads=0,
    )


def make_wrapper(utils, num_envs, seed=0):
    """MAPush's Go1PushMidWrapper over the simulator-free base env, built by MAPush's make_mqe_env."""
    args = mqe_args(num_envs, seed)
    wrapper, _ = utils.make_mqe_env("go1push_mid", args, custom_cfg=utils.custom_cfg(args))
    return wrapper


def angle_diff(a, b):
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def obs_error(mapush_obs, ours):
    err = (mapush_obs - ours).abs()
    for k in ANGLES:
        err[..., k] = angle_diff(mapush_obs[..., k], ours[..., k]).abs()
    return err


def random_states(num, seed):
    """Pairs of physics states (before, after a step) covering every case the rewards distinguish:
    robots on every side and corner of the box, robots closer than 0.25 m, the box within 1 m of the
    target, the box moving faster and slower than 0.1 m/s."""
    g = torch.Generator().manual_seed(seed)

    def u(lo, hi, n=num):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    P = torch.zeros(PHYSICS_ROWS, num)
    P[0], P[1], P[2] = u(-1, 1), u(-1, 1), u(0, 2 * math.pi)
    P[3], P[4], P[5] = u(-0.3, 0.3), u(-0.3, 0.3), u(-0.5, 0.5)
    angle, dist = u(0, 2 * math.pi), u(0.5, 3.5)
    P[TARGET_X], P[TARGET_Y] = P[0] + dist * torch.cos(angle), P[1] + dist * torch.sin(angle)
    angle, dist = u(0, 2 * math.pi), u(0.65, 2.0)
    P[6], P[8] = P[0] + dist * torch.cos(angle), P[1] + dist * torch.sin(angle)
    angle, dist = u(0, 2 * math.pi), u(0.05, 2.5)
    P[7], P[9] = P[6] + dist * torch.cos(angle), P[8] + dist * torch.sin(angle)
    P[10], P[11] = u(0, 2 * math.pi), u(0, 2 * math.pi)
    P[12:18] = u(-0.5, 0.5, (6, num))
    P[FRICTION] = 0.33
    after = P.clone()
    after[0:3] += u(-0.05, 0.05, (3, num))
    after[6:12] += u(-0.02, 0.02, (6, num))
    return P, after


def on_face_boundary(P, width=1e-3):
    """(E, 2): robots within `width` of a line through a box face. There the two nearest edges of
    MAPush's OCB search are equally far to float32 precision, and which one wins is rounding."""
    c, s = torch.cos(P[2]), torch.sin(P[2])
    dx, dy = P[6:8] - P[0], P[8:10] - P[1]
    qx, qy = c * dx + s * dy, c * dy - s * dx
    return (((qx.abs() - 0.6).abs() < width) | ((qy.abs() - 0.6).abs() < width)).T


def mapush_step_on(wrapper, before, after, scales=None):
    """MAPush's wrapper stepped from state `before` to state `after`; `scales`: term scales to keep
    (the others set to 0, so the reward is that one term). Returns obs, reward, finished, exception."""
    sim = wrapper.env
    saved = {name: getattr(wrapper, name) for name in SCALES}
    if scales is not None:
        for name in SCALES:
            setattr(wrapper, name, saved[name] if name in scales else 0.0)
    sim.episode_length_buf.zero_()
    sim.set_physics(before)
    wrapper.last_box_state = sim.root_states_npc.view(sim.num_envs, -1, 13)[:, 0].clone()
    sim.next_physics = after
    obs, reward, _, _ = wrapper.step(torch.zeros(sim.num_envs, 2, 3))
    for name, value in saved.items():
        setattr(wrapper, name, value)
    return obs, reward, sim.finished_buf.clone(), (sim.exception_buf | wrapper.value_exception_buf).clone()


def test_observation_reward_terms_and_flags_equal_mapush_on_random_states(mapush):
    num = 16384
    wrapper = make_wrapper(mapush, num)
    wrapper.reset()
    before, after = random_states(num, seed=1)
    cfg = TaskConfig()
    success = box_target_distance(after) < cfg.success_radius
    failure = torch.hypot(after[6] - after[7], after[8] - after[9]) < cfg.failure_distance
    terms = reward_terms(after, box_target_distance(before), success, failure, cfg)  # (7, 2, E)
    obs, _ = observe(after)

    mapush_obs, mapush_reward, finished, exception = mapush_step_on(wrapper, before, after)
    assert torch.equal(finished, success) and torch.equal(exception, failure)
    assert 0.05 < success.float().mean() < 0.5 and 0.01 < failure.float().mean() < 0.2  # both cases covered
    going_on = ~(success | failure)  # MAPush computes dense terms on post-reset states where an env ended
    err = obs_error(mapush_obs, obs)[going_on]
    assert err.max() < 2e-5, f"largest observation error per feature {err.amax((0, 1)).tolist()}"
    exact = going_on[:, None] & ~on_face_boundary(after)
    torch.testing.assert_close(mapush_reward[exact], terms.sum(0).T[exact], rtol=0, atol=2e-5)
    for k, name in enumerate(REWARD_TERMS):
        _, term, _, _ = mapush_step_on(wrapper, before, after, scales=[SCALES[k]])
        rows = exact if k < 5 else torch.ones_like(exact)  # success / failure on every env
        diff = (term - terms[k].T)[rows].abs().max().item()
        assert diff < 1e-5, f"{name}: largest difference from MAPush {diff:.2e}"


def test_ocb_corner_rule_is_mapush_s(mapush):
    """Robots outside the box's corners: MAPush's edge search ties and keeps its first edge."""
    num = 8192
    wrapper = make_wrapper(mapush, num)
    wrapper.reset()
    before, after = random_states(num, seed=2)
    g = torch.Generator().manual_seed(3)
    # Every robot in a corner region of the (yawed) box: box-frame |x|, |y| in (0.6, 1.4).
    for i in range(2):
        qx = (0.6 + 0.8 * torch.rand(num, generator=g)) * torch.sign(torch.rand(num, generator=g) - 0.5)
        qy = (0.6 + 0.8 * torch.rand(num, generator=g)) * torch.sign(torch.rand(num, generator=g) - 0.5)
        c, s = torch.cos(after[2]), torch.sin(after[2])
        after[6 + i], after[8 + i] = after[0] + c * qx - s * qy, after[1] + s * qx + c * qy
    cfg = TaskConfig()
    no = torch.zeros(num, dtype=torch.bool)
    ocb = reward_terms(after, box_target_distance(before), no, no, cfg)[4]
    _, term, finished, exception = mapush_step_on(wrapper, before, after, scales=["ocb_reward_scale"])
    rows = ~(finished | exception)[:, None] & ~on_face_boundary(after)
    assert rows.float().mean() > 0.5
    mismatches = ((term - ocb.T).abs() > 1e-5)[rows].sum().item()
    assert mismatches == 0, f"{mismatches} robot-steps of {int(rows.sum())} differ from MAPush's OCB"


def test_spawn_distribution_equals_mapush_s(mapush):
    """MAPush's _reset_root_states against spawn_physics, compared by two-sample KS distances."""
    num = 16384
    wrapper = make_wrapper(mapush, num)
    torch.manual_seed(0)
    wrapper.reset()
    theirs = wrapper.env.physics
    ours = spawn_physics(
        torch.rand(15, num, generator=torch.Generator().manual_seed(0)), TaskConfig(), theirs[FRICTION]
    )
    independent = spawn_physics(
        torch.rand(15, num, generator=torch.Generator().manual_seed(1)),
        TaskConfig(robot_min_spawn_separation=0.0),
        theirs[FRICTION],
    )

    def features(P):
        two_pi = 2 * math.pi
        return {
            "box yaw": torch.remainder(P[2], two_pi),
            "target distance": torch.hypot(P[TARGET_X] - P[0], P[TARGET_Y] - P[1]),
            "target angle": torch.remainder(torch.atan2(P[TARGET_Y] - P[1], P[TARGET_X] - P[0]), two_pi),
            "robot distance": torch.hypot(P[6:8] - P[0], P[8:10] - P[1]).flatten(),
            "robot angle": torch.remainder(torch.atan2(P[8:10] - P[1], P[6:8] - P[0]), two_pi).flatten(),
            "robot yaw": torch.remainder(P[10:12], two_pi).flatten(),
            "robot velocity": P[12:18].flatten(),
            "robot gap": torch.hypot(P[6] - P[7], P[8] - P[9]),
        }

    def ks(a, b):
        grid = torch.cat((a, b)).sort().values
        cdf_a = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
        cdf_b = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
        return (cdf_a - cdf_b).abs().max().item()

    assert torch.all(theirs[0:2].abs() < 1e-5) and torch.all(theirs[3:6] == 0)  # box at its spawn, at rest
    mapush_f, ours_f, independent_f = features(theirs), features(ours), features(independent)
    for name in mapush_f:
        if name == "robot gap":
            continue
        assert ks(mapush_f[name], ours_f[name]) < 0.02, name
    # The one deliberate difference: robots at least 0.6 m apart; with the option at 0, as MAPush.
    assert ks(mapush_f["robot gap"], independent_f["robot gap"]) < 0.02
    assert (mapush_f["robot gap"] < 0.25).float().mean() > 0.04 and ours_f["robot gap"].min() >= 0.6 - 1e-4


def load_scripted_policy():
    spec = importlib.util.spec_from_file_location(
        "scripted_policy", os.path.join(REPO, "benchmarks", "scripted_policy.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.scripted_actions


@pytest.mark.parametrize("max_episode_steps", [None, 120])
def test_adapter_over_mapush_wrapper_agrees_with_the_surrogate_on_every_step(mapush, monkeypatch, max_episode_steps):
    """envs/isaacgym_push.py, unmodified, over MAPush's make_mqe_env and wrapper; only the simulator is
    the surrogate's physics. Each step is checked against the torch backend's own functions applied
    to the simulator's states: flags and episode bookkeeping on every env, observation, state, reward
    and reward terms where no env ended (MAPush computes those on post-reset states)."""
    monkeypatch.setattr(ig, "require_isaacgym", lambda device: None)
    E = 24
    options = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = ig.IsaacGymPushEnv(E, device="cpu", seed=0, **options)
    assert env.max_episode_steps == (max_episode_steps or 1001)
    sim, cfg = env.env.env, TaskConfig()
    scripted = load_scripted_policy()
    g = torch.Generator().manual_seed(0)
    obs, state = env.reset()
    positions = [k for k in range(23) if k not in (13, 14, 15, 20, 21, 22)]  # robot velocities: see below
    torch.testing.assert_close(state[:, positions], observe(sim.physics)[1][:, positions], rtol=0, atol=1e-5)
    previous = sim.physics.clone()
    length, ret = torch.zeros(E, dtype=torch.long), torch.zeros(E, 2)
    counts, checked_terms = torch.zeros(3), 0
    steps = 1300 if max_episode_steps is None else 250
    for t in range(steps):
        noise = (1.0 if t % 200 < 100 else 0.2) * torch.randn(E, 2, 3, generator=g)
        actions = torch.where(torch.arange(E)[:, None, None] % 3 == 0, noise, scripted(obs) + noise)
        last_obs, last_state = obs, state
        obs, state, reward, terminated, truncated, info = env.step(actions)
        before, after, ended = sim.log[-1]
        success = box_target_distance(before) < cfg.success_radius
        failure = torch.hypot(before[6] - before[7], before[8] - before[9]) < cfg.failure_distance
        length += 1
        timeout = length >= env.max_episode_steps
        done = success | failure | timeout
        assert torch.equal(torch.zeros(E, dtype=torch.bool).index_fill_(0, ended, True), done)
        assert torch.equal(info["success"], success & done) and torch.equal(info["failure"], failure & done)
        assert torch.equal(terminated, success | failure) and torch.equal(truncated, timeout & ~(success | failure))
        terms = reward_terms(before, box_target_distance(previous), success, failure, cfg)
        going = ~done
        exact = going[:, None] & ~on_face_boundary(before)
        torch.testing.assert_close(reward[exact], terms.sum(0).T[exact], rtol=0, atol=3e-5)
        # The terms' means add up to the mean reward on every step (MAPush's accounting undone right).
        assert abs(info["reward_terms"].sum().item() - reward.mean().item()) < 1e-4
        if not done.any() and exact.all():
            torch.testing.assert_close(info["reward_terms"], terms.mean((1, 2)), rtol=0, atol=1e-5)
            checked_terms += 1
        ours_obs, ours_state = observe(after)
        assert obs_error(obs[going], ours_obs[going]).max() < 3e-5
        torch.testing.assert_close(state[:, positions], ours_state[:, positions], rtol=0, atol=3e-5)
        velocity = (after[6:12] - previous[6:12]) / 0.02  # the adapter's finite differences
        velocity[4:] = angle_diff(after[10:12], previous[10:12]) / 0.02
        expected = torch.stack((velocity[0], velocity[2], velocity[4], velocity[1], velocity[3], velocity[5]), 1)
        expected[done] = 0.0  # no velocity across a reset; the surrogate's are in `after`
        torch.testing.assert_close(state[:, [13, 14, 15, 20, 21, 22]], expected, rtol=0, atol=2e-3)
        ret += reward
        assert torch.equal(info["episode_length"], length)
        torch.testing.assert_close(info["episode_return"], ret, rtol=0, atol=1e-4)
        if done.any():
            assert torch.equal(info["final_obs"][done], last_obs[done])
            assert torch.equal(info["final_state"][done], last_state[done])
        counts += torch.stack(((success & done).sum(), (failure & done).sum(), truncated.sum())).float()
        length[done], ret[done] = 0, 0.0
        previous = after.clone()
    needed = counts if max_episode_steps is None else counts[2:]  # 120 steps are too short to push it home
    assert needed.min() >= 1, f"successes, failures, time-outs: {counts.tolist()}"
    assert checked_terms > steps // 2


def test_mapush_go1_constructor_loads_its_networks_from_any_folder(mapush, monkeypatch, tmp_path):
    """MAPush's Go1 loads the actuator net and the walk-these-ways policy from paths relative to its
    root; with the adapter's config they load from another working folder (the README's way)."""
    import sys

    go1_module = sys.modules["mqe.envs.go1.go1"]
    field = sys.modules["mqe.envs.field.legged_robot_field"]
    args = mqe_args(2)
    cfg = ig.mapush_config(mapush, args)(mapush.ENV_DICT["go1push_mid"]["config"])
    monkeypatch.chdir(tmp_path)
    robot = go1_module.Go1.__new__(go1_module.Go1)
    robot.cfg, robot.num_envs, robot.num_agents, robot.device = cfg, 2, 2, "cpu"
    robot.num_actuated_dof, robot.dof_pos = 24, torch.zeros(2, 24)
    monkeypatch.setattr(field.LeggedRobotField, "_init_buffers", lambda self: None)  # the simulator's part
    go1_module.Go1._init_buffers(robot)  # MAPush's code: torch.jit.load(actuator net)
    zeros = torch.zeros(4, 12)
    torques = robot.actuator_network(zeros, zeros, zeros, zeros, zeros, zeros)
    assert torques.shape == (2, 24) and torch.isfinite(torques).all()
    body = os.path.join(cfg.control.locomotion_policy_dir, "body_latest.jit")
    adaptation = os.path.join(cfg.control.locomotion_policy_dir, "adaptation_module_latest.jit")
    assert os.path.isfile(adaptation), adaptation
    if not os.path.isfile(body):
        pytest.skip(f"{body} is not in this checkout (a file over 4 MiB; clone MAPush with it to run this part)")
    go1_module.Go1._prepare_locomotion_policy(robot)  # MAPush's code: torch.jit.load(body, adaptation)
    joints = robot.locomotion_policy(torch.zeros(4, 2100))
    assert joints.shape == (4, 12) and torch.isfinite(joints).all()
