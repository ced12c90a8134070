"""Isaac Gym backend (placeholder until the adapter lands)."""

from __future__ import annotations


def mapush_available() -> bool:
    return False


class IsaacGymPushEnv:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the Isaac Gym backend is not implemented yet")
