"""MAPush's own code as a test oracle, on the CPU, without Isaac Gym.

MAPush (collaborative-mapush/MAPush) is found through MAPUSH_ROOT (a checkout) or an installed `mqe`.
Its modules are imported for real; what they need from Isaac Gym and from packages this project does
not install is stood in for by the small modules below, written here from the documented formulas
(Isaac Gym's `torch_utils` quaternion helpers) or as empty names (imports that the mid-level task never
calls: OpenRL, treelib, matplotlib, scipy). The simulator itself is replaced by `SurrogateSim`: a base
env whose root states are set from the torch backend's physics, and which runs MAPush's own
`check_termination`, `reset_idx` (with `_reset_root_states`) and `compute_observations` on them, so
that MAPush's wrapper and the Isaac Gym adapter run unmodified on top.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import types
from contextlib import contextmanager

import numpy
import torch

from envs.cuboid_push import (
    ACTION_SCALE,
    BOX_Z,
    FRICTION,
    PHYSICS_ROWS,
    ROBOT_Z,
    TARGET_X,
    TARGET_Y,
    TaskConfig,
    advance_physics,
)

BOX_SPAWN = (12.0, 0.0)  # MAPush's box reset position, env-local: the surrogate's origin
TARGET_Z = 0.1
SKIP_REASON = "MAPush's code not found: set MAPUSH_ROOT to a MAPush checkout (github.com/collaborative-mapush/MAPush)"


def mapush_root():
    """The MAPush checkout to test against, or None."""
    root = os.environ.get("MAPUSH_ROOT")
    if root and os.path.isfile(os.path.join(root, "mqe", "envs", "wrappers", "go1_push_mid_wrapper.py")):
        return os.path.abspath(root)
    try:
        import mqe  # noqa: F401  (an installed MAPush)
    except Exception:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["mqe"].__file__)))


# --- Isaac Gym's torch_utils: quaternions are (x, y, z, w), Euler angles returned in [0, 2 pi) ----------------
def to_torch(x, dtype=torch.float, device="cuda:0", requires_grad=False):
    return torch.tensor(x, dtype=dtype, device=device, requires_grad=requires_grad)


def get_axis_params(value, axis_idx, x_value=0.0, dtype=float, n_dims=3):
    params = [x_value] + [0.0] * (n_dims - 1)
    params[axis_idx] = value
    return [dtype(v) for v in params]


def torch_rand_float(lower, upper, shape, device):
    return (upper - lower) * torch.rand(*shape, device=device) + lower


def normalize(x, eps=1e-9):
    return x / x.norm(p=2, dim=-1).clamp(min=eps).unsqueeze(-1)


def quat_mul(a, b):
    shape = a.shape
    a, b = a.reshape(-1, 4), b.reshape(-1, 4)
    x1, y1, z1, w1 = a.unbind(-1)
    x2, y2, z2, w2 = b.unbind(-1)
    w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
    x = w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2
    y = w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2
    z = w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2
    return torch.stack((x, y, z, w), -1).view(shape)


def quat_conjugate(a):
    return torch.cat((-a[..., :3], a[..., 3:]), -1)


def quat_rotate(q, v):
    w, u = q[:, 3:4], q[:, :3]
    return v * (2.0 * w**2 - 1.0) + torch.cross(u, v, dim=-1) * w * 2.0 + u * (u * v).sum(-1, keepdim=True) * 2.0


def quat_rotate_inverse(q, v):
    w, u = q[:, 3:4], q[:, :3]
    return v * (2.0 * w**2 - 1.0) - torch.cross(u, v, dim=-1) * w * 2.0 + u * (u * v).sum(-1, keepdim=True) * 2.0


def quat_apply(a, b):
    shape = b.shape
    a, b = a.reshape(-1, 4), b.reshape(-1, 3)
    t = torch.cross(a[:, :3], b, dim=-1) * 2
    return (b + a[:, 3:] * t + torch.cross(a[:, :3], t, dim=-1)).view(shape)


def tf_apply(rot, trans, v):
    return quat_apply(rot, v) + trans


def quat_from_euler_xyz(roll, pitch, yaw):
    cy, sy = torch.cos(yaw * 0.5), torch.sin(yaw * 0.5)
    cr, sr = torch.cos(roll * 0.5), torch.sin(roll * 0.5)
    cp, sp = torch.cos(pitch * 0.5), torch.sin(pitch * 0.5)
    qw = cy * cr * cp + sy * sr * sp
    qx = cy * sr * cp - sy * cr * sp
    qy = cy * cr * sp + sy * sr * cp
    qz = sy * cr * cp - cy * sr * sp
    return torch.stack((qx, qy, qz, qw), -1)


def get_euler_xyz(q):
    x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    roll = torch.atan2(2.0 * (w * x + y * z), w * w - x * x - y * y + z * z)
    sinp = 2.0 * (w * y - z * x)
    pitch = torch.where(sinp.abs() >= 1, torch.copysign(torch.full_like(sinp, math.pi / 2), sinp), torch.asin(sinp))
    yaw = torch.atan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)
    two_pi = 2.0 * math.pi
    return roll % two_pi, pitch % two_pi, yaw % two_pi


TORCH_UTILS = [to_torch, get_axis_params, torch_rand_float, normalize, quat_mul, quat_conjugate, quat_rotate]
TORCH_UTILS += [quat_rotate_inverse, quat_apply, tf_apply, quat_from_euler_xyz, get_euler_xyz]


class _Anything:
    """Stands for a class or function that MAPush names at import time but the mid task never uses."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return _Anything()

    def __call__(self, *args, **kwargs):
        return _Anything()


class _NoOpGym:
    """Isaac Gym's `gym` handle: the simulator calls (set root states, DOF states) do nothing here."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Wrapper:
    """gym.Wrapper as MAPush uses it: holds `env` and reads any other public attribute from it."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)


class _Box:
    """gym.spaces.Box: MAPush reads only its shape."""

    def __init__(self, low=None, high=None, shape=None, dtype=None):
        self.low, self.high, self.shape, self.dtype = low, high, shape, dtype


def _any_public_name(name):
    if name.startswith("_"):
        raise AttributeError(name)
    return _Anything


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__path__ = []  # a package, so that submodules can be imported from it
    return module


def stand_ins():
    """Modules to put into sys.modules before importing MAPush: Isaac Gym always, the rest if missing."""
    # Isaac Gym's torch_utils has no __all__: MAPush's `import *` of it also brings numpy as np.
    torch_utils = _module("isaacgym.torch_utils", np=numpy, torch=torch, **{f.__name__: f for f in TORCH_UTILS})
    gymapi = _module("isaacgym.gymapi", SIM_PHYSX=1, SIM_FLEX=0, DOMAIN_SIM=0)
    gymapi.__getattr__ = _any_public_name  # Transform, Vec3, AssetOptions, ...
    modules = {
        "isaacgym": _module("isaacgym"),
        "isaacgym.torch_utils": torch_utils,
        "isaacgym.gymapi": gymapi,
        "isaacgym.gymtorch": _module("isaacgym.gymtorch", wrap_tensor=lambda t: t, unwrap_tensor=lambda t: t),
        "isaacgym.gymutil": _module(
            "isaacgym.gymutil", parse_device_str=lambda s: (s.split(":")[0], 0), parse_sim_config=_Anything
        ),
        "isaacgym.terrain_utils": _module("isaacgym.terrain_utils", convert_heightfield_to_trimesh=_Anything),
    }
    for name in ("isaacgym.torch_utils", "isaacgym.gymapi", "isaacgym.gymtorch", "isaacgym.gymutil"):
        setattr(modules["isaacgym"], name.split(".")[1], modules[name])
    modules["isaacgym.terrain_utils"].SubTerrain = _Anything
    optional = {
        "gym": lambda: {"gym": _module("gym", Wrapper=_Wrapper), "gym.spaces": _module("gym.spaces", Box=_Box)},
        "openrl": lambda: {
            "openrl": _module("openrl"),
            "openrl.modules": _module("openrl.modules"),
            "openrl.modules.ppo_module": _module("openrl.modules.ppo_module", PPOModule=_Anything),
        },
        "treelib": lambda: {"treelib": _module("treelib", Tree=_Anything)},
        "matplotlib": lambda: {
            "matplotlib": _module("matplotlib"),
            "matplotlib.pyplot": _module("matplotlib.pyplot"),
            "matplotlib.patches": _module("matplotlib.patches"),
        },
        "scipy": lambda: {
            "scipy": _module("scipy"),
            "scipy.interpolate": _module("scipy.interpolate", CubicSpline=_Anything, interp2d=_Anything),
        },
    }
    for name, make in optional.items():
        try:
            importlib.import_module(name)
        except ImportError:
            modules.update(make())
    if "gym" in modules:
        modules["gym"].spaces = modules["gym.spaces"]
    if "scipy" in modules:
        modules["scipy"].interpolate = modules["scipy.interpolate"]
    if "matplotlib" in modules:
        modules["matplotlib"].pyplot = modules["matplotlib.pyplot"]
    return modules


class _CpuTorch:
    """`torch` as MAPush's mid wrapper sees it in these tests: its one hard-coded device="cuda" (the
    action scale) is made on the CPU; everything else is torch itself."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor(data, *args, device=None, **kwargs):
        return torch.tensor(data, *args, device="cpu" if device == "cuda" else device, **kwargs)


@contextmanager
def mapush_imported(root, monkeypatch):
    """Import MAPush's mqe with the stand-ins; undo every sys.modules / sys.path change afterwards."""
    for name, module in stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys, "path", [root] + list(sys.path))
    loaded_before = {m for m in sys.modules if m == "mqe" or m.startswith("mqe.")}
    for name in loaded_before:
        monkeypatch.delitem(sys.modules, name)
    try:
        utils = importlib.import_module("mqe.envs.utils")
        wrapper_module = importlib.import_module("mqe.envs.wrappers.go1_push_mid_wrapper")
        monkeypatch.setattr(wrapper_module, "torch", _CpuTorch())
        yield utils
    finally:
        for name in [m for m in sys.modules if m == "mqe" or m.startswith("mqe.")]:
            del sys.modules[name]


# --- the simulator replaced: root states from the torch backend's physics ---------------------------------------
def yaw_quat(yaw):
    zeros = torch.zeros_like(yaw)
    return torch.stack((zeros, zeros, torch.sin(0.5 * yaw), torch.cos(0.5 * yaw)), -1)


def quat_yaw(q):
    return torch.atan2(2.0 * (q[:, 3] * q[:, 2] + q[:, 0] * q[:, 1]), 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2))


def make_surrogate_sim_class(go1_object):
    """A subclass of MAPush's Go1Object without a simulator (see the module docstring)."""

    class SurrogateSim(go1_object):
        def __init__(self, cfg, sim_params=None, physics_engine=None, sim_device="cpu", headless=True, **_):
            E, A, N = cfg.env.num_envs, cfg.env.num_agents, cfg.env.num_npcs
            self.cfg, self.num_envs, self.num_agents, self.num_npcs, self.num_obs = cfg, E, A, N, 0
            self.device = "cpu"
            self.gym, self.sim, self.headless = _NoOpGym(), None, True
            self.sim_params = types.SimpleNamespace(dt=cfg.sim.dt)
            self._parse_cfg(cfg)  # MAPush's: dt, max_episode_length, obs scales
            self.decimation = cfg.control.decimation
            self.physics = torch.zeros(PHYSICS_ROWS, E)
            self.physics[FRICTION] = 0.33
            self.task = TaskConfig()
            # MAPush's 1 x 1 terrain gives every env the same origin (its collision check relies on it).
            self.env_origins = torch.tensor([[3.0, -7.0, 0.0]]).repeat(E, 1)
            self.agent_origins = self.env_origins[:, None].repeat(1, A, 1)
            self.env_origins_repeat = self.agent_origins.reshape(-1, 3)
            actors = torch.arange(E * (A + N), dtype=torch.int32).view(E, A + N)
            self.actor_indices, self.agent_indices, self.npc_indices = actors, actors[:, :A], actors[:, A:]
            self.env_agent_indices = torch.arange(E * A).view(E, A)
            self.env_npc_indices = torch.arange(E * N).view(E, N)
            init = cfg.init_state
            self.base_init_state = torch.tensor(
                [s.pos + s.rot + s.lin_vel + s.ang_vel for s in init.init_states], dtype=torch.float
            ).repeat(E, 1)
            self.base_init_state_npc = torch.tensor(
                [s.pos + s.rot + s.lin_vel + s.ang_vel for s in init.init_states_npc], dtype=torch.float
            ).repeat(E, 1)
            self.all_root_states = torch.zeros(E * (A + N), 13)
            self._split_root_states()
            self.base_quat = self.root_states[:, 3:7].clone()
            self.num_dof = 12
            self.num_actuated_dof = self.num_actions = A * 12
            self.num_actions_npc = 0
            self.all_dof_states = torch.zeros(E * A * 12, 2)
            self.dof_pos = torch.zeros(E, A * 12)
            self.dof_vel = torch.zeros(E, A * 12)
            self.default_dof_pos = torch.zeros(1, A * 12)
            self.actions = torch.zeros(E, A * 12)
            self.last_actions = torch.zeros(E, A * 12)
            self.last_dof_vel = torch.zeros(E, A * 12)
            self.feet_air_time = torch.zeros(E, 4)
            self.gait_indices = torch.zeros(E * A)
            self.clock_inputs = torch.zeros(E * A, 4)
            self.history_locomotion_obs = torch.zeros(E * A, 2100)
            self.projected_gravity = torch.tensor([[0.0, 0.0, -1.0]]).repeat(E * A, 1)
            self.base_lin_vel = torch.zeros(E * A, 3)
            self.base_ang_vel = torch.zeros(E * A, 3)
            self.termination_contact_indices = []
            self.episode_sums, self.extras = {}, {}
            self.episode_length_buf = torch.zeros(E, dtype=torch.long)
            self.reset_buf = torch.ones(E, dtype=torch.bool)
            self.time_out_buf = torch.zeros(E, dtype=torch.bool)
            self.common_step_counter = 0
            for name in ("finished_buf", "value_exception_buf", "exception_buf", "init_reset_buf"):
                setattr(self, name, torch.zeros(E, dtype=torch.bool))
            for name in ("init_finished_buf", "last_init_finished_buf"):
                setattr(self, name, torch.zeros(E, dtype=torch.bool))
            self.init_episode_length_buf = torch.zeros(E, dtype=torch.long)
            self.collaboration_degree_buf = torch.zeros(E)
            self.collision_degree_buf = torch.zeros(E)
            self.complete_video_frames = None
            self.obs_buf = cfg.obs  # MAPush's Go1 keeps `copy(cfg.obs)`, i.e. the class itself
            go = importlib.import_module("mqe.envs.utils_dist")
            self.dist_calculator = go.dist_calculator(cfg.asset.vertex_list)
            self.log = []  # per step: (physics before the reset, physics after it, ended envs)
            self.next_physics = None  # set to jump to a given state on the next step instead of simulating

        # Root states from the surrogate's physics, and back.
        def _split_root_states(self):
            E, A = self.num_envs, self.num_agents
            view = self.all_root_states.view(E, -1, 13)
            self.root_states = view[:, :A].reshape(-1, 13)
            self.base_pos = self.root_states[:, 0:3]
            self.root_states_npc = view[:, A:].reshape(-1, 13)

        def write_root_states(self, P):
            """Set every actor's root state from physics P (21, E), in MAPush's env-local frame."""
            E = self.num_envs
            view = self.all_root_states.view(E, -1, 13)
            o = self.env_origins
            view.zero_()
            view[:, 2, 0] = o[:, 0] + BOX_SPAWN[0] + P[0]
            view[:, 2, 1] = o[:, 1] + BOX_SPAWN[1] + P[1]
            view[:, 2, 2] = BOX_Z
            view[:, 2, 3:7] = yaw_quat(P[2])
            view[:, 2, 7], view[:, 2, 8], view[:, 2, 12] = P[3], P[4], P[5]
            view[:, 3, 0] = o[:, 0] + BOX_SPAWN[0] + P[TARGET_X]
            view[:, 3, 1] = o[:, 1] + BOX_SPAWN[1] + P[TARGET_Y]
            view[:, 3, 2] = TARGET_Z
            view[:, 3, 6] = 1.0
            for i in range(2):
                view[:, i, 0] = o[:, 0] + BOX_SPAWN[0] + P[6 + i]
                view[:, i, 1] = o[:, 1] + BOX_SPAWN[1] + P[8 + i]
                view[:, i, 2] = ROBOT_Z
                view[:, i, 3:7] = yaw_quat(P[10 + i])
                view[:, i, 7], view[:, i, 8], view[:, i, 12] = P[12 + i], P[14 + i], P[16 + i]

        def read_root_states(self, env_ids):
            """Physics of `env_ids` from MAPush's root states (after its reset spawned them)."""
            E = self.num_envs
            box = self.root_states_npc.view(E, -1, 13)[env_ids]
            robots = self.root_states.view(E, -1, 13)[env_ids]
            o = self.env_origins[env_ids]
            P = self.physics[:, env_ids].clone()
            P[0], P[1] = box[:, 0, 0] - o[:, 0] - BOX_SPAWN[0], box[:, 0, 1] - o[:, 1] - BOX_SPAWN[1]
            P[2] = quat_yaw(box[:, 0, 3:7])
            P[3], P[4], P[5] = box[:, 0, 7], box[:, 0, 8], box[:, 0, 12]
            P[TARGET_X], P[TARGET_Y] = box[:, 1, 0] - o[:, 0] - BOX_SPAWN[0], box[:, 1, 1] - o[:, 1] - BOX_SPAWN[1]
            for i in range(2):
                P[6 + i] = robots[:, i, 0] - o[:, 0] - BOX_SPAWN[0]
                P[8 + i] = robots[:, i, 1] - o[:, 1] - BOX_SPAWN[1]
                P[10 + i] = quat_yaw(robots[:, i, 3:7])
                P[12 + i], P[14 + i], P[16 + i] = robots[:, i, 7], robots[:, i, 8], robots[:, i, 12]
            return P

        # MAPush's post_physics_step without the simulator calls, in its order.
        def _post_physics_step(self):
            self.episode_length_buf += 1
            self.common_step_counter += 1
            self._split_root_states()
            self.base_quat[:] = self.root_states[:, 3:7]
            self.check_termination()
            env_ids = self.reset_buf.nonzero(as_tuple=False).flatten()
            before = self.physics.clone()
            self.reset_idx(env_ids)
            if len(env_ids):
                self.physics[:, env_ids] = self.read_root_states(env_ids)
            self.compute_observations()
            self.log.append((before, self.physics.clone(), env_ids))

        def reset(self):
            self.reset_idx(torch.arange(self.num_envs))
            self.physics = self.read_root_states(torch.arange(self.num_envs))
            self.compute_observations()
            return self.obs_buf

        def set_physics(self, P):
            """Place every env in the state P (21, E) (as if the simulator had reached it)."""
            self.physics = P.clone()
            self.write_root_states(self.physics)
            self._split_root_states()
            self.base_quat[:] = self.root_states[:, 3:7]
            self.compute_observations()

        def step(self, commands):
            """commands (E * 2, 3): MAPush's 0.5 * clip(a). Advances the surrogate's physics (or jumps
            to `next_physics`, once), then runs MAPush's termination, reset and observation code."""
            actions = commands.reshape(self.num_envs, self.num_agents, 3) / ACTION_SCALE
            if self.next_physics is None:
                self.physics = advance_physics(self.physics, actions, self.task.substeps)
            else:
                self.physics, self.next_physics = self.next_physics.clone(), None
            self.write_root_states(self.physics)
            self._post_physics_step()
            return self.obs_buf, None, self.reset_buf, self.extras

    return SurrogateSim
