# HAPPO for MAPush's two-robot cuboid push, in one file. Docs: docs/happo_mapush.md
# Isaac Gym refuses to load once torch is imported; `envs` imports it first (when installed), so
# `envs` must be this file's first import.
import envs  # noqa: I001  (keep first)

import contextlib
import importlib.util
import io
import math
import os
import shlex
import shutil
import signal
import sys
import time
from datetime import timedelta
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import tyro
from torch.distributions.normal import Normal
from torch.utils.tensorboard import SummaryWriter

# A diverging run is caught once per iteration with one clear line (non-finite losses or weights),
# not by Normal's argument check in the middle of an update with a tensor dump.
Normal.set_default_validate_args(False)


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run folder's name)"""
    seed: int = 1
    """seed of the experiment (torch and the environment)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be used when available"""
    backend: Literal["auto", "torch", "isaacgym"] = "auto"
    """environment backend: torch surrogate, Isaac Gym (MAPush), or auto (Isaac Gym if usable)"""
    compile: bool = False
    """torch.compile the rollout's network step, GAE, the mini-batch losses and (torch backend) the env
    step: the same code, fused by inductor; compiling takes about a minute at the start, and on CPU a C++ compiler"""
    max_episode_steps: int = 1001
    """episode time limit in env steps (MAPush's: 1001, its 20 s counter must pass 1000); lower it only for tests"""
    env_options: Tuple[str, ...] = ()
    """task options as NAME=VALUE, fields of envs.TaskConfig; the HARL fork's reward:
    team_reward=True collision_punishment_scale=-0.0008"""

    # Saving, resuming, evaluation
    checkpoint_minutes: float = 10.0
    """save a checkpoint in the run folder this often (and at the end, and on Ctrl-C or SIGTERM)"""
    resume: Optional[str] = None
    """checkpoint to continue exactly where it was saved (same flags; only run length, saving,
    evaluation and device flags may change)"""
    eval_checkpoint: Optional[str] = None
    """checkpoint to evaluate (deterministic actions), then exit without training"""
    eval_envs: int = 300
    """environments of the evaluation at the end; the first episode of each counts (MAPush: 300; 0: none)"""
    eval_every: int = 0
    """also evaluate every this many iterations during training, logged as eval/* (torch backend)"""
    capture_video: bool = False
    """write a GIF of the final evaluation's first environment into the run folder"""
    track: bool = False
    """if toggled, also log to Weights and Biases (needs `wandb`; WANDB_MODE=offline works without a network)"""
    wandb_project_name: str = "mapush"
    """the wandb project name"""
    wandb_entity: Optional[str] = None
    """the entity (team) of the wandb project"""

    # Algorithm specific arguments
    total_timesteps: Optional[int] = None
    """total environment steps (each step moves all agents of one env); default: the whole batches in
    20M, or with --resume the run length the checkpoint was started with"""
    num_envs: int = 512
    """number of parallel environments (MAPush / HARL: 500)"""
    num_steps: int = 64
    """steps per environment per rollout (MAPush / HARL: 200)"""
    actor_lr: float = 5e-4
    """learning rate of the actors (the MAPush HAPPO fork: 1e-3)"""
    critic_lr: float = 5e-4
    """learning rate of the critic (the MAPush HAPPO fork: 1e-3)"""
    anneal_lr: bool = False
    """linearly decay both learning rates to 0"""
    gamma: float = 0.99
    """discount factor (the MAPush HAPPO fork: 0.97)"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    num_minibatches: int = 8
    """mini-batches per epoch (actors and critic; HARL: 1, the MAPush HAPPO fork: 2)"""
    update_epochs: int = 5
    """PPO epochs of the actors per iteration"""
    critic_epochs: int = 5
    """epochs of the critic per iteration"""
    norm_adv: bool = True
    """normalise advantages once per iteration"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient (also clips the value change, in normalised units)"""
    clip_vloss: bool = True
    """clip the value loss as HARL does"""
    huber_delta: float = 10.0
    """delta of the Huber value loss"""
    ent_coef: float = 0.01
    """entropy bonus coefficient (the MAPush HAPPO fork: 0.03)"""
    max_grad_norm: float = 10.0
    """gradient norm clip, per network"""
    hidden_sizes: Tuple[int, ...] = (128, 128)
    """hidden layer widths of actor and critic (the MAPush HAPPO fork: 256 256)"""
    fixed_order: bool = False
    """update agents in the order 0, 1, ... every iteration instead of a fresh random order"""
    action_aggregation: Literal["prod", "mean"] = "prod"
    """how per-dimension probability ratios form the importance weight and the factor: product or mean"""
    factor_clip: Optional[Tuple[float, float]] = None
    """clip the HAPPO factor M into [low, high] where it enters the loss (off in HARL)"""
    std_type: Literal["harl", "free"] = "harl"
    """action std: harl = std_max * sigmoid(theta), bounded (HARL); free = exp(log_std) from 1 (OpenRL, MAPPO paper)"""
    std_max: float = 1.0
    """ceiling of the harl std (HARL: 0.5, which leaves ~0.18 m/s of exploration on MAPush)"""
    tanh_mean: bool = False
    """squash the action mean into (-1, 1), the range the env clips actions to (HARL: unbounded)"""
    obs_norm: bool = True
    """normalise actor and critic inputs with running per-feature mean/variance of rollout data (HARL: off)"""
    cos_sin_yaws: bool = True
    """give the actors the observation's two relative yaws as (cos, sin) instead of angles mod 2 pi (HARL: off)"""
    input_layernorm: bool = False
    """LayerNorm on each network's input vector, HARL's feature normalisation (HARL: on)"""
    use_valuenorm: bool = True
    """normalise value targets with running statistics (HARL's ValueNorm)"""
    value_target: Literal["agent", "team-sum", "team-mean"] = "agent"
    """agent: V(state, agent one-hot) of each agent's own reward, one advantage per agent; team-sum
    (HARL on MAPush) / team-mean: V(state) of the agents' rewards summed / averaged, one shared advantage"""
    reward_scale: float = 1.0
    """multiplies every reward before learning (logged returns stay unscaled)"""
    bootstrap_timeouts: bool = True
    """bootstrap time-limit truncations with V(final state); off = timeouts are terminal (HARL)"""


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, hidden_sizes: Tuple[int, ...], input_layernorm: bool) -> nn.Sequential:
    """HARL's MLPBase: (optionally) LayerNorm on the input, then Linear -> ReLU -> LayerNorm blocks.

    The input LayerNorm removes each vector's own mean and scale: the absolute distances to box and
    target, which this task is about, are partly lost (measured in docs/results.md)."""
    layers = [nn.LayerNorm(in_dim)] if input_layernorm else []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, size)), nn.ReLU(), nn.LayerNorm(size)]
        in_dim = size
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Diagonal Gaussian policy: unbounded (or with --tanh-mean, tanh-squashed) mean, state-independent std.

    std_type "harl": std = std_max * sigmoid(theta), theta from 1 (0.731 std_max, never above std_max),
    as HARL with std_max 0.5. std_type "free": std = exp(theta), theta from 0 (std 1, unbounded), as
    OpenRL and the MAPPO paper."""

    def __init__(self, obs_dim, action_dim, hidden_sizes, std_type, std_max, input_layernorm, tanh_mean):
        super().__init__()
        self.base = mlp(obs_dim, hidden_sizes, input_layernorm)
        self.mean = layer_init(nn.Linear(hidden_sizes[-1], action_dim), std=0.01)
        self.std_type, self.std_max, self.tanh_mean = std_type, std_max, tanh_mean
        self.std_theta = nn.Parameter(torch.full((action_dim,), 1.0 if std_type == "harl" else 0.0))

    def std(self) -> torch.Tensor:
        return self.std_max * torch.sigmoid(self.std_theta) if self.std_type == "harl" else self.std_theta.exp()

    def forward(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean(self.base(obs))
        return (torch.tanh(mean) if self.tanh_mean else mean), self.std()


def agent_policy(actor: Actor, obs: torch.Tensor) -> Normal:
    """One actor's distribution over actions (..., action_dim) for observations (..., obs_dim)."""
    mean, std = actor(obs)
    return Normal(mean, std.expand_as(mean))


def policy(actors: nn.ModuleList, obs: torch.Tensor) -> Normal:
    """Distribution over actions (..., A, action_dim) for observations (..., A, obs_dim), agent i's from actor i."""
    dists = [agent_policy(actor, obs[..., i, :]) for i, actor in enumerate(actors)]
    return Normal(torch.stack([d.loc for d in dists], dim=-2), torch.stack([d.scale for d in dists], dim=-2))


class Critic(nn.Module):
    """Centralised value of the state, (..., S) -> (..., V), in normalised units when ValueNorm is on.

    per_agent: V values, V(state, one-hot of agent i) of agent i's own return, so each agent gets its
    own advantage; else V = 1, HARL's V(state) of the team reward, one advantage for every agent."""

    def __init__(self, state_dim, num_agents, hidden_sizes, per_agent, input_layernorm):
        super().__init__()
        self.per_agent = per_agent
        self.base = mlp(state_dim + (num_agents if per_agent else 0), hidden_sizes, input_layernorm)
        self.value = layer_init(nn.Linear(hidden_sizes[-1], 1), std=1.0)
        self.register_buffer("agent_ids", torch.eye(num_agents), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if not self.per_agent:
            return self.value(self.base(state))
        V = self.agent_ids.shape[0]
        state = state.unsqueeze(-2).expand(*state.shape[:-1], V, state.shape[-1])
        ids = self.agent_ids.expand(*state.shape[:-1], V)
        return self.value(self.base(torch.cat((state, ids), -1))).squeeze(-1)


class InputEncoder(nn.Module):
    """Network input from an env vector: the given angle features as (cos, sin), then per-feature
    running mean/variance normalisation clipped to +-10 (Gymnasium's NormalizeObservation, rl_games).

    The statistics are merged from every batch passed with update=True (rollout data), and saved in
    the checkpoint; evaluation only reads them. Both agents share one encoder."""

    def __init__(self, dim: int, angle_features=(), normalise: bool = True, clip: float = 10.0):
        super().__init__()
        self.angle_features = list(angle_features)
        self.other_features = [k for k in range(dim) if k not in self.angle_features]
        self.out_dim = dim + len(self.angle_features)
        self.normalise, self.clip = normalise, clip
        self.register_buffer("mean", torch.zeros(self.out_dim))
        self.register_buffer("var", torch.ones(self.out_dim))
        self.register_buffer("count", torch.tensor(1e-4))  # Gymnasium's prior: mean 0, var 1, weight 1e-4

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the mean and variance of a batch (..., out_dim) into the running ones (Chan et al.)."""
        x = x.reshape(-1, self.out_dim)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean.add_(delta * n / total)
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor, update: bool = False) -> torch.Tensor:
        if self.angle_features:
            angles = x[..., self.angle_features]
            x = torch.cat((x[..., self.other_features], angles.cos(), angles.sin()), -1)
        if not self.normalise:
            return x
        if update:
            self.update(x)
        return ((x - self.mean) / (self.var + 1e-8).sqrt()).clamp(-self.clip, self.clip)


class ValueNorm(nn.Module):
    """HARL's running normaliser of value targets: debiased EMAs of mean and mean square. With
    enabled=False (--no-use-valuenorm) it is the identity and never updates."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5, var_floor: float = 1e-2, enabled: bool = True):
        super().__init__()
        self.beta, self.epsilon, self.var_floor, self.enabled = beta, epsilon, var_floor, enabled
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def stats(self) -> Tuple[torch.Tensor, torch.Tensor]:
        denom = self.debiasing_term.clamp(min=self.epsilon)
        mean, mean_sq = self.running_mean / denom, self.running_mean_sq / denom
        return mean, (mean_sq - mean**2).clamp(min=self.var_floor)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        if not self.enabled:
            return
        b = self.beta
        self.running_mean.mul_(b).add_((1 - b) * x.mean())
        self.running_mean_sq.mul_(b).add_((1 - b) * (x**2).mean())
        self.debiasing_term.mul_(b).add_(1 - b)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        mean, var = self.stats()
        return (x - mean) / var.sqrt()

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return y
        mean, var = self.stats()
        return y * var.sqrt() + mean


def make_networks(args: Args, obs_dim: int, state_dim: int, action_dim: int, num_agents: int, device):
    """Input encoders, actors and critic as the flags say (for training and for loading a checkpoint)."""
    obs_encoder = InputEncoder(obs_dim, envs.OBS_YAW_FEATURES if args.cos_sin_yaws else (), args.obs_norm)
    state_encoder = InputEncoder(state_dim, (), args.obs_norm)  # the state holds yaws as cos, sin already
    num_actors = num_agents  # HAPPO: one actor per agent, never shared
    settings = (args.hidden_sizes, args.std_type, args.std_max, args.input_layernorm, args.tanh_mean)
    actors = nn.ModuleList(Actor(obs_encoder.out_dim, action_dim, *settings) for _ in range(num_actors))
    per_agent = args.value_target == "agent"
    critic = Critic(state_encoder.out_dim, num_agents, args.hidden_sizes, per_agent, args.input_layernorm)
    return obs_encoder.to(device), state_encoder.to(device), actors.to(device), critic.to(device)


def compute_gae(rewards, values, next_value, dones, gamma: float, gae_lambda: float):
    """GAE over (T, E, ...) tensors; dones[t] = 1 if the episode ended at step t (terminal for GAE).

    Truncated steps are ended here too: their bootstrap value gamma * V(final state) is already
    added to rewards[t] by the rollout. Returns (advantages, returns = advantages + values).
    """
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        next_values = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * not_done - values[t]
        last_gae = delta + gamma * gae_lambda * not_done * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def aggregate_ratio(logratio: torch.Tensor, how: str) -> torch.Tensor:
    """Importance weight from per-dimension log-ratios (..., action_dim): joint (prod) or mean."""
    if how == "prod":
        return logratio.sum(-1).exp()
    return logratio.exp().mean(-1)


def clipped_policy_loss(ratio, advantages, clip_coef: float, factor):
    """HAPPO's surrogate (to minimise): -mean(M * min(r A, clip(r) A)), with the factor M outside
    the min and detached; also the fraction of samples whose ratio was clipped."""
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages)
    clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return -(factor.detach() * surrogate).mean(), clipfrac


def agent_order(num_agents: int, fixed_order: bool, generator: torch.Generator) -> List[int]:
    """HAPPO's update order: a fresh random permutation every iteration, or 0, 1, ..."""
    if fixed_order:
        return list(range(num_agents))
    return torch.randperm(num_agents, generator=generator).tolist()


def agent_log_prob(actor: Actor, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Per-dimension log-probabilities (B, action_dim) of one agent's actions under its actor."""
    return agent_policy(actor, obs).log_prob(actions)


def happo_actor_loss(actor, obs, actions, old_logprobs, advantages, factor, args):
    """HAPPO's loss of one agent on one mini-batch, -mean(M * min(r A, clip(r) A)) - c_H H, and its statistics."""
    dist = agent_policy(actor, obs)
    logratio = dist.log_prob(actions) - old_logprobs
    ratio = aggregate_ratio(logratio, args.action_aggregation)
    pg_loss, clipfrac = clipped_policy_loss(ratio, advantages, args.clip_coef, factor)
    entropy = dist.entropy().sum(-1)
    joint_logratio = logratio.detach().sum(-1)
    stats = {
        "policy_loss": pg_loss.detach(),
        "entropy": entropy.detach().mean(),
        "mean_outside": (dist.loc.detach().abs() > 1.0).float().mean(),  # share of action means beyond [-1, 1]
        "old_approx_kl": (-joint_logratio).mean(),
        "approx_kl": ((joint_logratio.exp() - 1) - joint_logratio).mean(),
        "clipfrac": clipfrac.detach(),
    }
    return pg_loss - args.ent_coef * entropy.mean(), stats


def factor_stats(factor: torch.Tensor, clip_coef: float) -> Dict[str, torch.Tensor]:
    """Diagnostics of the factor an agent trained with."""
    outside = ((factor < 1 - clip_coef) | (factor > 1 + clip_coef)).float().mean()
    return {
        "mean": factor.mean(),
        "min": factor.min(),
        "max": factor.max(),
        "std": factor.std(),
        "outside_clip": outside,
    }


def critic_loss(critic, states, old_values, targets, args) -> torch.Tensor:
    """HARL's value loss of one mini-batch: Huber on (value - target), with --clip-vloss the max with
    the loss of the value moved at most clip_coef from its rollout value (normalised units)."""
    new_values = critic(states)
    loss = F.huber_loss(new_values, targets, reduction="none", delta=args.huber_delta)
    if args.clip_vloss:
        clipped = old_values + (new_values - old_values).clamp(-args.clip_coef, args.clip_coef)
        loss = torch.max(loss, F.huber_loss(clipped, targets, reduction="none", delta=args.huber_delta))
    return loss.mean()


def evaluate(actors, obs_encoder, args, device, backend, video=None, log=None) -> Dict[str, float]:
    """MAPush's metrics of the deterministic policy (mean actions) on --eval-envs fresh environments
    of the task it trains on (args' task options), the same ones every time (their own generator: the
    training run's random numbers are untouched)."""
    act = lambda obs: policy(actors, obs_encoder(obs)).mean  # noqa: E731
    seed, steps, task = args.seed + 10_000, args.max_episode_steps, envs.parse_task_options(args.env_options)
    return envs.evaluate(act, args.eval_envs, str(device), seed, backend, video, steps, log, task)


# --- Run management: flag checks, checkpoints, the run folder, signals, the console ------------------
# Not needed to follow the algorithm: what keeps a long run's work safe, resumable and visible.


def args_error(args: Args) -> Optional[str]:
    """The first flag value that cannot work, as one line naming the flag and what it accepts."""
    positive = ["num_envs", "num_steps", "num_minibatches", "update_epochs", "critic_epochs", "max_episode_steps"]
    for name in positive:
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
    for name, value in asdict(args).items():  # NaN and inf reach torch unchecked and end in a traceback
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, tuple) else [value])):
            return f"--{name.replace('_', '-')} must be a finite number, got {value}"
    for name in ["actor_lr", "critic_lr", "clip_coef", "std_max", "checkpoint_minutes", "huber_delta", "max_grad_norm"]:
        if not getattr(args, name) > 0:  # --max-grad-norm 0 would zero every gradient: nothing learns
            return f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}"
    if args.eval_envs < 0 or args.eval_every < 0:
        return f"--eval-envs and --eval-every must be >= 0, got {args.eval_envs} and {args.eval_every}"
    if args.eval_envs == 0 and (args.eval_every > 0 or args.eval_checkpoint is not None):
        return "--eval-every and --eval-checkpoint need --eval-envs > 0, got --eval-envs 0"
    if not (0 < args.gamma <= 1 and 0 <= args.gae_lambda <= 1):
        return f"--gamma must be in (0, 1] and --gae-lambda in [0, 1], got {args.gamma} and {args.gae_lambda}"
    if not args.exp_name or os.sep in args.exp_name or (os.altsep and os.altsep in args.exp_name):
        return f"--exp-name must be a plain name, without {os.sep!r}, got {args.exp_name!r}"
    if args.track and importlib.util.find_spec("wandb") is None:
        return "--track needs wandb: pip install wandb==0.31.0 (see requirements-ecosystem.txt)"
    if not 0 <= args.seed < 2**32:
        return f"--seed must be in [0, 2**32), got {args.seed}"
    if args.resume is not None and args.eval_checkpoint is not None:
        return "--resume and --eval-checkpoint exclude each other: continue a run, or evaluate a checkpoint"
    if not args.hidden_sizes or min(args.hidden_sizes) < 1:
        return f"--hidden-sizes needs one or more positive widths, got {args.hidden_sizes}"
    if args.compile and envs.compile_problem() is not None:
        return f"--compile {envs.compile_problem()}, or leave --compile out"
    try:
        task = envs.parse_task_options(args.env_options)
        envs.cuboid_push.task_config_from_options(task)
    except (ValueError, TypeError) as err:
        return f"--env-options: {err}"
    if "max_episode_steps" in task:  # one flag for it, never two that override each other
        return (
            f"--env-options max_episode_steps={task['max_episode_steps']}: give the time limit as --max-episode-steps"
        )
    batch, unit = args.num_envs * args.num_steps, "env steps (--num-envs x --num-steps)"
    if batch % args.num_minibatches:
        return f"--num-minibatches {args.num_minibatches} must divide the batch of {batch} {unit}"
    if args.total_timesteps is not None and args.total_timesteps < batch and args.eval_checkpoint is None:
        return f"--total-timesteps {args.total_timesteps} is smaller than one batch of {batch} {unit}"
    if args.factor_clip is not None and not 0 <= args.factor_clip[0] <= args.factor_clip[1]:
        return f"--factor-clip needs 0 <= LOW <= HIGH, got {args.factor_clip[0]} {args.factor_clip[1]}"
    return None


def parse_args() -> Args:
    """The flags (tyro), checked: a value that cannot work ends the run with one line naming it."""
    try:
        args = tyro.cli(Args)
    except (BrokenPipeError, SystemExit) as stop:  # --help into a closed pipe (| head): no traceback
        say(end="")  # flushes what tyro printed
        raise SystemExit(stop.code if isinstance(stop, SystemExit) else 0) from None
    problem = args_error(args)
    if problem is not None:
        raise SystemExit(f"error: {problem}")
    return args


def training_backend(args: Args, device: torch.device) -> str:
    """The env backend to train on, or one line and exit when it cannot run here."""
    backend = envs.resolve_backend(args.backend, str(device))
    if args.eval_every > 0 and backend == "isaacgym":
        raise SystemExit("error: --eval-every needs the torch backend: Isaac Gym runs one simulation per process")
    try:  # before anything is created
        envs.require_backend(backend, str(device))
    except RuntimeError as err:
        raise SystemExit(f"error: {err}") from None
    return backend


@contextlib.contextmanager
def exit_if_out_of_memory(args: Args, device: torch.device):
    """Out of memory making what --num-envs sizes (env, storage): one line naming the flags, no traceback."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if "memory" not in str(err):
            raise
        fits = f"--num-envs {args.num_envs} x --num-steps {args.num_steps} does not fit in {device} memory"
        raise SystemExit(f"error: {fits} ({str(err).splitlines()[0]})") from None


# A checkpoint holds the state_dicts of the networks (NETWORK_NAMES) and optimisers, the random number
# generators, the env's state, the args and the counters: tensors and plain data only (it loads with
# weights_only=True). Flags a resumed run may change: how long it runs and what it writes, never what it learns.
CHECKPOINT_LAYOUT = 3  # what a checkpoint holds; a checkpoint of another layout gets one clear line
READABLE_LAYOUTS = (2, 3)  # 2: the same with Python floats, which torch 1.13 cannot load safely
NETWORK_NAMES = ("obs_encoder", "state_encoder", "actors", "critic", "value_norm")
RESUMABLE_CHANGES = ("total_timesteps", "checkpoint_minutes", "resume", "eval_checkpoint", "eval_envs")
RESUMABLE_CHANGES += ("eval_every", "capture_video", "cuda", "compile")


class Checkpoints:
    """Saves the whole training state and restores it: the state_dicts of `stateful` (networks, optimisers)
    and of the env ({} on Isaac Gym: a resumed run starts fresh episodes there), the random number
    generators, the args, the sizes and the counters."""

    def __init__(self, args: Args, stateful: Dict, env, device: torch.device, order_generator: torch.Generator):
        self.args, self.stateful, self.env, self.device = args, stateful, env, device
        self.order_generator = order_generator
        sizes = {size: getattr(env, size) for size in ("obs_dim", "state_dim", "action_dim", "num_agents")}
        self.best_success = -1.0  # success of the best evaluation so far
        self.info = dict(algo="happo", layout=CHECKPOINT_LAYOUT, args=asdict(args), **sizes)

    def save(self, path: str, global_step: int, iteration: int) -> bool:
        """Write a whole checkpoint or none; a failed save (a full disk) is one warning, and training goes on."""
        checkpoint = {name: obj.state_dict() for name, obj in self.stateful.items()}
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        checkpoint.update(rng0={"cpu": torch.get_rng_state(), "cuda": cuda_rng}, env=self.env.state_dict(), **self.info)
        checkpoint.update(global_step=global_step, iteration=iteration, best_success=self.best_success)
        checkpoint["rng1"] = {"cpu": self.order_generator.get_state()}
        data = io.BytesIO()  # serialised in memory first: a failed write (a full disk) is then a plain OSError
        torch.save(floats_as_tensors(checkpoint), data)  # (torch 1.13 aborts the process when its own write fails)
        try:
            with open(path + ".tmp", "wb") as f:
                f.write(data.getbuffer())
            os.replace(path + ".tmp", path)  # never leave a half-written checkpoint
            return True
        except OSError as err:
            with contextlib.suppress(OSError):
                os.remove(path + ".tmp")
            folder = os.path.dirname(os.path.abspath(path))
            free = f"{shutil.disk_usage(folder).free / 1e9:.2f} GB free on the disk of {folder}"
            say(f"warning: {path} not saved ({err.strerror}); {free}; the next save tries again", important=True)
            return False

    def keep_if_best(self, success: float, path: str, global_step: int, iteration: int) -> None:
        """With --eval-every, the policy of the best evaluation so far is kept at `path` beside the last one."""
        if self.args.eval_every > 0 and success > self.best_success:
            self.best_success = success
            self.save(path, global_step, iteration)

    def restore(self, checkpoint: Dict) -> Tuple[int, int]:
        """Networks, optimisers, generators and best_success as `checkpoint` saved them (the env:
        env.load_state_dict); returns its global_step and iteration."""
        for name, obj in self.stateful.items():
            obj.load_state_dict(checkpoint[name])
        torch.set_rng_state(checkpoint["rng0"]["cpu"].cpu())
        if self.device.type == "cuda" and checkpoint["rng0"]["cuda"]:
            torch.cuda.set_rng_state_all([state.cpu() for state in checkpoint["rng0"]["cuda"]])
        self.order_generator.set_state(checkpoint["rng1"]["cpu"].cpu())
        global_step, iteration = checkpoint["global_step"], checkpoint["iteration"]
        say(f"resumed {self.args.resume} at iteration {iteration}, global_step={global_step}")
        self.best_success = checkpoint.get("best_success", -1.0)  # layout 2 did not keep it
        return global_step, iteration


def floats_as_tensors(tree, back: bool = False):
    """`tree` with every Python float as a 0-d float64 tensor, or with back=True the reverse. torch 1.13's
    weights_only loader refuses Python floats (2.x reads them), and the args and the optimisers'
    settings hold some; no state_dict here holds a 0-d float64 tensor of its own (Adam's step is float32)."""
    if isinstance(tree, dict):
        return type(tree)((key, floats_as_tensors(value, back)) for key, value in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(floats_as_tensors(value, back) for value in tree)
    if back and isinstance(tree, torch.Tensor) and tree.dtype == torch.float64 and tree.dim() == 0:
        return tree.item()
    return torch.tensor(tree, dtype=torch.float64) if isinstance(tree, float) and not back else tree


def load_checkpoint(path: str, device: torch.device, resume_args: Optional[Args] = None) -> Dict:
    """A checkpoint of this script, or one clear line (SystemExit) when it is missing, unreadable,
    foreign or of another layout, or (with resume_args) when those flags change the learning problem."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: no checkpoint file at {path}")
    try:
        ckpt = floats_as_tensors(torch.load(path, map_location=device, weights_only=True), back=True)
    except Exception as err:  # truncated, not a torch file, or holding more than tensors and plain data
        raise SystemExit(f"error: {path} is not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("algo") != "happo":
        raise SystemExit(f"error: {path} is not a checkpoint of {os.path.basename(__file__)}")
    if ckpt.get("layout", 1) not in READABLE_LAYOUTS:
        raise SystemExit(
            f"error: {path} has checkpoint layout {ckpt.get('layout', 1)} (another version of this script); "
            f"this one reads layouts {READABLE_LAYOUTS}: evaluate or resume it with the version that wrote it"
        )
    saved_args = ckpt["args"]
    changed = [
        f"--{key.replace('_', '-')} {saved_args.get(key)!r} -> {value!r}"
        for key, value in (asdict(resume_args).items() if resume_args is not None else ())
        if key not in RESUMABLE_CHANGES and saved_args.get(key) != value
    ]
    if changed:
        raise SystemExit("error: cannot resume with different flags: " + ", ".join(changed))
    return ckpt


def restore_networks(ckpt: Dict, device: torch.device):
    """Encoders, actors, critic and value normaliser as a checkpoint saved them."""
    known = {f.name for f in fields(Args)}
    saved_args = Args(**{key: value for key, value in ckpt["args"].items() if key in known})
    sizes = (ckpt["obs_dim"], ckpt["state_dim"], ckpt["action_dim"], ckpt["num_agents"])
    networks = make_networks(saved_args, *sizes, device) + (ValueNorm(enabled=saved_args.use_valuenorm).to(device),)
    for name, network in zip(NETWORK_NAMES, networks):
        network.load_state_dict(ckpt[name])
    return networks


def start_run(args: Args, resumed: Optional[Dict]):
    """The run folder, runs/mapush__<exp>__<seed>__<time> (_<process id> added if a run started in the same
    second has it) or a resumed run's own; one run per folder: an exclusive flock on run.lock, which the kernel
    releases however the run ends (exit, crash, kill -9; where there is no flock, on Windows and some file
    systems, the run goes on unlocked, with a warning); W&B (--track); TensorBoard. Returns the folder, the
    open lock file (the lock lasts while it stays open) and the TensorBoard writer."""
    run_dir = f"runs/mapush__{args.exp_name}__{args.seed}__{int(time.time())}"
    if resumed is not None:
        run_dir = os.path.dirname(os.path.abspath(args.resume))
    else:
        try:
            os.makedirs("runs", exist_ok=True)
            try:
                os.mkdir(run_dir)  # atomic: two runs never share a folder
            except FileExistsError:
                run_dir += f"_{os.getpid()}"
                os.mkdir(run_dir)
        except OSError as err:
            message = f"cannot create a run folder in {os.getcwd()} ({err.strerror}); run from a writable folder"
            raise SystemExit(f"error: {message}") from None
    run_lock = open(os.path.join(run_dir, "run.lock"), "a")
    try:
        import fcntl

        fcntl.flock(run_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"error: another run holds {run_lock.name}; wait for it or stop it") from None
    except (ImportError, OSError) as err:
        say(f"warning: {run_dir} is not locked ({err}): make sure no other run writes to it")
    if args.track:  # before the SummaryWriter: wandb mirrors the TensorBoard log (a resumed run continues its own)
        import wandb

        name = os.path.basename(run_dir)
        try:  # wandb's files go to ./wandb: inside the run folder, TensorBoard's reader would log them twice
            wandb.init(
                project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True, config=vars(args),
                name=name, id=name, resume="allow", save_code=True,
            )  # fmt: skip
        except Exception as err:  # not logged in, a run id that W&B refuses: one line, no empty run folder
            if resumed is None:
                shutil.rmtree(run_dir)
            raise SystemExit(f"error: --track: W&B did not start ({err})") from None
        if resumed is not None and wandb.run.offline:
            say("note: W&B cannot resume an offline run: this part is logged as a new offline run with the same id")
    say(f"run folder: {run_dir}")
    writer = SummaryWriter(run_dir)  # a resumed run appends to its own TensorBoard log
    if resumed is None:
        table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
    return run_dir, run_lock, writer


class StopSignals:
    """Ctrl-C, SIGTERM (kill, Slurm's time limit, docker stop) and SIGHUP (the terminal closed): the first
    one sets `signum`, and the run finishes its iteration, saves, prints how to resume and exits 128 + signal.
    A second one, or one once `quit_note` is set (the final evaluation), quits at once."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.quit_note: Optional[str] = None
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):  # Windows: no HUP
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.signum is not None or self.quit_note:
            say(f"\n{name}: {self.quit_note or 'stopped without saving'}", important=True)
            raise SystemExit(128 + signum)
        self.signum = signum
        say(f"\n{name}: saving after this iteration (once more to quit without saving)", important=True)

    def exit_after_save(self, saved: bool, model_path: str) -> None:
        """How to resume (or that nothing was saved), then exit 128 + the signal's number."""
        resume = f"checkpoint saved. Continue with:\n{resume_command(model_path)}" if saved else "nothing saved"
        say(f"stopped; {resume}", important=True)
        raise SystemExit(128 + self.signum)


def resume_command(model_path: str) -> str:
    """The command that continues this run: its interpreter and arguments, --resume PATH, shell-quoted."""
    kept = [a for a, before in zip(sys.argv, [""] + sys.argv) if not a.startswith("--resume") and before != "--resume"]
    return shlex.join([sys.executable, *kept, "--resume", model_path])


def evaluate_checkpoint_and_exit(args: Args, device: torch.device) -> None:
    """--eval-checkpoint: MAPush's metrics of a saved policy on the task it was trained on, no training."""
    checkpoint = load_checkpoint(args.eval_checkpoint, device)
    obs_encoder, _, actors, _, _ = restore_networks(checkpoint, device)
    if args.env_options or args.max_episode_steps != Args.max_episode_steps:
        say("note: --env-options and --max-episode-steps are not used: a checkpoint is evaluated on its own task")
    video = os.path.splitext(args.eval_checkpoint)[0] + "_eval.gif" if args.capture_video else None
    task = {key: checkpoint["args"][key] for key in ("env_options", "max_episode_steps")}  # trained on
    metrics = evaluate(actors, obs_encoder, replace(args, **task), device, args.backend, video, log=say)
    say(f"evaluation of {args.eval_checkpoint} on {args.eval_envs} envs: {metrics}")
    raise SystemExit(0)


def log_evaluation(writer: SummaryWriter, metrics: Dict[str, float], global_step: int, when: str, envs: int) -> None:
    """An evaluation's eval/* scalars at global_step and its console line."""
    for key, value in metrics.items():
        writer.add_scalar(f"eval/{key}", value, global_step)
    say(f"evaluation {when}on {envs} envs: {metrics}")


def host_values(named: Dict, device: torch.device) -> Dict[str, float]:
    """A dict of scalars (tensors on the device, or numbers) as Python floats, read back in one host sync."""
    stacked = torch.stack([torch.as_tensor(value, dtype=torch.float32, device=device) for value in named.values()])
    return dict(zip(named, stacked.tolist()))


def stop_if_diverged(values: Dict[str, float], iteration: int) -> None:
    """Weights or losses not finite: one line and exit, before saving (the last checkpoint stays a good one).
    A one-sample batch's explained variance is nan (undefined) without anything diverging."""
    not_finite = [key for key, value in values.items() if not math.isfinite(value)]
    diverged = [key for key in not_finite if key.startswith("losses/") and key != "losses/explained_variance"]
    if diverged or values["weights_finite"] != 1.0:
        raise SystemExit(
            f"error: the run diverged at iteration {iteration}: {', '.join(not_finite) or 'network weights'} not "
            "finite; try a lower --actor-lr / --critic-lr. The last checkpoint (if any) is from before."
        )


def progress_line(iteration: int, num_iterations: int, text: str, elapsed: float, eta: Optional[float]) -> str:
    """The iteration's console line: a bar when a person watches (pipes and log files get the plain line),
    the elapsed time and the estimated time to the end (? while unknown)."""
    bar = f"[{'#' * (20 * iteration // num_iterations):<20}] " if sys.stdout.isatty() else ""
    eta_text = "?" if eta is None else str(timedelta(seconds=int(eta)))
    return f"{bar}iter {iteration}/{num_iterations} {text} elapsed={timedelta(seconds=int(elapsed))} eta={eta_text}"


class Console:
    """print, flushed. A reader that goes away (`| head`, tee ended by Ctrl-C, a closed terminal) costs the
    run nothing: stdout then goes to /dev/null, and the important lines (saving, resuming) to stderr."""

    stdout_lost = False  # set (on the instance) once the reader of stdout has gone away

    def say(self, text: str = "", important: bool = False, end: str = "\n") -> None:
        stream = sys.stderr if important and self.stdout_lost else sys.stdout
        try:
            print(text, file=stream, end=end, flush=True)
        except OSError:  # BrokenPipeError, or EIO from a terminal that was closed
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            if stream is sys.stdout:
                self.stdout_lost = True
                if important:
                    self.say(text, important)


say = Console().say


if __name__ == "__main__":
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    if args.eval_checkpoint is not None:
        evaluate_checkpoint_and_exit(args, device)
    backend = training_backend(args, device)
    resumed = load_checkpoint(args.resume, device, resume_args=args) if args.resume else None  # to continue from
    batch_size = args.num_envs * args.num_steps
    if args.total_timesteps is None:  # the checkpoint's run length, or whole batches in 20M steps
        args.total_timesteps = resumed["args"]["total_timesteps"] if resumed else 20_000_000 // batch_size * batch_size
    num_iterations = args.total_timesteps // batch_size
    if num_iterations * batch_size != args.total_timesteps:
        say(f"note: training {num_iterations * batch_size} env steps, whole batches of {batch_size}")

    # TRY NOT TO MODIFY: seeding
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    with exit_if_out_of_memory(args, device):  # env, networks and storage: made before the run folder
        env_options = {"max_episode_steps": args.max_episode_steps, **envs.parse_task_options(args.env_options)}
        if args.compile and backend == "torch":
            env_options["compile"] = True
        env = envs.make_env(args.num_envs, device=str(device), seed=args.seed, backend=backend, **env_options)
        A, obs_dim, state_dim, action_dim = env.num_agents, env.obs_dim, env.state_dim, env.action_dim

        obs_encoder, state_encoder, actors, critic = make_networks(args, obs_dim, state_dim, action_dim, A, device)
        actor_optimizers = [optim.Adam(actor.parameters(), lr=args.actor_lr, eps=1e-5) for actor in actors]
        critic_optimizer = optim.Adam(critic.parameters(), lr=args.critic_lr, eps=1e-5)
        value_norm = ValueNorm(enabled=args.use_valuenorm).to(device)

        # ALGO Logic: Storage setup
        T, E = args.num_steps, args.num_envs
        V = A if args.value_target == "agent" else 1  # values per env step: one per agent, or the team's
        obs_buf = torch.zeros((T, E, A, obs_encoder.out_dim), device=device)  # encoded, as the actors saw them
        states_buf = torch.zeros((T, E, state_dim), device=device)  # encoded
        actions_buf = torch.zeros((T, E, A, action_dim), device=device)
        logprobs_buf = torch.zeros((T, E, A, action_dim), device=device)  # per dimension, as HARL
        rewards_buf = torch.zeros((T, E, V), device=device)  # critic reward (scaled), + timeout bootstrap
        dones_buf = torch.zeros((T, E, 1), device=device)
        values_buf = torch.zeros((T, E, V), device=device)  # critic output (normalised units)
    order_generator = torch.Generator().manual_seed(args.seed)  # update orders depend on the seed only

    def rollout_step(obs: torch.Tensor, state: torch.Tensor):
        """The networks' part of one rollout step. The encoders merge each observation into their
        running statistics (update=True) here, once, and nowhere else."""
        with torch.no_grad():
            obs_input, state_input = obs_encoder(obs, update=True), state_encoder(state, update=True)
            dist = policy(actors, obs_input)
            return obs_input, state_input, dist.loc, dist.scale, critic(state_input)

    def state_value(state: torch.Tensor) -> torch.Tensor:
        """V(state) in reward units, for bootstrapping."""
        with torch.no_grad():
            return value_norm.denormalize(critic(state_encoder(state)))

    if args.compile:  # the same functions, fused by inductor; rebinding the names makes every caller use them
        rollout_step, state_value, compute_gae = map(torch.compile, (rollout_step, state_value, compute_gae))
        happo_actor_loss, agent_log_prob = torch.compile(happo_actor_loss), torch.compile(agent_log_prob)
        critic_loss = torch.compile(critic_loss)
        say("compiling: the first iteration takes a minute or two longer (ETA from the second one)")

    run_dir, run_lock, writer = start_run(args, resumed)  # the lock lasts while run_lock stays open
    model_path = f"{run_dir}/{args.exp_name}.cleanrl_model"
    best_path = f"{run_dir}/{args.exp_name}_best.cleanrl_model"  # the policy of the best periodic evaluation
    stateful = dict(zip(NETWORK_NAMES, (obs_encoder, state_encoder, actors, critic, value_norm)))
    stateful.update({f"optimizer{k}": opt for k, opt in enumerate(actor_optimizers + [critic_optimizer])})
    checkpoints = Checkpoints(args, stateful, env, device, order_generator)  # all needed to resume exactly
    stop = StopSignals()  # Ctrl-C, SIGTERM, SIGHUP: save after this iteration and exit

    # TRY NOT TO MODIFY: start the game
    global_step, iteration = checkpoints.restore(resumed) if resumed else (0, 0)
    next_obs, next_state = env.load_state_dict(resumed["env"]) if resumed else env.reset()
    term_names = list(env.reward_terms)
    start_time = last_save = sps_time = time.time()
    first_iteration, sps_step = iteration + 1, global_step  # SPS from the 2nd iteration: without warm-up, compiling
    for iteration in range(first_iteration, num_iterations + 1):
        if args.anneal_lr:  # both learning rates linearly to 0
            frac = 1.0 - (iteration - 1.0) / num_iterations
            for opt, lr in [(opt, args.actor_lr) for opt in actor_optimizers] + [(critic_optimizer, args.critic_lr)]:
                opt.param_groups[0]["lr"] = frac * lr

        # Episode statistics and reward terms, summed on the device and read once per iteration.
        episodes = {key: torch.zeros((), device=device) for key in ("finished", "successes", "return", "length")}
        term_sums = torch.zeros(len(term_names), device=device)
        rollout_start, env_seconds = time.perf_counter(), 0.0  # where the time goes (exact on CPU; not synced on CUDA)
        for step in range(T):
            global_step += E
            # ALGO LOGIC: action logic (sampling outside the compiled step keeps its random numbers eager's)
            obs_buf[step], states_buf[step], mean, std, values_buf[step] = rollout_step(next_obs, next_state)
            dist = Normal(mean, std)
            actions_buf[step] = action = dist.sample()
            logprobs_buf[step] = dist.log_prob(action)

            # TRY NOT TO MODIFY: execute the game and log data.
            env_start = time.perf_counter()
            next_obs, next_state, reward, terminated, truncated, info = env.step(action)
            env_seconds += time.perf_counter() - env_start
            if args.value_target != "agent":  # one team reward (E, 1): the agents' sum, or their mean
                reward = reward.sum(1, keepdim=True) / (1 if args.value_target == "team-sum" else A)
            reward = reward * args.reward_scale
            done = terminated | truncated
            if args.bootstrap_timeouts:  # a time limit is not a terminal state: add gamma * V(s_final)
                reward = reward + args.gamma * truncated.float()[:, None] * state_value(info["final_state"])
            rewards_buf[step] = reward
            dones_buf[step] = done.float()[:, None]
            ended = {"finished": done, "successes": info["success"], "return": info["episode_return"].mean(1)}
            for key, value in dict(ended, length=info["episode_length"]).items():  # over the episodes that ended
                episodes[key] += (value.float() * done).sum()
            term_sums += info["reward_terms"]

        update_start = time.perf_counter()
        next_value = state_value(next_state)  # bootstrap value if not done
        values_raw = value_norm.denormalize(values_buf)  # rollout data: no gradients anywhere here
        advantages, returns = compute_gae(rewards_buf, values_raw, next_value, dones_buf, args.gamma, args.gae_lambda)

        # flatten the batch
        B = T * E
        b_obs, b_actions, b_logprobs = (x.reshape(B, A, -1) for x in (obs_buf, actions_buf, logprobs_buf))
        b_advantages, b_returns, b_values = (x.reshape(B, V) for x in (advantages, returns, values_buf))
        b_states = states_buf.reshape(B, state_dim)
        if args.norm_adv:  # once per iteration over the whole batch (HARL), not per mini-batch
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std(unbiased=False) + 1e-5)

        # Optimizing the actors, HAPPO: one agent after another in a random (or fixed) order. Agent i's
        # loss is weighted per sample by the factor M: 1 for the first agent, then M *= the aggregated
        # new/old probability ratio of each agent just updated (on the whole batch, detached).
        order = agent_order(A, args.fixed_order, order_generator)
        agent_advantages = b_advantages.expand(B, A)  # each agent's own column, or the team's for all
        factor = torch.ones(B, device=device)  # M
        minibatch_size = B // args.num_minibatches
        agent_stats, factors_used = {}, {}
        for i in order:
            with torch.no_grad():  # agent i's log-probs on the whole batch, before its update
                logprob_before = agent_log_prob(actors[i], b_obs[:, i], b_actions[:, i])
            factors_used[i] = factor.clamp(*args.factor_clip) if args.factor_clip is not None else factor
            agent_batch = (b_obs[:, i], b_actions[:, i], b_logprobs[:, i], agent_advantages[:, i], factors_used[i])
            clipfracs, grad_norms = [], []
            for _epoch in range(args.update_epochs):  # agent i's PPO epochs, with M (M = 1: exactly PPO)
                for mb in torch.randperm(B, device=device).split(minibatch_size):
                    loss, mb_stats = happo_actor_loss(actors[i], *(x[mb] for x in agent_batch), args)
                    actor_optimizers[i].zero_grad()
                    loss.backward()
                    grad_norms.append(nn.utils.clip_grad_norm_(actors[i].parameters(), args.max_grad_norm))
                    actor_optimizers[i].step()
                    clipfracs.append(mb_stats["clipfrac"])
            mb_stats.update(clipfrac=torch.stack(clipfracs).mean(), grad_norm=torch.stack(grad_norms).mean())
            agent_stats[i] = mb_stats  # the last mini-batch's, with the mean clip fraction and grad norm
            with torch.no_grad():  # and after it: M *= aggregate(new_i / old_i)
                logprob_after = agent_log_prob(actors[i], b_obs[:, i], b_actions[:, i])
                factor = factor * aggregate_ratio(logprob_after - logprob_before, args.action_aggregation)
        actor_stats = {key: torch.stack([agent_stats[i][key] for i in range(A)]).mean() for key in agent_stats[0]}

        # Optimizing the critic, after the actors (its update does not change this batch's advantages).
        value_norm.update(b_returns)  # once per iteration (HARL: once per critic mini-batch)
        b_targets = value_norm.normalize(b_returns)
        critic_grad_norms = []
        for _epoch in range(args.critic_epochs):
            for mb in torch.randperm(B, device=device).split(minibatch_size):
                v_loss = critic_loss(critic, b_states[mb], b_values[mb], b_targets[mb], args)
                critic_optimizer.zero_grad()
                v_loss.backward()
                critic_grad_norms.append(nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm))
                critic_optimizer.step()

        # TRY NOT TO MODIFY: record rewards for plotting purposes (one host sync per iteration)
        with torch.no_grad():
            y_pred, y_true = values_raw.reshape(B, V), b_returns
            explained_var = 1 - (y_true - y_pred).var() / y_true.var().clamp(min=1e-8)
            finite = torch.stack([p.isfinite().all() for p in [*actors.parameters(), *critic.parameters()]]).all()
        logged = {
            **{f"losses/{k}": v for k, v in actor_stats.items() if k not in ("grad_norm", "mean_outside")},
            "charts/learning_rate": actor_optimizers[0].param_groups[0]["lr"],
            "losses/value_loss": v_loss.detach(),
            "losses/explained_variance": explained_var,
            "losses/actor_grad_norm": actor_stats["grad_norm"],
            "losses/critic_grad_norm": torch.stack(critic_grad_norms).mean(),
            "charts/action_std": torch.stack([a.std() for a in actors]).mean(),
            "charts/action_mean_outside": actor_stats["mean_outside"],  # share of action means beyond [-1, 1]
            "charts/value_norm_mean": value_norm.stats()[0],
            "perf/env_seconds": env_seconds,  # env steps of the rollout
            "perf/rollout_seconds": update_start - rollout_start,  # env steps, network calls, bookkeeping
            "perf/update_seconds": time.perf_counter() - update_start,  # GAE, actors' and critic's epochs
        }
        logged["charts/first_agent"] = order[0]
        logged.update({f"losses/agent{i}/{key}": value for i in range(A) for key, value in agent_stats[i].items()})
        factors = {f"position{position}": factors_used[i] for position, i in enumerate(order[1:], start=1)}
        factors["final"] = factor  # by position (position 0's is M = 1), and M after the last agent
        for where, m in factors.items():
            logged.update({f"factor/{where}/{key}": value for key, value in factor_stats(m, args.clip_coef).items()})
        logged.update({f"rewards/{name}": term_sums[k] / T for k, name in enumerate(term_names)})
        values = host_values({**logged, **episodes, "weights_finite": finite}, device)  # the iteration's one sync
        stop_if_diverged(values, iteration)
        for key in logged:
            writer.add_scalar(key, values[key], global_step)
        sps = int((global_step - sps_step) / (time.time() - sps_time))
        writer.add_scalar("charts/SPS", sps, global_step)
        text, n = f"order={order} global_step={global_step} SPS={sps}", values["finished"]
        if n > 0:  # means over the episodes that ended in this iteration
            writer.add_scalar("charts/episodic_return", values["return"] / n, global_step)
            writer.add_scalar("charts/episodic_length", values["length"] / n, global_step)
            writer.add_scalar("charts/success_rate", values["successes"] / n, global_step)
            text += f" episodes={int(n)} success={values['successes'] / n:.3f} return={values['return'] / n:.2f}"
        compiling = args.compile and iteration == first_iteration  # its SPS is mostly compiling: no ETA from it
        eta = None if compiling else (num_iterations - iteration) * batch_size // max(sps, 1)
        say(progress_line(iteration, num_iterations, text, time.time() - start_time, eta))
        if iteration == first_iteration:
            sps_time, sps_step = time.time(), global_step
        if args.eval_every > 0 and iteration % args.eval_every == 0 and iteration < num_iterations:  # last: below
            eval_start = time.time()
            metrics = evaluate(actors, obs_encoder, args, device, backend)
            log_evaluation(writer, metrics, global_step, f"at global_step={global_step} ", args.eval_envs)
            checkpoints.keep_if_best(metrics["success_rate"], best_path, global_step, iteration)
            sps_time += time.time() - eval_start  # the evaluation's time is left out of SPS
        if stop.signum is not None or time.time() - last_save > 60 * args.checkpoint_minutes:
            saved, last_save = checkpoints.save(model_path, global_step, iteration), time.time()
        if stop.signum is not None:
            stop.exit_after_save(saved, model_path)

    if not checkpoints.save(model_path, global_step, iteration):
        raise SystemExit(f"error: the trained model is not saved (the warning above says why): {model_path}")
    stop.quit_note = "stopped during the final evaluation; the model is saved: evaluate it with --eval-checkpoint "
    stop.quit_note += shlex.quote(model_path)
    say(f"model saved to {model_path}")
    if backend == "isaacgym":  # one Isaac Gym simulation per process: evaluate in a new one
        evaluation = ["--backend", "isaacgym", "--eval-checkpoint", os.path.abspath(model_path)]
        say(f"evaluate with: {shlex.join([sys.executable, sys.argv[0], *evaluation])}")
    elif args.eval_envs > 0:
        video = f"{run_dir}/eval.gif" if args.capture_video else None
        metrics = evaluate(actors, obs_encoder, args, device, backend, video, log=say)
        log_evaluation(writer, metrics, global_step, "", args.eval_envs)
        checkpoints.keep_if_best(metrics["success_rate"], best_path, global_step, iteration)
        if args.eval_every > 0:  # the model again, with the best success after the final evaluation
            checkpoints.save(model_path, global_step, iteration)
    if os.path.exists(best_path):
        say(f"best periodic evaluation ({checkpoints.best_success:.3f} success) saved to {best_path}")
    writer.close()
