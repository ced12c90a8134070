"""happo_mapush.py: the HAPPO factor against its maths, update order, then end-to-end runs."""

import glob
import math
import os
import re
import runpy
import shutil
import signal
import sys
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT, assert_resume_is_exact, event_tags, run_script, single_run_dir

import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 192, "--max-episode-steps", 6, "--eval-envs", 4]
TINY += ["--hidden-sizes", 16, 16]


def update_args(**overrides):
    args = dict(num_minibatches=2, update_epochs=3, clip_coef=0.2, ent_coef=0.01, max_grad_norm=10.0)
    args.update(action_aggregation="prod", factor_clip=None)
    args.update(overrides)
    return SimpleNamespace(**args)


HARL_ACTOR = dict(std_type="harl", std_max=0.5, input_layernorm=True, tanh_mean=False)  # HARL's actor


def make_batch(num_agents, B=64, seed=0):
    """Actors, optimisers and a rollout-like batch whose stored log-probs come from the actors."""
    torch.manual_seed(seed)
    actors = torch.nn.ModuleList([happo.Actor(8, 3, (16, 16), **HARL_ACTOR) for _ in range(num_agents)])
    optimizers = [torch.optim.Adam(a.parameters(), lr=3e-3, eps=1e-5) for a in actors]
    obs = torch.randn(B, num_agents, 8)
    with torch.no_grad():
        dist = happo.policy(actors, obs)
        actions = dist.sample()
        logprobs = dist.log_prob(actions)
    advantages = torch.randn(B)
    return actors, optimizers, obs, actions, logprobs, advantages


def test_one_agent_happo_loss_equals_ppo_loss():
    """With M = 1 HAPPO's loss of one agent is MAPPO's PPO-clip loss, value and gradient: the two
    scripts' epoch loops being the same, an agent updated with M = 1 takes exactly a PPO update."""
    actors, _, obs, actions, logprobs, adv = make_batch(1)
    args = update_args()
    ours, _ = happo.happo_actor_loss(actors[0], obs[:, 0], actions[:, 0], logprobs[:, 0], adv, torch.ones(64), args)
    ours_grads = torch.autograd.grad(ours, list(actors[0].parameters()))
    ppo, _ = mappo.actor_loss(actors, obs, actions, logprobs, adv[:, None], args)
    ppo_grads = torch.autograd.grad(ppo, list(actors[0].parameters()))
    assert ours.item() == ppo.item()
    for g, h in zip(ours_grads, ppo_grads):
        torch.testing.assert_close(g, h, rtol=0, atol=0)


def run_one_iteration_recording_the_update(tmp_path, monkeypatch, flags):
    """happo_mapush.py, one iteration in this process with --compile, torch.compile replaced by a
    recorder: the calls of agent_log_prob and happo_actor_loss made by the main loop's HAPPO block,
    in order, as (name, actor, arguments, result)."""
    calls = []

    def recording_compile(fn, **_):
        def recorded(*args):
            result = fn(*args)
            if fn.__name__ in ("agent_log_prob", "happo_actor_loss"):
                calls.append((fn.__name__, args[0], [a.detach().clone() for a in args[1:6]], result))
            return result

        return recorded

    monkeypatch.setattr(torch, "compile", recording_compile, raising=False)  # torch 1.13 has none
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)  # --compile's C++ check
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's Ctrl-C handler
    argv = ["happo_mapush.py", "--compile", "--total-timesteps", "64", "--eval-envs", "0"] + TINY[:4] + TINY[6:8]
    monkeypatch.setattr(sys, "argv", [str(a) for a in argv + TINY[10:] + flags])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(os.path.join(ROOT, "happo_mapush.py"), run_name="__main__")
    return calls


@pytest.mark.parametrize(
    "flags",
    [["--action-aggregation", "prod"], ["--action-aggregation", "mean"], ["--factor-clip", "0.99", "1.01"]],
)
def test_the_loops_factor_is_the_product_of_earlier_agents_ratios(tmp_path, monkeypatch, flags):
    """One iteration of the script's own loop: the first agent trains with M = 1, the second with
    M = its predecessor's aggregated new/old ratio on the whole batch (clipped with --factor-clip),
    computed from that agent's log-probs just before and just after its epochs."""
    how = "mean" if "mean" in flags else "prod"
    calls = run_one_iteration_recording_the_update(tmp_path, monkeypatch, flags)
    log_probs = [(actor, result) for name, actor, _, result in calls if name == "agent_log_prob"]
    (first, before), (first_again, after), (second, _), (second_again, _) = log_probs
    assert first is first_again and second is second_again and first is not second
    factors = {actor: [] for actor in (first, second)}
    for name, actor, args, _ in calls:
        if name == "happo_actor_loss":
            factors[actor].append(args[4])  # the factor of each mini-batch
    per_epoch = len(factors[first]) // 5  # update_epochs 5: every epoch covers the batch once
    assert torch.cat(factors[first]).eq(1).all()
    expected = happo.aggregate_ratio(after - before, how)
    if "--factor-clip" in flags:
        assert ((expected < 0.99) | (expected > 1.01)).any()  # the clip has something to do
        expected = expected.clamp(0.99, 1.01)
    used = torch.cat(factors[second][:per_epoch]).sort().values
    torch.testing.assert_close(used, expected.sort().values, rtol=0, atol=0)
    assert (used - 1).abs().max() > 1e-4  # the second agent really is re-weighted


@pytest.mark.parametrize("value_target", ["agent", "team-sum"])
def test_each_agent_trains_on_its_own_advantage_column(tmp_path, monkeypatch, value_target):
    """Per-agent values: each agent's epochs see its own advantage column; a team value: the same one."""
    calls = run_one_iteration_recording_the_update(tmp_path, monkeypatch, ["--value-target", value_target])
    seen = {}
    for name, actor, args, _ in calls:
        if name == "happo_actor_loss":
            seen.setdefault(actor, []).append(args[3])
    first, second = (torch.cat(a[: len(a) // 5]).sort().values for a in seen.values())  # one of the 5 epochs
    assert torch.equal(first, second) == (value_target == "team-sum")


def test_factor_receives_no_gradient_and_scales_the_loss():
    ratio = torch.tensor([1.1, 0.9], requires_grad=True)
    factor = torch.tensor([2.0, 0.5], requires_grad=True)
    loss, _ = happo.clipped_policy_loss(ratio, torch.tensor([1.0, 1.0]), 0.2, factor)
    loss.backward()
    assert factor.grad is None
    assert loss.item() == pytest.approx(-(2.0 * 1.1 + 0.5 * 0.9) / 2)
    torch.testing.assert_close(ratio.grad, torch.tensor([-1.0, -0.25]))


def test_agent_order_random_reproducible_and_fixed():
    def orders(seed):
        gen = torch.Generator().manual_seed(seed)
        return [tuple(happo.agent_order(2, False, gen)) for _ in range(30)]

    first = orders(5)
    assert first == orders(5)
    assert set(first) == {(0, 1), (1, 0)}  # both orders occur: redrawn every iteration
    assert orders(5) != orders(6)
    assert happo.agent_order(2, True, torch.Generator()) == [0, 1]


def printed_orders(stdout):
    return re.findall(r"order=(\[[\d, ]+\])", stdout)


@pytest.mark.parametrize("how", ["prod", "mean"])
def test_smoke_run_factor_tags_and_save_evaluate(tmp_path, how):
    out = run_script("happo_mapush.py", TINY + ["--action-aggregation", how], tmp_path)
    assert len(printed_orders(out)) == 3
    run_dir = single_run_dir(tmp_path)
    tags = event_tags(run_dir)
    for key in ("mean", "min", "max", "std", "outside_clip"):  # the factor once: by position >= 1, and final
        assert f"factor/position1/{key}" in tags and f"factor/final/{key}" in tags
    assert not [tag for tag in tags if tag.startswith(("factor/agent", "factor/position0"))]
    for i in range(2):
        for key in ("policy_loss", "approx_kl", "clipfrac", "entropy", "grad_norm", "mean_outside"):
            assert f"losses/agent{i}/{key}" in tags
    assert {"charts/success_rate", "charts/episodic_return", "losses/value_loss", "eval/success_rate"} <= tags
    assert "charts/action_mean_outside" in tags
    ckpt = glob.glob(os.path.join(run_dir, "*.cleanrl_model"))[0]
    saved = happo.load_checkpoint(ckpt, torch.device("cpu"))
    assert saved["algo"] == "happo" and {key.split(".")[0] for key in saved["actors"]} == {"0", "1"}  # two actors
    assert saved["args"]["action_aggregation"] == how
    out = run_script(
        "happo_mapush.py", ["--eval-checkpoint", ckpt, "--eval-envs", 3, "--max-episode-steps", 5], tmp_path
    )
    metrics = re.search(r"\{.*\}", out).group(0)
    assert "success_rate" in metrics


def test_orders_and_parameters_reproducible_with_seed(tmp_path):
    outs, params = [], []
    for k, extra in enumerate([[], [], ["--fixed-order"]]):
        cwd = tmp_path / str(k)
        cwd.mkdir()
        outs.append(run_script("happo_mapush.py", TINY + ["--total-timesteps", 384] + extra, cwd))
        ckpt = glob.glob(os.path.join(single_run_dir(cwd), "*.cleanrl_model"))[0]
        params.append(torch.load(ckpt, weights_only=True)["actors"])
    assert printed_orders(outs[0]) == printed_orders(outs[1])
    assert len(set(printed_orders(outs[0]))) == 2  # 6 iterations with seed 1 see both orders
    assert set(printed_orders(outs[2])) == {"[0, 1]"}
    assert params[0].keys() == params[1].keys()
    for key in params[0]:
        assert torch.equal(params[0][key], params[1][key]), key
    assert not math.isnan(params[0]["0.std_theta"].sum().item())


def test_resume_continues_exactly_and_refuses_changed_flags(tmp_path):
    """Includes the agent orders: the order generator is restored with the rest."""
    assert_resume_is_exact("happo_mapush.py", TINY, 64, tmp_path)
    path = str(tmp_path / "saved.cleanrl_model")
    saved = {"algo": "happo", "layout": happo.CHECKPOINT_LAYOUT, "args": asdict(happo.Args())}
    torch.save(happo.floats_as_tensors(saved), path)
    cpu = torch.device("cpu")
    happo.load_checkpoint(path, cpu, resume_args=happo.Args(total_timesteps=10, checkpoint_minutes=1))
    with pytest.raises(SystemExit, match="--action-aggregation 'prod' -> 'mean'"):
        happo.load_checkpoint(path, cpu, resume_args=happo.Args(action_aggregation="mean"))
