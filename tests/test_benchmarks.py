"""The learning-run launcher parses the scripts' console output, skips finished runs, resumes
stopped ones from their checkpoint, and plots."""

import csv
import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import ROOT

TINY = ["--num-envs", "8", "--num-steps", "8", "--max-episode-steps", "6", "--eval-envs", "4", "--hidden-sizes", "8"]
TINY += ["--eval-every", "1"]  # a deterministic evaluation every iteration (the last one: the final evaluation)


def launch(tmp_path, total_timesteps):
    tmp_path.mkdir(exist_ok=True)
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "learning_runs.py"), "--configs", "happo_mean"]
    cmd += ["--seeds", "3", "--total-timesteps", str(total_timesteps), "--results-dir", str(tmp_path)]
    cmd += ["--work-dir", str(tmp_path), "--"] + TINY
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, list(csv.DictReader(open(tmp_path / "happo_mean__seed3.csv")))


def during_eval_steps(rows):
    return [int(r["global_step"]) for r in rows if r["kind"] == "during_eval"]


def test_learning_launcher_records_skips_resumes_and_plots(tmp_path):
    _, rows = launch(tmp_path, 128)
    train = [r for r in rows if r["kind"] == "train"]
    assert [int(r["global_step"]) for r in train] == [64, 128]
    assert all(r["success_rate"] != "" and int(r["episodes"]) > 0 for r in train)  # 6-step episodes end
    assert all(float(r["cpu_s"]) > 0 for r in train)  # the script's CPU time, read from /proc
    evals = [r["kind"] for r in rows if r["kind"].startswith("eval")]
    assert evals == ["eval", "eval_finish_time_s", "eval_collaboration"]
    assert during_eval_steps(rows) == [64]
    summary = (tmp_path / "summary.md").read_text()
    assert "| happo_mean | 1 (1) | - | - | - | " in summary  # one finished seed, too short for 5M
    assert "- happo_mean seed 3: 0.0M " in summary  # the evaluation during training, listed
    if importlib.util.find_spec("matplotlib") is not None:  # a benchmark-only dependency
        assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    again, _ = launch(tmp_path, 128)
    assert "skip happo_mean seed 3: finished" in again

    # A run stopped after its checkpoint at 128 steps had logged one more iteration: the launcher
    # resumes from the checkpoint and replaces the rows logged after it.
    with open(tmp_path / "happo_mean__seed3.csv", "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows[:-3] + [dict(train[-1], global_step="192", success_rate="0.999")])
    resumed, rows = launch(tmp_path, 256)
    assert "--resume" in resumed and "happo_mean.cleanrl_model" in resumed
    train = [r for r in rows if r["kind"] == "train"]
    assert [int(r["global_step"]) for r in train] == [64, 128, 192, 256]
    assert "0.999" not in [r["success_rate"] for r in train]
    cpu = [float(r["cpu_s"]) for r in train]
    assert cpu == sorted(cpu)  # CPU time continues across the resume
    assert during_eval_steps(rows) == [64, 192]  # kept across the resume, then continued
    assert [r["kind"] for r in rows if r["kind"] == "eval"] == ["eval"]

    # The diagnostics table reads the run's TensorBoard log back: HAPPO rows hold the factor.
    out = tmp_path / "diagnostics.md"
    script = os.path.join(ROOT, "benchmarks", "run_diagnostics.py")
    cmd = [sys.executable, script, "--runs-dir", str(tmp_path / "runs"), "--windows", "0", "1", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    lines = out.read_text().splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("| run |")).strip("|").split("|")]
    rows = [line for line in lines if line.startswith("| mapush__happo_mean__3__")]
    assert len(rows) == 1
    cells = dict(zip(header, [c.strip() for c in rows[0].strip("|").split("|")]))
    assert cells["steps (M)"] == "0-1" and all(v != "" for v in cells.values()), cells  # every column measured
    assert 0.0 < float(cells["M min"]) <= 1.0 <= float(cells["M max"])


def test_learning_launcher_extends_a_finished_run_as_if_run_straight(tmp_path):
    """A run finished at 128 steps, asked for 192, continues from its final checkpoint: its training rows
    equal a straight 192-step run's, and the shorter run's final evaluation is replaced by the longer's."""
    launch(tmp_path / "short", 128)
    out, extended = launch(tmp_path / "short", 192)
    assert "--resume" in out and "--total-timesteps 192" in out
    _, straight = launch(tmp_path / "straight", 192)

    def train_rows(rows):
        return [
            (r["global_step"], r["episodes"], r["success_rate"], r["episodic_return"])
            for r in rows
            if r["kind"] == "train"
        ]

    assert [step for step, *_ in train_rows(extended)] == ["64", "128", "192"]
    assert train_rows(extended) == train_rows(straight)
    assert [r["global_step"] for r in extended if r["kind"] == "eval"] == ["192"]
    assert during_eval_steps(extended) == [64]  # the evaluation at 128 was the short run's final one


def test_every_launcher_config_parses_with_its_script():
    """A typo in a benchmark configuration would only show after hours; the scripts' Args catch it."""
    import tyro

    import happo_mapush
    import mappo_mapush

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import learning_runs

    scripts = {"mappo_mapush.py": mappo_mapush, "happo_mapush.py": happo_mapush}
    study_configs = {name: flags for grid in load_study().GRIDS.values() for name, flags in grid.items()}
    for name, (script, *flags) in {**learning_runs.CONFIGS, **study_configs}.items():
        args = tyro.cli(scripts[script].Args, args=flags)
        assert args.seed == 1, name
        assert flags.count("--gamma") <= 1, name  # one discount per config, never one overriding another
    with pytest.raises(SystemExit):  # and a misspelt flag is refused, so the loop above can fail
        tyro.cli(mappo_mapush.Args, args=["--actor-lr", "5e-3", "--std-typ", "free"])


def test_imitation_benchmark_fits_every_input_pipeline(tmp_path):
    """Tiny sizes: every pipeline is fitted, evaluated and written as one row."""
    out = tmp_path / "imitation.md"
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "imitation_inputs.py"), "--num-envs", "8"]
    cmd += ["--num-steps", "20", "--adam-steps", "30", "--batch", "64", "--eval-envs", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("|") for line in out.read_text().splitlines() if line.startswith("| ") and "MSE" not in line]
    assert len(rows) == 5 and "zero action" in rows[0][1] and "HARL" in rows[1][1]
    zero_action_mse, mses = float(rows[0][2]), [float(row[2]) for row in rows[1:]]
    assert all(mse < zero_action_mse for mse in mses)  # every pipeline learned something
    assert all(0.0 <= float(row[3]) <= 1.0 for row in rows[1:])  # a success rate each


def test_ablation_table_reads_evaluations_and_cpu_time(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import learning_runs

    learning_runs.set_dirs(str(tmp_path), str(tmp_path))
    header = ["kind", "global_step", "sps", "episodes", "success_rate", "episodic_return", "wall_s", "cpu_s"]
    curves = {}
    for config, seed, rates in [("mappo", 1, [0.1, 0.5]), ("mappo", 2, [0.3, 0.7]), ("mappo_std0.5", 1, [0.0, 0.1])]:
        rows = [["train", 1_000_000, 1, 5, 0.1, -1, 60, 100], ["train", 2_000_000, 1, 5, 0.1, -1, 120, 180]]
        rows += [
            ["during_eval", 983_040, "", 300, rates[0], "", 61, 101],
            ["during_eval", 1_966_080, "", 300, rates[1], "", 121, 181],
        ]
        with open(learning_runs.csv_path(config, seed), "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(header)
            out.writerows(rows)
        train = [r for r in csv.DictReader(open(learning_runs.csv_path(config, seed))) if r["kind"] == "train"]
        curves.setdefault(config, []).append((str(seed), train))
    lines = learning_runs.ablation_table(curves)
    row = next(line for line in lines if line.startswith("| mappo |"))
    assert row == "| mappo | 2 | 0.20 (0.10-0.30) | 0.60 (0.50-0.70) | - | - | - | 80 |"
    assert any(line.startswith("| mappo_std0.5 | 1 | 0.00 (0.00-0.00) | 0.10 (0.10-0.10) |") for line in lines)


def test_train_throughput_reports_both_scripts_with_a_time_split(tmp_path):
    out = tmp_path / "throughput.md"
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "train_throughput.py"), "--num-envs", "8"]
    cmd += ["--threads", "1", "--no-compile", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows] == [
        ("mappo_mapush.py", "8", "eager"),
        ("happo_mapush.py", "8", "eager"),
    ]
    for row in rows:
        sps, env_s, policy_s, update_s = (float(row[k].replace(",", "")) for k in (3, 5, 6, 7))
        assert sps > 0 and env_s > 0 and policy_s > 0 and update_s > 0
        assert sps == pytest.approx(8 * 64 / (env_s + policy_s + update_s), rel=0.1)  # 3-decimal rounding


STUDY_TINY = TINY[:-2] + ["--eval-every", "1"]


def study(tmp_path, *flags):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "study.py"), "--grid", "recipe", "--seeds", "1"]
    cmd += ["--total-timesteps", "128", "--results-dir", str(tmp_path), "--work-dir", str(tmp_path)] + list(flags)
    proc = subprocess.run(cmd + ["--"] + STUDY_TINY, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_study_runs_a_grid_in_a_pool_exports_scalars_and_skips_finished_runs(tmp_path):
    out = study(tmp_path, "--configs", "recipe-mappo", "recipe-happo_prod-fixed_order", "--workers", "2")
    assert "[2/2] done" in out
    rows = list(csv.DictReader(open(tmp_path / "recipe-happo_prod-fixed_order__seed1__scalars.csv")))
    tags = {r["tag"] for r in rows}
    assert {"factor/position1/mean", "losses/agent0/approx_kl", "losses/agent1/clipfrac"} <= tags
    assert {int(r["global_step"]) for r in rows if r["tag"] == "factor/position1/mean"} == {64, 128}
    summary = (tmp_path / "summary.md").read_text()
    assert "| recipe-mappo | 1 | " in summary and "| recipe-happo_prod-fixed_order | 1 | " in summary
    (per_seed,) = [line for line in summary.splitlines() if line.startswith("| recipe-happo_prod-fixed_order | 1: ")]
    assert per_seed.endswith(" | 1 |") and " - |" not in per_seed  # every diagnostic from its scalar CSV
    again = study(tmp_path, "--configs", "recipe-mappo", "--workers", "1")
    assert "skip recipe-mappo seed 1: finished" in again


def test_study_refuses_a_config_outside_its_grid(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "study.py"), "--grid", "recipe", "--configs", "harl-mappo"]
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "error: ['harl-mappo'] not in grid recipe" in proc.stderr


def test_study_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    pytest.importorskip("pkg_resources")  # submitit 1.5 loads its plugins through it
    out = study(tmp_path, "--configs", "recipe-happo_mean", "--executor", "submitit-local")
    assert "submitted 1 jobs" in out and "[1/1] done: recipe-happo_mean seed 1" in out
    assert (tmp_path / "recipe-happo_mean__seed1__scalars.csv").exists()


def load_study():
    spec = importlib.util.spec_from_file_location("study", os.path.join(ROOT, "benchmarks", "study.py"))
    study_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study_module)
    return study_module


def test_study_reuses_only_learning_runs_with_the_same_training_flags():
    study_module = load_study()

    def training_flags(flags):  # how often a run evaluates does not change its training
        flags = list(flags)
        if "--eval-every" in flags:
            at = flags.index("--eval-every")
            del flags[at : at + 2]
        return flags

    grids = {config: flags for grid in study_module.GRIDS.values() for config, flags in grid.items()}
    for config, learning_config in study_module.SAME_AS_LEARNING_RUN.items():
        learning_flags = study_module.lr.CONFIGS[learning_config]
        assert training_flags(grids[config]) == training_flags(learning_flags), config


def test_every_study_config_trains_something_its_grid_does_not_already_train():
    """A suspect whose flag repeats a default (e.g. --bootstrap-timeouts, on by default) would rerun its
    baseline under another name; parsed through the scripts' Args, no two configs of a grid may agree."""
    import tyro

    import happo_mapush
    import mappo_mapush

    study_module = load_study()
    scripts = {"mappo_mapush.py": mappo_mapush, "happo_mapush.py": happo_mapush}
    for grid, configs in study_module.GRIDS.items():
        trained_by = {}
        for config, (script, *flags) in configs.items():
            settings = (script, repr(tyro.cli(scripts[script].Args, args=flags)))  # every field, hashable
            assert settings not in trained_by, f"{grid}: {config} trains exactly what {trained_by.get(settings)} does"
            trained_by[settings] = config
    # The check can fail: the old bootstrap suspect parses to HARL's HAPPO baseline.
    baseline = tyro.cli(happo_mapush.Args, args=study_module.GRIDS["harl"]["harl-happo_prod"][1:])
    assert baseline == tyro.cli(
        happo_mapush.Args, args=study_module.GRIDS["harl"]["harl-happo_prod"][1:] + ["--bootstrap-timeouts"]
    )


def test_plateau_keeps_a_checkpoint_per_milestone_resumes_and_analyses(tmp_path):
    """benchmarks/plateau.py shrunk: milestones at 2 and 4 iterations of 64 env steps, the second segment
    a --resume of the first; a second launch skips both; `analyse` measures each kept checkpoint."""
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "plateau.py"), "train", "--seeds", "1"]
    cmd += ["--milestones", "0.000128", "0.000256", "--batch", "64", "--work-dir", str(tmp_path), "--"] + TINY
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [line for line in proc.stdout.splitlines() if line.startswith("run:")]
    assert len(runs) == 2 and "--resume" not in runs[0] and "--resume" in runs[1] and "--total-timesteps 256" in runs[1]
    kept = tmp_path / "plateau" / "mappo_mapush_seed1"
    assert sorted(os.listdir(str(kept))) == ["at_0.000128M.cleanrl_model", "at_0.000256M.cleanrl_model", "train.log"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "run:" not in again.stdout

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import plateau

    plateau.analyse(str(tmp_path), num_envs=5, out=str(tmp_path / "out"))
    rows = list(csv.DictReader(open(tmp_path / "out" / "milestones.csv")))
    assert [float(r["env steps (M)"]) for r in rows] == [0.000128, 0.000256]
    for row in rows:  # each episode ends one way, within the 6-step limit
        assert float(row["success"]) + float(row["failure"]) + float(row["timeout"]) == pytest.approx(1.0)
        assert float(row["std"]) > 0 and float(row["advantage std"]) > 0
    by_distance = list(csv.DictReader(open(tmp_path / "out" / "by_distance.csv")))
    assert sum(int(r["envs"]) for r in by_distance[:3]) == 5


def test_logged_scalars_compare_names_each_difference():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from logged_scalars import differences

    before = {"mappo_shared": {"losses/value_loss": [[64, 1.0], [128, 0.5]], "charts/action_std": [[64, 0.7]]}}
    assert differences(before, before) == []
    after = {"mappo_shared": {"losses/value_loss": [[64, 1.0], [128, 0.5000001]], "eval/success_rate": [[128, 0.0]]}}
    assert differences(before, after) == [
        "mappo_shared: charts/action_std only in one",
        "mappo_shared: eval/success_rate only in one",
        "mappo_shared: losses/value_loss differs",
    ]


def test_logged_scalars_drift_counts_scalars_outside_the_tolerance_per_step():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from logged_scalars import drift

    before = {"m": {"a": [[64, 1.0], [128, 2.0]], "b": [[64, 0.0], [128, 4.0]], "only_before": [[64, 1.0]]}}
    after = {"m": {"a": [[64, 1.0005], [128, 2.2]], "b": [[64, 0.000001], [128, 3.0]]}}
    assert drift(before, after, 1e-3) == [
        "m step 64: 0 of 2 scalars outside 0.001",  # 5e-4 relative; 1e-6 absolute near zero
        "m step 128: 2 of 2 scalars outside 0.001, largest 0.25 relative (b)",
    ]


def test_plot_groups_keep_the_horizon_screen_apart_from_the_ablation():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import learning_runs

    horizon = dict.fromkeys(["mappo", "mappo_gamma0.995", "mappo_gamma0.998", "mappo_gamma0.999", "mappo_lambda0.98"])
    groups = learning_runs.groups_present(horizon)
    assert groups["horizon.png"] == ["mappo", "mappo_gamma0.995", "mappo_gamma0.998", "mappo_gamma0.999"]
    assert "ablation.png" not in groups and learning_runs.ablation_table({c: [] for c in horizon}) == []
    ablation = learning_runs.groups_present(dict.fromkeys(["mappo", "mappo_gamma0.995", "mappo_std0.5"]))
    assert ablation["ablation.png"] == ["mappo", "mappo_std0.5", "mappo_gamma0.995"] and "horizon.png" not in ablation
