"""A hand-written pushing controller on the torch backend: is the task solvable, and how fast?

Each robot uses only its own 8-D observation: it walks around the box to a point behind it (seen
from the target), side by side with the other robot, turns towards the target and pushes. The
controller gives a reference for what a learned policy can reach (success rate, finish time,
collaboration degree with MAPush's definitions) and is used by the tests as a solvability check.

    python benchmarks/scripted_policy.py --num-envs 300
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


STAND_OFF = 0.6 + 0.3  # box half side + robot half length + margin: where a pushing robot stands
SIDE_OFFSET = 0.3  # each robot pushes 0.3 m left or right of the box centre line


def scripted_actions(obs: torch.Tensor) -> torch.Tensor:
    """Raw actions (E, 2, 3) from observations (E, 2, 8), all in each robot's heading frame."""
    box = obs[..., 2:4]
    to_goal = obs[..., 0:2] - box
    g = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp(min=1e-6)  # push direction
    g_perp = torch.stack((-g[..., 1], g[..., 0]), -1)
    rel = -box  # robot position relative to the box centre
    along = (rel * g).sum(-1, keepdim=True)  # < 0: behind the box (seen from the target)
    lateral = (rel * g_perp).sum(-1, keepdim=True)
    # Lanes by position: the robot further to the left (seen along the push) takes the left lane.
    other_lateral = ((obs[..., 5:7] - box) * g_perp).sum(-1, keepdim=True)
    side = torch.where(lateral >= other_lateral, 1.0, -1.0)
    staging = box - STAND_OFF * g + SIDE_OFFSET * side * g_perp  # target point, robot frame
    # Not behind yet: first go to a waypoint beside the box on the robot's own side, so as not to
    # walk through it; once level with the back, go to the staging point.
    beside = box + torch.sign(lateral + 1e-3) * 1.3 * g_perp - 0.7 * g
    waypoint = torch.where(along > -0.5, beside, staging)
    to_waypoint = waypoint  # the robot is at the origin of its own frame
    ready = (along < -0.7) & ((staging.norm(dim=-1, keepdim=True) < 0.25) | (along < -(STAND_OFF - 0.1)))
    # Push only when the other robot is in position too: alone, an off-centre push turns the box.
    other_along = ((obs[..., 5:7] - box) * g).sum(-1, keepdim=True)
    both_ready = ready & (other_along < -0.7)
    push = g + 1.5 * (SIDE_OFFSET * side - lateral) * g_perp  # forward, holding the lane
    velocity = torch.where(both_ready, push, torch.where(ready, 3.0 * staging, 3.0 * to_waypoint))
    # Keep clear of the other robot (a crash below 0.25 m ends the episode).
    other = obs[..., 5:7]
    dist = other.norm(dim=-1, keepdim=True).clamp(min=1e-3)
    velocity = velocity - (0.5 - dist).clamp(min=0.0) * 6.0 * other / dist
    velocity = velocity / velocity.norm(dim=-1, keepdim=True).clamp(min=1.0)  # at most 1 (= 0.5 m/s)
    heading_error = torch.atan2(g[..., 1], g[..., 0])  # face the push direction
    yaw_rate = (2.0 * heading_error).clamp(-1.0, 1.0)
    return torch.cat((velocity * 2.0, yaw_rate[..., None] * 2.0), -1)  # raw actions: env clips to 1


def run(num_envs: int, seed: int) -> dict:
    """MAPush's metrics (first episode of each env), measured by the evaluation the scripts use."""
    return envs.evaluate(scripted_actions, num_envs, "cpu", seed, "torch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "scripted_policy.md"))
    args = parser.parse_args()
    start = time.time()
    metrics = run(args.num_envs, args.seed)
    print(f"scripted controller, {args.num_envs} envs, first episode each: {metrics} ({time.time() - start:.0f} s)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("# Scripted pushing controller on the torch backend\n\n")
        f.write(f"`python benchmarks/scripted_policy.py --num-envs {args.num_envs} --seed {args.seed}`\n\n")
        f.write("| success rate | finish time (s) | collaboration degree |\n|---:|---:|---:|\n")
        f.write(
            f"| {metrics['success_rate']:.3f} | {metrics['finish_time_s']:.2f}"
            f" | {metrics['collaboration_degree']:.2f} |\n"
        )


if __name__ == "__main__":
    main()
