"""Torch backend of envs/: API, determinism, physics invariants and known-answer rewards."""

import math
import re

import pytest
import torch

import envs
from envs import make_env
from envs.cuboid_push import (
    BOX_HALF,
    FRICTION,
    REWARD_TERMS,
    ROBOT_CIRCLE_OFFSETS,
    ROBOT_CIRCLE_RADIUS,
    TARGET_X,
    TARGET_Y,
    box_target_distance,
)

TERM = {name: k for k, name in enumerate(REWARD_TERMS)}


def place(env, box=(0.0, 0.0, 0.0), robots=((-1.0, 0.0, 0.0), (0.0, 3.0, 0.0)), target=(3.0, 0.0)):
    """Put env 0..E-1 all into the same hand-made scene: box (x, y, yaw), robots (x, y, yaw)."""
    env.reset()
    P = env._physics
    P.zero_()
    P[0], P[1], P[2] = box
    (x0, y0, h0), (x1, y1, h1) = robots
    P[6], P[7], P[8], P[9], P[10], P[11] = x0, x1, y0, y1, h0, h1
    P[FRICTION] = 0.33
    P[TARGET_X], P[TARGET_Y] = target
    env.prev_distance = box_target_distance(P)
    return P


def command(env, per_robot):
    """Actions (E, 2, 3) repeating the same raw actions for every env."""
    return torch.tensor(per_robot, dtype=torch.float32).expand(env.num_envs, 2, 3).contiguous()


def test_shapes_dtypes_and_attributes():
    env = make_env(5, seed=0, backend="torch")
    assert (env.num_envs, env.num_agents, env.obs_dim, env.action_dim) == (5, 2, 8, 3)
    assert env.max_episode_steps == 1001 and env.state_dim == len(envs.STATE_LAYOUT) == 23  # as MAPush
    obs, state = env.reset()
    assert obs.shape == (5, 2, 8) and obs.dtype == torch.float32
    assert state.shape == (5, 23) and state.dtype == torch.float32
    out = env.step(torch.zeros(5, 2, 3))
    obs, state, reward, terminated, truncated, info = out
    assert obs.shape == (5, 2, 8) and state.shape == (5, 23) and reward.shape == (5, 2)
    assert terminated.shape == (5,) and terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert info["final_obs"].shape == (5, 2, 8) and info["final_state"].shape == (5, 23)
    assert info["reward_terms"].shape == (len(REWARD_TERMS),)
    assert info["success"].shape == (5,) and info["episode_return"].shape == (5, 2)


def test_spawn_distribution_follows_mapush():
    env = make_env(4000, seed=3)
    env.reset()
    P = env._physics
    target_r = torch.hypot(P[TARGET_X], P[TARGET_Y])
    robot_r = torch.hypot(P[6:8], P[8:10])
    assert target_r.min() >= 1.5 and target_r.max() <= 3.0
    assert robot_r.min() >= 1.2 - 1e-5 and robot_r.max() <= 1.3 + 1e-5
    assert torch.all(P[0:2] == 0) and torch.all(P[3:6] == 0)  # box at the origin, at rest
    assert torch.hypot(P[6] - P[7], P[8] - P[9]).min() >= 0.6 - 1e-4  # no overlapping spawns
    assert P[FRICTION].min() >= 0.30 and P[FRICTION].max() <= 0.35
    assert P[12:18].abs().max() <= 0.1
    # Angles cover the whole circle: mean resultant length of uniform angles is ~0.
    angle = torch.atan2(P[TARGET_Y], P[TARGET_X])
    assert torch.hypot(angle.cos().mean(), angle.sin().mean()) < 0.05


def test_observation_is_agent_centric():
    env = make_env(1, seed=0)
    place(env, box=(0.0, 0.0, 0.3), robots=((-1.0, 0.0, 0.5 * math.pi), (1.0, 1.0, 0.0)), target=(2.0, 0.0))
    obs, state = envs.cuboid_push.observe(env._physics)
    o = obs[0, 0]
    # Robot 0 at (-1, 0) facing +y: the world +x axis is its -y axis.
    torch.testing.assert_close(o[0:2], torch.tensor([0.0, -3.0]), atol=1e-5, rtol=0)  # target
    torch.testing.assert_close(o[2:4], torch.tensor([0.0, -1.0]), atol=1e-5, rtol=0)  # box
    assert o[4].item() == pytest.approx(0.3 - 0.5 * math.pi + 2 * math.pi, abs=1e-5)  # mod 2 pi
    torch.testing.assert_close(o[5:7], torch.tensor([1.0, -2.0]), atol=1e-5, rtol=0)  # other robot
    assert o[7].item() == pytest.approx(1.5 * math.pi, abs=1e-5)
    names = envs.STATE_LAYOUT
    s = dict(zip(names, state[0].tolist()))
    assert s["r1_x"] == 1.0 and s["r1_y"] == 1.0 and s["target_x"] == 2.0
    assert s["box_cos_yaw"] == pytest.approx(math.cos(0.3))


def test_same_seed_same_trajectory_different_seed_differs():
    def rollout(seed):
        env = make_env(16, seed=seed)
        env.reset()
        gen = torch.Generator().manual_seed(123)
        states = []
        for _ in range(300):
            out = env.step(torch.randn(16, 2, 3, generator=gen))
            states.append(out[1])
        return torch.stack(states)

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_state_dict_continues_the_same_episodes():
    """Restoring a state_dict (into an env with another seed) replays the same future, including
    the resets drawn from the env's generator; a state for another number of envs is refused."""
    env = make_env(8, seed=3, max_episode_steps=7)  # short episodes: resets inside the 20 steps
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        obs_now, state_now = env.step(torch.randn(8, 2, 3, generator=gen))[:2]
    saved = env.state_dict()
    actions = torch.randn(20, 8, 2, 3, generator=gen)
    first = [env.step(a) for a in actions]
    other = make_env(8, seed=99, max_episode_steps=7)
    obs, state = other.load_state_dict(saved)
    assert torch.equal(obs, obs_now) and torch.equal(state, state_now)
    second = [other.step(a) for a in actions]
    for x, y in zip(first, second):
        for a, b in zip(x[:5], y[:5]):
            assert torch.equal(a, b)
    assert sum(int(x[4].sum()) for x in first) > 0  # truncations (and so resets) happened
    with pytest.raises(ValueError, match="for 8 envs"):
        make_env(4).load_state_dict(saved)


def test_robot_driving_at_a_face_pushes_box_along_its_normal():
    env = make_env(1, seed=0)
    yaw = 0.4  # box and robot both rotated: the push must follow the face normal, not the x axis
    normal = (math.cos(yaw), math.sin(yaw))
    start = (-1.0 * normal[0], -1.0 * normal[1], yaw)
    place(env, box=(0.0, 0.0, yaw), robots=(start, (-3.0, 3.0, 0.0)), target=(10.0, 10.0))
    for _ in range(200):
        env.step(command(env, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    P = env._physics
    moved = torch.stack((P[0, 0], P[1, 0]))
    assert moved.norm() > 0.4  # one robot alone slides the 4 kg box, as in MAPush
    along = moved[0] * normal[0] + moved[1] * normal[1]
    assert along / moved.norm() > 0.999
    assert abs(P[2, 0].item() - yaw) < 1e-3  # a centred push does not turn the box
    speed = torch.hypot(P[3, 0], P[4, 0]).item()
    assert 0.25 < speed < 0.5  # slower than the 0.5 m/s command: the robot pays for the friction


def test_off_centre_push_turns_the_box():
    env = make_env(1, seed=0)
    place(env, robots=((-1.0, 0.45, 0.0), (-3.0, 3.0, 0.0)), target=(10.0, 10.0))
    for _ in range(100):
        env.step(command(env, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert env._physics[2, 0].item() < -0.05  # pushed above the centre towards +x: turns clockwise


def test_box_slides_to_rest_without_contact():
    env = make_env(1, seed=0)
    P = place(env, robots=((-3.0, -3.0, 0.0), (3.0, -3.0, 0.0)), target=(10.0, 10.0))
    P[3], P[5] = 0.6, 1.0  # sliding and spinning box, nobody touching it
    env.step(command(env, [[0.0] * 3, [0.0] * 3]))
    x_before = env._physics[0, 0].item()
    for _ in range(100):
        env.step(command(env, [[0.0] * 3, [0.0] * 3]))
    P = env._physics
    assert P[3, 0] == 0 and P[4, 0] == 0 and P[5, 0] == 0  # Coulomb friction stops it exactly
    # v^2 / (2 mu g) = 0.36 / (2 * 0.33 * 9.81) = 0.056 m of sliding in total.
    assert 0.02 < P[0, 0].item() < 0.07 and P[0, 0].item() > x_before


def test_box_does_not_move_below_friction_threshold():
    env = make_env(1, seed=0)
    place(env, robots=((-1.0, 0.0, 0.0), (-3.0, 3.0, 0.0)), target=(10.0, 10.0))
    # A barely pressing robot (command 0.02 m/s) cannot overcome mu * m * g ~ 13 N of stiction.
    for _ in range(100):
        env.step(command(env, [[0.04, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert env._physics[0, 0].item() == 0.0


def _max_penetrations(P):
    """Independent geometry: deepest robot-box and robot-robot overlap (metres)."""
    off = torch.tensor(ROBOT_CIRCLE_OFFSETS)[None, :, None]
    cx = P[6:8, None] + off * torch.cos(P[10:12, None])
    cy = P[8:10, None] + off * torch.sin(P[10:12, None])
    c, s = torch.cos(P[2]), torch.sin(P[2])
    qx, qy = c * (cx - P[0]) + s * (cy - P[1]), -s * (cx - P[0]) + c * (cy - P[1])
    ex, ey = qx.abs() - BOX_HALF, qy.abs() - BOX_HALF
    sdf = torch.hypot(ex.clamp(min=0), ey.clamp(min=0)) + torch.maximum(ex, ey).clamp(max=0)
    box_depth = (ROBOT_CIRCLE_RADIUS - sdf).clamp(min=0).amax()
    d = torch.hypot(cx[0][:, None] - cx[1][None], cy[0][:, None] - cy[1][None])
    robot_depth = (2 * ROBOT_CIRCLE_RADIUS - d).clamp(min=0).amax()
    return box_depth.item(), robot_depth.item()


def test_penetration_stays_small_under_aggressive_pushing():
    """Both robots drive at the box (and so at each other) at full speed for many steps."""
    env = make_env(128, seed=1)
    env.reset()
    worst_box = worst_robot = 0.0
    gen = torch.Generator().manual_seed(0)
    for _ in range(600):
        P = env._physics
        obs = envs.cuboid_push.observe(P)[0]
        # Head for the box: forward command along the box direction in the body frame + noise.
        to_box = obs[..., 2:4] / obs[..., 2:4].norm(dim=-1, keepdim=True)
        a = torch.cat((2.0 * to_box, 0.5 * torch.randn(128, 2, 1, generator=gen)), -1)
        env.step(a + 0.3 * torch.randn(128, 2, 3, generator=gen))
        box_depth, robot_depth = _max_penetrations(env._physics)
        worst_box, worst_robot = max(worst_box, box_depth), max(worst_robot, robot_depth)
    assert worst_box < 0.035  # documented tolerance: 3.5 cm
    assert worst_robot < 0.035


def test_progress_and_approach_known_answers():
    env = make_env(1, seed=0)
    place(env, robots=((-1.0, 0.0, 0.0), (0.0, 3.0, 0.0)), target=(3.0, 0.0))
    env.step(command(env, [[0.0] * 3, [0.0] * 3]))
    P = env._physics
    d_prev = 3.0
    # Reproduce with an explicit hand computation on the post-step state.
    d = box_target_distance(P).item()
    expected_progress = 0.00325 * 100 * (2 * (d_prev - d) - 0.01 * d)
    dist0 = math.sqrt((P[0, 0] - P[6, 0]).item() ** 2 + (P[1, 0] - P[8, 0]).item() ** 2 + 0.05**2)
    expected_approach0 = -0.00075 * (dist0 + 0.5) ** 2
    t = envs.cuboid_push.reward_terms(P, torch.tensor([d_prev]), torch.tensor([False]), torch.tensor([False]), env.cfg)
    assert t[TERM["progress"], 0, 0].item() == pytest.approx(expected_progress, rel=1e-5)
    assert t[TERM["approach"], 0, 0].item() == pytest.approx(expected_approach0, rel=1e-5)
    # Standing still 3 m from the target: -0.00325 * 3 = -0.00975 per step.
    assert expected_progress == pytest.approx(-0.00975, abs=2e-4)


def test_collision_term_known_answer():
    env = make_env(1, seed=0)
    P = place(env, robots=((-1.5, 0.0, 0.0), (-1.5, 0.5, 0.0)), target=(3.0, 0.0))
    t = envs.cuboid_push.reward_terms(P, env.prev_distance, torch.tensor([False]), torch.tensor([False]), env.cfg)
    assert t[TERM["collision"], :, 0].tolist() == pytest.approx([-0.0025 / (0.02 + 0.5 / 3)] * 2)
    env2 = make_env(1, seed=0, collision_punishment_scale=-0.0008)
    t2 = envs.cuboid_push.reward_terms(P, env.prev_distance, torch.tensor([False]), torch.tensor([False]), env2.cfg)
    assert t2[TERM["collision"], 0, 0].item() == pytest.approx(-0.0008 / (0.02 + 0.5 / 3))


@pytest.mark.parametrize("box_yaw", [0.0, 0.7, 2.5])
def test_ocb_sign_behind_vs_in_front(box_yaw):
    env = make_env(1, seed=0)
    # Target along +x; robot 0 behind the box (pushing towards the target), robot 1 in front.
    P = place(env, box=(0.0, 0.0, box_yaw), robots=((-1.0, 0.0, 0.0), (1.0, 0.0, 0.0)), target=(3.0, 0.0))
    t = envs.cuboid_push.reward_terms(P, env.prev_distance, torch.tensor([False]), torch.tensor([False]), env.cfg)
    ocb = t[TERM["ocb"], :, 0]
    assert ocb[0] > 0 and ocb[1] < 0
    if box_yaw == 0.0:
        assert ocb.tolist() == pytest.approx([0.004, -0.004])
    # A robot to the side of an axis-aligned box gets 0.
    P = place(env, robots=((0.0, -1.0, 0.0), (0.0, 1.0, 0.0)), target=(3.0, 0.0))
    t = envs.cuboid_push.reward_terms(P, env.prev_distance, torch.tensor([False]), torch.tensor([False]), env.cfg)
    assert t[TERM["ocb"], :, 0].abs().max() < 1e-9


def test_success_gives_bonus_terminates_and_resets():
    env = make_env(2, seed=0)
    P = place(env, robots=((-1.0, 0.0, 0.0), (0.0, 3.0, 0.0)), target=(1.01, 0.0))
    P[3] = 0.5  # box sliding towards the target: it crosses the 1.0 m radius within a few steps
    for _ in range(10):
        obs, state, reward, terminated, truncated, info = env.step(command(env, [[0.0] * 3, [0.0] * 3]))
        if terminated.any():
            break
    assert terminated.all() and info["success"].all() and not info["failure"].any() and not truncated.any()
    assert reward[0].min().item() > 9.9  # +10 to both agents, plus small dense terms
    final_state = info["final_state"][0]
    assert math.hypot(final_state[7] - final_state[0], final_state[8] - final_state[1]) < 1.0
    # The returned observation belongs to a fresh episode: box back at the origin.
    assert state[0, 0] == 0 and state[0, 1] == 0 and env.episode_length[0] == 0
    assert info["episode_length"][0].item() >= 1
    torch.testing.assert_close(info["episode_return"][0], info["episode_return"][1])


def test_robots_colliding_is_a_failure_with_penalty():
    env = make_env(1, seed=0)
    place(env, robots=((-2.0, 0.2, 0.0), (-2.0, -0.2, 0.0)), target=(3.0, 0.0))
    # Side by side, 0.4 m apart, both strafing into each other: the bodies touch at 0.25 m and the
    # force-limited push squeezes them below it.
    for _ in range(100):
        obs, state, reward, terminated, truncated, info = env.step(command(env, [[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]))
        if terminated.any():
            break
    assert terminated.all() and info["failure"].all() and not info["success"].any()
    assert reward[0, 0].item() < -4.9
    fs = info["final_state"][0]
    assert math.hypot(fs[9] - fs[16], fs[10] - fs[17]) < 0.25


def test_time_limit_is_truncation_with_final_obs():
    env = make_env(3, seed=0, max_episode_steps=50)
    place(env, robots=((-2.0, -2.0, 0.0), (2.0, -2.0, 0.0)), target=(3.0, 0.0))
    for t in range(50):
        obs, state, reward, terminated, truncated, info = env.step(command(env, [[0.0] * 3, [0.0] * 3]))
        if t < 49:
            assert not truncated.any()
    assert truncated.all() and not terminated.any()
    assert info["episode_length"].tolist() == [50, 50, 50]
    # final_obs is the last observation of the ended episode, not the new one.
    assert info["final_state"][0, 9].item() == pytest.approx(-2.0, abs=0.2)
    assert not torch.equal(info["final_obs"], obs)
    assert env.episode_length.tolist() == [0, 0, 0]


def test_team_reward_option_sums_agents():
    env = make_env(4, seed=0, team_reward=True)
    env.reset()
    reward = env.step(torch.randn(4, 2, 3))[2]
    torch.testing.assert_close(reward[:, 0], reward[:, 1])
    env_ind = make_env(4, seed=0)
    env_ind.reset()
    r_ind = env_ind.step(torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1)))[2]
    assert not torch.allclose(r_ind[:, 0], r_ind[:, 1])


def test_reward_term_means_add_up_to_mean_reward():
    env = make_env(64, seed=0)
    env.reset()
    for _ in range(20):
        out = env.step(torch.randn(64, 2, 3))
        assert out[5]["reward_terms"].sum().item() == pytest.approx(out[2].mean().item(), abs=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(4, 3), "shape"),
        (torch.zeros(4, 2, 2), "shape"),
        (torch.zeros(4, 2, 3, dtype=torch.float64), "float32"),
        (torch.full((4, 2, 3), float("nan")), "NaN"),
        (torch.full((4, 2, 3), float("inf")), "NaN or inf"),
        ([[0.0] * 3] * 2, "torch.Tensor"),
        (torch.zeros(4, 2, 3, device="meta"), "are on meta, the environment is on cpu"),
    ],
)
def test_bad_actions_raise(bad, message):
    env = make_env(4, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=message):
        env.step(bad)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="unknown backend"):
        make_env(2, backend="mujoco")
    with pytest.raises(ValueError, match="unknown task option"):
        make_env(2, reward_scale=2.0)
    with pytest.raises(ValueError, match="num_envs"):
        make_env(0)


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(substeps=2.5), "substeps=2.5: takes a whole number"),
        (dict(max_episode_steps=0), "max_episode_steps=0: must be > 0"),
        (dict(success_radius=-1.0), "success_radius=-1.0: must be > 0"),
        (dict(success_radius=float("nan")), "takes a finite number"),
        (dict(target_radius_range=5), "takes a range"),
        (dict(target_radius_range=(3.0, 1.5)), "LOW <= HIGH"),
        (dict(box_friction_range=(-0.1, 0.3)), "must be >= 0"),
        (dict(team_reward=1), "takes True or False"),
        (dict(collision_punishment_scale="x"), "takes a finite number"),
    ],
)
def test_task_options_are_checked_by_type_and_range(option, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_env(2, **option)


def test_task_options_of_the_right_kind_are_taken():
    cfg = envs.cuboid_push.task_config_from_options(dict(success_radius=2, target_radius_range=[1, 2.5]))
    assert cfg.success_radius == 2.0 and isinstance(cfg.success_radius, float)
    assert cfg.target_radius_range == (1.0, 2.5)
    assert envs.cuboid_push.task_config_from_options({}) == envs.TaskConfig()


def test_render_draws_scene():
    pytest.importorskip("PIL")
    env = make_env(2, seed=0)
    env.reset()
    env.record_trails()
    for _ in range(5):
        env.step(torch.randn(2, 2, 3))
    img = env.render(env_index=1, size=200)
    assert img.shape == (200, 200, 3) and img.dtype.name == "uint8"
    colours = {tuple(px) for px in img.reshape(-1, 3).tolist()}
    assert (160, 160, 160) in colours  # box
    assert (40, 90, 200) in colours and (230, 130, 30) in colours  # both robots
    with pytest.raises(ValueError, match="env_index"):
        env.render(env_index=5)


def test_task_is_solvable_by_a_scripted_controller():
    """Physics, spawns, success rule and observations together: a hand-written pushing controller
    (benchmarks/scripted_policy.py, observation-only) gets the box to the target."""
    from benchmarks.scripted_policy import run

    metrics = run(num_envs=50, seed=0)
    assert metrics["success_rate"] >= 0.9
    assert metrics["finish_time_s"] < 12.0
    assert metrics["collaboration_degree"] > 0.3


@pytest.mark.skipif(envs.compile_problem() is not None, reason=f"torch.compile {envs.compile_problem()}")
def test_compiled_step_matches_eager():
    """compile=True must give the same trajectory as eager mode, resets included."""
    gen = torch.Generator().manual_seed(0)
    actions = [torch.randn(8, 2, 3, generator=gen) for _ in range(30)]
    outs = []
    for compile in (False, True):
        env = make_env(8, seed=4, compile=compile, max_episode_steps=10)
        env.reset()
        outs.append([env.step(a) for a in actions])
    for (obs_e, state_e, rew_e, term_e, trunc_e, info_e), (obs_c, state_c, rew_c, term_c, trunc_c, info_c) in zip(
        *outs
    ):
        torch.testing.assert_close(state_c, state_e, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(obs_c, obs_e, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(rew_c, rew_e, atol=1e-5, rtol=1e-4)
        assert torch.equal(trunc_c, trunc_e) and torch.equal(term_c, term_e)
        torch.testing.assert_close(info_c["final_state"], info_e["final_state"], atol=1e-4, rtol=1e-4)
