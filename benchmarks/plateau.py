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
OUT = os.path.join(ROOT, "benchmarks", "results", "plateau")
BATCH = 512 * 64  # the defaults' env steps per iteration


def milestone_steps(millions: float) -> int:
    """Whole batches up to `millions` env steps (the scripts train whole batches)."""
    return int(millions * 1e6) // BATCH * BATCH


def train(script: str, seed: int, milestones, work_dir: str, extra) -> None:
    name = f"{os.path.splitext(script)[0]}_seed{seed}"
    keep = os.path.join(work_dir, "plateau", name)
    os.makedirs(keep, exist_ok=True)
    for millions in milestones:
        kept = os.path.join(keep, f"at_{millions:g}M.cleanrl_model")
        if os.path.exists(kept):
            continue
        cmd = [sys.executable, "-u", os.path.join(ROOT, script), "--seed", str(seed), "--exp-name", name]
        cmd += ["--total-timesteps", str(milestone_steps(millions)), "--eval-every", "30"] + list(extra)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--script", default="mappo_mapush.py")
    t.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    t.add_argument("--milestones", nargs="+", type=float, default=[2, 4, 6, 8, 10, 12])
    t.add_argument("--work-dir", default=ROOT, help="where the script runs: its runs/ and the kept checkpoints")
    t.add_argument("extra", nargs="*", help="extra flags for the script, after --")
    sub.add_parser("analyse")
    args = parser.parse_args()
    if args.command == "train":
        for seed in args.seeds:
            train(args.script, seed, args.milestones, os.path.abspath(args.work_dir), args.extra)


if __name__ == "__main__":
    main()
