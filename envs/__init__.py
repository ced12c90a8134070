"""The cuboid-push task of MAPush behind one API, with two backends.

- "torch": a batched pure-PyTorch surrogate (envs/cuboid_push.py), CPU or CUDA, no simulator.
- "isaacgym": MAPush's own go1push_mid task in Isaac Gym (envs/isaacgym_push.py), when the
  `isaacgym` package and MAPush's `mqe` package can be imported and a CUDA device is used.

Isaac Gym refuses to load once torch has been imported, so this package tries `import isaacgym`
before importing anything that imports torch, and the training scripts import `envs` before torch.
Without Isaac Gym installed this silently falls back to the torch backend.
"""

from __future__ import annotations

try:  # must run before torch is imported anywhere in the process
    import isaacgym  # noqa: F401

    ISAACGYM_IMPORT_ERROR = None
except Exception as err:  # ImportError, or a broken install (e.g. libpython3.8 not found)
    isaacgym = None
    ISAACGYM_IMPORT_ERROR = err

import os  # noqa: E402
import shutil  # noqa: E402
from typing import Optional  # noqa: E402

import torch  # noqa: E402

from envs.cuboid_push import (  # noqa: E402
    OBS_YAW_FEATURES,
    REWARD_TERMS,
    STATE_LAYOUT,
    CuboidPushEnv,
    TaskConfig,
    parse_task_options,
)
from envs.evaluation import evaluate  # noqa: E402

BACKENDS = ("auto", "torch", "isaacgym")

__all__ = ["BACKENDS", "REWARD_TERMS", "STATE_LAYOUT", "CuboidPushEnv", "TaskConfig", "evaluate", "make_env"]
__all__ += ["OBS_YAW_FEATURES", "compile_problem", "parse_task_options", "require_backend", "resolve_backend"]


def resolve_backend(backend: str, device: str) -> str:
    """Name of the backend that make_env will use: "auto" picks Isaac Gym only when it can run."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; accepted: {list(BACKENDS)}")
    if backend != "auto":
        return backend
    if isaacgym is None or not str(device).startswith("cuda"):
        return "torch"
    from envs.isaacgym_push import mapush_available

    return "isaacgym" if mapush_available() else "torch"


def require_backend(name: str, device: str) -> None:
    """Raise RuntimeError, naming what is missing and how to install it, when backend `name` cannot run
    on `device` here (the scripts call it before they create anything)."""
    if name == "isaacgym":
        from envs.isaacgym_push import require_isaacgym

        require_isaacgym(device)


def compile_problem() -> Optional[str]:
    """Why torch.compile cannot run here, as the end of a sentence starting with what asked for it
    ("--compile needs ..."), or None when it can."""
    if not hasattr(torch, "compile"):
        return f"needs torch >= 2.0 (torch.compile); this is torch {torch.__version__}"
    if not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        return "needs a C++ compiler on the PATH (c++, g++ or clang++); install one"
    torch_dir = os.path.dirname(torch.__file__)
    if " " in torch_dir:  # seen with torch 2.13: the compiler's -I flag splits at the space
        return (
            f"cannot build here: torch is installed in a path with a space ({torch_dir}), which inductor's "
            "C++ compile line leaves unquoted (a torch bug); install torch in a path without spaces"
        )
    return None


def make_env(num_envs: int, device: str = "cpu", seed: int = 0, backend: str = "auto", **task_options):
    """Create `num_envs` batched cuboid-push environments on `device`.

    backend: "auto" (Isaac Gym if importable, MAPush found and device is CUDA; else torch),
    "torch" or "isaacgym". task_options: fields of envs.TaskConfig (torch backend) or of the
    Isaac Gym adapter; unknown names raise ValueError.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive whole number, got {num_envs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; accepted: 'cpu', 'cuda', 'cuda:N'") from None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; accepted: 'cpu', 'cuda', 'cuda:N'")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use 'cpu'")
    name = resolve_backend(backend, device)
    if name == "torch":
        return CuboidPushEnv(num_envs, device=device, seed=seed, **task_options)
    from envs.isaacgym_push import IsaacGymPushEnv

    return IsaacGymPushEnv(num_envs, device=device, seed=seed, **task_options)
