"""Measures the differences between the torch backend and MAPush's own code that remain by design.

Needs a MAPush checkout (MAPUSH_ROOT). Runs the Isaac Gym adapter over MAPush's real wrapper with
the simulator replaced by the surrogate's physics (tests/mapush_code.py), drives it with the
scripted controller plus noise, and measures on reset steps what MAPush's quirks change: the dense
reward terms computed on the post-reset state, and the first observation built with the previous
episode's yaws. Also measures how often MAPush's independent robot spawns start closer than 0.25 m.
Writes benchmarks/results/mapush_differences.md.

    MAPUSH_ROOT=/path/to/MAPush python benchmarks/mapush_differences.py
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


def main(num_envs: int = 64, steps: int = 3000) -> None:
    root = mapush_root()
    if root is None:
        sys.exit("set MAPUSH_ROOT to a MAPush checkout")
    monkeypatch = pytest.MonkeyPatch()
    with mapush_imported(root, monkeypatch) as utils:
        sim_class = make_surrogate_sim_class(sys.modules["mqe.envs.npc.go1_object"].Go1Object)
        monkeypatch.setitem(utils.ENV_DICT["go1push_mid"], "class", sim_class)
        monkeypatch.setattr(ig, "require_isaacgym", lambda device: None)
        torch.manual_seed(0)
        env = ig.IsaacGymPushEnv(num_envs, device="cpu", seed=0)
        sim, cfg = env.env.env, TaskConfig()
        g = torch.Generator().manual_seed(0)
        obs, _ = env.reset()
        previous = sim.physics.clone()
        reward_gap, term_gap, obs_gap, yaw_gap = [], [], [], []
        for _ in range(steps):
            noise = 0.3 * torch.randn(num_envs, 2, 3, generator=g)
            obs, _, reward, _, _, _ = env.step(scripted_actions(obs) + noise)
            before, after, ended = sim.log[-1]
            if len(ended):
                success = box_target_distance(before) < cfg.success_radius
                failure = torch.hypot(before[6] - before[7], before[8] - before[9]) < cfg.failure_distance
                ours = reward_terms(before, box_target_distance(previous), success, failure, cfg)  # (7, 2, E)
                dense = ours[:5].sum(0).T[ended]
                sparse = ours[5:].sum(0).T[ended]
                reward_gap.append(reward[ended] - sparse - dense)  # MAPush's dense terms minus ours
                term_gap.append(ours[:, :, ended])
                fresh = observe(after)[0][ended]
                diff = obs[ended] - fresh
                for k in (4, 7):
                    diff[..., k] = torch.remainder(diff[..., k] + math.pi, 2 * math.pi) - math.pi
                obs_gap.append(diff.abs())
                yaw_gap.append(torch.remainder(obs[ended][..., 4] - fresh[..., 4] + math.pi, 2 * math.pi) - math.pi)
            previous = after.clone()
        gaps = torch.cat(reward_gap).flatten()
        obs_err = torch.cat(obs_gap)
        yaw_err = torch.cat(yaw_gap).abs().flatten()
        episodes = len(gaps) // 2
        # Spawns: MAPush's _reset_root_states for 16384 envs, robots placed independently.
        spawn_env = ig.IsaacGymPushEnv(16384, device="cpu", seed=1)
        spawn_env.reset()
        P = spawn_env.env.env.physics
        close = (torch.hypot(P[6] - P[7], P[8] - P[9]) < 0.25).float().mean().item()
    monkeypatch.undo()
    lines = [
        "# Torch backend against MAPush's code: the differences kept by design, measured",
        "",
        "`MAPUSH_ROOT=/path/to/MAPush python benchmarks/mapush_differences.py` (MAPush's code, simulator replaced);",
        f"{num_envs} envs x {steps} steps of the scripted controller plus noise, {episodes} episode endings.",
        "",
        "| what | measured |",
        "|---|---|",
        f"| MAPush's dense reward on a reset step minus the surrogate's (per agent) | mean {gaps.mean():+.4f}, "
        f"mean abs {gaps.abs().mean():.4f}, largest abs {gaps.abs().max():.4f} |",
        f"| share of reset steps where that gap exceeds 0.01 | {(gaps.abs() > 0.01).float().mean():.1%} |",
        f"| first observation of an episode: yaw error of MAPush's (previous episode's yaw) | mean {yaw_err.mean():.3f} rad, "
        f"largest {yaw_err.max():.3f} rad |",
        "| first observation: largest error per feature (x_t, y_t, x_b, y_b, yaw_b, x_o, y_o, yaw_o) | "
        + ", ".join(f"{v:.2f}" for v in obs_err.amax((0, 1)).tolist())
        + " |",
        f"| MAPush spawns with the robots closer than 0.25 m (end at once with -5) | {close:.1%} of 16384 |",
        "",
        "Reward terms of the surrogate on those reset steps, mean per agent: "
        + ", ".join(f"{n} {v:+.4f}" for n, v in zip(REWARD_TERMS, torch.cat(term_gap, -1).mean((1, 2)).tolist())),
    ]
    out = os.path.join(ROOT, "benchmarks", "results", "mapush_differences.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
