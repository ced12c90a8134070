"""Env-only throughput of the torch backend: env steps per second with random actions.

Measures eager mode and torch.compile mode at 64, 512 and 4096 environments (CPU, and CUDA when
present), prints a table and writes it, with the machine description, to
benchmarks/results/env_throughput.md (or --out). Compilation time is reported separately and not
counted in the rate.

    python benchmarks/env_throughput.py                  # everything
    python benchmarks/env_throughput.py --no-compile     # eager only (no C++ compiler needed)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# envs first: it imports isaacgym (when present), which must be loaded before torch.
from envs import make_env  # noqa: E402, I001

import torch  # noqa: E402


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    text += f", Python {platform.python_version()}"
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def measure(num_envs: int, device: str, compile: bool, steps: int) -> tuple:
    env = make_env(num_envs, device=device, seed=0, backend="torch", compile=compile)
    env.reset()
    actions = torch.randn(64, num_envs, 2, 3, device=device)
    start = time.perf_counter()
    for i in range(10):  # warm-up (and compilation)
        env.step(actions[i])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        env.step(actions[i % 64])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return num_envs * steps / elapsed, warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "env_throughput.md"))
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    modes = [False] if args.no_compile else [False, True]
    rows = []
    print(f"machine: {machine_description()}")
    print(f"{'device':6} {'mode':8} {'envs':>6} {'env-steps/s':>14} {'warm-up s':>10}")
    for device in devices:
        for compile in modes:
            for n in args.num_envs:
                rate, warmup = measure(n, device, compile, args.steps)
                mode = "compile" if compile else "eager"
                rows.append((device, mode, n, rate, warmup))
                print(f"{device:6} {mode:8} {n:>6} {rate:>14,.0f} {warmup:>10.1f}", flush=True)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("# Env-only throughput, torch backend (random actions)\n\n")
        f.write(f"Machine: {machine_description()}  \n")
        f.write(f"Date: {time.strftime('%Y-%m-%d')}; command: `python benchmarks/env_throughput.py`\n\n")
        f.write("| device | mode | envs | env-steps/s | warm-up (s) |\n|---|---|---:|---:|---:|\n")
        for device, mode, n, rate, warmup in rows:
            f.write(f"| {device} | {mode} | {n} | {rate:,.0f} | {warmup:.1f} |\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
