"""Torch backend: a batched, on-device, planar surrogate of MAPush's mid-level cuboid task.

Two Unitree Go1 robots push a 1.2 m x 1.2 m, 4 kg box to a target disc. Every environment is one
column of a (21, E) physics tensor, so one `step` advances all E environments with a fixed number of
PyTorch ops (no Python loop over environments, no host synchronisation on CUDA); `step_core` is a
pure function of that tensor, which torch.compile can fuse (compile=True).

What is modelled (numbers from MAPush unless said otherwise; see docs/envs.md):
- 50 Hz control, each control step = `substeps` physics steps (4 x 5 ms, as MAPush's decimation).
- Box: square rigid body on the ground, Coulomb friction for sliding and for turning (with stiction),
  friction coefficient drawn once per environment (as MAPush draws it when it creates the box).
- Robots: planar rigid bodies, footprint 0.5 m x 0.25 m made of three circles along the heading,
  12 kg, driven by body-frame velocity commands through a first-order, force-limited tracking
  controller (a stand-in for the walk-these-ways locomotion policy).
- Contacts robot-box and robot-robot: penalty springs with damping on the normal direction only.
- Observation, rewards, success and failure exactly as MAPush's wrapper, computed on the pre-reset
  state of each step.

Not modelled: roll, pitch, falls, legs, the box tipping over, the terrain's walls. MAPush's
roll/pitch/z-wave exceptions therefore never fire here; the robot-robot distance rule does.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple

import torch

# --- Geometry and physics constants (SI units) ------------------------------------------------
BOX_HALF = 0.6  # half side of the 1.2 m cuboid footprint (MAPush SmallBox.urdf)
BOX_MASS = 4.0  # kg (SmallBox.urdf)
BOX_YAW_INERTIA = 0.25  # kg m^2, the URDF value (a solid box would be 0.96)
# Mean distance of a uniformly loaded square's points from its centre, in units of its side:
# (sqrt(2) + asinh(1)) / 6. Friction torque of a spinning square = mu * m * g * side * this.
SQUARE_MEAN_RADIUS = (math.sqrt(2.0) + math.asinh(1.0)) / 6.0
GRAVITY = 9.81
BOX_Z = 0.25  # box centre height when resting (0.5 m tall box)
ROBOT_Z = 0.30  # Go1 base height when standing; used only for MAPush's 3-D approach distance

ROBOT_MASS = 12.0  # kg, summed Go1 link masses (11.3 kg) rounded up
ROBOT_CIRCLE_RADIUS = 0.125  # three circles of this radius ...
ROBOT_CIRCLE_OFFSETS = (-0.125, 0.0, 0.125)  # ... along the heading: 0.5 m x 0.25 m footprint
ROBOT_TRACKING_TAU = 0.15  # s, first-order lag of the walking controller (velocity and yaw rate)
ROBOT_FORCE_LIMIT = 60.0  # N, most horizontal force the legs can exert (about half body weight)

CONTACT_STIFFNESS = 5000.0  # N/m per circle contact: 1.2 cm penetration at the 60 N force limit
CONTACT_DAMPING = 50.0  # N s/m on the approaching normal velocity; stable at 5 ms sub-steps

ACTION_SCALE = 0.5  # HARL path of MAPush: u = 0.5 * clip(a, -1, 1) -> 0.5 m/s, 0.5 m/s, 0.5 rad/s

REWARD_TERMS = ("progress", "approach", "collision", "push", "ocb", "success", "failure")
STATE_LAYOUT = (
    "box_x box_y box_cos_yaw box_sin_yaw box_vx box_vy box_wz target_x target_y "
    "r0_x r0_y r0_cos_yaw r0_sin_yaw r0_vx r0_vy r0_wz "
    "r1_x r1_y r1_cos_yaw r1_sin_yaw r1_vx r1_vy r1_wz"
).split()


@dataclass
class TaskConfig:
    """Every task option; `make_env(..., **options)` overrides these by name."""

    max_episode_steps: int = 1001  # MAPush: 20 s at 50 Hz, and its counter must exceed 1000 to time out
    substeps: int = 4  # physics steps per 0.02 s control step
    success_radius: float = 1.0  # box centre within this of the target centre = success
    failure_distance: float = 0.25  # robot centres closer than this = crash (MAPush collision rule)
    target_radius_range: Tuple[float, float] = (1.5, 3.0)  # target spawn distance from the box
    robot_radius_range: Tuple[float, float] = (1.2, 1.3)  # robot spawn distance from the box
    robot_min_spawn_separation: float = 0.6  # deviation from MAPush: no overlapping spawns
    box_friction_range: Tuple[float, float] = (0.30, 0.35)  # (0.1 ground + U[0.5, 0.6] box) / 2, per env
    # Reward scales of MAPush's task/cuboid/config.py.
    target_reward_scale: float = 0.00325
    approach_reward_scale: float = 0.00075
    collision_punishment_scale: float = -0.0025  # the HARL fork uses -0.0008
    push_reward_scale: float = 0.0015
    ocb_reward_scale: float = 0.004
    reach_target_reward_scale: float = 10.0
    exception_punishment_scale: float = -5.0
    team_reward: bool = False  # True: both agents get r0 + r1, as the HARL fork's wrapper does


# The observation's two angle features, in [0, 2 pi): box yaw and the other robot's yaw, each relative
# to the robot's own heading (see observe()). They jump at 0 / 2 pi.
OBS_YAW_FEATURES = (4, 7)


def parse_task_options(pairs) -> Dict[str, object]:
    """NAME=VALUE strings (the scripts' --env-options) as {name: value}, each VALUE read as a Python
    literal (a number, True / False, a tuple); task_config_from_options then checks them."""
    options = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"takes NAME=VALUE with a number or True/False as VALUE, got {pair!r}") from None
    return options


# Options that must be > 0, or >= 0 (for a range: its low end); every other number may have any sign.
POSITIVE_OPTIONS = ("max_episode_steps", "substeps", "success_radius", "target_radius_range", "robot_radius_range")
NON_NEGATIVE_OPTIONS = ("failure_distance", "robot_min_spawn_separation", "box_friction_range")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_option(name: str, value, default):
    """`value` as the type of the option's default, or ValueError naming what the option takes."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok, kind = _is_number(value), "a finite number"
    else:  # a (low, high) range
        ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_number, value))
        ok, kind = ok and value[0] <= value[1], "a range (LOW, HIGH) of finite numbers with LOW <= HIGH"
    if not ok:
        raise ValueError(f"task option {name}={value!r}: takes {kind}")
    low = value[0] if isinstance(value, (tuple, list)) else value
    if name in POSITIVE_OPTIONS and not low > 0:
        raise ValueError(f"task option {name}={value!r}: must be > 0")
    if name in NON_NEGATIVE_OPTIONS and not low >= 0:
        raise ValueError(f"task option {name}={value!r}: must be >= 0")
    return tuple(float(v) for v in value) if isinstance(default, tuple) else type(default)(value)


def task_config_from_options(options: Dict[str, object]) -> TaskConfig:
    """Build a TaskConfig, rejecting unknown option names with the list of accepted ones and values
    of the wrong type or out of range (one line naming the option and what it takes)."""
    defaults = {f.name: f.default for f in fields(TaskConfig)}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown task option(s) {unknown}; accepted: {list(defaults)}")
    return TaskConfig(**{name: _checked_option(name, value, defaults[name]) for name, value in options.items()})


# Rows of the packed physics tensor P (21, E): one row per scalar, environments along the last,
# contiguous axis, so every op is a plain loop over E (fast in eager mode, vectorised by compile).
BOX_X, BOX_Y, BOX_YAW, BOX_VX, BOX_VY, BOX_W = 0, 1, 2, 3, 4, 5
ROBOT_X, ROBOT_Y, ROBOT_YAW = slice(6, 8), slice(8, 10), slice(10, 12)  # rows for robots 0, 1
ROBOT_VX, ROBOT_VY, ROBOT_W = slice(12, 14), slice(14, 16), slice(16, 18)
FRICTION, TARGET_X, TARGET_Y = 18, 19, 20
PHYSICS_ROWS = 21
NUM_SPAWN_UNIFORMS = 15


def spawn_physics(u: torch.Tensor, cfg: TaskConfig, friction: torch.Tensor) -> torch.Tensor:
    """Physics P (21, E) of freshly reset envs from uniforms u (15, E): MAPush's distribution.

    Box at the origin at rest with random yaw; target 1.5-3 m away at a random angle; each robot
    1.2-1.3 m from the box at a random angle with a random heading and base velocities U[-0.1, 0.1].
    Robot 1's angle is drawn away from robot 0's so that their bodies never start overlapping
    (MAPush has no such check; overlapping spawns there end at once with the collision failure).
    `friction` (E,) is kept: MAPush draws the box's friction once per env, not per episode.
    """
    two_pi = 2.0 * math.pi
    t_lo, t_hi = cfg.target_radius_range
    r_lo, r_hi = cfg.robot_radius_range
    gap = 2.0 * math.asin(min(1.0, cfg.robot_min_spawn_separation / (2.0 * r_lo)))
    t_angle, t_radius = two_pi * u[1], t_lo + (t_hi - t_lo) * u[2]
    radius = r_lo + (r_hi - r_lo) * u[3:5]
    angle0 = two_pi * u[5]
    angles = torch.stack((angle0, angle0 + gap + (two_pi - 2.0 * gap) * u[6]))
    zeros = torch.zeros_like(u[0:2])
    return torch.cat(
        (
            zeros,  # box x, y: the box starts at the env origin ...
            two_pi * u[0:1],  # ... with a random yaw
            zeros,  # box velocity
            zeros[0:1],  # box yaw rate
            radius * torch.cos(angles),
            radius * torch.sin(angles),
            two_pi * u[7:9],  # robot headings
            0.2 * u[9:15] - 0.1,  # robot vx, vy, yaw rate (world frame)
            friction[None],
            (t_radius * torch.cos(t_angle))[None],
            (t_radius * torch.sin(t_angle))[None],
        )
    )


def physics_substep(P: torch.Tensor, cmd_vx, cmd_vy, cmd_w, head_x, head_y, dt: float) -> torch.Tensor:
    """Advance physics P (21, E) by dt and return the new P (P itself is not modified).

    Contact forces (penalty springs, normal direction only), the walking controller, Coulomb
    friction of the box on the ground, then semi-implicit Euler. cmd_vx, cmd_vy, cmd_w (2, E):
    world-frame velocity commands; head_x, head_y (2, E): robot headings, held over the control
    step (a robot turns at most 0.01 rad within it).
    """
    box_x, box_y, box_yaw, box_vx, box_vy, box_w = P[0], P[1], P[2], P[3], P[4], P[5]
    rob_x, rob_y, rob_yaw = P[ROBOT_X], P[ROBOT_Y], P[ROBOT_YAW]
    rob_vx, rob_vy, rob_w = P[ROBOT_VX], P[ROBOT_VY], P[ROBOT_W]
    r = ROBOT_CIRCLE_RADIUS

    # Centres of the three circles of each robot body: (2 robots, 3 circles, E).
    offsets = torch.tensor(ROBOT_CIRCLE_OFFSETS, dtype=P.dtype, device=P.device)[None, :, None]
    cx = rob_x[:, None] + offsets * head_x[:, None]
    cy = rob_y[:, None] + offsets * head_y[:, None]

    # Robot-box contacts in the box frame, from the square's signed distance function.
    c, s = torch.cos(box_yaw), torch.sin(box_yaw)
    qx = c * (cx - box_x) + s * (cy - box_y)
    qy = c * (cy - box_y) - s * (cx - box_x)
    ex, ey = qx.abs() - BOX_HALF, qy.abs() - BOX_HALF  # distance outside each pair of faces
    ox, oy = ex.clamp(min=0.0), ey.clamp(min=0.0)
    sdf = torch.sqrt(ox * ox + oy * oy) + torch.maximum(ex, ey).clamp(max=0.0)
    # Outward normal: along (ox, oy) outside the square; inside, along the least-deep axis.
    x_axis = (ex >= ey).to(P.dtype)
    wx, wy = ox + 1e-6 * x_axis, oy + 1e-6 * (1.0 - x_axis)
    wn = torch.sqrt(wx * wx + wy * wy)
    nx, ny = torch.copysign(wx / wn, qx), torch.copysign(wy / wn, qy)
    depth = (r - sdf).clamp(min=0.0)
    lx, ly = qx - nx * sdf, qy - ny * sdf  # contact point on the box surface (lever arm)
    # Normal velocity of each robot relative to the box surface point it touches (> 0: separating).
    rvx_b = c * rob_vx + s * rob_vy
    rvy_b = c * rob_vy - s * rob_vx
    bvx_b, bvy_b = c * box_vx + s * box_vy, c * box_vy - s * box_vx
    separating = (rvx_b[:, None] - bvx_b + box_w * ly) * nx + (rvy_b[:, None] - bvy_b - box_w * lx) * ny
    fn = (CONTACT_STIFFNESS * depth - CONTACT_DAMPING * separating).clamp(min=0.0) * (depth > 0).to(P.dtype)
    fx_b, fy_b = fn * nx, fn * ny  # force on each robot circle, box frame
    rob_fx_b, rob_fy_b = fx_b.sum(1), fy_b.sum(1)  # per robot (2, E)
    force_x = c * rob_fx_b - s * rob_fy_b  # back to the world frame
    force_y = s * rob_fx_b + c * rob_fy_b
    box_fx, box_fy = -force_x.sum(0), -force_y.sum(0)  # the box feels the opposite forces
    box_torque = -(lx * fy_b - ly * fx_b).sum((0, 1))

    # Robot-robot contacts between all 3 x 3 circle pairs: (3, 3, E), normal from robot 1 to 0.
    dx = cx[0][:, None] - cx[1][None, :]
    dy = cy[0][:, None] - cy[1][None, :]
    dist = torch.sqrt(dx * dx + dy * dy).clamp(min=1e-6)
    rr_depth = (2.0 * r - dist).clamp(min=0.0)
    rr_sep = (dx * (rob_vx[0] - rob_vx[1]) + dy * (rob_vy[0] - rob_vy[1])) / dist
    rr_f = (CONTACT_STIFFNESS * rr_depth - CONTACT_DAMPING * rr_sep).clamp(min=0.0) * (rr_depth > 0).to(P.dtype)
    rr_fx, rr_fy = (rr_f * dx / dist).sum((0, 1)), (rr_f * dy / dist).sum((0, 1))  # on robot 0
    force_x = force_x + torch.stack((rr_fx, -rr_fx))
    force_y = force_y + torch.stack((rr_fy, -rr_fy))

    # Walking controller: first-order velocity tracking with a force limit.
    gain = ROBOT_MASS / ROBOT_TRACKING_TAU
    drive_x, drive_y = gain * (cmd_vx - rob_vx), gain * (cmd_vy - rob_vy)
    limit = (ROBOT_FORCE_LIMIT / torch.sqrt(drive_x * drive_x + drive_y * drive_y).clamp(min=1e-9)).clamp(max=1.0)
    rob_vx = rob_vx + (drive_x * limit + force_x) * (dt / ROBOT_MASS)
    rob_vy = rob_vy + (drive_y * limit + force_y) * (dt / ROBOT_MASS)
    # Legged robots hold their heading; contact torques on them are not modelled.
    rob_w = rob_w + (cmd_w - rob_w) * (dt / ROBOT_TRACKING_TAU)

    # Box: applied impulse, then Coulomb friction as a velocity-level clamp (which gives stiction).
    mu_g_dt = P[FRICTION] * (GRAVITY * dt)
    vx, vy = box_vx + box_fx * (dt / BOX_MASS), box_vy + box_fy * (dt / BOX_MASS)
    slide = (1.0 - mu_g_dt / torch.sqrt(vx * vx + vy * vy).clamp(min=1e-9)).clamp(min=0.0)
    w = box_w + box_torque * (dt / BOX_YAW_INERTIA)
    spin_limit = mu_g_dt * (BOX_MASS * 2.0 * BOX_HALF * SQUARE_MEAN_RADIUS / BOX_YAW_INERTIA)
    box_vx, box_vy = vx * slide, vy * slide
    box_w = torch.copysign((w.abs() - spin_limit).clamp(min=0.0), w)
    return torch.cat(
        (
            torch.stack((box_x + box_vx * dt, box_y + box_vy * dt, box_yaw + box_w * dt, box_vx, box_vy, box_w)),
            rob_x + rob_vx * dt,
            rob_y + rob_vy * dt,
            rob_yaw + rob_w * dt,
            rob_vx,
            rob_vy,
            rob_w,
            P[FRICTION:],
        )
    )


def observe(P: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Agent-centric observations (E, 2, 8) in MAPush's order and units, and the state (E, 23).

    obs of agent i, all in i's heading frame: target xy, box xy, box yaw - yaw_i (mod 2 pi),
    other robot xy, other yaw - yaw_i (mod 2 pi). State: see STATE_LAYOUT (env frame, SI units).
    """
    rob_x, rob_y, rob_yaw = P[ROBOT_X], P[ROBOT_Y], P[ROBOT_YAW]
    c, s = torch.cos(rob_yaw), torch.sin(rob_yaw)
    # World vectors from each robot to the target, the box and the other robot: (3, 2, E).
    dx = torch.stack((P[TARGET_X] - rob_x, P[BOX_X] - rob_x, rob_x.flip(0) - rob_x))
    dy = torch.stack((P[TARGET_Y] - rob_y, P[BOX_Y] - rob_y, rob_y.flip(0) - rob_y))
    lx, ly = c * dx + s * dy, c * dy - s * dx  # into each robot's heading frame
    two_pi = 2.0 * math.pi
    box_rel_yaw = torch.remainder(P[BOX_YAW] - rob_yaw, two_pi)
    other_rel_yaw = torch.remainder(rob_yaw.flip(0) - rob_yaw, two_pi)
    obs = torch.stack((lx[0], ly[0], lx[1], ly[1], box_rel_yaw, lx[2], ly[2], other_rel_yaw))
    box_c, box_s = torch.cos(P[BOX_YAW]), torch.sin(P[BOX_YAW])
    state = torch.stack(
        (P[0], P[1], box_c, box_s, P[3], P[4], P[5], P[TARGET_X], P[TARGET_Y])
        + tuple(v for i in range(2) for v in (rob_x[i], rob_y[i], c[i], s[i], P[12 + i], P[14 + i], P[16 + i]))
    )
    return obs.permute(2, 1, 0).contiguous(), state.T.contiguous()


def box_target_distance(P: torch.Tensor) -> torch.Tensor:
    return torch.hypot(P[TARGET_X] - P[BOX_X], P[TARGET_Y] - P[BOX_Y])


def reward_terms(P: torch.Tensor, prev_distance, success, failure, cfg: TaskConfig) -> torch.Tensor:
    """The seven MAPush reward terms (7, 2, E) in REWARD_TERMS order, on the post-physics state."""
    distance = box_target_distance(P)
    progress = cfg.target_reward_scale * 100.0 * (2.0 * (prev_distance - distance) - 0.01 * distance)
    to_box_x, to_box_y = P[BOX_X] - P[ROBOT_X], P[BOX_Y] - P[ROBOT_Y]  # (2, E)
    dist3 = torch.sqrt(to_box_x * to_box_x + to_box_y * to_box_y + (BOX_Z - ROBOT_Z) ** 2)
    approach = -cfg.approach_reward_scale * (dist3 + 0.5) ** 2
    gap = torch.hypot(P[6] - P[7], P[8] - P[9])
    collision = cfg.collision_punishment_scale / (0.02 + gap / 3.0)
    push = cfg.push_reward_scale * (torch.hypot(P[BOX_VX], P[BOX_VY]) > 0.1).to(P.dtype)
    # OCB: unit box->target direction dotted with the inward normal of the face nearest each robot.
    # Outside a corner both faces are equally near (the corner); MAPush's min over its edge list
    # then keeps the first edge: corner (+, +) gives the x face, the three other corners a y face.
    c, s = torch.cos(P[BOX_YAW]), torch.sin(P[BOX_YAW])
    qx = -(c * to_box_x + s * to_box_y)  # robot position in the box frame
    qy = -(c * to_box_y - s * to_box_x)
    corner = (qx.abs() > BOX_HALF) & (qy.abs() > BOX_HALF)
    x_face = torch.where(corner, (qx > 0) & (qy > 0), qx.abs() >= qy.abs()).to(P.dtype)
    in_x, in_y = -torch.sign(qx) * x_face, -torch.sign(qy) * (1.0 - x_face)  # inward, box frame
    g_x = (P[TARGET_X] - P[BOX_X]) / distance.clamp(min=1e-6)
    g_y = (P[TARGET_Y] - P[BOX_Y]) / distance.clamp(min=1e-6)
    ocb = cfg.ocb_reward_scale * ((c * in_x - s * in_y) * g_x + (s * in_x + c * in_y) * g_y)
    shared = torch.stack(
        (
            progress,
            collision,
            push,
            cfg.reach_target_reward_scale * success.to(P.dtype),
            cfg.exception_punishment_scale * failure.to(P.dtype),
        )
    )[:, None].expand(-1, 2, -1)
    return torch.stack((shared[0], approach, shared[1], shared[2], ocb, shared[3], shared[4]))


def advance_physics(P: torch.Tensor, actions: torch.Tensor, substeps: int) -> torch.Tensor:
    """Physics P (21, E) after one 0.02 s control step of raw actions (E, 2, 3): MAPush's command
    u = 0.5 clip(a, -1, 1) (body-frame vx, vy, yaw rate), held for `substeps` physics steps."""
    u = ACTION_SCALE * actions.clamp(-1.0, 1.0).permute(2, 1, 0)  # (3, 2, E)
    c, s = torch.cos(P[ROBOT_YAW]), torch.sin(P[ROBOT_YAW])
    cmd_vx, cmd_vy = c * u[0] - s * u[1], s * u[0] + c * u[1]  # body frame -> world frame
    dt = 0.02 / substeps
    for _ in range(substeps):
        P = physics_substep(P, cmd_vx, cmd_vy, u[2], c, s, dt)
    return P


def step_core(P, prev_distance, episode_length, episode_return, actions, spawn_u, cfg: TaskConfig):
    """One control step of all envs as a pure function (so that torch.compile can fuse it).

    P (21, E) physics, actions (E, 2, 3) raw, spawn_u (16, E) uniforms for resets.
    Returns (outputs, new_state): outputs = obs, state, reward, terminated, truncated, then the
    values of INFO_KEYS; new_state = the next (P, prev_distance, episode_length, episode_return).
    """
    P = advance_physics(P, actions, cfg.substeps)
    episode_length = episode_length + 1

    distance = box_target_distance(P)
    success = distance < cfg.success_radius
    failure = torch.hypot(P[6] - P[7], P[8] - P[9]) < cfg.failure_distance
    terminated = success | failure
    truncated = (episode_length >= cfg.max_episode_steps) & ~terminated
    done = terminated | truncated
    terms = reward_terms(P, prev_distance, success, failure, cfg)
    reward = terms.sum(0).T
    if cfg.team_reward:
        reward = reward.sum(1, keepdim=True).expand(-1, 2)
    reward = reward.contiguous()
    episode_return = episode_return + reward
    near = (torch.hypot(P[ROBOT_X] - P[BOX_X], P[ROBOT_Y] - P[BOX_Y]) < 1.0).all(0)
    final_obs, final_state = observe(P)

    # Auto-reset: blend fresh spawns into the columns of ended envs (no data-dependent branching).
    P_next = torch.where(done, spawn_physics(spawn_u, cfg, P[FRICTION]), P)
    obs, state = observe(P_next)
    not_done = (~done).to(episode_return.dtype)
    outputs = (obs, state, reward, terminated, truncated, final_obs, final_state, success, failure)
    outputs += (episode_return, episode_length, terms.mean((1, 2)), near)
    new_state = (P_next, box_target_distance(P_next), episode_length * (~done), episode_return * not_done[:, None])
    return outputs, new_state


def validate_actions(env, actions) -> None:
    """Raise ValueError unless actions is a finite float32 (E, 2, 3) tensor on the env's device.

    Shared by both backends. The NaN/inf check needs a host sync, so it runs only when
    env.check_finite is set (by default on CPU only)."""
    expected = (env.num_envs, env.num_agents, env.action_dim)
    if not isinstance(actions, torch.Tensor):
        raise ValueError(f"actions must be a torch.Tensor of shape {expected}, got {type(actions).__name__}")
    if tuple(actions.shape) != expected:
        raise ValueError(f"actions must have shape {expected} (envs, agents, 3), got {tuple(actions.shape)}")
    if actions.dtype != torch.float32:
        raise ValueError(f"actions must be float32, got {actions.dtype}")
    if actions.device != env.device:
        raise ValueError(f"actions are on {actions.device}, the environment is on {env.device}")
    if env.check_finite and not bool(torch.isfinite(actions).all()):
        raise ValueError("actions contain NaN or inf")


class PushTaskSpec:
    """Sizes and names of the task, shared by both backends (part of the API)."""

    num_agents = 2
    obs_dim = 8
    state_dim = len(STATE_LAYOUT)
    action_dim = 3
    reward_terms = REWARD_TERMS
    state_layout = STATE_LAYOUT

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """What resuming a training run needs to continue these episodes; {} if it cannot be saved."""
        return {}

    def load_state_dict(self, saved: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Restore a `state_dict()` and return the current (obs, state); {} starts fresh episodes."""
        if saved:
            raise ValueError(f"the {self.backend} backend cannot restore a saved environment state")
        return self.reset()


class CuboidPushEnv(PushTaskSpec):
    """E environments of the two-robot cuboid push, all tensors on `device`.

    API (shared with the Isaac Gym backend):
      obs, state = env.reset()
      obs, state, reward, terminated, truncated, info = env.step(actions)
    obs (E, 2, 8), state (E, 23), actions (E, 2, 3) raw policy samples, reward (E, 2),
    terminated / truncated (E,) bool. Ended environments are reset inside `step`; `info` holds the
    pre-reset `final_obs` / `final_state` (valid where terminated | truncated).
    `compile=True` runs the step through torch.compile (needs a C++ compiler on CPU; measured 3-10x
    faster on 2 CPU cores after a one-off compilation of about a minute, seconds once cached).
    """

    backend = "torch"

    def __init__(
        self,
        num_envs: int,
        device: str = "cpu",
        seed: int = 0,
        check_finite: Optional[bool] = None,
        compile: bool = False,
        **task_options,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.cfg = task_config_from_options(task_options)
        self.max_episode_steps = self.cfg.max_episode_steps
        # Checking actions for NaN/inf needs a host sync; on CUDA it is off unless asked for.
        self.check_finite = self.device.type == "cpu" if check_finite is None else bool(check_finite)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        E, dev = self.num_envs, self.device
        # All physical state, one row per scalar and one column per env: see BOX_X ... TARGET_Y.
        # The box friction is drawn here, once per env, and kept by every reset (as in MAPush).
        self._physics = torch.zeros(PHYSICS_ROWS, E, device=dev)
        f_lo, f_hi = self.cfg.box_friction_range
        self._physics[FRICTION] = f_lo + (f_hi - f_lo) * torch.rand(E, generator=self.generator, device=dev)
        self.prev_distance = torch.zeros(E, device=dev)
        self.episode_length = torch.zeros(E, dtype=torch.long, device=dev)
        self.episode_return = torch.zeros(E, 2, device=dev)
        self._core = step_core
        if compile:
            from envs import compile_problem

            problem = compile_problem()
            if problem is not None:
                raise ValueError(f"compile=True {problem}")
            self._core = torch.compile(step_core, dynamic=False)
        self._trails = None  # positions recorded for rendering, see record_trails()

    def _uniforms(self) -> torch.Tensor:
        return torch.rand(NUM_SPAWN_UNIFORMS, self.num_envs, generator=self.generator, device=self.device)

    @torch.no_grad()
    def reset(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Reset every environment and return (obs (E, 2, 8), state (E, 23))."""
        self._physics = spawn_physics(self._uniforms(), self.cfg, self._physics[FRICTION])
        self.prev_distance = box_target_distance(self._physics)
        self.episode_length.zero_()
        self.episode_return.zero_()
        if self._trails is not None:
            self._trails = []
        return observe(self._physics)

    @torch.no_grad()
    def step(self, actions: torch.Tensor):
        """Advance every environment by one 0.02 s control step (see the class docstring)."""
        validate_actions(self, actions)
        outputs, new_state = self._core(
            self._physics,
            self.prev_distance,
            self.episode_length,
            self.episode_return,
            actions,
            self._uniforms(),
            self.cfg,
        )
        if self._trails is not None:  # before the reset: the trail ends where the episode ended
            self._trails.append(outputs[6][:, [0, 1, 9, 10, 16, 17]].clone())
        self._physics, self.prev_distance, self.episode_length, self.episode_return = new_state
        obs, state, reward, terminated, truncated = outputs[:5]
        info = dict(zip(INFO_KEYS, outputs[5:]))
        return obs, state, reward, terminated, truncated, info

    # --- saving and restoring (resuming a training run exactly) ---------------------------------
    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Physics, episode counters and the random-number generator, as tensors (copies)."""
        return {
            "physics": self._physics.clone(),
            "prev_distance": self.prev_distance.clone(),
            "episode_length": self.episode_length.clone(),
            "episode_return": self.episode_return.clone(),
            "generator": self.generator.get_state(),
        }

    @torch.no_grad()
    def load_state_dict(self, saved: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Continue exactly where `state_dict()` was taken; returns the current (obs, state)."""
        if not saved:
            return self.reset()
        if tuple(saved["physics"].shape) != tuple(self._physics.shape):
            raise ValueError(
                f"saved environment state is for {saved['physics'].shape[1]} envs, this env has {self.num_envs}"
            )
        self._physics = saved["physics"].to(self.device).clone()
        self.prev_distance = saved["prev_distance"].to(self.device).clone()
        self.episode_length = saved["episode_length"].to(self.device).clone()
        self.episode_return = saved["episode_return"].to(self.device).clone()
        self.generator.set_state(saved["generator"].cpu())
        if self._trails is not None:
            self._trails = []
        return observe(self._physics)

    # --- rendering ----------------------------------------------------------------------------
    def record_trails(self, enabled: bool = True) -> None:
        """Start (or stop) keeping box and robot positions so that render() can draw trails."""
        self._trails = [] if enabled else None

    def render(self, env_index: int = 0, size: int = 480):
        """Top view of one environment as an RGB uint8 array (H, W, 3). Needs Pillow."""
        from envs.render import draw_top_view

        i = int(env_index)
        if not 0 <= i < self.num_envs:
            raise ValueError(f"env_index must be in [0, {self.num_envs}), got {env_index}")
        p = self._physics[:, i].detach().cpu().tolist()
        trails = None
        if self._trails:
            trails = torch.stack([t[i] for t in self._trails]).cpu().view(-1, 3, 2).tolist()
        return draw_top_view(
            box_xy=p[0:2],
            box_yaw=p[2],
            box_half=BOX_HALF,
            target_xy=p[19:21],
            success_radius=self.cfg.success_radius,
            robots_xy=[(p[6], p[8]), (p[7], p[9])],
            robots_yaw=p[10:12],
            robot_size=(0.5, 2 * ROBOT_CIRCLE_RADIUS),
            trails=trails,
            size=size,
        )


INFO_KEYS = (
    "final_obs",
    "final_state",
    "success",
    "failure",
    "episode_return",
    "episode_length",
    "reward_terms",
    "robots_near_box",
)
