"""Why the defaults plateau between about 5M and 10M env steps: checkpoints along one run, measured.

`train` runs a training script at its defaults in segments (to 2M, 4M, ... env steps, each segment a
--resume of the previous one, which the tests show is exact) and keeps the checkpoint at the end of
every segment, so the policy can be measured at each milestone. It is resumable: finished segments
are skipped. `analyse` measures each kept checkpoint (deterministic evaluation on 600 envs: outcomes
by starting distance, box and robot speeds, action means beyond the bounds; one stochastic rollout
with GAE: value error, explained variance, advantage scale) and reads the run's TensorBoard log
(std, KL, clip fraction, reward terms), and writes benchmarks/results/plateau/.

    python benchmarks/plateau.py train --script mappo_mapush.py --seeds 1 2 --milestones 2 4 6 8 10 12
    python benchmarks/plateau.py analyse
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # envs/ and the scripts, for `analyse` (imported there: `train` needs no torch)
OUT = os.path.join(ROOT, "benchmarks", "results", "plateau")


def milestone_steps(millions: float, batch: int) -> int:
    """Whole batches up to `millions` env steps (the scripts train whole batches)."""
    return round(millions * 1e6) // batch * batch


def train(script: str, seed: int, milestones, work_dir: str, extra, batch: int = 512 * 64) -> None:
    name = f"{os.path.splitext(script)[0]}_seed{seed}"
    keep = os.path.join(work_dir, "plateau", name)
    os.makedirs(keep, exist_ok=True)
    for millions in milestones:
        kept = os.path.join(keep, f"at_{millions:g}M.cleanrl_model")
        if os.path.exists(kept):
            continue
        cmd = [sys.executable, "-u", os.path.join(ROOT, script), "--seed", str(seed), "--exp-name", name]
        cmd += ["--total-timesteps", str(milestone_steps(millions, batch)), "--eval-every", "30"] + list(extra)
        pattern = os.path.join(work_dir, "runs", f"mapush__{name}__{seed}__*", f"{name}.cleanrl_model")
        saved = glob.glob(pattern)
        if saved:  # continue the run where it was last saved (one run folder for every segment)
            cmd += ["--resume", max(saved, key=os.path.getmtime)]
        print("run:", " ".join(cmd), flush=True)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with open(os.path.join(keep, "train.log"), "a") as log:
            subprocess.run(cmd, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        shutil.copyfile(max(glob.glob(pattern), key=os.path.getmtime), kept + ".part")
        os.replace(kept + ".part", kept)


# --- analyse -------------------------------------------------------------------------------------
DISTANCE_BINS = ((1.5, 2.0), (2.0, 2.5), (2.5, 3.0))  # starting box-target distance, m (MAPush: 1.5-3)
TB_TAGS = {  # column: TensorBoard tag, averaged over the 1M env steps before the milestone
    "std": "charts/action_std",
    "means beyond bounds": "charts/action_mean_outside",
    "approx KL": "losses/approx_kl",
    "clipfrac": "losses/clipfrac",
    "value loss": "losses/value_loss",
    "explained var.": "losses/explained_variance",
    "train success": "charts/success_rate",
    "progress": "rewards/progress",
    "approach": "rewards/approach",
    "push": "rewards/push",
    "ocb": "rewards/ocb",
    "collision": "rewards/collision",
}


def load_policy(path: str):
    """(script module, checkpoint, obs_encoder, state_encoder, actors, critic, value_norm) of a checkpoint."""
    import torch

    algo = torch.load(path, map_location="cpu", weights_only=True)["algo"]
    script = __import__(f"{algo}_mapush")
    checkpoint = script.load_checkpoint(path, torch.device("cpu"))
    return (script, checkpoint) + tuple(script.restore_networks(checkpoint, torch.device("cpu")))


def deterministic_episodes(path: str, num_envs: int, seed: int = 12_345):
    """The first episode of `num_envs` fresh envs under the mean actions: per env its starting distance,
    outcome (0 success, 1 failure, 2 time-out), length, final distance, and per running step the box
    speed, the robots' mean speed and the share of action means beyond [-1, 1]."""
    import torch

    import envs

    script, _, obs_encoder, _, actors, _, _ = load_policy(path)
    env = envs.make_env(num_envs, seed=seed)
    k = {name: i for i, name in enumerate(envs.STATE_LAYOUT)}
    obs, state = env.reset()
    start = torch.hypot(state[:, k["target_x"]] - state[:, k["box_x"]], state[:, k["target_y"]] - state[:, k["box_y"]])
    running = torch.ones(num_envs, dtype=torch.bool)
    outcome = torch.full((num_envs,), 2)
    length = torch.zeros(num_envs)
    final = start.clone()
    speeds = {"box": torch.zeros(num_envs), "robots": torch.zeros(num_envs), "beyond": torch.zeros(num_envs)}
    near_steps = torch.zeros(num_envs)
    with torch.no_grad():
        for _ in range(env.max_episode_steps):
            mean = script.policy(actors, obs_encoder(obs)).mean
            obs, state, _, terminated, truncated, info = env.step(mean)
            end = info["final_state"]  # the state the step reached (before any reset)
            r = running.float()
            speeds["box"] += r * torch.hypot(end[:, k["box_vx"]], end[:, k["box_vy"]])
            robots = [torch.hypot(end[:, k[f"r{i}_vx"]], end[:, k[f"r{i}_vy"]]) for i in (0, 1)]
            speeds["robots"] += r * 0.5 * (robots[0] + robots[1])
            speeds["beyond"] += r * (mean.abs() > 1.0).float().mean((1, 2))
            near_steps += r * info["robots_near_box"].float()
            length += r
            done = running & (terminated | truncated)
            outcome = torch.where(done & info["success"], 0, torch.where(done & info["failure"], 1, outcome))
            dist = torch.hypot(end[:, k["target_x"]] - end[:, k["box_x"]], end[:, k["target_y"]] - end[:, k["box_y"]])
            final = torch.where(running, dist, final)
            running &= ~done
            if not running.any():
                break
    per_step = {name: total / length for name, total in speeds.items()}
    return start, outcome, length, final, per_step, near_steps / length


def learner_batch(path: str):
    """One training batch from the checkpoint's own env state (the training distribution): the raw GAE
    advantages' scale, the critic's explained variance on it, and the return scale."""
    import torch

    import envs

    script, ckpt, obs_encoder, state_encoder, actors, critic, value_norm = load_policy(path)
    args = script.Args(**{key: value for key, value in ckpt["args"].items() if key in script.Args.__dataclass_fields__})
    assert args.value_target == "agent", "measured for the defaults' per-agent values"
    task = envs.parse_task_options(args.env_options)
    env = envs.make_env(args.num_envs, seed=args.seed, max_episode_steps=args.max_episode_steps, **task)
    obs, state = env.load_state_dict(ckpt["env"])
    T = args.num_steps
    rewards, values, dones = [], [], []
    with torch.no_grad():
        for _ in range(T):
            dist = script.policy(actors, obs_encoder(obs))
            values.append(value_norm.denormalize(critic(state_encoder(state))))
            obs, state, reward, terminated, truncated, info = env.step(dist.sample())
            final_value = value_norm.denormalize(critic(state_encoder(info["final_state"])))
            rewards.append(reward + args.gamma * truncated.float()[:, None] * final_value)
            dones.append((terminated | truncated).float()[:, None])
        next_value = value_norm.denormalize(critic(state_encoder(state)))
        values, rewards, dones = torch.stack(values), torch.stack(rewards), torch.stack(dones)
        advantages, returns = script.compute_gae(rewards, values, next_value, dones, args.gamma, args.gae_lambda)
    explained = 1 - (returns - values).var() / returns.var()
    return {
        "advantage std": advantages.std().item(),
        "return std": returns.std().item(),
        "batch expl. var.": explained.item(),
    }


def tensorboard_means(run_dir: str, step: int):
    """Each TB_TAGS column averaged over the 1M env steps before `step`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for column, tag in TB_TAGS.items():
        values = (
            [e.value for e in acc.Scalars(tag) if step - 1e6 < e.step <= step] if tag in acc.Tags()["scalars"] else []
        )
        out[column] = sum(values) / len(values) if values else float("nan")
    return out


def analyse(work_dir: str, num_envs: int, out: str = OUT) -> None:
    import torch

    rows, by_distance = [], []
    for folder in sorted(glob.glob(os.path.join(work_dir, "plateau", "*_seed*"))):
        name = os.path.basename(folder)
        run_dirs = glob.glob(os.path.join(work_dir, "runs", f"mapush__{name}__*"))
        paths = glob.glob(os.path.join(folder, "at_*M.cleanrl_model"))
        for path in sorted(paths, key=lambda p: float(os.path.basename(p)[len("at_") : -len("M.cleanrl_model")])):
            step = int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
            start, outcome, length, final, per_step, near = deterministic_episodes(path, num_envs)
            timeouts = outcome == 2
            closer = (final[timeouts] < start[timeouts]).float().mean().item() if timeouts.any() else float("nan")
            row = {"run": name, "env steps (M)": step / 1e6, "success": (outcome == 0).float().mean().item()}
            row.update(failure=(outcome == 1).float().mean().item(), timeout=timeouts.float().mean().item())
            row["timeouts moved closer"] = closer
            success = outcome == 0
            row["finish time (s)"] = (length[success] * 0.02).mean().item() if success.any() else float("nan")
            row["box speed (m/s)"] = per_step["box"].mean().item()
            row["robot speed (m/s)"] = per_step["robots"].mean().item()
            row["mean actions beyond bounds"] = per_step["beyond"].mean().item()
            row["both robots near box"] = near.mean().item()
            row.update(learner_batch(path))
            if run_dirs:
                row.update(tensorboard_means(run_dirs[0], step))
            rows.append(row)
            for lo, hi in DISTANCE_BINS:
                inside = (start >= lo) & (start < hi) if hi < 3.0 else (start >= lo)
                cells = {"run": name, "env steps (M)": step / 1e6, "start distance (m)": f"{lo:g}-{hi:g}"}
                cells["envs"] = int(inside.sum())
                for k, kind in enumerate(("success", "failure", "timeout")):
                    cells[kind] = (outcome[inside] == k).float().mean().item()
                ok = inside & success
                cells["finish time (s)"] = (length[ok] * 0.02).mean().item() if ok.any() else float("nan")
                by_distance.append(cells)
            print(
                f"{name} at {step / 1e6:.1f}M: success {row['success']:.3f}, timeout {row['timeout']:.3f}", flush=True
            )
    os.makedirs(out, exist_ok=True)
    write_table(os.path.join(out, "milestones.csv"), rows)
    write_table(os.path.join(out, "by_distance.csv"), by_distance)


def write_table(path: str, rows) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.4g}" if isinstance(value, float) else value for key, value in row.items()})
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--script", default="mappo_mapush.py")
    t.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    t.add_argument("--milestones", nargs="+", type=float, default=[2, 4, 6, 8, 10, 12])
    t.add_argument("--work-dir", default=ROOT, help="where the script runs: its runs/ and the kept checkpoints")
    t.add_argument("--batch", type=int, default=512 * 64, help="env steps per iteration (--num-envs x --num-steps)")
    t.add_argument("extra", nargs="*", help="extra flags for the script, after --")
    a = sub.add_parser("analyse")
    a.add_argument("--work-dir", default=ROOT, help="the folder `train` ran in")
    a.add_argument("--num-envs", type=int, default=600, help="environments of each deterministic evaluation")
    args = parser.parse_args()
    if args.command == "train":
        for seed in args.seeds:
            train(args.script, seed, args.milestones, os.path.abspath(args.work_dir), args.extra, args.batch)
    else:
        analyse(os.path.abspath(args.work_dir), args.num_envs)


if __name__ == "__main__":
    main()
