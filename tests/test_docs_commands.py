"""The commands of docs/ecosystem.md and docs/isaacgym.md that can run on a CPU, run as documented.

Training commands run as written with flags appended after the documented ones (the last value of a
flag wins) that cut them to a few iterations; Python examples run as written. The install commands
are .ci/run's own (requirements-ecosystem.txt on the 3.11 leg, requirements-isaacgym-py38.txt with
.ci/py38-constraints.txt on the 3.8 leg); Isaac Gym and a MAPush checkout are not on a CPU machine,
so the Isaac Gym command runs over the stand-in of tests/fake_isaacgym_run.py. The package build
that `pip install -e .` does is checked here too.
"""

import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

FAKE_ISAACGYM = os.path.join(ROOT, "tests", "fake_isaacgym_run.py")
HAS_BENCHMARL = all(importlib.util.find_spec(name) for name in ("benchmarl", "torchrl"))
EXTRAS = "pip install -r requirements-ecosystem.txt && pip install --no-deps benchmarl==1.5.2"


def doc(name):
    with open(os.path.join(ROOT, "docs", name)) as f:
        return f.read()


def fenced(text, language):
    """The fenced code blocks of one language, continuation lines joined."""
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)
    return [block.replace("\\\n", " ") for block in blocks]


def commands(text, prefix):
    """Every documented command line starting with `prefix`: in bash blocks and in inline code."""
    lines = [line.strip() for block in fenced(text, "bash") for line in block.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    return [line for line in lines if line.startswith(prefix)]


def run(cmd, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("MAPUSH_ROOT", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.skipif(not HAS_BENCHMARL, reason=f"benchmarl, torchrl not installed: {EXTRAS}")
def test_the_benchmarl_commands_of_ecosystem_md_run(tmp_path):
    found = sorted(set(commands(doc("ecosystem.md"), "python -m envs.benchmarl_task")))
    assert len(found) == 3  # bare and MAPPO: BenchMARL's defaults; IPPO with the project's batch layout
    for k, line in enumerate(found):
        cmd = [sys.executable] + shlex.split(line)[1:]
        batch = re.search(r"on_policy_collected_frames_per_batch=(\d+)", line)
        frames = int(batch.group(1)) if batch else 6000  # BenchMARL's default batch
        # One iteration, one pass over its batch; the documented batch and evaluation interval kept.
        cmd += ["--experiment", f"max_n_frames={frames}", "--experiment", "on_policy_n_minibatch_iters=1"]
        (tmp_path / str(k)).mkdir()
        out = run(cmd, tmp_path / str(k))
        assert "BenchMARL run folder" in out, out[-2000:]
        (counters,) = glob.glob(str(tmp_path / str(k) / "runs/benchmarl/*/*/scalars/counters_total_frames.csv"))
        with open(counters) as f:
            assert f.read().strip().splitlines()[-1].endswith(f"{frames}.0")


@pytest.mark.parametrize(
    "block, needs",
    [(0, ("torchrl", "tensordict")), (1, ("pettingzoo",))],
    ids=["torchrl", "pettingzoo"],
)
def test_the_python_examples_of_ecosystem_md_run(block, needs, tmp_path):
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: {EXTRAS}")
    code = fenced(doc("ecosystem.md"), "python")[block]
    assert any(f"import {name}" in code or f"envs.{name}" in code for name in ("torchrl_env", "pettingzoo_env"))
    run([sys.executable, "-c", code], tmp_path)


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("openrl", "pettingzoo")),
    reason="MAPush's OpenRL stack is not this venv's: run this test in .venv-openrl (docs/ecosystem.md)",
)
def test_the_openrl_peer_commands_of_ecosystem_md_run(tmp_path):
    """MAPush's own MAPPO through OpenRL, each documented configuration for one iteration of a small
    batch, then the final evaluation (300 envs) and its CSV row."""
    found = commands(doc("ecosystem.md"), ".venv-openrl/bin/python benchmarks/openrl_peer.py")
    assert len(found) == 2  # agn_mappo and official
    for line in found:
        cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "openrl_peer.py")] + shlex.split(line)[2:]
        cmd += ["--seeds", "1", "--total-steps", "16", "--eval-every", "16", "--num-envs", "2"]
        cmd += ["--episode-length", "8", "--results-dir", str(tmp_path), "--work-dir", str(tmp_path)]
        run(cmd, tmp_path)
        config = line.split("--config ")[1].split()[0]
        with open(tmp_path / f"openrl_{config}__seed1.csv") as f:
            assert any(row.startswith("eval,16,") for row in f)


def test_the_isaacgym_training_command_of_isaacgym_md_runs(tmp_path):
    """MAPush's batch (500 envs x 200 steps) for one iteration, over the stand-in for Isaac Gym."""
    (line,) = commands(doc("isaacgym.md"), "python mappo_mapush.py --backend isaacgym")
    cmd = [sys.executable, FAKE_ISAACGYM, os.path.join(ROOT, "mappo_mapush.py")] + shlex.split(line)[2:]
    out = run(cmd + ["--total-timesteps", "100000", "--max-episode-steps", "20"], tmp_path)
    assert "iter 1/1 global_step=100000 " in out and "evaluate with: " in out


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="setuptools is needed to build the package")
def test_the_package_holds_the_scripts_and_envs_with_a_runs_folder_present(tmp_path):
    """`pip install -e .` from a checkout that has been used (runs/, benchmarks/, tests/ beside the code)."""
    for name in ("pyproject.toml", "mappo_mapush.py", "happo_mapush.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    shutil.copytree(os.path.join(ROOT, "envs"), tmp_path / "envs", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("runs/mapush__x__1__1", "benchmarks", "tests", "docs"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", "dist", "."], tmp_path)
    (wheel,) = glob.glob(str(tmp_path / "dist" / "*.whl"))
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if ".dist-info" not in name}
    assert top == {"mappo_mapush.py", "happo_mapush.py", "envs"}


# The first line of each part in the "How to read this file" tables, as the scripts must have it.
PART_STARTS = {
    "imports": "# ",
    "flags": "@dataclass",
    "the algorithm": "def layer_init(",
    "run management": "# --- Run management",
    "`__main__`, before the loop": 'if __name__ == "__main__":',
    "the loop": "    for iteration in range(",
    "after the loop": "    if not checkpoints.save(",
}


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_how_to_read_tables_give_the_scripts_line_ranges(script):
    """Each part's range in docs/<script>.md starts where the part starts and ends where the next begins."""
    rows = re.findall(r"^\| (\d+)-(\d+) \| ([^|]+?) \|", doc(script.replace(".py", ".md")), re.MULTILINE)
    with open(os.path.join(ROOT, script)) as f:
        lines = f.read().splitlines()
    assert [part.split(" (")[0] for _, _, part in rows] == list(PART_STARTS)
    assert int(rows[0][0]) == 1 and int(rows[-1][1]) == len(lines)
    for (first, last, part), (next_first, _, _) in zip(rows, rows[1:] + [(str(len(lines) + 1), "", "")]):
        assert lines[int(first) - 1].startswith(PART_STARTS[part.split(" (")[0]]), (part, first)
        assert int(last) + 1 == int(next_first), part


def test_readme_harl_commands_are_the_benchmarks_harl_settings():
    """The README's two commands for HARL's settings parse to the flags the benchmarks and the study run as
    HARL's (mappo.yaml; the MAPush fork's HAPPO), each naming its discount, whatever the defaults are."""
    import tyro

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import learning_runs

    import happo_mapush
    import mappo_mapush

    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for script, module, harl, gamma in [
        ("mappo_mapush.py", mappo_mapush, learning_runs.HARL_MAPPO, 0.99),
        ("happo_mapush.py", happo_mapush, learning_runs.HARL_HAPPO, 0.97),
    ]:
        (line,) = [line for line in readme.splitlines() if line.startswith(f"python {script} --num-minibatches")]
        flags = shlex.split(line)[2:]
        assert "--gamma" in flags
        documented, benchmarked = tyro.cli(module.Args, args=flags), tyro.cli(module.Args, args=harl)
        assert documented == benchmarked and documented.gamma == gamma
