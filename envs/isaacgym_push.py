"""Isaac Gym backend: MAPush's own go1push_mid cuboid task behind the torch backend's API.

Needs Isaac Gym Preview 4 (`import isaacgym`), MAPush's `mqe` package and a CUDA device. MAPush is
found as an installed `mqe` package, or through the MAPUSH_ROOT environment variable (the root of a
MAPush checkout, which holds `mqe/` and `task/`). Install steps: docs/isaacgym.md.

What differs from the torch backend, because of how MAPush works:
- MAPush resets ended environments inside its step and returns the next episode's first
  observation; it exposes no terminal observation. `info["final_obs"]` / `info["final_state"]`
  therefore hold the last observation and state *before* the ending step (one 0.02 s step early).
  The scripts bootstrap time-limit truncations with V(final_state), i.e. with the value one step
  before the time limit: a small bias, far smaller than treating timeouts as terminal.
- Endings are read from MAPush's flags: success is `finished_buf`, failure its exception flags
  (roll, pitch, z-wave, robot collision; MAPush gives -5 for them even on the time-out step), and an
  env that ends on the step where its episode counter passes the limit without either was
  truncated. MAPush's counter must exceed `max_episode_length` (1000), so an episode that times
  out lasts 1001 steps; `max_episode_steps` counts those steps, as the torch backend does.
- MAPush's config names the locomotion policy and the actuator net relative to the working folder
  (MAPush's root); they are made absolute here so that the scripts run from any folder.
- The dense reward terms follow MAPush's quirk of being computed on post-reset states on reset
  steps (sizes in docs/envs.md); the torch backend fixes that, this one cannot.
- Robot velocities in the state are finite differences of base positions and yaws over one step
  (zero on the first step of an episode), in the same frame and units as the torch backend.
- MAPush's observation on the step an env is reset (the next episode's first) uses the robots' new
  positions with their previous yaws (its base_quat buffer is copied before the reset); it is passed
  on as MAPush makes it. The state reads the yaws from the root states and is the new episode's.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from types import SimpleNamespace
from typing import Optional, Tuple

import torch

from envs.cuboid_push import ACTION_SCALE, BOX_HALF, REWARD_TERMS, PushTaskSpec, validate_actions

# MAPush's names for the reward terms (its wrapper's reward_buffer keys), in REWARD_TERMS order.
MAPUSH_REWARD_KEYS = (
    "distance_to_target_reward",
    "approach_to_box_reward",
    "collision_punishment",
    "push_reward",
    "ocb_reward",
    "reach_target_reward",
    "exception_punishment",
)
# MAPush's reward_buffer adds these per agent and every other term once per env.
MAPUSH_PER_AGENT_KEYS = ("approach_to_box_reward", "ocb_reward")
# Go1 config fields that MAPush gives relative to its root (it expects to be run from there).
MAPUSH_RELATIVE_PATHS = ("locomotion_policy_dir", "actuator_network_path")
INSTALL_HELP = (
    "The Isaac Gym backend needs (1) Isaac Gym Preview 4 from NVIDIA (pip install -e isaacgym/python, "
    "Python 3.8), (2) MAPush (git clone https://github.com/collaborative-mapush/MAPush; pip install -e .), "
    "or MAPUSH_ROOT=/path/to/MAPush, and (3) a CUDA device. See docs/isaacgym.md. "
    "Without them use --backend torch (the default surrogate)."
)


def _import_mqe():
    """Import MAPush's `mqe`, from the installed package or from $MAPUSH_ROOT."""
    try:
        return importlib.import_module("mqe.envs.utils")
    except ModuleNotFoundError as err:
        if err.name not in ("mqe", "mqe.envs"):
            raise _missing_dependency(err) from err
        root = os.environ.get("MAPUSH_ROOT")
        if not root:
            raise
        if root not in sys.path:
            sys.path.insert(0, root)  # MAPush's scripts import `mqe` and `task` from its root
        try:
            return importlib.import_module("mqe.envs.utils")
        except ModuleNotFoundError as err:
            if err.name in ("mqe", "mqe.envs"):
                raise
            raise _missing_dependency(err) from err


def _missing_dependency(err: ModuleNotFoundError) -> ModuleNotFoundError:
    """MAPush's `mqe.envs.utils` imports OpenRL, gym, treelib, scipy and matplotlib for every task."""
    return ModuleNotFoundError(
        f"MAPush's mqe imports {err.name!r}, which is not installed: "
        "pip install -r requirements-isaacgym-py38.txt (see docs/isaacgym.md)",
        name=err.name,
    )


def mapush_config(utils, args):
    """MAPush's own `custom_cfg(args)`, then its relative asset paths made absolute.

    MAPush's Go1 config loads the walk-these-ways policy and the actuator net from
    `./mqe/utils/...` and `./resources/...`, relative to the working folder; rooting them at MAPush's
    checkout lets the scripts run from the user's folder, where run folders and checkpoints go.
    """
    root = importlib.import_module("mqe").LEGGED_GYM_ROOT_DIR
    apply_mapush = utils.custom_cfg(args)

    def configure(cfg):
        cfg = apply_mapush(cfg)
        for name in MAPUSH_RELATIVE_PATHS:
            path = getattr(cfg.control, name, None)
            if isinstance(path, str) and not os.path.isabs(path):
                setattr(cfg.control, name, os.path.normpath(os.path.join(root, path)))
        return cfg

    return configure


def mapush_available() -> bool:
    """True when Isaac Gym is loaded and MAPush's mqe package can be imported."""
    import envs

    if envs.isaacgym is None:
        return False
    try:
        _import_mqe()
    except Exception:
        return False
    return True


def require_isaacgym(device: str) -> None:
    """Fail fast, naming what is missing, when the Isaac Gym backend cannot run here."""
    import envs

    if envs.isaacgym is None:
        raise RuntimeError(f"Isaac Gym could not be imported ({envs.ISAACGYM_IMPORT_ERROR!r}). {INSTALL_HELP}")
    try:
        _import_mqe()
    except Exception as err:
        raise RuntimeError(f"MAPush's mqe package could not be imported ({err!r}). {INSTALL_HELP}") from err
    if not str(device).startswith("cuda"):
        raise RuntimeError(f"the Isaac Gym backend runs on CUDA only, got device {device!r}. {INSTALL_HELP}")


def quaternion_yaw(quat: torch.Tensor) -> torch.Tensor:
    """Yaw of (x, y, z, w) quaternions (Isaac Gym's order)."""
    x, y, z, w = quat.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def mqe_args(num_envs: int, seed: int, device: str, headless: bool):
    """The argument namespace that MAPush's make_mqe_env expects (as its HARL adapter builds it)."""
    gymapi = importlib.import_module("isaacgym.gymapi")
    return SimpleNamespace(
        task="go1push_mid",
        num_envs=num_envs,
        seed=seed,
        headless=headless,
        record_video=False,
        rl_device=device,
        sim_device=device,
        device="cuda",
        compute_device_id=torch.device(device).index or 0,
        sim_device_type="cuda",
        use_gpu_pipeline=True,
        physics_engine=gymapi.SIM_PHYSX,
        use_gpu=True,
        subscenes=0,
        num_threads=0,
    )


class IsaacGymPushEnv(PushTaskSpec):
    """MAPush's go1push_mid task (2 Go1 robots, cuboid) with the API of envs.CuboidPushEnv."""

    backend = "isaacgym"

    def __init__(
        self,
        num_envs: int,
        device: str = "cuda:0",
        seed: int = 0,
        check_finite: Optional[bool] = None,
        max_episode_steps: Optional[int] = None,
        team_reward: bool = False,
        collision_punishment_scale: Optional[float] = None,
        headless: bool = True,
        **unknown,
    ):
        if unknown:
            accepted = ["max_episode_steps", "team_reward", "collision_punishment_scale", "headless", "check_finite"]
            raise ValueError(f"unknown option(s) {sorted(unknown)} for the Isaac Gym backend; accepted: {accepted}")
        require_isaacgym(device)
        utils = _import_mqe()
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.check_finite = bool(check_finite)  # a host sync per step: off unless asked for
        self.team_reward = team_reward
        args = mqe_args(self.num_envs, seed, device, headless)
        self.env, self.env_cfg = utils.make_mqe_env("go1push_mid", args, custom_cfg=mapush_config(utils, args))
        if self.env.num_agents != self.num_agents:
            raise RuntimeError(f"expected MAPush's 2-robot task, got {self.env.num_agents} agents")
        # MAPush's wrapper makes its action scale on "cuda", i.e. cuda:0: remake it on this env's device.
        self.env.action_scale = torch.full(self.env.action_scale.shape, ACTION_SCALE, device=self.device)
        base = self.env.env
        if max_episode_steps is not None:  # MAPush ends an episode once its counter exceeds this limit
            base.max_episode_length = int(max_episode_steps) - 1
        self.max_episode_steps = int(base.max_episode_length) + 1
        if collision_punishment_scale is not None:
            self.env.collision_punishment_scale = float(collision_punishment_scale)
        E = self.num_envs
        self.episode_length = torch.zeros(E, dtype=torch.long, device=self.device)
        self.episode_return = torch.zeros(E, 2, device=self.device)
        self._spawn_xy = torch.zeros(E, 2, device=self.device)  # box position at episode start
        self._last_pose = None  # robots' (x, y, yaw) at the previous step, for velocities
        self._last_obs = self._last_state = None
        self._last_terms = None
        per_agent = torch.tensor([k in MAPUSH_PER_AGENT_KEYS for k in MAPUSH_REWARD_KEYS], device=self.device)
        self._term_counts = torch.where(per_agent, float(E * self.num_agents), float(E))

    # --- reading MAPush's buffers -------------------------------------------------------------
    def _poses(self):
        """Box xy, yaw, velocity (E, 2+1+3); target xy (E, 2); robots x, y, yaw (E, 2, 3)."""
        E = self.num_envs
        npc = self.env.root_states_npc.reshape(E, self.env.num_npcs, -1)
        origin = self.env.env.env_origins[:, :2]
        box_xy = npc[:, 0, :2] - origin
        box = torch.cat((box_xy, quaternion_yaw(npc[:, 0, 3:7])[:, None], npc[:, 0, 7:9], npc[:, 0, 12:13]), 1)
        target_xy = npc[:, 1, :2] - origin
        base = self.env.env
        pos = base.obs_buf.base_pos.reshape(E, 2, 3)[..., :2]  # already relative to the env origin
        # Yaw from the root states: MAPush's obs_buf.base_rpy still holds the previous episode's yaw
        # on the step an env is reset (its base_quat is copied before the reset).
        yaw = quaternion_yaw(base.root_states[:, 3:7]).reshape(E, 2)
        robots = torch.cat((pos, yaw[..., None]), -1)
        return box, target_xy, robots

    def _state(self, box, target_xy, robots, fresh: torch.Tensor) -> torch.Tensor:
        """The 23-D state of STATE_LAYOUT, in a frame centred on the box's spawn point."""
        if self._last_pose is None:
            vel = torch.zeros_like(robots)
        else:
            vel = (robots - self._last_pose) / 0.02
            vel[..., 2] = torch.remainder(robots[..., 2] - self._last_pose[..., 2] + math.pi, 2 * math.pi) - math.pi
            vel[..., 2] /= 0.02
            vel = vel * (~fresh).float()[:, None, None]  # no velocity across an episode reset
        self._last_pose = robots.clone()
        o = self._spawn_xy
        yaw = robots[..., 2]
        per_robot = torch.stack(
            (
                robots[..., 0] - o[:, None, 0],
                robots[..., 1] - o[:, None, 1],
                torch.cos(yaw),
                torch.sin(yaw),
                vel[..., 0],
                vel[..., 1],
                vel[..., 2],
            ),
            -1,
        )
        return torch.cat(
            (
                box[:, 0:2] - o,
                torch.cos(box[:, 2:3]),
                torch.sin(box[:, 2:3]),
                box[:, 3:6],
                target_xy - o,
                per_robot.reshape(self.num_envs, 14),
            ),
            1,
        )

    def _reward_term_means(self) -> torch.Tensor:
        """Per-step means over envs and agents of MAPush's reward terms, from its cumulative
        reward_buffer (the torch backend's `reward_terms`): a term MAPush adds once per env and
        gives to both agents is divided by E, a per-agent term by E x 2."""
        buf = getattr(self.env, "reward_buffer", None)
        if not buf:
            return torch.zeros(len(REWARD_TERMS), device=self.device)
        # Stack on the device: MAPush's buffer entries may be CUDA tensors, and float() would sync.
        now = torch.stack(
            [torch.as_tensor(buf.get(k, 0.0), dtype=torch.float32, device=self.device) for k in MAPUSH_REWARD_KEYS]
        )
        delta = now if self._last_terms is None else now - self._last_terms
        self._last_terms = now
        return delta / self._term_counts

    # --- API ----------------------------------------------------------------------------------
    @torch.no_grad()
    def reset(self) -> Tuple[torch.Tensor, torch.Tensor]:
        obs = self.env.reset().to(self.device, torch.float32)
        box, target_xy, robots = self._poses()
        self._spawn_xy = box[:, 0:2].clone()
        self._last_pose = None
        self.episode_length.zero_()
        self.episode_return.zero_()
        state = self._state(box, target_xy, robots, torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._last_obs, self._last_state = obs, state
        return obs, state

    @torch.no_grad()
    def step(self, actions: torch.Tensor):
        validate_actions(self, actions)
        base = self.env.env
        counter_before = base.episode_length_buf.clone()
        # MAPush's wrapper clips to [-1, 1] and scales by 0.5 itself (the HARL path).
        obs, reward, done, _ = self.env.step(actions)
        obs = obs.to(self.device, torch.float32)
        reward = reward.to(self.device, torch.float32).reshape(self.num_envs, self.num_agents)
        done = done.to(self.device).reshape(self.num_envs).bool()
        finished = self.env.finished_buf.to(self.device).reshape(self.num_envs).bool()
        exception = self.env.exception_buf | self.env.value_exception_buf  # what MAPush gives -5 for
        exception = exception.to(self.device).reshape(self.num_envs).bool()
        timed_out = counter_before + 1 >= self.max_episode_steps
        success = done & finished
        failure = done & (exception | ~(finished | timed_out))  # an ending with no known cause counts too
        terminated = success | failure
        truncated = done & ~terminated
        if self.team_reward:
            reward = reward.sum(1, keepdim=True).expand(-1, 2).contiguous()

        self.episode_length += 1
        self.episode_return += reward
        box, target_xy, robots = self._poses()
        near = (torch.linalg.vector_norm(robots[..., :2] - box[:, None, 0:2], dim=-1) < 1.0).all(1)
        info = {
            "final_obs": self._last_obs,  # one step before the end: MAPush has no terminal obs
            "final_state": self._last_state,
            "success": success,
            "failure": failure,
            "episode_return": self.episode_return.clone(),
            "episode_length": self.episode_length.clone(),
            "reward_terms": self._reward_term_means(),
            "robots_near_box": near,
        }
        self.episode_length.mul_(~done)
        self.episode_return.mul_((~done).float()[:, None])
        self._spawn_xy = torch.where(done[:, None], box[:, 0:2], self._spawn_xy)
        state = self._state(box, target_xy, robots, done)
        self._last_obs, self._last_state = obs, state
        return obs, state, reward, terminated, truncated, info

    def render(self, env_index: int = 0, size: int = 480):
        """Top view of one environment (same drawing as the torch backend). Needs Pillow."""
        from envs.render import draw_top_view

        box, target_xy, robots = self._poses()
        i, o = int(env_index), self._spawn_xy[int(env_index)]
        return draw_top_view(
            box_xy=(box[i, 0:2] - o).tolist(),
            box_yaw=box[i, 2].item(),
            box_half=BOX_HALF,
            target_xy=(target_xy[i] - o).tolist(),
            success_radius=1.0,
            robots_xy=(robots[i, :, :2] - o).tolist(),
            robots_yaw=robots[i, :, 2].tolist(),
            size=size,
        )
