"""Measures the differences between the torch backend and MAPush's own code that remain by design.

Needs a MAPush checkout (MAPUSH_ROOT). Runs the Isaac Gym adapter over MAPush's real wrapper with
the simulator replaced by the surrogate's physics (tests/mapush_code.py), drives it with the
scripted controller plus noise and with an untrained actor's exploration, and measures on reset steps
what MAPush's quirks change: the dense reward terms computed on the post-reset state (by policy and
kind of ending), and the first observation built with the previous episode's yaws. Also measures how often
MAPush's independent robot spawns start closer than 0.25 m.
Writes benchmarks/results/mapush_differences.md.

    MAPUSH_ROOT=/path/to/MAPush python benchmarks/mapush_differences.py [--checkpoints PATH ...]
"""

from __future__ import annotations

import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "benchmarks")]
import pytest  # noqa: E402
import torch  # noqa: E402
from mapush_code import make_surrogate_sim_class, mapush_imported, mapush_root  # noqa: E402
from scripted_policy import scripted_actions  # noqa: E402

import envs  # noqa: E402, F401  (before torch, as everywhere in this project)
import envs.isaacgym_push as ig  # noqa: E402
from envs.cuboid_push import REWARD_TERMS, TaskConfig, box_target_distance, observe, reward_terms  # noqa: E402

# The policies whose ending steps are measured: the rewards MAPush computes on post-reset states differ
# most where the box is far from where the next episode starts it, so the size depends on the policy.
POLICIES = {
    "scripted controller + N(0, 0.3) noise": lambda obs, g: (
        scripted_actions(obs) + 0.3 * torch.randn(*obs.shape[:2], 3, generator=g)
    ),
    "exploration of an untrained actor, N(0, 0.73)": lambda obs, g: 0.731 * torch.randn(*obs.shape[:2], 3, generator=g),
}


def ending_step_gaps(env, act, steps: int):
    """MAPush's dense reward minus the surrogate's on every ending step, per agent, with the ending's
    kind (success, failure, time-out), and the first observations' errors."""
    sim, cfg = env.env.env, TaskConfig()
    g = torch.Generator().manual_seed(0)
    obs, _ = env.reset()
    previous = sim.physics.clone()
    reward_gap, kinds, term_gap, obs_gap, yaw_gap = [], [], [], [], []
    for _ in range(steps):
        obs, _, reward, terminated, truncated, info = env.step(act(obs, g))
        before, after, ended = sim.log[-1]
        if len(ended):
            success = box_target_distance(before) < cfg.success_radius
            failure = torch.hypot(before[6] - before[7], before[8] - before[9]) < cfg.failure_distance
            ours = reward_terms(before, box_target_distance(previous), success, failure, cfg)  # (7, 2, E)
            dense = ours[:5].sum(0).T[ended]
            sparse = ours[5:].sum(0).T[ended]
            reward_gap.append(reward[ended] - sparse - dense)  # MAPush's dense terms minus ours
            kind = torch.where(info["success"][ended], 0, torch.where(info["failure"][ended], 1, 2))
            kinds.append(kind[:, None].expand(-1, 2))
            term_gap.append(ours[:, :, ended])
            fresh = observe(after)[0][ended]
            diff = obs[ended] - fresh
            for k in (4, 7):
                diff[..., k] = torch.remainder(diff[..., k] + math.pi, 2 * math.pi) - math.pi
            obs_gap.append(diff.abs())
            yaw_gap.append(torch.remainder(obs[ended][..., 4] - fresh[..., 4] + math.pi, 2 * math.pi) - math.pi)
        previous = after.clone()
    return (
        torch.cat(reward_gap).flatten(),
        torch.cat(kinds).flatten(),
        torch.cat(term_gap, -1),
        torch.cat(obs_gap),
        torch.cat(yaw_gap).abs().flatten(),
    )


def checkpoint_policy(path: str):
    """The stochastic policy (sampled actions, as in training) of a mappo_mapush.py or happo_mapush.py checkpoint."""
    from plateau import load_policy

    script, checkpoint, obs_encoder, _, actors, _, _ = load_policy(path)
    steps = checkpoint["global_step"]

    def act(obs, g):
        with torch.no_grad():
            dist = script.policy(actors, obs_encoder(obs))
            return dist.loc + dist.scale * torch.randn(dist.loc.shape, generator=g)

    return f"{checkpoint['algo'].upper()} at {steps / 1e6:.1f}M env steps (its checkpoint), sampled actions", act


def main(num_envs: int = 64, steps: int = 3000, checkpoints=()) -> None:
    root = mapush_root()
    if root is None:
        sys.exit("set MAPUSH_ROOT to a MAPush checkout")
    monkeypatch = pytest.MonkeyPatch()
    rows = []
    with mapush_imported(root, monkeypatch) as utils:
        sim_class = make_surrogate_sim_class(sys.modules["mqe.envs.npc.go1_object"].Go1Object)
        monkeypatch.setitem(utils.ENV_DICT["go1push_mid"], "class", sim_class)
        monkeypatch.setattr(ig, "require_isaacgym", lambda device: None)
        for name, act in list(POLICIES.items()) + [checkpoint_policy(path) for path in checkpoints]:
            torch.manual_seed(0)
            env = ig.IsaacGymPushEnv(num_envs, device="cpu", seed=0)
            gaps, kinds, terms, obs_err, yaw_err = ending_step_gaps(env, act, steps)
            cells = []
            for k, kind in enumerate(("successes", "failures", "time-outs")):
                part = gaps[kinds == k].abs()
                cells.append(
                    f"{kind} {len(part) // 2}: mean abs {part.mean():.2f}, largest {part.max():.2f}"
                    if len(part)
                    else f"{kind} 0"
                )
            rows.append(
                f"| {name} | {len(gaps) // 2} | {gaps.mean():+.3f} | {gaps.abs().mean():.3f} | {gaps.abs().max():.2f} "
                f"| {(gaps.abs() > 0.01).float().mean():.1%} | {'; '.join(cells)} |"
            )
            if name.startswith("scripted"):  # the observation and term figures of the first policy
                first = (terms, obs_err, yaw_err)
        terms, obs_err, yaw_err = first
        # Spawns: MAPush's _reset_root_states for 16384 envs, robots placed independently.
        spawn_env = ig.IsaacGymPushEnv(16384, device="cpu", seed=1)
        spawn_env.reset()
        P = spawn_env.env.env.physics
        close = (torch.hypot(P[6] - P[7], P[8] - P[9]) < 0.25).float().mean().item()
    monkeypatch.undo()
    lines = [
        "# Torch backend against MAPush's code: the differences kept by design, measured",
        "",
        "`MAPUSH_ROOT=/path/to/MAPush python benchmarks/mapush_differences.py --checkpoints ...` (MAPush's code,",
        "simulator replaced; the checkpoints: the MAPPO defaults, seed 1, from `benchmarks/plateau.py train`);",
        f"{num_envs} envs x {steps} steps per policy.",
        "",
        "MAPush's dense reward on an ending step minus the surrogate's, per agent (MAPush computes it on the",
        "next episode's first state), by the policy that drives the robots:",
        "",
        "| policy | endings | mean | mean abs | largest abs | share > 0.01 | by ending: mean abs, largest abs |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "With the scripted controller plus noise:",
        "",
        "| what | measured |",
        "|---|---|",
        "| first observation of an episode: yaw error of MAPush's (previous episode's yaw) | "
        f"mean {yaw_err.mean():.3f} rad, "
        f"largest {yaw_err.max():.3f} rad |",
        "| first observation: largest error per feature (x_t, y_t, x_b, y_b, yaw_b, x_o, y_o, yaw_o) | "
        + ", ".join(f"{v:.2f}" for v in obs_err.amax((0, 1)).tolist())
        + " |",
        f"| MAPush spawns with the robots closer than 0.25 m (end at once with -5) | {close:.1%} of 16384 |",
        "",
        "Reward terms of the surrogate on those ending steps, mean per agent: "
        + ", ".join(f"{n} {v:+.4f}" for n, v in zip(REWARD_TERMS, terms.mean((1, 2)).tolist())),
    ]
    out = os.path.join(ROOT, "benchmarks", "results", "mapush_differences.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoints", nargs="*", default=[], help="training checkpoints whose sampled policy to measure too"
    )
    main(checkpoints=parser.parse_args().checkpoints)
