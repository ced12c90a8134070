"""happo_mapush.py: the HAPPO factor against its maths, update order, then end-to-end runs."""

import copy
import glob
import math
import os
import re
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
from conftest import assert_resume_is_exact, event_tags, run_script, single_run_dir

import happo_mapush as happo
import mappo_mapush as mappo

TINY = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 192, "--max-episode-steps", 6, "--eval-envs", 4]
TINY += ["--hidden-sizes", 16, 16]


def update_args(**overrides):
    args = dict(num_minibatches=2, update_epochs=3, clip_coef=0.2, ent_coef=0.01, max_grad_norm=10.0)
    args.update(action_aggregation="prod", factor_clip=None)
    args.update(overrides)
    return SimpleNamespace(**args)


def make_batch(num_agents, B=64, seed=0):
    """Actors, optimisers and a rollout-like batch whose stored log-probs come from the actors."""
    torch.manual_seed(seed)
    actors = torch.nn.ModuleList([happo.Actor(8, 3, (16, 16)) for _ in range(num_agents)])
    optimizers = [torch.optim.Adam(a.parameters(), lr=3e-3, eps=1e-5) for a in actors]
    obs = torch.randn(B, num_agents, 8)
    with torch.no_grad():
        dist = happo.policy(actors, obs)
        actions = dist.sample()
        logprobs = dist.log_prob(actions)
    advantages = torch.randn(B)
    return actors, optimizers, obs, actions, logprobs, advantages


def test_one_agent_happo_update_equals_ppo_update():
    actors, optimizers, obs, actions, logprobs, adv = make_batch(1)
    args = update_args()
    reference = copy.deepcopy(actors[0])
    ref_opt = torch.optim.Adam(reference.parameters(), lr=3e-3, eps=1e-5)

    torch.manual_seed(42)
    happo.happo_update_actors(actors, optimizers, obs, actions, logprobs, adv, [0], args)

    torch.manual_seed(42)  # plain PPO with MAPPO's loss on the same batch and the same permutations
    B = obs.shape[0]
    for _ in range(args.update_epochs):
        inds = torch.randperm(B)
        for start in range(0, B, B // args.num_minibatches):
            mb = inds[start : start + B // args.num_minibatches]
            mean, std = reference(obs[mb, 0])
            dist = torch.distributions.Normal(mean, std.expand_as(mean))
            ratio = mappo.aggregate_ratio(dist.log_prob(actions[mb, 0]) - logprobs[mb, 0], "prod")
            loss, _ = mappo.clipped_policy_loss(ratio, adv[mb], args.clip_coef)
            loss = loss - args.ent_coef * dist.entropy().sum(-1).mean()
            ref_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), args.max_grad_norm)
            ref_opt.step()
    for (name, p), q in zip(actors[0].named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)


@pytest.mark.parametrize("how", ["prod", "mean"])
def test_factor_is_product_of_earlier_agents_ratios(how):
    actors, optimizers, obs, actions, logprobs, adv = make_batch(3, seed=1)
    args = update_args(action_aggregation=how)
    order = [2, 0, 1]
    _, factors_used, final = happo.happo_update_actors(actors, optimizers, obs, actions, logprobs, adv, order, args)
    # Independently: agent j's new/old ratio at the stored actions, aggregated over dimensions.
    with torch.no_grad():
        new = happo.policy(actors, obs).log_prob(actions)
    per_dim = (new - logprobs).exp()  # (B, 3 agents, 3 dims)
    ratio = per_dim.prod(-1) if how == "prod" else per_dim.mean(-1)
    expected = torch.ones(obs.shape[0])
    for j in order:
        torch.testing.assert_close(factors_used[j], expected, rtol=1e-5, atol=1e-6)
        expected = expected * ratio[:, j]
    torch.testing.assert_close(final, expected, rtol=1e-5, atol=1e-6)
    assert factors_used[2].eq(1).all()  # the first agent trains with M = 1
    assert (factors_used[1] - 1).abs().max() > 1e-3  # later agents really are re-weighted
    assert not final.requires_grad


def test_update_factor_hand_values():
    factor = torch.tensor([1.0, 2.0])
    new = torch.log(torch.tensor([[2.0, 0.5, 1.5], [1.0, 1.0, 4.0]]))
    old = torch.zeros(2, 3)
    torch.testing.assert_close(happo.update_factor(factor, new, old, "prod"), torch.tensor([1.5, 8.0]))
    torch.testing.assert_close(happo.update_factor(factor, new, old, "mean"), torch.tensor([4.0 / 3.0, 4.0]))


def test_factor_receives_no_gradient_and_scales_the_loss():
    ratio = torch.tensor([1.1, 0.9], requires_grad=True)
    factor = torch.tensor([2.0, 0.5], requires_grad=True)
    loss, _ = happo.clipped_policy_loss(ratio, torch.tensor([1.0, 1.0]), 0.2, factor)
    loss.backward()
    assert factor.grad is None
    assert loss.item() == pytest.approx(-(2.0 * 1.1 + 0.5 * 0.9) / 2)
    torch.testing.assert_close(ratio.grad, torch.tensor([-1.0, -0.25]))


def test_factor_clip_bounds_the_factor_used():
    actors, optimizers, obs, actions, logprobs, adv = make_batch(2, seed=3)
    with torch.no_grad():
        adv *= 50  # big advantages: large policy changes, factor far from 1
    args = update_args(factor_clip=(0.9, 1.1), update_epochs=10)
    _, used, final = happo.happo_update_actors(actors, optimizers, obs, actions, logprobs, adv, [0, 1], args)
    assert used[1].min() >= 0.9 and used[1].max() <= 1.1
    assert ((final < 0.9) | (final > 1.1)).any()  # the running product itself is not clipped


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
    torch.save({"algo": "happo", "layout": happo.CHECKPOINT_LAYOUT, "args": asdict(happo.Args())}, path)
    cpu = torch.device("cpu")
    happo.load_checkpoint(path, cpu, resume_args=happo.Args(total_timesteps=10, checkpoint_minutes=1))
    with pytest.raises(SystemExit, match="--action-aggregation 'prod' -> 'mean'"):
        happo.load_checkpoint(path, cpu, resume_args=happo.Args(action_aggregation="mean"))


def test_each_agent_trains_on_its_own_advantage_column():
    """(B, A) advantages: agent i sees column i; (B,) or (B, 1) team advantages reach every agent."""

    def params_after(advantages):
        actors, optimizers, obs, actions, logprobs, _ = make_batch(2, seed=4)
        torch.manual_seed(7)
        happo.happo_update_actors(actors, optimizers, obs, actions, logprobs, advantages, [0, 1], update_args())
        return [torch.cat([p.detach().flatten() for p in actor.parameters()]) for actor in actors]

    torch.manual_seed(5)
    a, b = torch.randn(64), torch.randn(64)
    team, team_column, own = params_after(a), params_after(a[:, None]), params_after(torch.stack((a, b), 1))
    same = params_after(torch.stack((a, a), 1))
    for x, y, z in zip(team, team_column, same):
        assert torch.equal(x, y) and torch.equal(x, z)
    assert torch.equal(own[0], team[0])  # agent 0 updates first, on column 0 = a
    assert not torch.allclose(own[1], team[1])  # agent 1 on column 1 = b
