"""Where the update's time goes: torch.profiler over one MAPPO update at the scripts' defaults.

Builds the default networks (envs' dimensions), fills one batch of 512 envs x 64 steps with random
inputs, runs the actors' and the critic's epochs once to warm up, then once under the profiler
(CPU), eager and with the loss functions compiled as `--compile` does. Prints the share of the
matrix products (aten::mm, aten::addmm): the part torch.compile cannot make faster on CPU.

    python benchmarks/update_profile.py            # OMP_NUM_THREADS decides the threads
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import envs  # noqa: E402, I001  (before torch, for Isaac Gym)
import mappo_mapush as mappo  # noqa: E402

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    args = mappo.Args()
    env = envs.make_env(8, seed=0, backend="torch")
    A, B = env.num_agents, args.num_envs * args.num_steps
    obs_encoder, state_encoder, actors, critic = mappo.make_networks(
        args, env.obs_dim, env.state_dim, env.action_dim, A, "cpu"
    )
    actor_optimizers = [torch.optim.Adam(a.parameters(), lr=args.actor_lr, eps=1e-5) for a in actors]
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=args.critic_lr, eps=1e-5)
    obs = torch.randn(B, A, obs_encoder.out_dim)
    states = torch.randn(B, state_encoder.out_dim)
    actions = torch.randn(B, A, env.action_dim)
    logprobs = torch.randn(B, A, env.action_dim) - 1.0
    advantages, values = torch.randn(B, A), torch.randn(B, A)

    def update() -> None:
        """The epochs of the script's main loop: actors, then critic, on mini-batches."""
        size = B // args.num_minibatches
        for _ in range(args.update_epochs):
            for mb in torch.randperm(B).split(size):
                loss, _ = mappo.actor_loss(actors, obs[mb], actions[mb], logprobs[mb], advantages[mb], args)
                for opt in actor_optimizers:
                    opt.zero_grad()
                loss.backward()
                for actor, opt in zip(actors, actor_optimizers):
                    torch.nn.utils.clip_grad_norm_(actor.parameters(), args.max_grad_norm)
                    opt.step()
        for _ in range(args.critic_epochs):
            for mb in torch.randperm(B).split(size):
                v_loss = mappo.critic_loss(critic, states[mb], values[mb], values[mb] + 0.1, args)
                critic_optimizer.zero_grad()
                v_loss.backward()
                torch.nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
                critic_optimizer.step()

    print(f"threads: {torch.get_num_threads()}; batch {B} env steps x {A} agents, {args.update_epochs} epochs")
    for mode in ("eager", "compile"):
        if mode == "compile":  # what --compile does: the loss functions through inductor
            mappo.actor_loss, mappo.critic_loss = torch.compile(mappo.actor_loss), torch.compile(mappo.critic_loss)
        update()  # warm-up (and compilation)
        start = time.perf_counter()
        update()
        seconds = time.perf_counter() - start
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            update()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
        top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:6]
        print(f"{mode}: one update {seconds:.2f} s; matrix products {100 * matmul / total:.0f} % of the profiled time")
        print("  top ops: " + ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f} %" for e in top))


if __name__ == "__main__":
    main()
