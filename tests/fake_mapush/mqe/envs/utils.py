"""A fake of MAPush's `mqe.envs.utils` for testing the Isaac Gym adapter without Isaac Gym.

Same interface as MAPush's go1push_mid wrapper, as the adapter uses it: make_mqe_env / custom_cfg,
a wrapper with num_envs, num_agents, num_npcs, root_states_npc, finished_buf, exception_buf,
value_exception_buf, reward_buffer, action_scale and collision_punishment_scale, and a base env
(`wrapper.env`) with env_origins, obs_buf.base_pos / base_rpy, root_states (quaternions),
episode_length_buf and max_episode_length. Like MAPush, step() resets ended envs inside the step and returns the next
episode's first observation; its reward_buffer adds approach and OCB per agent and every other term
once per env; its action scale is made on "cuda" (cuda:0), here a tensor on the "meta" device that
stands for a device other than the env's. Made-up, deterministic behaviour: env 0 reaches the
target on step 3, env 2 has an exception (fall) on step 2, env 1 falls on the step its time limit
passes (with `FALL_AT_TIME_LIMIT`), every other env runs into the time limit; rewards are fixed per
env and agent.
"""

import os
from types import SimpleNamespace

import torch

BOX_SPAWN = (12.0, 0.0)  # MAPush's box reset position in the env-local frame
SPAWN_YAW = 0.3  # both robots' heading at every reset
FALL_AT_TIME_LIMIT = False  # env 1 has an exception on the step where it times out
PER_AGENT = ("approach_to_box_reward", "ocb_reward")
TERMS = (
    "distance_to_target_reward",
    "approach_to_box_reward",
    "collision_punishment",
    "push_reward",
    "ocb_reward",
    "reach_target_reward",
    "exception_punishment",
)


class FakeGo1PushMidCfg:
    class env:
        num_envs = 10

    class control:  # as MAPush's Go1 config: relative to the working folder, which MAPush assumes is its root
        locomotion_policy_dir = "./mqe/utils/locomotion_checkpoints/walk_these_ways"
        actuator_network_path = "./resources/actuator_nets"


def custom_cfg(args):
    def fn(cfg):
        cfg.env.num_envs = args.num_envs
        return cfg

    return fn


def make_mqe_env(task, args, custom_cfg=None):
    assert task == "go1push_mid" and callable(custom_cfg)
    cfg = custom_cfg(FakeGo1PushMidCfg)
    for path in (cfg.control.locomotion_policy_dir, cfg.control.actuator_network_path):
        if not os.path.isdir(path):  # MAPush's Go1 constructor torch.jit.load()s files from these
            raise FileNotFoundError(f"No such file or directory: {path!r}")
    return FakeGo1PushMidWrapper(cfg.env.num_envs), cfg


class FakeBase:
    def __init__(self, num_envs):
        self.env_origins = torch.stack(
            (10.0 * torch.arange(num_envs, dtype=torch.float32), torch.full((num_envs,), 5.0), torch.zeros(num_envs)), 1
        )
        self.max_episode_length = 1000
        self.exception_buf = torch.zeros(num_envs, dtype=torch.bool)
        self.value_exception_buf = torch.zeros(num_envs, dtype=torch.bool)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.obs_buf = SimpleNamespace(base_pos=torch.zeros(num_envs * 2, 3), base_rpy=torch.zeros(num_envs * 2, 3))
        self.root_states = torch.zeros(num_envs * 2, 13)  # only the quaternions (x, y, z, w) are used here
        self.root_states[:, 6] = 1.0

    def set_yaw(self, ids, yaw):
        quat = self.root_states.view(-1, 2, 13)[ids, :, 3:7]
        yaw = torch.as_tensor(yaw, dtype=torch.float32)
        quat[..., 2], quat[..., 3] = torch.sin(0.5 * yaw), torch.cos(0.5 * yaw)
        self.root_states.view(-1, 2, 13)[ids, :, 3:7] = quat

    def yaw(self):
        q = self.root_states[:, 3:7]
        return 2.0 * torch.atan2(q[:, 2], q[:, 3])


class FakeGo1PushMidWrapper:
    num_agents = 2
    num_npcs = 2

    def __init__(self, num_envs):
        self.num_envs = num_envs
        self.env = FakeBase(num_envs)
        self.root_states_npc = torch.zeros(num_envs * 2, 13)
        self.finished_buf = torch.zeros(num_envs, dtype=torch.bool)
        self.value_exception_buf = torch.zeros(num_envs, dtype=torch.bool)
        self.action_scale = torch.full((num_envs, 2, 3), 0.5, device="meta")
        self.collision_punishment_scale = -0.0025
        self.reward_buffer = {k: 0.0 for k in TERMS}
        self.reward_buffer["step_count"] = 0

    @property
    def exception_buf(self):  # MAPush's wrapper reads it from the base env, through gym.Wrapper
        return self.env.exception_buf

    def _reset_envs(self, ids):
        E = self.num_envs
        npc = self.root_states_npc.view(E, 2, 13)
        npc[ids, 0, 0] = self.env.env_origins[ids, 0] + BOX_SPAWN[0]
        npc[ids, 0, 1] = self.env.env_origins[ids, 1] + BOX_SPAWN[1]
        npc[ids, 0, 3:7] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # identity quaternion (x, y, z, w)
        npc[ids, 0, 7:13] = 0.0
        npc[ids, 1, 0] = self.env.env_origins[ids, 0] + BOX_SPAWN[0] + 2.0  # target 2 m ahead
        npc[ids, 1, 1] = self.env.env_origins[ids, 1] + BOX_SPAWN[1]
        pos = self.env.obs_buf.base_pos.view(E, 2, 3)
        pos[ids, 0] = torch.tensor([BOX_SPAWN[0] - 1.2, 0.0, 0.45])  # env-local, as MAPush's obs_buf
        pos[ids, 1] = torch.tensor([BOX_SPAWN[0], 1.25, 0.45])
        self.env.set_yaw(ids, SPAWN_YAW)  # MAPush's obs_buf.base_rpy keeps the old yaw on a reset step
        self.env.episode_length_buf[ids] = 0

    def _obs(self):
        # Only shapes and values matter here; use agent index and episode step as a signature.
        E = self.num_envs
        step = self.env.episode_length_buf.float()[:, None, None]
        return torch.arange(8.0).expand(E, 2, 8) + step + torch.tensor([0.0, 100.0])[None, :, None]

    def reset(self):
        self._reset_envs(torch.arange(self.num_envs))
        return self._obs()

    def step(self, actions):
        E = self.num_envs
        assert actions.shape == (E, 2, 3)
        u = actions.clamp(-1, 1) * self.action_scale
        pos = self.env.obs_buf.base_pos.view(E, 2, 3)
        pos[..., 0] += u[..., 0] * 0.02
        self.env.set_yaw(torch.arange(E), self.env.yaw().view(E, 2) + 0.1)  # robots turn 0.1 rad per step
        self.env.obs_buf.base_rpy[:, 2] = self.env.yaw()  # before the reset, as MAPush copies base_quat
        npc = self.root_states_npc.view(E, 2, 13)
        npc[:, 0, 0] += 0.1  # box slides 0.1 m per step
        npc[:, 0, 7] = 5.0  # and reports 5 m/s
        self.env.episode_length_buf += 1
        steps = self.env.episode_length_buf
        success = torch.zeros(E, dtype=torch.bool)
        success[0] = steps[0] == 3
        time_out = steps > self.env.max_episode_length
        exception = torch.zeros(E, dtype=torch.bool)
        if E > 2:
            exception[2] = steps[2] == 2
        if FALL_AT_TIME_LIMIT:
            exception[1] = time_out[1]
        done = success | exception | time_out
        self.finished_buf = success.clone()
        self.env.exception_buf = exception.clone()
        reward = torch.stack((0.01 * torch.arange(E, dtype=torch.float32), -0.02 * torch.ones(E)), 1)
        reward = reward + 10.0 * success.float()[:, None] - 5.0 * exception.float()[:, None]
        per_term = [0.001, -0.002, -0.003, 0.0015, 0.004, 10.0 * float(success.sum()), -5.0 * float(exception.sum())]
        for key, value in zip(TERMS, per_term):  # each term's value in every env (per agent for two)
            if key in ("reach_target_reward", "exception_punishment"):
                self.reward_buffer[key] += value  # MAPush: scale x the number of flagged envs
            else:
                self.reward_buffer[key] += value * E * (2 if key in PER_AGENT else 1)
        self.reward_buffer["step_count"] += 1
        ids = torch.nonzero(done).flatten()
        if len(ids):
            self._reset_envs(ids)  # MAPush resets inside its step
        return self._obs(), reward, done, {}
