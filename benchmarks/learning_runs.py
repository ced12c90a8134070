"""Learning benchmark: success rate and return against env steps, several seeds per config.

Runs each (config, seed) as a subprocess of the training script, one at a time, and writes the
per-iteration curve to benchmarks/results/learning/<config>__seed<k>.csv as it comes. A run whose
CSV ends with its final evaluation is skipped; a run that was stopped is resumed (--resume) from
its newest checkpoint (saved every CHECKPOINT_MINUTES minutes), its CSV cut back to that point, so
the launcher can be stopped and restarted and work accumulates across sessions. `--plot` only
(re)draws the summary table and the PNG plot.

    python benchmarks/learning_runs.py --configs mappo --seeds 1 2 3         # run (and plot)
    python benchmarks/learning_runs.py --plot                                  # summary + plot only
"""

from __future__ import annotations

import argparse
import ast
import csv
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "results", "learning")
# HARL's original settings, spelled out (the scripts' defaults are the recipe of docs/results.md):
# MAPPO as HARL's mappo.yaml, HAPPO as the MAPush HARL fork ran it.
HARL_MAPPO = ["--num-minibatches", "1", "--std-max", "0.5", "--no-obs-norm", "--no-cos-sin-yaws"]
HARL_MAPPO += ["--input-layernorm", "--value-target", "team-sum"]
HARL_HAPPO = ["--num-minibatches", "2"] + HARL_MAPPO[2:]
HARL_HAPPO += ["--actor-lr", "1e-3", "--critic-lr", "1e-3", "--gamma", "0.97", "--ent-coef", "0.03"]
HARL_HAPPO += ["--hidden-sizes", "256", "256"]
HARL_MAPPO += ["--gamma", "0.99"]  # mappo.yaml's, named: the scripts' default discount may differ
GAMMAS = ("0.995", "0.998", "0.999")  # the long horizons screened (benchmarks/results/horizon/)
EVAL_EVERY = ["--eval-every", "30"]  # deterministic evaluation on 300 envs about every 1M env steps
CONFIGS = {
    # The scripts' defaults (the recipe).
    "mappo": ["mappo_mapush.py"] + EVAL_EVERY,
    "happo_prod": ["happo_mapush.py", "--action-aggregation", "prod"] + EVAL_EVERY,
    "happo_mean": ["happo_mapush.py", "--action-aggregation", "mean"] + EVAL_EVERY,
    # Ablation of the recipe (MAPPO, 5M env steps): one part at a time back to HARL's, or changed.
    "mappo_minibatches1": ["mappo_mapush.py", "--num-minibatches", "1"] + EVAL_EVERY,
    "mappo_harl_inputs": ["mappo_mapush.py", "--no-obs-norm", "--no-cos-sin-yaws", "--input-layernorm"] + EVAL_EVERY,
    "mappo_team_value": ["mappo_mapush.py", "--value-target", "team-sum"] + EVAL_EVERY,
    "mappo_std0.5": ["mappo_mapush.py", "--std-max", "0.5"] + EVAL_EVERY,
    "mappo_std1.5": ["mappo_mapush.py", "--std-max", "1.5"] + EVAL_EVERY,
    "mappo_lr1e-3": ["mappo_mapush.py", "--actor-lr", "1e-3", "--critic-lr", "1e-3"] + EVAL_EVERY,
    "mappo_gamma0.995": ["mappo_mapush.py", "--gamma", "0.995"] + EVAL_EVERY,
    "mappo_ent0.03": ["mappo_mapush.py", "--ent-coef", "0.03"] + EVAL_EVERY,  # the HAPPO fork's entropy bonus
    # Screening for fewer env steps to 90 % (docs/results.md, "The plateau"): one change from the defaults
    # each, 2 seeds x 10M env steps, MAPPO first (results/screening/).
    "mappo_no_clip_vloss": ["mappo_mapush.py", "--no-clip-vloss"] + EVAL_EVERY,
    "mappo_critic_epochs10": ["mappo_mapush.py", "--critic-epochs", "10"] + EVAL_EVERY,
    "mappo_steps128": ["mappo_mapush.py", "--num-envs", "256", "--num-steps", "128"] + EVAL_EVERY,
    "mappo_tanh_mean": ["mappo_mapush.py", "--tanh-mean"] + EVAL_EVERY,
    "mappo_anneal_lr": ["mappo_mapush.py", "--anneal-lr"] + EVAL_EVERY,
    "mappo_lambda0.98": ["mappo_mapush.py", "--gae-lambda", "0.98"] + EVAL_EVERY,
    "mappo_ent0": ["mappo_mapush.py", "--ent-coef", "0"] + EVAL_EVERY,
    "mappo_minibatches16": ["mappo_mapush.py", "--num-minibatches", "16"] + EVAL_EVERY,
    "mappo_epochs10": ["mappo_mapush.py", "--update-epochs", "10"] + EVAL_EVERY,
    # The discount horizon (docs/results.md, "The discount horizon"): 1 / (1 - gamma) steps at 50 Hz is
    # 2 s at 0.99, 10 s at 0.998; GAE's lambda and timeout bootstrapping at the longer horizons; both
    # HAPPO aggregations at them (results/horizon/, 10M env steps, extended to 20M for the confirmation).
    **{f"mappo_gamma{g}": ["mappo_mapush.py", "--gamma", g] + EVAL_EVERY for g in GAMMAS[1:]},
    **{
        f"mappo_gamma{g}_lambda{lam}": ["mappo_mapush.py", "--gamma", g, "--gae-lambda", lam] + EVAL_EVERY
        for g in GAMMAS
        for lam in ("0.9", "0.98")
    },
    **{
        f"mappo_gamma{g}_no_bootstrap": ["mappo_mapush.py", "--gamma", g, "--no-bootstrap-timeouts"] + EVAL_EVERY
        for g in GAMMAS
    },
    # The next candidates at a long horizon: the std ceiling and the learning rate.
    **{f"mappo_gamma{g}_std1.5": ["mappo_mapush.py", "--gamma", g, "--std-max", "1.5"] + EVAL_EVERY for g in GAMMAS},
    **{
        f"mappo_gamma{g}_lr1e-3": ["mappo_mapush.py", "--gamma", g, "--actor-lr", "1e-3", "--critic-lr", "1e-3"]
        + EVAL_EVERY
        for g in GAMMAS
    },
    **{
        f"happo_{agg}_gamma{g}": ["happo_mapush.py", "--action-aggregation", agg, "--gamma", g] + EVAL_EVERY
        for agg in ("prod", "mean")
        for g in GAMMAS
    },
    **{
        f"happo_{agg}_gamma{g}_lambda{lam}": ["happo_mapush.py", "--action-aggregation", agg, "--gamma", g]
        + ["--gae-lambda", lam]
        + EVAL_EVERY
        for agg in ("prod", "mean")
        for g in GAMMAS
        for lam in ("0.9", "0.98")
    },
    **{  # timeout bootstrapping at the longer horizons, for both HAPPO aggregations too
        f"happo_{agg}_gamma{g}_lambda0.98_no_bootstrap": ["happo_mapush.py", "--action-aggregation", agg]
        + ["--gamma", g, "--gae-lambda", "0.98", "--no-bootstrap-timeouts"]
        + EVAL_EVERY
        for agg in ("prod", "mean")
        for g in GAMMAS
    },
    **{
        f"mappo_gamma{g}_lambda0.98_no_bootstrap": ["mappo_mapush.py", "--gamma", g, "--gae-lambda", "0.98"]
        + ["--no-bootstrap-timeouts"]
        + EVAL_EVERY
        for g in GAMMAS
    },
    # HARL's settings.
    "mappo_harl": ["mappo_mapush.py"] + HARL_MAPPO,
    "happo_prod_harl": ["happo_mapush.py", "--action-aggregation", "prod"] + HARL_HAPPO,
    "happo_mean_harl": ["happo_mapush.py", "--action-aggregation", "mean"] + HARL_HAPPO,
    # From HARL's settings: MAPPO with the 10x learning rate of the MAPush OpenRL baseline that reached 90 %.
    "mappo_lr5e-3": ["mappo_mapush.py"] + HARL_MAPPO + ["--actor-lr", "5e-3", "--critic-lr", "5e-3"],
    # Free, unbounded action std from 1 (OpenRL's, which MAPush's working MAPPO used) instead of HARL's <= 0.5.
    "mappo_std_free": ["mappo_mapush.py"] + HARL_MAPPO + ["--std-type", "free"],
    "happo_prod_std_free": ["happo_mapush.py"] + HARL_HAPPO + ["--std-type", "free"],
    # Both of the AGN baseline's policy settings at once: lr 5e-3 and the free std. The free std grows
    # without bound, so training success (sampled actions) understates the policy: evaluate every ~1M.
    "mappo_lr5e-3_std_free": ["mappo_mapush.py"]
    + HARL_MAPPO
    + ["--actor-lr", "5e-3", "--critic-lr", "5e-3", "--std-type", "free"]
    + EVAL_EVERY,
    # HAPPO with exactly the flags of the config above (MAPPO's hyper-parameters, lr 5e-3, free std).
    "happo_prod_mappo_hparams_lr5e-3_std_free": ["happo_mapush.py"]
    + HARL_MAPPO
    + ["--actor-lr", "5e-3", "--critic-lr", "5e-3", "--std-type", "free"]
    + EVAL_EVERY,
    # MAPPO's free-std config without the entropy bonus: is the bonus what makes the free std grow without bound?
    "mappo_lr5e-3_std_free_ent0": ["mappo_mapush.py"]
    + HARL_MAPPO
    + ["--actor-lr", "5e-3", "--critic-lr", "5e-3", "--std-type", "free", "--ent-coef", "0"]
    + EVAL_EVERY,
    # HAPPO with MAPPO's HARL hyper-parameters, for a like-for-like comparison.
    "happo_mappo_hparams_prod": ["happo_mapush.py"] + HARL_MAPPO,
    # And the mirror: MAPPO with the HAPPO fork's hyper-parameters.
    "mappo_happo_hparams": ["mappo_mapush.py"] + HARL_HAPPO,
}
ABLATION_SUFFIXES = ("minibatches1", "harl_inputs", "team_value", "std0.5", "std1.5", "lr1e-3", "gamma0.995", "ent0.03")
CHECKPOINT_MINUTES = 5  # minutes between checkpoints: what a stop loses
ITER_LINE = re.compile(r"global_step=(\d+) SPS=(\d+)(?: episodes=(\d+) success=([\d.]+) return=([-\d.]+))?")
EVAL_LINE = re.compile(r"evaluation on (\d+) envs: (\{.*\})")
DURING_EVAL_LINE = re.compile(r"evaluation at global_step=(\d+) on (\d+) envs: (\{.*\})")  # --eval-every


def csv_path(config: str, seed: int) -> str:
    return os.path.join(OUT, f"{config}__seed{seed}.csv")


WORK = ROOT  # where the scripts run: their runs/ folder (TensorBoard logs, checkpoints) goes here


def set_dirs(results_dir: str, work_dir: str) -> None:
    global OUT, WORK
    OUT, WORK = os.path.abspath(results_dir), os.path.abspath(work_dir)
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)  # the scripts run (cwd) here: a missing folder would stop the launcher


def finished(path: str, total_timesteps: int = 0) -> bool:
    """Whether the CSV ends with a final evaluation at `total_timesteps` or later (a run finished at
    10M is not finished for 20M: it is extended from its last checkpoint, exactly as if run straight)."""
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return any(row[0] == "eval" and int(row[1]) >= total_timesteps for row in csv.reader(f))


def resume_point(config: str, seed: int):
    """Newest resumable checkpoint of (config, seed) under runs/, and its global step; (None, 0) if none."""
    import torch  # only here: plotting needs no torch

    pattern = os.path.join(WORK, "runs", f"mapush__{config}__{seed}__*", f"{config}.cleanrl_model")
    for path in sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if "actor_optimizers" in checkpoint or "optimizer0" in checkpoint:  # layouts 1 and 2; older: no training state
            return path, int(checkpoint["global_step"])
    return None, 0


def rows_up_to(path: str, global_step: int):
    """The CSV's training (and during-training evaluation) rows up to global_step (a resumed run
    rewrites what came after)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return [row for row in rows if row[0] in ("train", "during_eval") and int(row[1]) <= global_step]


def cpu_seconds(pid: int):
    """User + system CPU time of a running process, from Linux's /proc; None where that is missing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # fields after the command name: state is [0]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run(config: str, seed: int, total_timesteps: int, extra) -> None:
    path = csv_path(config, seed)
    if finished(path, total_timesteps):
        print(f"skip {config} seed {seed}: finished ({path})")
        return
    script, *flags = CONFIGS[config]
    cmd = (
        [sys.executable, "-u", os.path.join(ROOT, script)]
        + flags
        + ["--seed", str(seed), "--total-timesteps", str(total_timesteps)]
    )
    cmd += ["--exp-name", config, "--checkpoint-minutes", str(CHECKPOINT_MINUTES)] + list(extra)
    checkpoint, resumed_step = resume_point(config, seed) if os.path.exists(path) else (None, 0)
    kept = rows_up_to(path, resumed_step) if checkpoint else []
    if checkpoint:
        cmd += ["--resume", checkpoint]
    print("run:", " ".join(cmd), flush=True)
    os.makedirs(OUT, exist_ok=True)
    start = time.time() - (float(kept[-1][6]) if kept else 0.0)  # wall time continues across resumes
    cpu_before = float(kept[-1][7]) if kept and len(kept[-1]) > 7 and kept[-1][7] else 0.0  # and CPU time
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["kind", "global_step", "sps", "episodes", "success_rate", "episodic_return", "wall_s", "cpu_s"])
        out.writerows(kept)
        # One thread per run: two runs side by side use a 2-core machine better than one 2-thread run.
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.Popen(cmd, cwd=WORK, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            cpu = cpu_seconds(proc.pid)
            cpu = f"{cpu_before + cpu:.0f}" if cpu is not None else ""
            m = ITER_LINE.search(line)
            if m:
                step, sps, episodes, success, ret = m.groups()
                out.writerow(
                    ["train", step, sps, episodes or 0, success or "", ret or "", f"{time.time() - start:.0f}", cpu]
                )
                f.flush()
                continue
            m = DURING_EVAL_LINE.search(line)
            if m:  # deterministic evaluation during training (configs with --eval-every)
                success = ast.literal_eval(m.group(3))["success_rate"]
                out.writerow(
                    ["during_eval", m.group(1), "", m.group(2), success, "", f"{time.time() - start:.0f}", cpu]
                )
                f.flush()
                continue
            m = EVAL_LINE.search(line)
            if m:
                metrics = ast.literal_eval(m.group(2))  # the dict of floats the script prints
                out.writerow(["eval", total_timesteps, "", m.group(1), metrics["success_rate"], "", ""])
                out.writerow(["eval_finish_time_s", total_timesteps, "", "", metrics["finish_time_s"], "", ""])
                out.writerow(["eval_collaboration", total_timesteps, "", "", metrics["collaboration_degree"], "", ""])
                f.flush()
            elif "Error" in line or "Traceback" in line:
                print(line, end="")
        proc.wait()
    if proc.returncode != 0:
        os.replace(path, path + ".failed")
        print(f"{config} seed {seed} failed with exit code {proc.returncode}; log kept as {path}.failed")


def load(path: str):
    rows = list(csv.DictReader(open(path)))
    train = [r for r in rows if r["kind"] == "train"]
    final = {r["kind"]: float(r["success_rate"]) for r in rows if r["kind"].startswith("eval")}
    return train, final


def during_evals(path: str):
    """(env steps, deterministic evaluation success) of the evaluations run during training."""
    rows = csv.DictReader(open(path))
    return [(int(r["global_step"]), float(r["success_rate"])) for r in rows if r["kind"] == "during_eval"]


def window_rates(train, window: float):
    """Episode-weighted success rate and return over the last `window` env steps, at each iteration
    (iterations hold very different numbers of finished episodes, so rates are not averaged)."""
    steps = [int(r["global_step"]) for r in train]
    eps = [int(r["episodes"]) for r in train]
    succ = [float(r["success_rate"] or 0) * e for r, e in zip(train, eps)]
    ret = [float(r["episodic_return"] or 0) * e for r, e in zip(train, eps)]
    out, lo = [], 0
    for hi in range(len(train)):
        while steps[hi] - steps[lo] >= window:
            lo += 1
        n = sum(eps[lo : hi + 1])
        if n:
            out.append((steps[hi], sum(succ[lo : hi + 1]) / n, sum(ret[lo : hi + 1]) / n))
    return out


def rate_at(train, step: float, window: float = 2e6):
    """Episode-weighted training success over the `window` env steps before `step` (None if not reached)."""
    if not train or int(train[-1]["global_step"]) < step - 32768:
        return None
    reached = [r for r in train if int(r["global_step"]) <= step]
    rates = window_rates(reached, window)
    return rates[-1][1] if rates else None


def eval_at(path: str, step: float):
    """Deterministic evaluation success during training at `step` env steps (the latest evaluation
    within the 0.5M steps before it: with EVAL_EVERY, at 0.98M, 1.97M, ...), else the final
    evaluation if the run ended there; else None."""
    evals = [rate for at, rate in during_evals(path) if step - 5e5 < at <= step]
    if evals:
        return evals[-1]
    rows = [r for r in csv.DictReader(open(path)) if r["kind"] == "eval"]
    return float(rows[0]["success_rate"]) if rows and step - 5e5 < int(rows[0]["global_step"]) <= step else None


def seed_table(curves):
    """Across seeds: mean (min-max) training success at 5M / 10M / 20M steps, deterministic evaluation
    at 5M / 10M (runs with --eval-every) and the final evaluation."""
    lines = ["", "## Across seeds", "", "| config | seeds (finished) | train success at 5M | at 10M | at 20M "]
    lines[-1] += "| eval success at 5M | at 10M | final eval success |"
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")

    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f}, n={len(values)})"

    for config, runs in sorted(curves.items()):
        if config.startswith("partial-"):
            continue
        finals = [load(csv_path(config, int(seed)))[1].get("eval") for seed, _ in runs]
        cells = [spread([rate_at(train, step) for _, train in runs]) for step in (5e6, 10e6, 20e6)]
        cells += [spread([eval_at(csv_path(config, int(seed)), step) for seed, _ in runs]) for step in (5e6, 10e6)]
        n_done = sum(v is not None for v in finals)
        lines.append(f"| {config} | {len(runs)} ({n_done}) | " + " | ".join(cells) + f" | {spread(finals)} |")
    return lines


def first_at_least(path: str, level: float = 0.9):
    """(env steps, CPU seconds) of the run's first deterministic evaluation at or above `level`, the
    final one included; (None, None) if none is."""
    for row in csv.DictReader(open(path)):
        if row["kind"] in ("during_eval", "eval") and float(row["success_rate"]) >= level:
            return int(row["global_step"]), (float(row["cpu_s"]) if row.get("cpu_s") else None)
    return None, None


def speed_table(curves):
    """Per config and seed: evaluation success at 4.9M and 9.8M env steps, the first evaluation >= 90 %
    and the run's CPU seconds to it; the median first step over the seeds."""
    lines = ["", "## Env steps to 90 % (deterministic evaluation)", ""]
    lines += ["| config | seed | at 4.9M | at 9.8M | first >= 90 % | CPU-s to it | final (mean of the last 3 before) |"]
    lines += ["|---|---:|---:|---:|---:|---:|---:|"]
    for config, runs in sorted(curves.items()):
        firsts = []
        for seed, _ in sorted(runs):
            path = csv_path(config, int(seed))
            cells = [eval_at(path, step) for step in (5e6, 10e6)]  # the evaluations at 4.9M and 9.8M
            step, cpu = first_at_least(path)
            firsts.append(step)
            cells = ["-" if v is None else f"{100 * v:.1f} %" for v in cells]
            cells += ["-" if step is None else f"{step / 1e6:.1f}M", "-" if cpu is None else f"{cpu:,.0f}"]
            final = load(path)[1].get("eval")
            last3 = [rate for _, rate in during_evals(path)][-3:]
            held = (
                f"{100 * final:.1f} % ({100 * sum(last3) / len(last3):.1f} %)" if final is not None and last3 else "-"
            )
            lines.append(f"| {config} | {seed} | " + " | ".join(cells) + f" | {held} |")
        reached = sorted(step for step in firsts if step is not None)
        if len(reached) == len(firsts) > 1:
            half = len(reached) // 2
            median = reached[half] if len(reached) % 2 else (reached[half - 1] + reached[half]) / 2
            lines.append(f"| {config} | median | | | {median / 1e6:.1f}M | | |")
    return lines


def cpu_per_million(path: str):
    """CPU seconds per 1M env steps of a run (from its cpu_s column), None if it has none."""
    rows = [r for r in csv.DictReader(open(path)) if r["kind"] == "train" and r.get("cpu_s")]
    if len(rows) < 2:
        return None
    steps = int(rows[-1]["global_step"]) - int(rows[0]["global_step"])
    return (float(rows[-1]["cpu_s"]) - float(rows[0]["cpu_s"])) / steps * 1e6 if steps > 0 else None


def ablation_table(curves):
    """The recipe's ablation: deterministic evaluation success at 1-5M env steps, mean (min-max) over
    seeds, and the CPU cost per 1M steps."""
    configs = groups_present(curves).get("ablation.png", [])
    if not configs:
        return []
    lines = ["", "## Ablation of the recipe (deterministic evaluation success, mean (min-max) over seeds)", ""]
    lines += ["| config | seeds | at 1M | 2M | 3M | 4M | 5M | CPU-s per 1M steps |", "|---|---:|" + "---:|" * 6]

    def cell(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{sum(values) / len(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    for config in configs:
        paths = [csv_path(config, int(seed)) for seed, _ in curves[config]]
        cells = [cell([eval_at(path, step) for path in paths]) for step in (1e6, 2e6, 3e6, 4e6, 5e6)]
        cpu = [c for c in (cpu_per_million(path) for path in paths) if c is not None]
        cost = f"{sum(cpu) / len(cpu):.0f}" if cpu else "-"
        lines.append(f"| {config} | {len(paths)} | " + " | ".join(cells) + f" | {cost} |")
    return lines


def summarise() -> None:
    paths = sorted(glob.glob(os.path.join(OUT, "*__seed*.csv")))
    if not paths:
        print("no results yet")
        return
    lines = ["# Learning runs (torch backend)", "", "| config | seed | env steps | train success (last 2M steps) "]
    lines[-1] += "| eval success | finish time (s) | collaboration | SPS | wall (min) |"
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    curves = {}
    for path in paths:
        config, seed = os.path.basename(path)[:-4].split("__seed")
        train, final = load(path)
        if not train:
            continue
        rates = window_rates(train, 2e6)
        tail_mean = rates[-1][1] if rates else float("nan")
        ev = final.get("eval")
        lines.append(
            f"| {config} | {seed} | {int(train[-1]['global_step']):,} | {tail_mean:.3f} | "
            + (f"{ev:.3f}" if ev is not None else ("stopped" if config.startswith("partial-") else "not finished"))
            + f" | {final.get('eval_finish_time_s', float('nan')):.1f}"
            + f" | {final.get('eval_collaboration', float('nan')):.2f}"
            + f" | {train[-1]['sps']} | {float(train[-1]['wall_s']) / 60:.0f} |"
        )
        curves.setdefault(config, []).append((seed, train))
    lines += seed_table(curves)
    lines += speed_table(curves)
    lines += ablation_table(curves)
    during = {p: during_evals(p) for p in paths}
    if any(during.values()):
        lines += ["", "## Evaluations during training (deterministic, success rate at env steps)", ""]
        for path, evals in during.items():
            if evals:
                cells = ", ".join(f"{step / 1e6:.1f}M {rate:.3f}" for step, rate in evals)
                lines.append(f"- {os.path.basename(path)[:-4].replace('__seed', ' seed ')}: {cells}")
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_groups(curves)


# Plots: one PNG per group of configs, so that each compares a few curves.
PLOT_GROUPS = {
    "learning_curves.png": ["mappo", "happo_prod", "happo_mean", "mappo_harl", "happo_prod_harl", "happo_mean_harl"],
    "ablation.png": ["mappo"] + [f"mappo_{suffix}" for suffix in ABLATION_SUFFIXES],
    "horizon.png": ["mappo"] + [f"mappo_gamma{g}" for g in GAMMAS],  # results/horizon/
}
MIN_TO_DRAW = {"ablation.png": 2, "horizon.png": 3}  # a group drawn from this many of its configs on


def groups_present(curves):
    """The plot groups with the configs present, each drawn from MIN_TO_DRAW of them on; where the horizon
    group is drawn (results/horizon/), its 0.995 run is not also the ablation's."""
    grouped = {name: [c for c in configs if c in curves] for name, configs in PLOT_GROUPS.items()}
    if len(grouped["horizon.png"]) >= MIN_TO_DRAW["horizon.png"]:
        grouped["ablation.png"] = [c for c in grouped["ablation.png"] if c not in grouped["horizon.png"][1:]]
    return {name: configs for name, configs in grouped.items() if len(configs) >= MIN_TO_DRAW.get(name, 1)}


COLOURS = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:cyan", "tab:pink", "tab:olive"]
COLOURS += ["tab:brown", "tab:gray"]


def plot_groups(curves) -> None:
    """Per group: deterministic evaluation success (per seed) against env steps and against CPU time,
    training success and return against env steps. Configs of no group go to other_configs.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    grouped = groups_present(curves)
    in_groups = {c for configs in grouped.values() for c in configs}
    grouped["other_configs.png"] = [c for c in curves if c not in in_groups]
    for name, configs in grouped.items():
        if not configs:
            continue
        fig, axes = plt.subplots(1, 4, figsize=(21, 4.5))
        for colour, config in zip(COLOURS * 3, configs):
            stopped = config.startswith("partial-")
            for k, (seed, train) in enumerate(curves[config]):
                label = config if k == 0 else None
                style = dict(color=colour, alpha=0.8, linestyle="--" if stopped else "-", linewidth=1.2)
                path = csv_path(config, int(seed))
                rows = list(csv.DictReader(open(path)))
                evals = [r for r in rows if r["kind"] in ("during_eval", "eval")]
                if evals:
                    xs = [int(r["global_step"]) / 1e6 for r in evals]
                    ys = [float(r["success_rate"]) for r in evals]
                    axes[0].plot(xs, ys, marker="o", markersize=3, label=label, **style)
                    cpu = [(float(r["cpu_s"]) / 3600, y) for r, y in zip(evals, ys) if r.get("cpu_s")]
                    if cpu:
                        axes[1].plot(*zip(*cpu), marker="o", markersize=3, **style)
                rates = window_rates(train, 1e6)
                steps = [step / 1e6 for step, _, _ in rates]
                axes[2].plot(steps, [r[1] for r in rates], label=None if evals else label, **style)
                axes[3].plot(steps, [r[2] for r in rates], **style)
        for ax in axes[:3]:  # the observation-only scripted controller (results/scripted_policy.md)
            ax.axhline(
                0.987, color="black", linestyle=":", linewidth=1, label="scripted controller" if ax is axes[0] else None
            )
        titles = ["evaluation success", "evaluation success", "training success (last 1M steps)", "return"]
        for ax, title in zip(axes, titles):
            ax.set_xlabel("env steps (millions)")
            ax.set_ylabel(title)
            ax.grid(alpha=0.3)
        axes[1].set_xlabel("CPU time of the run (hours, one thread)")
        axes[3].set_ylabel("episodic return per agent (last 1M steps)")
        handles, labels = [], []
        for ax in axes:
            h, lab = ax.get_legend_handles_labels()
            handles, labels = handles + h, labels + lab
        fig.legend(handles, labels, loc="center right", fontsize=8)
        fig.tight_layout(rect=(0, 0, 0.89, 1))
        fig.savefig(os.path.join(OUT, name), dpi=90)
        plt.close(fig)
        print(f"wrote {os.path.join(OUT, name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["mappo"], choices=sorted(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--total-timesteps", type=int, default=20_000_000)
    parser.add_argument("--plot", action="store_true", help="only write the summary and the plot")
    parser.add_argument("--results-dir", default=OUT, help="where the CSV files, summary and plot go")
    parser.add_argument("--work-dir", default=ROOT, help="where the scripts run and write runs/")
    parser.add_argument("extra", nargs="*", help="extra flags passed to the script, after --")
    args = parser.parse_args()
    set_dirs(args.results_dir, args.work_dir)
    if not args.plot:
        for seed in args.seeds:  # seed-major: a partial sweep still covers every config
            for config in args.configs:
                run(config, seed, args.total_timesteps, args.extra)
    summarise()


if __name__ == "__main__":
    main()
