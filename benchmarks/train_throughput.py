"""Training throughput of both scripts at their defaults: env steps per second, eager and --compile.

Runs each script as a subprocess for a few iterations (`--eval-envs 0`, nothing else changed), reads
the per-iteration time split the scripts log (`perf/env_seconds`, `perf/rollout_seconds`,
`perf/update_seconds`) and reports the steady state: the first iterations (compilation, warm-up)
are left out. The rollout's time minus the env's is the policy's share (network calls and
bookkeeping). Writes a table with the machine to benchmarks/results/train_throughput.md (CPU) or
train_throughput_cuda.md (--device cuda).

    python benchmarks/train_throughput.py                                  # CPU, 512 and 4096 envs
    python benchmarks/train_throughput.py --device cuda --num-envs 4096 16384
    python benchmarks/train_throughput.py --threads 1 --num-envs 512       # one thread

On CUDA the split is host-side (the scripts synchronise once per iteration, not per phase); the
iteration time, and so the env steps/s, is exact on both devices.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from env_throughput import machine_description  # noqa: E402  (imports envs, then torch)

SCRIPTS = ("mappo_mapush.py", "happo_mapush.py")
STEPS_PER_ENV = 64  # the scripts' default --num-steps


def iteration_times(run_dir: str) -> list:
    """[(env_s, rollout_s, update_s)] per iteration, from the run's TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
    acc = EventAccumulator(path)
    acc.Reload()
    columns = [[e.value for e in acc.Scalars(f"perf/{name}_seconds")] for name in ("env", "rollout", "update")]
    return list(zip(*columns))


def measure(script: str, num_envs: int, compile: bool, device: str, threads: int, warmup: int, measured: int):
    """Steady-state figures of one configuration: env steps/s and the mean seconds per phase."""
    with tempfile.TemporaryDirectory() as work:
        batch = num_envs * STEPS_PER_ENV
        cmd = [sys.executable, os.path.join(ROOT, script), "--num-envs", str(num_envs), "--eval-envs", "0"]
        cmd += ["--total-timesteps", str(batch * (warmup + measured)), "--exp-name", "throughput"]
        cmd += ["--cuda" if device == "cuda" else "--no-cuda"] + (["--compile"] if compile else [])
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=ROOT)
        start = time.time()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        times = iteration_times(glob.glob(os.path.join(work, "runs", "*"))[0])[warmup:]
    env_s, rollout_s, update_s = (sum(column) / len(times) for column in zip(*times))
    return {
        "sps": batch / (rollout_s + update_s),
        "env": env_s,
        "policy": rollout_s - env_s,
        "update": update_s,
        "wall": time.time() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="OMP_NUM_THREADS of each run")
    parser.add_argument("--no-compile", action="store_true", help="eager only (no C++ compiler needed)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or os.path.join(
        HERE, "results", "train_throughput" + ("_cuda" if args.device == "cuda" else "") + ".md"
    )

    rows = []
    for script in SCRIPTS:
        for num_envs in args.num_envs:
            # iterations per run: enough to see a steady state, few enough at 4096 envs on 2 cores
            warmup, measured = (2, 8) if num_envs * STEPS_PER_ENV <= 65536 else (1, 3)
            eager_sps = None
            for compile in [False] if args.no_compile else [False, True]:
                r = measure(script, num_envs, compile, args.device, args.threads, warmup, measured)
                eager_sps = eager_sps or r["sps"]
                rows.append((script, num_envs, "compile" if compile else "eager", r, r["sps"] / eager_sps))
                total = r["env"] + r["policy"] + r["update"]
                print(
                    f"{script} {num_envs} envs {rows[-1][2]}: {r['sps']:,.0f} env steps/s (x{rows[-1][4]:.2f}); per "
                    f"iteration env {r['env']:.2f} s, policy {r['policy']:.2f} s, update {r['update']:.2f} s "
                    f"({100 * r['update'] / total:.0f} % update); run {r['wall']:.0f} s",
                    flush=True,
                )

    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(f"# Training throughput at the scripts' defaults ({args.device})\n\n")
        f.write(f"Machine: {machine_description()}; each run with OMP_NUM_THREADS={args.threads}  \n")
        command = "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:])
        f.write(f"Date: {time.strftime('%Y-%m-%d')}; command: `{command.strip()}`\n\n")
        f.write("Steady state (compilation and warm-up iterations left out). Seconds per iteration of ")
        f.write(f"{STEPS_PER_ENV} steps x envs; policy = the rollout's network calls and bookkeeping.\n\n")
        f.write("| script | envs | mode | env steps/s | vs eager | env s | policy s | update s | update share |\n")
        f.write("|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
        for script, num_envs, mode, r, ratio in rows:
            total = r["env"] + r["policy"] + r["update"]
            f.write(
                f"| {script} | {num_envs} | {mode} | {r['sps']:,.0f} | {ratio:.2f}x | {r['env']:.3f} | "
                f"{r['policy']:.3f} | {r['update']:.3f} | {100 * r['update'] / total:.0f} % |\n"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
