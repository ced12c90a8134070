"""MAPush's own MAPPO (OpenRL 0.2.0, as MAPush's openrl_ws/train.py runs it) trained on the surrogate.

Its own environment (OpenRL 0.2.0 needs gymnasium 0.29.1, older than requirements-ecosystem.txt's):

    python -m venv .venv-openrl && .venv-openrl/bin/pip install -r benchmarks/requirements-openrl.txt
    .venv-openrl/bin/python benchmarks/openrl_peer.py --config agn_mappo --seeds 1 2 --total-steps 20000000
    .venv-openrl/bin/python benchmarks/openrl_peer.py --config official --seeds 1 --total-steps 50000000

Configurations (MAPush's two committed OpenRL runs; their Isaac Gym curves are in docs/ecosystem.md):
  official   MAPush's `--algo ppo`: OpenRL's defaults, lr = critic lr 5e-4 (train.py's override), episode
             length 200, 500 envs, 10 PPO epochs, one mini-batch, MLP 64 x 64 with LayerNorm, ValueNorm,
             no advantage normalisation, each critic on its agent's own observation.
  agn_mappo  the agnostic-MAPush fork's `--algo mappo` baseline: the same with ppo.yaml's lr 5e-3 (train.py
             overrides only "ppo") and MLP 256 x 256.
The env adapter is shaped like MAPush's `mqe_openrl_wrapper`: numpy in and out, actions halved and
clipped to [-1, 1] before the env's own 0.5 scale (command 0.5 * clip(0.5 a)), time-outs returned as
dones (OpenRL then does not bootstrap them, as on MAPush), no terminal observation.

Each run writes benchmarks/results/peers/openrl_<config>__seed<k>.csv (the learning benchmark's
format) and evaluates with the project's deterministic evaluation (300 envs) every --eval-every env
steps, saving a checkpoint (state dicts of networks, optimisers and ValueNorm) at each; a stopped run
resumes from it with fresh episodes, its CSV cut back to it; a finished CSV is skipped.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository's envs/
import envs  # noqa: E402, I001  (before torch: Isaac Gym, when present, must be imported first)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import peers  # noqa: E402  (the CSV recorder and the results folders shared with BenchMARL's peers)
import torch  # noqa: E402

NUM_ENVS = 500
EPISODE_LENGTH = 200
COMMON = {  # MAPush's openrl_ws/cfgs/ppo.yaml, OpenRL's defaults otherwise
    "episode_length": EPISODE_LENGTH,
    "use_valuenorm": True,
    "use_adv_normalize": False,
    "use_recurrent_policy": False,
    "use_joint_action_loss": False,
    "log_interval": 5,
}
CONFIGS = {
    "official": {"lr": 5e-4, "critic_lr": 5e-4},
    "agn_mappo": {"lr": 5e-3, "critic_lr": 5e-3, "hidden_size": 256},
}


class SurrogateOpenRLEnv:
    """The surrogate behind the interface MAPush's `mqe_openrl_wrapper` gives OpenRL (see docstring);
    it also counts successes, returns and reward terms for the CSV, on the env's device."""

    def __init__(self, num_envs: int, seed: int):
        import gymnasium

        self.env = envs.make_env(num_envs, seed=seed, backend="torch")
        self.agent_num = self.env.num_agents
        self.parallel_env_num = num_envs
        self.env_name = "mapush_cuboid_push"
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.env.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.env.action_dim,), np.float32)
        self.clear_counts()

    def clear_counts(self) -> None:
        self.ended = torch.zeros(())
        self.successes = torch.zeros(())
        self.return_sum = torch.zeros(())
        self.term_sum = torch.zeros(len(envs.REWARD_TERMS))
        self.steps = 0

    def reset(self, seed=None, **kwargs):
        obs, _ = self.env.reset()
        return obs.numpy()

    def step(self, actions, extra_data=None):
        raw = torch.from_numpy(0.5 * np.asarray(actions, dtype=np.float32)).clamp(-1.0, 1.0)
        obs, _, reward, terminated, truncated, info = self.env.step(raw)
        done = terminated | truncated
        self.ended += done.sum()
        self.successes += (done & info["success"]).sum()
        self.return_sum += (info["episode_return"].sum(1) * done).sum()
        self.term_sum += info["reward_terms"]
        self.steps += 1
        dones = done[:, None].expand(-1, self.agent_num).numpy()
        return obs.numpy(), reward[:, :, None].numpy(), dones, [{} for _ in range(self.parallel_env_num)]

    def batch_rewards(self, buffer):
        terms = (self.term_sum / max(self.steps, 1)).tolist()
        return {f"reward_{name}": value for name, value in zip(envs.REWARD_TERMS, terms)}

    @property
    def use_monitor(self) -> bool:
        return False

    def close(self, **kwargs) -> None:
        pass


def deterministic_actor(module, cfg):
    """obs (E, 2, 8) -> the OpenRL policy's deterministic actions as the surrogate's raw actions."""
    from openrl.buffers.utils.obs_data import ObsData

    def act(obs: torch.Tensor) -> torch.Tensor:
        E, A = obs.shape[:2]
        rnn_states, masks = module.init_rnn_states(
            rollout_num=E, agent_num=A, rnn_layers=cfg.recurrent_N, hidden_size=cfg.rnn_hidden_size
        )
        actions, _ = module.act(
            obs=ObsData.prepare_input(obs.numpy()), rnn_states_actor=rnn_states, masks=masks, deterministic=True
        )
        actions = torch.as_tensor(np.asarray(actions), dtype=torch.float32).reshape(E, A, -1)
        return (0.5 * actions).clamp(-1.0, 1.0)  # the wrapper's halving and clip

    return act


def save_checkpoint(path: str, module, global_step: int) -> None:
    state = {"global_step": global_step}
    for key in module.models:
        state[f"model_{key}"] = module.models[key].state_dict()
        state[f"optimizer_{key}"] = module.optimizers[key].state_dict()
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(path: str, module) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in module.models:
        module.models[key].load_state_dict(state[f"model_{key}"])
        module.optimizers[key].load_state_dict(state[f"optimizer_{key}"])
    return int(state["global_step"])


def run(config: str, seed: int, total_steps: int, eval_every: int) -> None:
    from openrl.configs.config import create_config_parser
    from openrl.modules.common import PPONet
    from openrl.runners.common import PPOAgent
    from openrl.utils.callbacks.callbacks import BaseCallback

    name = f"openrl_{config}"
    path = peers.csv_path(name, seed)
    if peers.finished(path):
        print(f"skip {name} seed {seed}: finished ({path})")
        return
    folder = os.path.join(peers.WORK, f"{name}__seed{seed}")
    os.makedirs(folder, exist_ok=True)
    checkpoint = os.path.join(folder, "checkpoint.pt")

    cfg = create_config_parser().parse_args([])
    for key, value in {**COMMON, **CONFIGS[config], "seed": seed}.items():
        setattr(cfg, key, value)
    env = SurrogateOpenRLEnv(NUM_ENVS, seed)
    net = PPONet(env, cfg=cfg, device="cpu")
    agent = PPOAgent(net)
    start_step = 0
    if os.path.exists(checkpoint) and peers.read_rows(path):
        start_step = load_checkpoint(checkpoint, net.module)
    recorder = peers.Recorder(name, seed, start_step)
    batch = NUM_ENVS * EPISODE_LENGTH

    class Progress(BaseCallback):
        """At the start of each rollout after the first (one PPO update done): the previous
        iteration's train row, then every eval_every env steps an evaluation and a checkpoint."""

        def __init__(self):
            super().__init__()
            self.rollouts = 0

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            self.rollouts += 1
            if self.rollouts > 1:
                self.iteration_done(start_step + (self.rollouts - 1) * batch)

        def iteration_done(self, step: int) -> None:
            sps = recorder.sps(batch)
            ended = int(env.ended)
            success = f"{float(env.successes) / ended:.3f}" if ended else ""
            ret = f"{float(env.return_sum) / ended:.2f}" if ended else ""
            recorder.row("train", step, sps, ended, success, ret)
            env.clear_counts()
            if step % eval_every == 0 and step < total_steps:
                recorder.evaluation(deterministic_actor(net.module, cfg), step, "during_eval")
                save_checkpoint(checkpoint, net.module, step)

    progress = Progress()
    print(f"run: {name} seed {seed}, {total_steps} env steps{f', from {start_step}' if start_step else ''}")
    agent.train(total_time_steps=total_steps - start_step, callback=progress)
    progress.iteration_done(total_steps)  # the last update
    save_checkpoint(checkpoint, net.module, total_steps)
    recorder.evaluation(deterministic_actor(net.module, cfg), total_steps, "eval")
    recorder.file.close()


def main() -> None:
    global NUM_ENVS, EPISODE_LENGTH
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--total-steps", type=int, default=20_000_000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=2_000_000, help="env steps between evaluations")
    parser.add_argument("--num-envs", type=int, default=NUM_ENVS, help="MAPush's 500; fewer only for tests")
    parser.add_argument(
        "--episode-length", type=int, default=EPISODE_LENGTH, help="MAPush's 200; shorter only for tests"
    )
    parser.add_argument("--results-dir", default=peers.OUT)
    parser.add_argument("--work-dir", default=peers.WORK, help="checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 lets two runs share a 2-core machine")
    args = parser.parse_args()
    NUM_ENVS, EPISODE_LENGTH = args.num_envs, args.episode_length
    COMMON["episode_length"] = EPISODE_LENGTH
    batch = NUM_ENVS * EPISODE_LENGTH
    if args.total_steps % batch or args.eval_every % batch:
        parser.error(f"--total-steps and --eval-every must be multiples of one batch, {batch} env steps")
    peers.OUT, peers.WORK = os.path.abspath(args.results_dir), os.path.abspath(args.work_dir)
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        run(args.config, seed, args.total_steps, args.eval_every)


if __name__ == "__main__":
    sys.exit(main())
