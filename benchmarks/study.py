"""The study: why HAPPO learned worse than MAPPO on MAPush, as a grid of configurations x seeds.

Each grid holds one baseline and its variants, each changing one thing (one suspect) at a time:
  recipe  the scripts' defaults (docs/results.md), 5M env steps per run
  harl    HARL's settings (MAPPO's mappo.yaml; HAPPO as the MAPush HARL fork ran it), 20M env steps
Runs go through benchmarks/learning_runs.py's runner, so a run's curve is written to
benchmarks/results/study/<config>__seed<k>.csv as it comes, finished runs are skipped and stopped
runs resumed from their checkpoint: the grid fills over several sittings. After a run, the
TensorBoard scalars the figures need (factor per update position, approx KL and clip fraction per
agent, reward terms) go to <config>__seed<k>__scalars.csv. `--plot` draws the figures and the table
(results/study/summary.md) from the CSVs alone.

    python benchmarks/study.py --grid recipe --seeds 1 2             # local pool, one run per core
    python benchmarks/study.py --grid harl --seeds 1 2 3 --executor slurm --slurm-partition cpu
    python benchmarks/study.py --plot

Executors: `local` (default, a process pool sized to the machine's cores, each run one thread),
`slurm` (submitit's SlurmExecutor, one single-core job per run) and `submitit-local` (submitit's
local executor: the Slurm path without a cluster). submitit is optional: `pip install submitit`.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import learning_runs as lr  # noqa: E402  (the runner, the CSV readers and HARL's flags)

OUT = os.path.join(HERE, "results", "study")
MAPPO, HAPPO = "mappo_mapush.py", "happo_mapush.py"
PROD = [HAPPO, "--action-aggregation", "prod"]
# The suspects, each as the flags that change it from the baseline.
SUSPECTS = {
    "fixed_order": ["--fixed-order"],  # random vs fixed update order
    "factor_clip": ["--factor-clip", "0.8", "1.2"],  # M clipped to 1 +- clip_coef
    "reward10": ["--reward-scale", "10"],
    "reward100": ["--reward-scale", "100"],
}


def with_gamma(flags, gamma: str):
    """The flags with the discount set to `gamma` (replacing the one they name)."""
    flags = list(flags)
    if "--gamma" in flags:
        flags[flags.index("--gamma") + 1] = gamma
        return flags
    return flags + ["--gamma", gamma]


MEAN = [HAPPO, "--action-aggregation", "mean"]
GRIDS = {
    "recipe": {
        "recipe-mappo": [MAPPO],
        "recipe-happo_prod": PROD,
        "recipe-happo_mean": [HAPPO, "--action-aggregation", "mean"],
        "recipe-mappo-no_share": [MAPPO, "--no-share-param"],  # one actor per agent, as HAPPO has
        **{f"recipe-happo_prod-{name}": PROD + flags for name, flags in SUSPECTS.items()},
        "recipe-happo_prod-harl_inputs": PROD + ["--no-obs-norm", "--no-cos-sin-yaws", "--input-layernorm"],
        "recipe-happo_prod-team_value": PROD + ["--value-target", "team-sum"],
        "recipe-happo_prod-no_bootstrap": PROD + ["--no-bootstrap-timeouts"],
    },
    "harl": {
        "harl-mappo": [MAPPO] + lr.HARL_MAPPO,
        "harl-mappo-no_share": [MAPPO, "--no-share-param"] + lr.HARL_MAPPO,  # one actor per agent, as HAPPO has
        "harl-happo_prod-mappo_hparams": PROD + lr.HARL_MAPPO,  # like-for-like with harl-mappo
        "harl-happo_mean-mappo_hparams": [HAPPO, "--action-aggregation", "mean"] + lr.HARL_MAPPO,
        "harl-happo_mean": [HAPPO, "--action-aggregation", "mean"] + lr.HARL_HAPPO,
        "harl-happo_prod": PROD + lr.HARL_HAPPO,  # the fork's hyper-parameters
        **{f"harl-happo_prod-{name}": PROD + lr.HARL_HAPPO + flags for name, flags in SUSPECTS.items()},
        "harl-happo_prod-running_norm": PROD + lr.HARL_HAPPO + ["--obs-norm", "--cos-sin-yaws", "--no-input-layernorm"],
        "harl-happo_prod-agent_value": PROD + lr.HARL_HAPPO + ["--value-target", "agent"],
        # HARL's settings here bootstrap timeouts, as the recipe does; HARL's own terminal timeouts are the suspect.
        "harl-happo_prod-no_bootstrap": PROD + lr.HARL_HAPPO + ["--no-bootstrap-timeouts"],
        # The discount: mappo.yaml's 0.99 and the fork's 0.97, each run at the other's (docs/study.md).
        "harl-mappo-gamma0.97": with_gamma([MAPPO] + lr.HARL_MAPPO, "0.97"),
        "harl-happo_prod-gamma0.99": with_gamma(PROD + lr.HARL_HAPPO, "0.99"),
        "harl-happo_mean-gamma0.99": with_gamma(MEAN + lr.HARL_HAPPO, "0.99"),
    },
}
# The first panel of the figures compares these; every other config is drawn beside the last of them.
BASELINES = {
    "recipe": ["recipe-mappo", "recipe-happo_mean", "recipe-happo_prod"],
    "harl": [
        "harl-mappo",
        "harl-happo_mean-mappo_hparams",
        "harl-happo_prod-mappo_hparams",
        "harl-happo_mean",
        "harl-happo_prod",
    ],
}
# A MAPPO variant is drawn beside HAPPO with the same hyper-parameters (default: the grid's last baseline).
LIKE_FOR_LIKE_HAPPO = {"harl-mappo-no_share": "harl-happo_prod-mappo_hparams"}
BUDGETS = {"recipe": 5_000_000, "harl": 20_000_000}  # env steps per run: enough to separate the configs
# Where the table reads evaluation success: steps at which every run of the grid evaluates (both
# --eval-every 15 and 30 evaluate at iterations 90 and 150) and the end of the budget.
REPORT_STEPS = {"recipe": (2_949_120, 4_915_200), "harl": (9_830_400, 20_000_000)}
# Baselines whose runs the learning benchmark already made with the same flags and seeds on the same
# surrogate (the run length and --eval-every do not change training): read from there unless the study
# has a run of its own. HARL's settings have no such runs on the current surrogate: the study runs them.
LEARNING = os.path.join(HERE, "results", "learning_mapush_code")
SAME_AS_LEARNING_RUN = {"recipe-mappo": "mappo", "recipe-happo_prod": "happo_prod", "recipe-happo_mean": "happo_mean"}
EVAL_EVERY = {"recipe": "15", "harl": "30"}  # iterations between deterministic evaluations (0.49M / 0.98M steps)
# TensorBoard tags kept per run for the figures (prefixes).
KEPT_TAGS = ("factor/position1/", "losses/agent0/approx_kl", "losses/agent1/approx_kl", "losses/agent0/clipfrac")
KEPT_TAGS += ("losses/agent1/clipfrac", "losses/approx_kl", "losses/clipfrac", "charts/action_std")
KEPT_TAGS += ("rewards/approach", "rewards/collision", "losses/explained_variance")
KEPT_POINTS = 160  # at most this many steps per tag (every k-th iteration of a long run)
NEAR_BUDGET = 2 * 65536  # env steps: a run whose last iteration is this close to a budget reached it


def grid_of(config: str) -> str:
    return config.split("-", 1)[0]


def export_scalars(config: str, seed: int, results_dir: str, work_dir: str, run_name=None) -> None:
    """The run's kept TensorBoard scalars as a small CSV (tag, step, value), the newest value per step.
    run_name: the --exp-name of the run (default: the config's name)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for run_dir in sorted(glob.glob(os.path.join(work_dir, "runs", f"mapush__{run_name or config}__{seed}__*"))):
        for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")), key=os.path.getmtime):
            acc = EventAccumulator(path, size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                if tag.startswith(KEPT_TAGS):
                    values.update({(tag, e.step): e.value for e in acc.Scalars(tag)})
    steps = sorted({step for _, step in values})
    kept_steps = set(steps[:: max(1, len(steps) // KEPT_POINTS)] + steps[-1:])
    with open(os.path.join(results_dir, f"{config}__seed{seed}__scalars.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tag", "global_step", "value"])
        out.writerows(
            [tag, step, f"{value:.5g}"] for (tag, step), value in sorted(values.items()) if step in kept_steps
        )


def run_job(config: str, flags, seed: int, total_timesteps: int, results_dir: str, work_dir: str, extra=()) -> str:
    """One run of the grid (a top-level function: process pools and submitit pickle it)."""
    sys.path.insert(0, HERE)
    import learning_runs

    learning_runs.CONFIGS[config] = list(flags) + ["--eval-every", EVAL_EVERY[grid_of(config)]]
    learning_runs.set_dirs(results_dir, work_dir)
    learning_runs.run(config, seed, total_timesteps, extra)
    if learning_runs.finished(learning_runs.csv_path(config, seed)):
        export_scalars(config, seed, results_dir, work_dir)
    return f"{config} seed {seed}"


def run_grid(jobs, args) -> None:
    if args.executor == "local":
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(run_job, *job) for job in jobs]
            for k, future in enumerate(as_completed(futures), 1):
                print(f"[{k}/{len(jobs)}] done: {future.result()}", flush=True)
        return
    try:
        import submitit
    except ImportError:
        raise SystemExit("error: --executor slurm / submitit-local need submitit (pip install submitit)") from None
    folder = os.path.join(args.work_dir, "runs", "submitit", "%j")
    if args.executor == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(timeout_min=args.timeout_min, cpus_per_task=1, slurm_partition=args.slurm_partition)
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=args.timeout_min)
    submitted = [executor.submit(run_job, *job) for job in jobs]
    print(f"submitted {len(submitted)} jobs: {[job.job_id for job in submitted]}", flush=True)
    for k, job in enumerate(submitted, 1):
        print(f"[{k}/{len(jobs)}] done: {job.result()}", flush=True)


def source_of(config: str, seed: int) -> str:
    """The CSV of a run: the study's own, or for a baseline the learning benchmark's identical run."""
    own = lr.csv_path(config, seed)
    if os.path.exists(own) or config not in SAME_AS_LEARNING_RUN:
        return own
    return os.path.join(LEARNING, f"{SAME_AS_LEARNING_RUN[config]}__seed{seed}.csv")


def reuses_learning_run(config: str, seed: int) -> bool:
    """Whether a baseline is read from the learning benchmark's finished run (no study run of its own)."""
    return source_of(config, seed) != lr.csv_path(config, seed) and lr.finished(source_of(config, seed))


def curves_of(config: str, seeds, budget: int):
    """Per seed with a run that reached the budget: [(env steps, deterministic evaluation success)]
    up to the budget (the final evaluation included)."""
    out = {}
    for seed in seeds:
        path = source_of(config, seed)
        if not os.path.exists(path):
            continue
        rows = [r for r in csv.DictReader(open(path)) if r["kind"] in ("during_eval", "eval", "train")]
        if not rows or max(int(r["global_step"]) for r in rows) < budget - NEAR_BUDGET:
            continue  # not (yet) at the budget
        evals = [r for r in rows if r["kind"] != "train" and int(r["global_step"]) <= budget]
        out[seed] = sorted({int(r["global_step"]): float(r["success_rate"]) for r in evals}.items())
    return out


def at_or_before(curve, step: float):
    """The latest evaluation within 0.5M env steps before `step`, else None."""
    values = [value for at, value in curve if step - 5e5 < at <= step]
    return values[-1] if values else None


def scalars_of(config: str, seed: int):
    path = os.path.join(lr.OUT, f"{config}__seed{seed}__scalars.csv")
    series = {}
    if os.path.exists(path):
        for row in csv.DictReader(open(path)):
            series.setdefault(row["tag"], []).append((int(row["global_step"]), float(row["value"])))
    return series


def spread(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def final_metrics(config: str, seed: int, budget: int):
    """The final evaluation's metrics ({kind: value}) of a run that ended at the budget; {} for a
    reused baseline that ran longer than this grid's budget."""
    train, final = lr.load(source_of(config, seed))
    ended_at_budget = train and abs(int(train[-1]["global_step"]) - budget) <= NEAR_BUDGET
    return final if ended_at_budget else {}


# Diagnostics per run: the mean of a TensorBoard scalar over training from 1M env steps to the budget.
DIAGNOSTICS = {
    "joint approx KL": "losses/approx_kl",
    "M std": "factor/position1/std",
    "M outside [0.8, 1.2]": "factor/position1/outside_clip",
    "approach term": "rewards/approach",
    "action std": "charts/action_std",
}


def diagnostic(config: str, seed: int, tag: str, budget: int):
    start = min(1_000_000, budget // 5)  # the first iterations left out (a tiny test budget keeps its last 4/5)
    values = [value for step, value in scalars_of(config, seed).get(tag, []) if start <= step <= budget]
    return sum(values) / len(values) if values else None


def per_seed_rows(config: str, curves, step: int, budget: int) -> str:
    """One table row: success per seed at `step`, the mean, and the diagnostics averaged over the seeds
    with a scalar CSV (their seeds named when not all have one)."""
    success = [at_or_before(curves[s], step) for s in curves]
    shown = [f"{s}: {100 * v:.1f}" if v is not None else f"{s}: -" for s, v in zip(curves, success)]
    known = [v for v in success if v is not None]
    cells = [", ".join(shown), f"{100 * sum(known) / len(known):.1f}" if known else "-"]
    with_scalars = [s for s in curves if scalars_of(config, s)]
    for tag in DIAGNOSTICS.values():
        values = [v for v in (diagnostic(config, s, tag, budget) for s in with_scalars) if v is not None]
        cells.append(f"{sum(values) / len(values):.4g}" if values else "-")
    cells.append(", ".join(str(s) for s in with_scalars) or "-")
    return f"| {config} | " + " | ".join(cells) + " |"


def summarise(seeds, budgets) -> None:
    lines = ["# The study: deterministic evaluation success per configuration (torch backend)", ""]
    for grid, configs in GRIDS.items():
        budget, rows, seed_rows = budgets[grid], [], []
        report_steps = REPORT_STEPS[grid] if budget == BUDGETS[grid] else (budget // 2, budget)
        for config in configs:
            curves = curves_of(config, seeds, budget)
            if not curves:
                continue
            finals = [final_metrics(config, s, budget) for s in curves]
            cpu = [lr.cpu_per_million(source_of(config, s)) for s in curves]
            cells = [spread([at_or_before(c, step) for c in curves.values()]) for step in report_steps]
            finish = [f["eval_finish_time_s"] for f in finals if "eval_finish_time_s" in f]
            cells += [f"{sum(finish) / len(finish):.1f}" if finish else "-"]
            cells += [f"{sum(c for c in cpu if c) / max(1, sum(1 for c in cpu if c)):.0f}" if any(cpu) else "-"]
            seeds_cell = ", ".join(str(s) for s in curves)
            rows.append(f"| {config} | {seeds_cell} | " + " | ".join(cells) + " |")
            seed_rows.append(per_seed_rows(config, curves, report_steps[-1], budget))
        if rows:
            lines += [f"## Grid `{grid}`: {budget:,} env steps per run", ""]
            at = " | ".join(f"eval success at {step / 1e6:.1f}M, mean (min-max)" for step in report_steps)
            lines += [f"| config | seeds | {at} | finish time at the end (s) | CPU-s per 1M steps |"]
            lines += ["|---|---|---:|---:|---:|---:|"] + rows + [""]
            lines += [f"Per seed at {report_steps[-1] / 1e6:.1f}M (%), and diagnostics: means from 1M steps to the end"]
            lines += [
                "over the seeds whose scalar CSV exists (last column), of: " + ", ".join(DIAGNOSTICS.values()),
                "",
            ]
            lines += ["| config | success per seed | mean | " + " | ".join(DIAGNOSTICS) + " | seeds with scalars |"]
            lines += ["|---|---|---:|" + "---:|" * len(DIAGNOSTICS) + "---|"] + seed_rows + [""]
    lines += ["Baselines without a study CSV are read from the learning benchmark's runs of the same flags"]
    lines += ["and seed (results/learning_mapush_code/); the run length and evaluations do not change training."]
    with open(os.path.join(lr.OUT, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(seeds, budgets)


def plot(seeds, budgets) -> None:
    """study_success_<grid>.png: evaluation success against env steps, mean over seeds with a min-max
    band, one panel per suspect beside its baseline. study_factor_<grid>.png: the factor M of the
    second agent in the update order (mean, min, max over the batch) and approx KL / clip fraction
    per agent, over training."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    for grid, configs in GRIDS.items():
        done = [c for c in configs if curves_of(c, seeds, budgets[grid])]
        if not done:
            continue
        baselines = [c for c in BASELINES[grid] if c in done]
        panels = [("MAPPO vs HAPPO", baselines)]
        for c in [c for c in done if c not in BASELINES[grid]]:  # beside HAPPO's baseline (and MAPPO's)
            happo = LIKE_FOR_LIKE_HAPPO.get(c, BASELINES[grid][-1])
            panels.append((c, [BASELINES[grid][0], happo, c] if "-mappo-" in c else [happo, c]))
        cols = 4
        fig, axes = plt.subplots(
            (len(panels) + cols - 1) // cols,
            cols,
            figsize=(5 * cols, 3.6 * ((len(panels) + cols - 1) // cols)),
            squeeze=False,
        )
        for ax, (title, shown) in zip(axes.flat, panels):
            for config in shown:
                colour = lr.COLOURS[list(configs).index(config) % len(lr.COLOURS)]  # one colour per config
                curves = list(curves_of(config, seeds, budgets[grid]).values())
                steps = sorted({s for curve in curves for s, _ in curve})
                at = [[dict(curve).get(s) for curve in curves] for s in steps]
                at = [(s, [v for v in vals if v is not None]) for s, vals in zip(steps, at)]
                xs, means = [s / 1e6 for s, vals in at if vals], [sum(v) / len(v) for _, v in at if v]
                lows, highs = [min(v) for _, v in at if v], [max(v) for _, v in at if v]
                label = f"{config} (n={len(curves)})"
                if len(xs) == 1:  # a baseline evaluated only at the end: a point with its min-max bar
                    spread_bar = [[means[0] - lows[0]], [highs[0] - means[0]]]
                    ax.errorbar(xs, means, yerr=spread_bar, color=colour, marker="o", capsize=4, label=label)
                    continue
                ax.plot(xs, means, color=colour, label=label)
                ax.fill_between(xs, lows, highs, color=colour, alpha=0.2)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("env steps (millions)")
            ax.set_ylabel("evaluation success")
            ax.set_ylim(-0.02, 1.0)
            ax.set_xlim(0, budgets[grid] / 1e6 * 1.03)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(lr.OUT, f"study_success_{grid}.png"), dpi=80)
        plt.close(fig)

        happo = [c for c in done if "happo" in c]
        fig, axes = plt.subplots(1, 3, figsize=(18, 4.2))
        for colour, config in zip(lr.COLOURS * 2, happo):
            labelled = False
            for seed in seeds:
                series = scalars_of(config, seed)
                label = None if labelled or not series else config
                labelled = labelled or bool(series)
                if "factor/position1/mean" in series:
                    xs, ys = zip(*series["factor/position1/mean"])
                    axes[0].plot([x / 1e6 for x in xs], ys, color=colour, label=label, linewidth=1)
                    for stat in ("min", "max"):
                        xs, ys = zip(*series[f"factor/position1/{stat}"])
                        axes[0].plot([x / 1e6 for x in xs], ys, color=colour, linewidth=0.5, alpha=0.5)
                for agent, style in ((0, "-"), (1, ":")):
                    for ax, name in ((axes[1], "approx_kl"), (axes[2], "clipfrac")):
                        tag = f"losses/agent{agent}/{name}"
                        if tag in series:
                            xs, ys = zip(*series[tag])
                            ax.plot([x / 1e6 for x in xs], ys, color=colour, linestyle=style, linewidth=0.8)
        axes[0].set_yscale("log")
        titles = ["factor M of the second agent (mean; thin: min, max)", "approx KL per agent (solid 0, dotted 1)"]
        titles += ["clip fraction per agent (solid 0, dotted 1)"]
        for ax, title in zip(axes, titles):
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("env steps (millions)")
            ax.set_xlim(0, budgets[grid] / 1e6)  # baselines read from longer runs are cut at the budget
            ax.grid(alpha=0.3)
        if axes[0].lines:
            axes[0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(lr.OUT, f"study_factor_{grid}.png"), dpi=80)
        plt.close(fig)
        print(f"wrote study_success_{grid}.png and study_factor_{grid}.png in {lr.OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="recipe")
    parser.add_argument("--configs", nargs="+", default=None, help="a subset of the grid's configs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--total-timesteps", type=int, default=None, help="default: the grid's budget")
    parser.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="local: runs at once")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="submitit: limit per run")
    parser.add_argument("--plot", action="store_true", help="only write the table and the figures")
    parser.add_argument(
        "--own-baselines", action="store_true", help="run baselines the learning benchmark has (for their scalars)"
    )
    parser.add_argument("--results-dir", default=OUT)
    parser.add_argument("--work-dir", default=ROOT, help="where the scripts run and write runs/")
    parser.add_argument("extra", nargs="*", help="extra flags passed to the script, after --")
    args = parser.parse_args()
    args.results_dir, args.work_dir = os.path.abspath(args.results_dir), os.path.abspath(args.work_dir)
    lr.set_dirs(args.results_dir, args.work_dir)
    os.makedirs(args.results_dir, exist_ok=True)
    if not args.plot:
        grid = GRIDS[args.grid]
        unknown = sorted(set(args.configs or []) - set(grid))
        if unknown:
            raise SystemExit(f"error: {unknown} not in grid {args.grid}; its configs: {sorted(grid)}")
        total = args.total_timesteps or BUDGETS[args.grid]
        # in the order given, all seeds of a config before the next config
        jobs = [
            (c, grid[c], s, total, args.results_dir, args.work_dir, args.extra)
            for c in args.configs or grid
            for s in args.seeds
        ]
        # baselines the learning benchmark ran with the same flags and seed: its data, no new run
        reused = [job for job in jobs if not (args.extra or args.own_baselines) and reuses_learning_run(job[0], job[2])]
        for config, _, seed, *_ in reused:
            print(f"reuse {config} seed {seed}: {source_of(config, seed)}")
            if glob.glob(os.path.join(args.work_dir, "runs", f"mapush__{SAME_AS_LEARNING_RUN[config]}__{seed}__*")):
                export_scalars(config, seed, args.results_dir, args.work_dir, SAME_AS_LEARNING_RUN[config])
        run_grid([job for job in jobs if job not in reused], args)
    budgets = dict(BUDGETS, **({args.grid: args.total_timesteps} if args.total_timesteps else {}))
    summarise(args.seeds, budgets)


if __name__ == "__main__":
    main()
