"""Every logged TensorBoard scalar of four short configurations, to check that a change to the scripts'
plumbing leaves what they compute untouched (timings and SPS left out).

    python benchmarks/logged_scalars.py before.json --root <a checkout of the older version>
    python benchmarks/logged_scalars.py after.json
    python benchmarks/logged_scalars.py --compare before.json after.json   # "identical", or each difference

The configurations: MAPPO with a shared actor; MAPPO with one actor per agent and the team value;
HAPPO prod; HAPPO mean with HARL's inputs and std, two mini-batches, --anneal-lr and --factor-clip.
Each runs 5 iterations of 16 x 16 env steps with a periodic and a final evaluation (about 40 s in all).

The same harness measures how far two float32 trajectories of one configuration drift apart, e.g.
compiled against eager, or two threads against one, at a size with the scripts' own networks and
episode length (`--size`; `--tolerance` counts, per iteration, the scalars outside it instead of
demanding equality):

    python benchmarks/logged_scalars.py eager.json --configs mappo_shared happo_prod --size 32 32
    python benchmarks/logged_scalars.py compiled.json --configs mappo_shared happo_prod --size 32 32 --flags=--compile
    python benchmarks/logged_scalars.py --compare eager.json compiled.json --tolerance 1e-3
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num-envs", "16", "--num-steps", "16", "--max-episode-steps", "20", "--eval-envs", "4"]
TINY += ["--eval-every", "2", "--hidden-sizes", "16", "16", "--total-timesteps", "1280"]
HARL = ["--std-max", "0.5", "--no-obs-norm", "--no-cos-sin-yaws", "--input-layernorm", "--value-target", "team-sum"]
CONFIGS = {
    "mappo_shared": ["mappo_mapush.py"],
    "mappo_separate_team": ["mappo_mapush.py", "--no-share-param", "--value-target", "team-sum"],
    "happo_prod": ["happo_mapush.py"],
    "happo_mean_harl": ["happo_mapush.py", *HARL, "--num-minibatches", "2", "--action-aggregation", "mean"]
    + ["--anneal-lr", "--factor-clip", "0.5", "2.0"],
}


def logged_scalars(root: str, configs=tuple(CONFIGS), extra=(), threads: int = 1, size=None) -> dict:
    """{config: {tag: [[step, value], ...]}}; size: (num_envs, num_steps): 5 iterations of that size with the
    scripts' own networks and episode length instead of the tiny ones."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny = list(TINY)
    if size:
        num_envs, num_steps = size
        tiny = ["--num-envs", str(num_envs), "--num-steps", str(num_steps), "--eval-envs", "4", "--eval-every", "2"]
        tiny += ["--total-timesteps", str(5 * num_envs * num_steps)]
    result = {}
    for name in configs:
        script, *flags = CONFIGS[name]
        with tempfile.TemporaryDirectory() as cwd:
            env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS=str(threads))
            cmd = [sys.executable, os.path.join(root, script), *tiny, *flags, *extra]
            subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
            (run_dir,) = glob.glob(os.path.join(cwd, "runs", "*"))
            acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
            acc.Reload()
            tags = [tag for tag in acc.Tags()["scalars"] if not tag.startswith("perf/") and tag != "charts/SPS"]
            result[name] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags}
    return result


def drift(before: dict, after: dict, tolerance: float) -> list:
    """Per config and logged step: how many scalars differ by more than `tolerance` relative (1e-5
    absolute near zero), and the largest relative difference with its tag."""
    out = []
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        steps = sorted({step for tag in a for step, _ in a[tag]})
        for step in steps:
            at = [(tag, dict(a[tag]).get(step), dict(b[tag]).get(step)) for tag in sorted(set(a) & set(b))]
            pairs = [(tag, x, y) for tag, x, y in at if x is not None and y is not None]
            outside = [(tag, x, y) for tag, x, y in pairs if abs(x - y) > tolerance * abs(x) + 1e-5]
            rel = {tag: abs(x - y) / max(abs(x), 1e-12) for tag, x, y in outside}
            worst = max(rel, key=rel.get) if rel else None
            line = f"{name} step {step}: {len(rel)} of {len(pairs)} scalars outside {tolerance:g}"
            out.append(line + (f", largest {rel[worst]:.2g} relative ({worst})" if worst else ""))
    return out


def differences(before: dict, after: dict) -> list:
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name, {}), after.get(name, {})
        out += [f"{name}: {tag} only in one" for tag in sorted(set(a) ^ set(b))]
        out += [f"{name}: {tag} differs" for tag in sorted(set(a) & set(b)) if a[tag] != b[tag]]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="JSON file to write")
    parser.add_argument("--root", default=ROOT, help="the checkout whose scripts run")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--tolerance", type=float, default=None, help="--compare: count scalars outside it")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--flags", default="", help="flags added to every configuration, e.g. --flags=--compile")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--size", nargs=2, type=int, metavar=("ENVS", "STEPS"), help="instead of 16 x 16")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.load(open(path)) for path in args.compare)
        if args.tolerance is not None:
            print("\n".join(drift(before, after, args.tolerance)))
            raise SystemExit(0)
        found = differences(before, after)
        print("\n".join(found) or "identical")
        raise SystemExit(1 if found else 0)
    scalars = logged_scalars(args.root, args.configs, args.flags.split(), args.threads, args.size)
    json.dump(scalars, open(args.out, "w"), sort_keys=True)
    print(f"{args.out}: " + ", ".join(f"{name} {len(tags)} tags" for name, tags in scalars.items()))
