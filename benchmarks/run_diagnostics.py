"""Diagnostics of the learning runs, read back from their TensorBoard logs under runs/.

For each run directory of the learning launcher (runs/mapush__<config>__<seed>__<time>/) and each
window of env steps: the policy's step size (approx KL, clip fraction), the action std, the HAPPO
factor of the second agent in the update order (std, min, max, share outside the clip band), and the
approach / collision reward terms (robots drifting away from the box show as approach falling).
With `--columns critic`: the critic's fit (explained variance, value loss in normalised units), the
scale of the returns it learns (ValueNorm's running mean of the returns, and its mean and standard
deviation at the run's last checkpoint), and the training episodes' length and success (time-outs
make episodes long). Writes benchmarks/results/learning/diagnostics.md, or --out.

    python benchmarks/run_diagnostics.py                     # all runs under runs/
    python benchmarks/run_diagnostics.py --runs-dir runs --windows 0 2 5 10 20
    python benchmarks/run_diagnostics.py --columns critic --out benchmarks/results/horizon/critic.md
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
CRITIC_COLUMNS = {
    "explained var": "losses/explained_variance",
    "value loss": "losses/value_loss",
    "ValueNorm mean": "charts/value_norm_mean",
    "episode length": "charts/episodic_length",
    "train success": "charts/success_rate",
}


def value_norm_at_end(run_dir: str):
    """(mean, std) of the returns as ValueNorm holds them in the run's last checkpoint; None without one."""
    import torch

    paths = [p for p in glob.glob(os.path.join(run_dir, "*.cleanrl_model")) if not p.endswith("_best.cleanrl_model")]
    if not paths:
        return None
    norm = torch.load(paths[0], map_location="cpu", weights_only=True)["value_norm"]
    denom = norm["debiasing_term"].clamp(min=1e-5)
    mean, mean_sq = norm["running_mean"] / denom, norm["running_mean_sq"] / denom
    return float(mean), float((mean_sq - mean**2).clamp(min=1e-2).sqrt())


def read_scalars(run_dir: str):
    """{tag: [(step, value), ...]} of every scalar in the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def window_means(series, edges, columns=COLUMNS):
    """Mean of each tag's values per window [edges[k], edges[k+1]) of env steps; None when empty."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        row = {}
        for title, tag in columns.items():
            values = [v for step, v in series.get(tag, []) if lo <= step < hi]
            row[title] = sum(values) / len(values) if values else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs"))
    parser.add_argument("--windows", nargs="+", type=float, default=[0, 1, 2, 5, 10, 20], help="edges, millions")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "learning", "diagnostics.md"))
    parser.add_argument("--columns", choices=("policy", "critic"), default="policy")
    parser.add_argument("--match", default="", help="only run folders whose name contains this")
    args = parser.parse_args()
    edges = [w * 1e6 for w in args.windows]
    critic = args.columns == "critic"
    columns = CRITIC_COLUMNS if critic else COLUMNS
    lines = ["# Learning-run diagnostics (means over windows of env steps, from TensorBoard logs)", ""]
    if critic:
        lines.append("Value loss in ValueNorm's normalised units; ValueNorm mean: the running mean of the returns.")
    else:
        lines.append(
            "M = HAPPO factor of the second agent in the update order; approach, collision: per agent and step."
        )
    lines.append("")
    extra = ["ValueNorm mean, std at the end"] if critic else []
    lines.append("| run | steps (M) | " + " | ".join(list(columns) + extra) + " |")
    lines.append("|---|---|" + "---:|" * (len(columns) + len(extra)))
    for run_dir in sorted(glob.glob(os.path.join(args.runs_dir, "mapush__*"))):
        name = os.path.basename(run_dir)
        if args.match not in name:
            continue
        rows = window_means(read_scalars(run_dir), edges, columns)
        shown = [(lo, hi, row) for lo, hi, row in zip(args.windows[:-1], args.windows[1:], rows) if any(row.values())]
        for k, (lo, hi, row) in enumerate(shown):
            cells = ["" if v is None else f"{v:.4f}" for v in row.values()]
            if critic:  # the checkpoint's ValueNorm, on the run's last row
                end = value_norm_at_end(run_dir) if k == len(shown) - 1 else None
                cells.append(f"{end[0]:.2f}, {end[1]:.2f}" if end else "")
            lines.append(f"| {name} | {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
