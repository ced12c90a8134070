"""Can the actor's input carry the solution? Imitate the scripted controller through each input pipeline.

A [128, 128] actor (the scripts' `Actor` and `InputEncoder`) is fitted by supervised regression of
its mean to the scripted controller's clipped actions, on observations from noisy scripted
rollouts, then evaluated like the scripts (deterministic mean actions, first episode of each of
300 envs, `envs.evaluate()` as the scripts). Only the input pipeline differs between the rows, so the
table says how much each pipeline loses before any reinforcement learning starts.

    python benchmarks/imitation_inputs.py            # about 5 min on one core
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# envs first: it imports isaacgym (when present), which must be loaded before torch.
import envs  # noqa: E402, I001

import torch  # noqa: E402

from benchmarks.scripted_policy import scripted_actions  # noqa: E402
from mappo_mapush import Actor, InputEncoder  # noqa: E402

# name: (yaws as cos/sin, running mean/std normalisation, input LayerNorm)
PIPELINES = {
    "raw 8-D, input LayerNorm (HARL)": (False, False, True),
    "raw 8-D, running mean/std": (False, True, False),
    "cos/sin yaws, running mean/std (default)": (True, True, False),
    "cos/sin yaws, input LayerNorm": (True, False, True),
}


@torch.no_grad()
def collect(num_envs: int, num_steps: int, noise: float, seed: int):
    """Observations (N, 8) of noisy scripted rollouts and the controller's clipped actions (N, 3)."""
    env = envs.make_env(num_envs, seed=seed, backend="torch")
    gen = torch.Generator().manual_seed(seed)
    obs, _ = env.reset()
    observations, targets = [], []
    for _ in range(num_steps):
        action = scripted_actions(obs)
        observations.append(obs.reshape(-1, 8))
        targets.append(action.clamp(-1.0, 1.0).reshape(-1, 3))
        obs, *_ = env.step(action + noise * torch.randn(action.shape, generator=gen))
    return torch.cat(observations), torch.cat(targets)


def fit(pipeline, observations, targets, adam_steps: int, batch: int, seed: int):
    """Encoder (statistics of the whole data set) and actor fitted by MSE; returns them and the final MSE."""
    cos_sin, normalise, layernorm = pipeline
    torch.manual_seed(seed)
    encoder = InputEncoder(8, envs.OBS_YAW_FEATURES if cos_sin else (), normalise)
    if normalise:
        encoder(observations, update=True)  # statistics of the whole data set
    actor = Actor(encoder.out_dim, 3, (128, 128), "harl", 1.0, layernorm, tanh_mean=False)
    optimizer = torch.optim.Adam(actor.parameters(), lr=1e-3)
    inputs = encoder(observations)
    for _ in range(adam_steps):
        idx = torch.randint(0, inputs.shape[0], (batch,))
        loss = ((actor(inputs[idx])[0] - targets[idx]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        mse = ((actor(inputs)[0] - targets) ** 2).mean().item()
    return encoder, actor, mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=512)
    parser.add_argument("--num-steps", type=int, default=750, help="rollout steps per env (x2 agents observations)")
    parser.add_argument("--noise", type=float, default=0.5, help="std of the Gaussian noise on the executed actions")
    parser.add_argument("--adam-steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--eval-envs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "imitation_inputs.md"))
    args = parser.parse_args()
    start = time.time()
    observations, targets = collect(args.num_envs, args.num_steps, args.noise, args.seed)
    rows = []
    for name, pipeline in PIPELINES.items():
        encoder, actor, mse = fit(pipeline, observations, targets, args.adam_steps, args.batch, args.seed)
        act = lambda obs, actor=actor, encoder=encoder: actor(encoder(obs))[0]  # noqa: E731
        metrics = envs.evaluate(act, args.eval_envs, "cpu", args.seed + 1)
        rows.append((name, mse, metrics))
        print(f"{name}: imitation MSE {mse:.3f}, {metrics}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("# Imitating the scripted controller through each input pipeline\n\n")
        f.write(
            f"`python benchmarks/imitation_inputs.py` ({observations.shape[0]:,} observations from {args.num_envs} "
            f"envs x {args.num_steps} noisy scripted steps (noise std {args.noise}), {args.adam_steps} Adam steps "
            f"of {args.batch}, [128, 128] actor; evaluation: {args.eval_envs} envs, deterministic, first episode; "
            f"{time.time() - start:.0f} s on {torch.get_num_threads()} CPU thread(s))\n\n"
        )
        f.write("| actor input | imitation MSE | success rate | finish time (s) |\n|---|---:|---:|---:|\n")
        f.write(f"| (none: always the zero action) | {(targets**2).mean().item():.3f} | | |\n")
        for name, mse, m in rows:
            f.write(f"| {name} | {mse:.3f} | {m['success_rate']:.3f} | {m['finish_time_s']:.1f} |\n")
    print(f"wrote {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
