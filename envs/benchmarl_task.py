"""The cuboid push as a BenchMARL task, so BenchMARL's algorithms train on it.

Optional extra (requirements-ecosystem.txt); never imported by the training scripts.

    python -m envs.benchmarl_task --algorithm mappo --seed 0               # BenchMARL's defaults
    python -m envs.benchmarl_task --algorithm ippo --experiment max_n_frames=5_000_000 \\
        --experiment on_policy_n_envs_per_worker=512 --experiment on_policy_collected_frames_per_batch=32768 \\
        --experiment evaluation_interval=983040 --algorithm-option use_tanh_normal=false

In Python, `CuboidPushTask.CUBOID_PUSH.get_task()` is a `benchmarl.environments.TaskClass` (config:
envs.TaskConfig fields, e.g. {"max_episode_steps": 1001}) for `benchmarl.experiment.Experiment`. The
env is `envs.torchrl_env.CuboidPushTorchRLEnv`: one group "agents" of the two robots, each robot's
observation for the actors and the global state (23,) for centralised critics (MAPPO, MASAC, ...).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
from typing import Callable, Dict, List, Optional

try:
    from benchmarl.environments.common import Task, TaskClass
    from torchrl.data import Composite
    from torchrl.envs import EnvBase
except ImportError as err:  # one line that names what to install
    raise ImportError(
        f"envs.benchmarl_task needs benchmarl ({err.name} is missing): pip install -r requirements-ecosystem.txt "
        "&& pip install --no-deps benchmarl==1.5.2"
    ) from None

from envs.torchrl_env import GROUP, CuboidPushTorchRLEnv


def push_env(env: EnvBase):
    """The batched cuboid-push env under BenchMARL's TransformedEnv (or under the TorchRL env itself)."""
    return getattr(env, "base_env", env).push_env


class CuboidPushTaskClass(TaskClass):
    """BenchMARL's recipe for building the cuboid-push env; `config` holds envs.TaskConfig fields."""

    def get_env_fun(
        self, num_envs: int, continuous_actions: bool, seed: Optional[int], device
    ) -> Callable[[], EnvBase]:
        if not continuous_actions:
            raise ValueError("the cuboid push has continuous actions only; set prefer_continuous_actions=True")
        options = copy.deepcopy(self.config)
        return lambda: CuboidPushTorchRLEnv(num_envs=num_envs, device=str(device), seed=int(seed or 0), **options)

    def supports_continuous_actions(self) -> bool:
        return True

    def supports_discrete_actions(self) -> bool:
        return False

    def has_render(self, env: EnvBase) -> bool:
        return False

    def max_steps(self, env: EnvBase) -> int:
        return int(push_env(env).max_episode_steps)

    def group_map(self, env: EnvBase) -> Dict[str, List[str]]:
        return {GROUP: [f"robot_{i}" for i in range(push_env(env).num_agents)]}

    def observation_spec(self, env: EnvBase) -> Composite:
        spec = env.full_observation_spec_unbatched.clone()
        del spec["state"]
        return spec

    def state_spec(self, env: EnvBase) -> Optional[Composite]:
        return Composite(state=env.full_observation_spec_unbatched["state"].clone())

    def info_spec(self, env: EnvBase) -> Optional[Composite]:
        return None

    def action_spec(self, env: EnvBase) -> Composite:
        return env.full_action_spec_unbatched

    def action_mask_spec(self, env: EnvBase) -> Optional[Composite]:
        return None

    @staticmethod
    def env_name() -> str:
        return "mapush"


class CuboidPushTask(Task):
    """BenchMARL's enum of this environment's tasks: the one mid-level cuboid push."""

    CUBOID_PUSH = None

    @staticmethod
    def associated_class():
        return CuboidPushTaskClass

    def get_from_yaml(self, path: Optional[str] = None) -> TaskClass:
        """The task with MAPush's defaults (there is no yaml file inside BenchMARL for it)."""
        if path is not None:
            raise ValueError("the cuboid-push task has no yaml file; pass its options as get_task(config={...})")
        return self.associated_class()(name=self.name, config={})


def parse_assignments(pairs, what: str) -> Dict[str, object]:
    """["key=value", ...] -> {key: value}, values read as Python literals where they parse
    ("5e-4", "true"/"false", "[256, 256]"), as strings otherwise."""
    result = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be key=value, got {pair!r}")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            result[key] = lowered == "true"
            continue
        try:
            result[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            result[key] = text
    return result


def apply_overrides(config, overrides: Dict[str, object], what: str) -> None:
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"unknown {what} field {key!r}; see {type(config).__name__}")
        setattr(config, key, value)


def build_experiment(
    algorithm: str = "mappo",
    seed: int = 0,
    experiment_overrides: Optional[Dict[str, object]] = None,
    algorithm_overrides: Optional[Dict[str, object]] = None,
    task_options: Optional[Dict[str, object]] = None,
    callbacks=None,
):
    """A BenchMARL Experiment on the cuboid push: BenchMARL's yaml defaults for the experiment, the
    algorithm and the MLP models, then the overrides. Loggers default to CSV only (no network), the
    run folder to runs/benchmarl/<BenchMARL's run name>."""
    from benchmarl.algorithms import algorithm_config_registry
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    if algorithm not in algorithm_config_registry:
        raise ValueError(f"unknown algorithm {algorithm!r}; accepted: {sorted(algorithm_config_registry)}")
    algorithm_config = algorithm_config_registry[algorithm].get_from_yaml()
    apply_overrides(algorithm_config, algorithm_overrides or {}, "algorithm")
    experiment_config = ExperimentConfig.get_from_yaml()
    experiment_config.loggers = ["csv"]
    experiment_config.render = False
    apply_overrides(experiment_config, experiment_overrides or {}, "experiment")
    if experiment_config.save_folder is None and experiment_config.restore_file is None:
        experiment_config.save_folder = os.path.join("runs", "benchmarl")  # beside the scripts' runs
    if experiment_config.save_folder is not None:
        os.makedirs(experiment_config.save_folder, exist_ok=True)  # BenchMARL makes only the run's own folder
    return Experiment(
        task=CuboidPushTask.CUBOID_PUSH.get_task(config=dict(task_options or {})),
        algorithm_config=algorithm_config,
        model_config=MlpConfig.get_from_yaml(),
        critic_model_config=MlpConfig.get_from_yaml(),
        seed=seed,
        config=experiment_config,
        callbacks=callbacks,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="mappo", help="a BenchMARL algorithm: mappo, ippo, masac, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experiment", action="append", metavar="KEY=VALUE", help="ExperimentConfig override")
    parser.add_argument("--algorithm-option", action="append", metavar="KEY=VALUE", help="algorithm config override")
    parser.add_argument("--task-option", action="append", metavar="KEY=VALUE", help="envs.TaskConfig field")
    args = parser.parse_args(argv)
    try:
        experiment = build_experiment(
            args.algorithm,
            args.seed,
            parse_assignments(args.experiment, "--experiment"),
            parse_assignments(args.algorithm_option, "--algorithm-option"),
            parse_assignments(args.task_option, "--task-option"),
        )
    except ValueError as err:
        parser.error(str(err))
    experiment.run()
    print(f"BenchMARL run folder: {experiment.folder_name}")


if __name__ == "__main__":
    main()
