"""Run a training script as on an Isaac Gym machine, but on the CPU and without the simulator.

    python tests/fake_isaacgym_run.py mappo_mapush.py --backend isaacgym ...

A stand-in `isaacgym` module is imported before `envs` (as the real one must be), MAPUSH_ROOT points
to the fake of MAPush's `mqe` (tests/fake_mapush) unless it is set, and the adapter's CUDA-only check
is lifted; everything else (the script, `envs`, the adapter) runs unmodified, as `__main__`.
"""

import os
import runpy
import sys
import types

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS))
gymapi = types.ModuleType("isaacgym.gymapi")
gymapi.SIM_PHYSX = 1
sys.modules["isaacgym"] = types.ModuleType("isaacgym")
sys.modules["isaacgym.gymapi"] = gymapi
os.environ.setdefault("MAPUSH_ROOT", os.path.join(TESTS, "fake_mapush"))

import envs.isaacgym_push  # noqa: E402  (after the stand-in, as the scripts import envs before torch)

envs.isaacgym_push.require_isaacgym = lambda device: None  # the fake of MAPush runs on the CPU
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
