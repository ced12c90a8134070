"""The cuboid push as a TorchRL environment, in the multi-agent layout BenchMARL expects.

Optional extra (requirements-ecosystem.txt); never imported by the training scripts.

    from envs.torchrl_env import CuboidPushTorchRLEnv
    env = CuboidPushTorchRLEnv(num_envs=512, device="cpu", seed=0)
    rollout = env.rollout(100, break_when_any_done=False)

One TorchRL env with batch size (E,) over the batched env of `envs.make_env` (any backend; tensors
stay on its device, nothing goes through numpy). Keys, with A = 2 agents in the group "agents":
  ("agents", "observation") (E, A, 8)   each robot's MAPush observation
  "state"                   (E, 23)     the global state for centralised critics
  ("agents", "action")      (E, A, 3)   in [-1, 1]; MAPush's command is 0.5 * action
  ("agents", "reward")      (E, A, 1)   each robot's reward (both equal with team_reward=True)
  "done", "terminated", "truncated"  (E, 1)  success or failure terminates, the time limit truncates
The wrapped env resets ended episodes inside its step. Here ("next", ...) holds the episode's last
observation and state (what TorchRL and a time-limit bootstrap need), and the new episode's first
observation comes from the partial reset (a "_reset" mask) that TorchRL's collectors and
`rollout` call next: that reset returns what the wrapped env already drew, so the run is the same
step for step as the wrapped env's own.
"""

from __future__ import annotations

from typing import Optional

try:
    import torch
    from tensordict import TensorDict, TensorDictBase
    from torchrl.data import Bounded, Categorical, Composite, Unbounded
    from torchrl.envs import EnvBase
except ImportError as err:  # one line that names what to install
    raise ImportError(
        f"envs.torchrl_env needs torchrl and tensordict ({err.name} is missing): "
        "pip install -r requirements-ecosystem.txt"
    ) from None

GROUP = "agents"


class CuboidPushTorchRLEnv(EnvBase):
    """TorchRL view of `envs.make_env(num_envs, device, seed, backend, **task_options)`, or of an
    existing batched env passed as `env=` (kept as `push_env`) (see the module docstring for the keys)."""

    batch_locked = True

    def __init__(
        self,
        num_envs: int = 512,
        device: str = "cpu",
        seed: int = 0,
        backend: str = "torch",
        env=None,
        **task_options,
    ):
        if env is None:
            from envs import make_env

            env = make_env(num_envs, device=str(device), seed=seed, backend=backend, **task_options)
        elif task_options:
            raise ValueError(f"task options {sorted(task_options)} given with an existing env; make the env with them")
        self.push_env = env
        E, A = env.num_envs, env.num_agents
        super().__init__(device=env.device, batch_size=torch.Size([E]))
        self.observation_spec = Composite(
            {
                GROUP: Composite(
                    observation=Unbounded((E, A, env.obs_dim), device=self.device), shape=(E, A), device=self.device
                ),
                "state": Unbounded((E, env.state_dim), device=self.device),
            },
            shape=(E,),
            device=self.device,
        )
        action = Bounded(-1.0, 1.0, (E, A, env.action_dim), device=self.device)
        self.action_spec = Composite(
            {GROUP: Composite(action=action, shape=(E, A), device=self.device)}, shape=(E,), device=self.device
        )
        reward = Unbounded((E, A, 1), device=self.device)
        self.reward_spec = Composite(
            {GROUP: Composite(reward=reward, shape=(E, A), device=self.device)}, shape=(E,), device=self.device
        )
        flag = Categorical(2, (E, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(E,), device=self.device
        )
        self._obs: Optional[torch.Tensor] = None  # the wrapped env's current (post-reset) obs and state
        self._state: Optional[torch.Tensor] = None

    def _observation(self, obs: torch.Tensor, state: torch.Tensor, done: torch.Tensor) -> TensorDict:
        flags = {"done": done, "terminated": done.clone(), "truncated": torch.zeros_like(done)}
        group = TensorDict({"observation": obs}, batch_size=obs.shape[:2])
        return TensorDict({GROUP: group, "state": state, **flags}, batch_size=self.batch_size)

    def _reset(self, tensordict: Optional[TensorDictBase] = None, **kwargs) -> TensorDictBase:
        partial = tensordict is not None and "_reset" in tensordict.keys()
        if not partial or self._obs is None:  # a reset asked for by the user: fresh episodes everywhere
            self._obs, self._state = self.push_env.reset()
        # A partial reset follows a step that ended some episodes: the wrapped env reset them already.
        done = torch.zeros(self.batch_size + (1,), dtype=torch.bool, device=self.device)
        return self._observation(self._obs, self._state, done)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions = tensordict.get((GROUP, "action"))
        obs, state, reward, terminated, truncated, info = self.push_env.step(actions)
        self._obs, self._state = obs, state
        ended = (terminated | truncated)[:, None]
        last_obs = torch.where(ended[:, :, None], info["final_obs"], obs)
        last_state = torch.where(ended, info["final_state"], state)
        out = TensorDict(
            {
                GROUP: TensorDict({"observation": last_obs, "reward": reward[:, :, None]}, batch_size=obs.shape[:2]),
                "state": last_state,
                "done": ended,
                "terminated": terminated[:, None],
                "truncated": truncated[:, None],
            },
            batch_size=self.batch_size,
        )
        return out

    def _set_seed(self, seed: Optional[int]) -> None:
        generator = getattr(self.push_env, "generator", None)
        if seed is not None and generator is not None:  # the Isaac Gym backend seeds at creation only
            generator.manual_seed(int(seed))
        self._obs = None  # the next reset draws fresh episodes from the new seed
