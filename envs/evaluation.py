"""MAPush's evaluation metrics (its "calculator"), a property of the task shared by both scripts."""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch


@torch.no_grad()
def evaluate(
    act: Callable[[torch.Tensor], torch.Tensor],
    num_envs: int,
    device: str = "cpu",
    seed: int = 0,
    backend: str = "torch",
    video_path: Optional[str] = None,
    max_episode_steps: int = 1001,
    log: Optional[Callable[[str], None]] = None,
    task_options: Optional[Dict[str, object]] = None,
) -> Dict[str, float]:
    """Run `act` (observations (E, A, obs_dim) -> actions (E, A, action_dim), deterministic) on the
    first episode of `num_envs` fresh environments and return MAPush's metrics: success rate, mean
    finish time (failures count as the full time limit), collaboration degree (share of steps with
    both robots within 1 m of the box centre, over successful episodes). `video_path`: a GIF of
    env 0's episode; `log`: called with a progress line every 250 steps; `task_options`: the task the
    policy was trained on (make_env's options; they override max_episode_steps too)."""
    from envs import make_env

    options = {"max_episode_steps": max_episode_steps, **(task_options or {})}
    env = make_env(num_envs, device=str(device), seed=seed, backend=backend, **options)
    device = torch.device(device)
    obs, _ = env.reset()
    first_done = torch.zeros(num_envs, dtype=torch.bool, device=device)
    success = torch.zeros(num_envs, dtype=torch.bool, device=device)
    finish_step = torch.full((num_envs,), float(env.max_episode_steps), device=device)
    near_steps = torch.zeros(num_envs, device=device)
    steps = torch.zeros(num_envs, device=device)
    frames = []
    if video_path is not None and hasattr(env, "record_trails"):
        env.record_trails()
    for t in range(env.max_episode_steps + 1):
        if video_path is not None and not bool(first_done[0]):
            frames.append(env.render(0))
        obs, _, _, terminated, truncated, info = env.step(act(obs))
        running = ~first_done
        near_steps += (info["robots_near_box"] & running).float()
        steps += running.float()
        newly_done = running & (terminated | truncated)
        success |= newly_done & info["success"]
        finish_step = torch.where(newly_done & info["success"], torch.full_like(finish_step, t + 1.0), finish_step)
        first_done |= newly_done
        if bool(first_done.all()):
            break
        if log is not None and (t + 1) % 250 == 0:
            log(f"evaluation: step {t + 1}/{env.max_episode_steps}, {int(first_done.sum())}/{num_envs} episodes ended")
    if frames:
        from PIL import Image

        images = [Image.fromarray(f) for f in frames[::2]]  # 25 frames per second of sim time
        try:
            images[0].save(video_path, save_all=True, append_images=images[1:], duration=40, loop=0)
            message = f"evaluation video: {video_path}"
        except OSError as err:  # a read-only folder must not cost the metrics
            message = f"evaluation video not written ({err})"
        if log is not None:
            log(message)
    collab = (near_steps / steps.clamp(min=1))[success]
    return {
        "success_rate": success.float().mean().item(),
        "finish_time_s": (finish_step * 0.02).mean().item(),
        "collaboration_degree": collab.mean().item() if collab.numel() else 0.0,
    }
