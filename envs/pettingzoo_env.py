"""The cuboid push as a PettingZoo `ParallelEnv`: one environment, numpy in and out.

Optional extra (requirements-ecosystem.txt); never imported by the training scripts.

    from envs.pettingzoo_env import CuboidPushParallelEnv
    env = CuboidPushParallelEnv(seed=0)
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

Agents "robot_0" and "robot_1"; observation Box(8,) (MAPush's), action Box(3,) in [-1, 1] (MAPush's
command is 0.5 * action), `state()` the global state (23,). Success or failure terminates both
robots, the time limit (1001 steps by default) truncates both; the episode's last observation is
returned and the agents list empties, as PettingZoo does (no automatic reset). On the ending step
each agent's info holds "success" and "failure". This is the batched torch env with one environment
on the CPU: for training throughput use `envs.make_env` or `envs.torchrl_env` directly.
"""

from __future__ import annotations

from typing import Dict, Optional

try:
    import numpy as np
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as err:  # one line that names what to install
    raise ImportError(
        f"envs.pettingzoo_env needs pettingzoo and gymnasium ({err.name} is missing): "
        "pip install -r requirements-ecosystem.txt"
    ) from None

import torch

from envs.cuboid_push import CuboidPushEnv


class CuboidPushParallelEnv(ParallelEnv):
    """One cuboid-push environment (torch backend, CPU) behind PettingZoo's parallel API.
    task_options: fields of envs.TaskConfig (e.g. max_episode_steps)."""

    metadata = {"name": "mapush_cuboid_push_v0", "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(self, seed: int = 0, render_mode: Optional[str] = None, **task_options):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.task_options = dict(task_options)
        self._env = CuboidPushEnv(1, seed=int(seed), **self.task_options)  # checks the options now
        self.possible_agents = [f"robot_{i}" for i in range(self._env.num_agents)]
        self.agents = []
        self._state = None
        # One space object per agent, the same on every call (PettingZoo's API test asks for that).
        obs_space = spaces.Box(-np.inf, np.inf, (self._env.obs_dim,), np.float32)
        self.observation_spaces = {agent: obs_space for agent in self.possible_agents}
        self.action_spaces = {
            agent: spaces.Box(-1.0, 1.0, (self._env.action_dim,), np.float32) for agent in self.possible_agents
        }

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    @property
    def state_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (self._env.state_dim,), np.float32)

    def state(self) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("call reset() before state()")
        return self._state

    def _split(self, obs: torch.Tensor) -> Dict[str, np.ndarray]:
        return {agent: obs[0, i].numpy() for i, agent in enumerate(self.possible_agents)}

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:  # a new env: the box friction is drawn per env at creation, as in MAPush
            self._env = CuboidPushEnv(1, seed=int(seed), **self.task_options)
        obs, state = self._env.reset()
        self.agents = list(self.possible_agents)
        self._state = state[0].numpy()
        return self._split(obs), {agent: {} for agent in self.agents}

    def step(self, actions: Dict[str, np.ndarray]):
        if not self.agents:
            raise RuntimeError("the episode has ended: call reset() before step()")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"no action for {missing}; every live agent acts each step: {self.agents}")
        stacked = np.stack([np.asarray(actions[agent], dtype=np.float32) for agent in self.possible_agents])
        if stacked.shape != (self._env.num_agents, self._env.action_dim):
            raise ValueError(f"each action must have shape ({self._env.action_dim},), got {stacked.shape[1:]}")
        obs, state, reward, terminated, truncated, info = self._env.step(torch.from_numpy(stacked)[None])
        ended = bool(terminated[0] | truncated[0])
        if ended:  # the wrapped env has reset itself: report the episode's last observation and state
            obs, state = info["final_obs"], info["final_state"]
        self._state = state[0].numpy()
        agents = self.agents
        rewards = {agent: float(reward[0, i]) for i, agent in enumerate(agents)}
        terminations = {agent: bool(terminated[0]) for agent in agents}
        truncations = {agent: bool(truncated[0]) for agent in agents}
        infos = {agent: {} for agent in agents}
        if ended:
            for agent in agents:
                infos[agent] = {"success": bool(info["success"][0]), "failure": bool(info["failure"][0])}
            self.agents = []
        return self._split(obs), rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode is None:
            return None
        return self._env.render(0)

    def close(self) -> None:
        pass
