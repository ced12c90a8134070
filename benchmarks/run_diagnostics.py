"""Diagnostics of the learning runs, read back from their TensorBoard logs under runs/.

For each run directory of the learning launcher (runs/mapush__<config>__<seed>__<time>/) and each
window of env steps: the policy's step size (approx KL, clip fraction), the action std, the HAPPO
factor of the second agent in the update order (std, min, max, share outside the clip band), and the
approach / collision reward terms (robots drifting away from the box show as approach falling).
Writes benchmarks/results/learning/diagnostics.md.

    python benchmarks/run_diagnostics.py                     # all runs under runs/
    python benchmarks/run_diagnostics.py --runs-dir runs --windows 0 2 5 10 20
"""

from __future__ import annotations

import argparse
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = {  # column title: TensorBoard tag
    "approx KL": "losses/approx_kl",
    "clipfrac": "losses/clipfrac",
    "action std": "charts/action_std",
    "means outside [-1,1]": "charts/action_mean_outside",
    "M std": "factor/position1/std",
    "M min": "factor/position1/min",
    "M max": "factor/position1/max",
    "M outside clip": "factor/position1/outside_clip",
    "approach": "rewards/approach",
    "collision": "rewards/collision",
    "failure": "rewards/failure",
    "success": "rewards/success",
}


def read_scalars(run_dir: str):
    """{tag: [(step, value), ...]} of every scalar in the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def window_means(series, edges):
    """Mean of each tag's values per window [edges[k], edges[k+1]) of env steps; None when empty."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        row = {}
        for title, tag in COLUMNS.items():
            values = [v for step, v in series.get(tag, []) if lo <= step < hi]
            row[title] = sum(values) / len(values) if values else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs"))
    parser.add_argument("--windows", nargs="+", type=float, default=[0, 1, 2, 5, 10, 20], help="edges, millions")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "learning", "diagnostics.md"))
    args = parser.parse_args()
    edges = [w * 1e6 for w in args.windows]
    lines = ["# Learning-run diagnostics (means over windows of env steps, from TensorBoard logs)", ""]
    lines.append("M = HAPPO factor of the second agent in the update order; approach, collision: per agent and step.")
    lines.append("")
    lines.append("| run | steps (M) | " + " | ".join(COLUMNS) + " |")
    lines.append("|---|---|" + "---:|" * len(COLUMNS))
    for run_dir in sorted(glob.glob(os.path.join(args.runs_dir, "mapush__*"))):
        rows = window_means(read_scalars(run_dir), edges)
        name = os.path.basename(run_dir)
        for lo, hi, row in zip(args.windows[:-1], args.windows[1:], rows):
            if all(v is None for v in row.values()):
                continue
            cells = ["" if v is None else f"{v:.4f}" for v in row.values()]
            lines.append(f"| {name} | {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
