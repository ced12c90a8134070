"""Peers on the same task and budget: BenchMARL's MAPPO and IPPO on the surrogate, evaluated with the
project's own deterministic evaluation (300 envs, MAPush's metrics) about every 1M env steps.

    pip install -r requirements-ecosystem.txt && pip install --no-deps benchmarl==1.5.2
    python benchmarks/peers.py --peers benchmarl_mappo benchmarl_ippo --seeds 1 2     # run (resumable)
    python benchmarks/peers.py --plot                                                  # summary + figure

Each (peer, seed) writes benchmarks/results/peers/<peer>__seed<k>.csv in the learning benchmark's
format (train rows per iteration, during_eval rows, final eval rows; wall and CPU seconds). A run whose
CSV ends with its final evaluation is skipped; a stopped run resumes from its newest BenchMARL
checkpoint (saved with each evaluation), its CSV cut back to that point. BenchMARL 1.5.2 checkpoints
the networks but not the optimiser state: a resumed run restarts Adam's moments.

BenchMARL's own defaults (its yaml files: MLP 256 x 256 Tanh, TanhNormal policy, lr 5e-5, clip 0.2,
lambda 0.9, gamma 0.99, no entropy bonus, gradient clip 5) with only these changes for the task:
  env count 512 and batch 512 x 64 steps (the project's; BenchMARL's 10 envs x 600 steps would take
  about 7 h per 5M env steps here), minibatch 4096 and 5 passes over the batch (the project's 5 epochs
  of 8 mini-batches: the same update work per env step as the project's scripts; BenchMARL's
  `on_policy_n_minibatch_iters` counts passes, its default 45), lr 5e-4 (the project's, with that batch
  layout), device CPU, BenchMARL's own evaluation off.
A run whose policy turns NaN stops there and says so ("diverged" row); `*_normal` peers are the one
documented alternative for that (use_tanh_normal=False, BenchMARL's plain Normal policy). The
`*_40passes` peers make 40 passes (8 times the update work per env step).
The `*_lr5e-5` peers keep BenchMARL's own learning rate, to tell whether the NaN comes from the larger one.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "benchmarks", "results", "peers")
WORK = os.path.join(ROOT, "runs", "peers")

TOTAL_FRAMES = 5_000_000
NUM_ENVS, STEPS_PER_ENV = 512, 64
FRAMES_PER_BATCH = NUM_ENVS * STEPS_PER_ENV
EVAL_EVERY = 30  # iterations: 983,040 env steps, as the learning benchmark's --eval-every 30
EVAL_ENVS = 300
TASK_LAYOUT = {  # what the task needs changed from BenchMARL's ExperimentConfig defaults
    "on_policy_n_envs_per_worker": NUM_ENVS,
    "on_policy_collected_frames_per_batch": FRAMES_PER_BATCH,
    "on_policy_minibatch_size": 4096,
    "on_policy_n_minibatch_iters": 5,  # passes over the batch, each in mini-batches of the size above
    "lr": 5e-4,
    "sampling_device": "cpu",
    "train_device": "cpu",
    "buffer_device": "cpu",
    "evaluation": False,
    "checkpoint_interval": EVAL_EVERY * FRAMES_PER_BATCH,
    "keep_checkpoints_num": 1,
    "exclude_buffer_from_checkpoint": True,
}
NORMAL = {"use_tanh_normal": False}
PASSES_40 = {"on_policy_n_minibatch_iters": 40}
PEERS = {  # name: (BenchMARL algorithm, algorithm overrides, experiment overrides beyond TASK_LAYOUT)
    "benchmarl_mappo": ("mappo", {}, {}),
    "benchmarl_ippo": ("ippo", {}, {}),
    "benchmarl_mappo_normal": ("mappo", NORMAL, {}),
    "benchmarl_ippo_normal": ("ippo", NORMAL, {}),
    "benchmarl_mappo_40passes": ("mappo", {}, PASSES_40),
    "benchmarl_ippo_40passes": ("ippo", {}, PASSES_40),
    "benchmarl_mappo_normal_40passes": ("mappo", NORMAL, PASSES_40),
    "benchmarl_mappo_lr5e-5": ("mappo", {}, {"lr": 5e-5}),  # BenchMARL's own lr: is the NaN the larger lr's?
    "benchmarl_ippo_lr5e-5": ("ippo", {}, {"lr": 5e-5}),
}
HEADER = ["kind", "global_step", "sps", "episodes", "success_rate", "episodic_return", "wall_s", "cpu_s"]


def csv_path(peer: str, seed: int) -> str:
    return os.path.join(OUT, f"{peer}__seed{seed}.csv")


def read_rows(path: str):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [row for row in csv.reader(f)][1:]


def finished(path: str) -> bool:
    return any(row[0] in ("eval", "diverged") for row in read_rows(path))


def newest_checkpoint(peer: str, seed: int):
    """(path, frames) of the run's newest BenchMARL checkpoint, (None, 0) if none."""
    found = glob.glob(os.path.join(WORK, f"{peer}__seed{seed}", "*", "checkpoints", "checkpoint_*.pt"))
    if not found:
        return None, 0
    path = max(found, key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
    return path, int(path.rsplit("_", 1)[1][:-3])


def deterministic_actor(policy):
    """obs (E, 2, 8) -> the BenchMARL policy's deterministic actions (E, 2, 3), for envs.evaluate."""
    import torch
    from tensordict import TensorDict
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    def act(obs: torch.Tensor) -> torch.Tensor:
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            td = TensorDict(
                {"agents": TensorDict({"observation": obs}, batch_size=obs.shape[:2])}, batch_size=obs.shape[:1]
            )
            return policy(td).get(("agents", "action")).detach()

    return act


class Diverged(Exception):
    pass


class Recorder:
    """One run's CSV (benchmarks/peers.py and benchmarks/openrl_peer.py): the rows up to the step it
    resumes from, then train and evaluation rows with the run's wall and CPU clocks, which continue
    across resumes."""

    def __init__(self, peer: str, seed: int, resume_step: int = 0):
        self.peer, self.seed = peer, seed
        path = csv_path(peer, seed)
        kept = [row for row in read_rows(path) if int(float(row[1])) <= resume_step] if resume_step else []
        self.wall_before = float(kept[-1][6]) if kept else 0.0
        self.cpu_before = float(kept[-1][7]) if kept else 0.0
        self.start_wall, self.start_cpu = time.time(), time.process_time()
        self.last_iteration = time.time()
        os.makedirs(OUT, exist_ok=True)
        self.file = open(path, "w", newline="")
        self.out = csv.writer(self.file)
        self.out.writerow(HEADER)
        self.out.writerows(kept)

    def row(self, kind, step, sps="", episodes="", success="", ret="", clocks=True) -> None:
        wall = f"{self.wall_before + time.time() - self.start_wall:.0f}" if clocks else ""
        cpu = f"{self.cpu_before + time.process_time() - self.start_cpu:.0f}" if clocks else ""
        self.out.writerow([kind, step, sps, episodes, success, ret, wall, cpu])
        self.file.flush()

    def sps(self, env_steps: int) -> str:
        """Env steps per second since the previous call (or since the recorder was made)."""
        now = time.time()
        rate, self.last_iteration = env_steps / max(now - self.last_iteration, 1e-9), now
        return f"{rate:.0f}"

    def evaluation(self, act, step: int, kind: str) -> None:
        """The project's deterministic evaluation of `act` (obs -> raw actions), as a CSV row; `eval`
        (the final one) adds the finish time and collaboration rows."""
        from envs import evaluate

        metrics = evaluate(act, EVAL_ENVS, seed=10_000 + self.seed)
        self.row(kind, step, episodes=EVAL_ENVS, success=metrics["success_rate"])
        if kind == "eval":
            self.row("eval_finish_time_s", step, success=metrics["finish_time_s"], clocks=False)
            self.row("eval_collaboration", step, success=metrics["collaboration_degree"], clocks=False)
        print(f"{self.peer} seed {self.seed}: {step} env steps, success {metrics['success_rate']:.3f}", flush=True)
        self.last_iteration = time.time()  # the next iteration's env steps/s leaves the evaluation out


try:
    from benchmarl.experiment.callback import Callback
except ImportError:  # the summary and the plot need no BenchMARL
    Callback = object


class ProjectEvaluation(Callback):
    """After each iteration's update: a train row, the NaN check, the evaluation every ~1M steps."""

    def __init__(self, recorder: Recorder, total_frames: int):
        super().__init__()
        self.recorder, self.total_frames = recorder, total_frames

    def __getstate__(self):  # BenchMARL pickles its callbacks with the run's config: nothing to keep
        return {}

    def on_train_end(self, training_td, group):
        import torch

        experiment, rec = self.experiment, self.recorder
        ret = float(experiment.mean_return)
        sps = rec.sps(FRAMES_PER_BATCH)
        rec.row("train", experiment.total_frames, sps=sps, ret="" if ret != ret else f"{ret:.3f}")  # NaN: no ends
        if not all(bool(torch.isfinite(p).all()) for p in experiment.policy.parameters()):
            rec.row("diverged", experiment.total_frames)
            raise Diverged(f"{rec.peer} seed {rec.seed}: NaN/inf policy parameters at {experiment.total_frames}")
        if (experiment.n_iters_performed + 1) % EVAL_EVERY == 0 and experiment.total_frames < self.total_frames:
            rec.evaluation(deterministic_actor(experiment.policy), experiment.total_frames, "during_eval")


def run(peer: str, seed: int, total_frames: int) -> None:
    from envs.benchmarl_task import build_experiment

    path = csv_path(peer, seed)
    if finished(path):
        print(f"skip {peer} seed {seed}: finished ({path})")
        return
    checkpoint, frames = newest_checkpoint(peer, seed)
    algorithm, algorithm_overrides, experiment_overrides = PEERS[peer]
    folder = os.path.join(WORK, f"{peer}__seed{seed}")
    os.makedirs(folder, exist_ok=True)
    overrides = dict(TASK_LAYOUT, **experiment_overrides, max_n_frames=total_frames, save_folder=folder)
    if checkpoint:
        overrides["restore_file"] = checkpoint
    changes = {**algorithm_overrides, **experiment_overrides}
    print(f"run: {peer} seed {seed} ({algorithm}, {changes}){' from ' + checkpoint if checkpoint else ''}")
    recorder = Recorder(peer, seed, frames)
    callbacks = [ProjectEvaluation(recorder, total_frames)]
    experiment = build_experiment(algorithm, seed, overrides, algorithm_overrides, callbacks=callbacks)
    try:
        experiment.run()
        recorder.evaluation(deterministic_actor(experiment.policy), experiment.total_frames, "eval")
    except Diverged as err:
        print(err)
    finally:
        recorder.file.close()


# MAPush's committed Isaac Gym runs (../shared/reference/mapush_env_spec.md section 6.2): success at 10M, 20M, ...
ISAAC_GYM_CURVES = {
    "MAPush official OpenRL run (Isaac Gym)": [0.7, 3.7, 13.7, 11.3, 24.3, 27.7, 45.3, 55.3, 58.3, 59.7],
    "agnostic fork's OpenRL mappo (Isaac Gym, range mid)": [20.5, 56.0, 81.0, 88.0, 90.5, 88.0, 89.0, 90.0, 90.5, 90.5],
}
DEFAULTS_DIR = os.path.join(ROOT, "benchmarks", "results", "learning_mapush_code")


def evaluations(path: str):
    """[(env steps, success, CPU-s or None)] of a run's deterministic evaluations, in order."""
    rows = read_rows(path)
    return [
        (int(r[1]), float(r[4]), float(r[7]) if len(r) > 7 and r[7] else None)
        for r in rows
        if r[0] in ("during_eval", "eval")
    ]


def summarise() -> None:
    """summary.md (every run: its evaluations, the last, CPU time) and peers.png (success against env
    steps and CPU time, beside the project's defaults and MAPush's committed Isaac Gym curves)."""
    runs = sorted(glob.glob(os.path.join(OUT, "*__seed*.csv")))
    lines = ["# Peers on the surrogate: deterministic evaluation success (300 envs)", ""]
    lines += ["| run | evaluations (env steps: success) | last | CPU time | status |", "|---|---|---:|---:|---|"]
    for path in runs:
        name = os.path.basename(path)[: -len(".csv")]
        rows = read_rows(path)
        points = evaluations(path)
        cells = ", ".join(f"{step / 1e6:.1f}M: {100 * rate:.1f} %" for step, rate, _ in points)
        cpu = next((float(r[7]) for r in reversed(rows) if len(r) > 7 and r[7]), 0.0)
        diverged = [r for r in rows if r[0] == "diverged"]
        status = "finished" if any(r[0] == "eval" for r in rows) else "running or stopped"
        if diverged:
            status = f"diverged (NaN policy) at {int(diverged[0][1]) / 1e6:.2f}M"
        last = f"{100 * points[-1][1]:.1f} %" if points else ""
        lines.append(f"| `{name}` | {cells} | {last} | {cpu / 3600:.2f} h | {status} |")
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    colours = {}
    palette = ["tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    sources = [  # a variant in its twin's colour: 40 passes -., lr 5e-5 -..
        (
            p,
            os.path.basename(p).split("__seed")[0],
            "-." if "_40passes__" in p else (0, (5, 1, 1, 1, 1, 1)) if "_lr5e-5__" in p else "-",
        )
        for p in runs
    ]
    sources += [
        (p, "project " + os.path.basename(p).split("__seed")[0], ":")
        for p in sorted(glob.glob(os.path.join(DEFAULTS_DIR, "*__seed*.csv")))
    ]
    for path, label, style in sources:
        points = evaluations(path)
        if not points:
            continue
        project = label.startswith("project ")
        colour = colours.setdefault(
            label.replace("_40passes", "").replace("_lr5e-5", ""),
            {"project mappo": "tab:blue", "project happo_prod": "tab:red", "project happo_mean": "tab:green"}.get(label)
            or palette[len([c for c in colours if not c.startswith("project ")]) % len(palette)],
        )
        shown = label if not any(line.get_label() == label for line in axes[0].lines) else None
        kw = dict(color=colour, linestyle=style, marker="o", markersize=2.5, linewidth=1.0 if project else 1.4)
        axes[0].plot([s / 1e6 for s, _, _ in points], [100 * r for _, r, _ in points], label=shown, **kw)
        cpu = [(c / 3600, 100 * r) for _, r, c in points if c is not None]
        if cpu:
            axes[1].plot(*zip(*cpu), **kw)
    for (label, values), colour in zip(ISAAC_GYM_CURVES.items(), ["black", "dimgray"]):
        axes[0].plot(
            [10 * (k + 1) for k in range(len(values))],
            values,
            color=colour,
            linestyle="--",
            marker="s",
            markersize=3,
            label=label,
        )
    axes[0].set_xlabel("env steps (millions; linear to 20, logarithmic beyond)")
    axes[1].set_xlabel("CPU time of the run (hours, one thread)")
    for ax in axes:
        ax.set_ylabel("deterministic evaluation success (%)")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("symlog", linthresh=20)
    axes[0].set_xticks([0, 5, 10, 15, 20, 50, 100], ["0", "5", "10", "15", "20", "50", "100"])
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.savefig(os.path.join(OUT, "peers.png"), dpi=90)
    plt.close(fig)
    print(f"wrote {os.path.join(OUT, 'peers.png')}")


def main() -> None:
    global OUT, WORK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", nargs="+", default=["benchmarl_mappo", "benchmarl_ippo"], choices=sorted(PEERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--total-frames", type=int, default=TOTAL_FRAMES, help="env steps per run")
    parser.add_argument("--results-dir", default=OUT)
    parser.add_argument("--work-dir", default=WORK, help="BenchMARL's run folders and checkpoints")
    parser.add_argument("--plot", action="store_true", help="only write summary.md and peers.png")
    args = parser.parse_args()
    OUT, WORK = os.path.abspath(args.results_dir), os.path.abspath(args.work_dir)
    if args.plot:
        summarise()
        return
    import envs  # noqa: F401, I001  (before torch: Isaac Gym, when present, must be imported first)
    import torch

    torch.set_num_threads(1)  # one thread per run: two runs side by side on a 2-core machine
    for peer in args.peers:
        for seed in args.seeds:
            run(peer, seed, args.total_frames)


if __name__ == "__main__":
    main()
