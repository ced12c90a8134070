"""Every logged TensorBoard scalar of four short configurations, to check that a change to the scripts'
plumbing leaves what they compute untouched (timings and SPS left out).

    python benchmarks/logged_scalars.py before.json --root <a checkout of the older version>
    python benchmarks/logged_scalars.py after.json
    python benchmarks/logged_scalars.py --compare before.json after.json   # "identical", or each difference

The configurations: MAPPO with a shared actor; MAPPO with one actor per agent and the team value;
HAPPO prod; HAPPO mean with HARL's inputs and std, two mini-batches, --anneal-lr and --factor-clip.
Each runs 5 iterations of 16 x 16 env steps with a periodic and a final evaluation (about 40 s in all).
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


def logged_scalars(root: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = {}
    for name, (script, *flags) in CONFIGS.items():
        with tempfile.TemporaryDirectory() as cwd:
            env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
            cmd = [sys.executable, os.path.join(root, script), *TINY, *flags]
            subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
            (run_dir,) = glob.glob(os.path.join(cwd, "runs", "*"))
            acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
            acc.Reload()
            tags = [tag for tag in acc.Tags()["scalars"] if not tag.startswith("perf/") and tag != "charts/SPS"]
            result[name] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags}
    return result


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
    args = parser.parse_args()
    if args.compare:
        found = differences(*(json.load(open(path)) for path in args.compare))
        print("\n".join(found) or "identical")
        raise SystemExit(1 if found else 0)
    scalars = logged_scalars(args.root)
    json.dump(scalars, open(args.out, "w"), sort_keys=True)
    print(f"{args.out}: " + ", ".join(f"{name} {len(tags)} tags" for name, tags in scalars.items()))
