"""mappo_mapush.py: known answers for its maths, then end-to-end runs of the script."""

import glob
import math
import os
from dataclasses import asdict

import pytest
import torch
from conftest import assert_resume_is_exact, event_tags, run_script, single_run_dir

import mappo_mapush as mappo

TINY = ["--num-envs", 8, "--num-steps", 8, "--total-timesteps", 128, "--max-episode-steps", 6, "--eval-envs", 4]
TINY += ["--hidden-sizes", 16, 16]


def test_gae_known_answer_with_termination_and_truncation():
    gamma, lam = 0.9, 0.8
    # env 0 terminates at t=1. env 1 is truncated at t=2: the rollout has already added the
    # bootstrap gamma * V(final state) = 0.9 * 5 to that step's reward (1 + 4.5).
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 5.5], [4.0, 0.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 1.0], [1.5, 1.0], [2.0, 1.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    next_value = torch.tensor([3.0, 2.0])
    adv, ret = mappo.compute_gae(rewards, values, next_value, dones, gamma, lam)
    expected = torch.tensor([[2.12, 2.1608], [1.0, 3.14], [6.684, 4.5], [4.7, 0.8]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_valuenorm_known_answer():
    norm = mappo.ValueNorm(beta=0.5)
    norm.update(torch.tensor([1.0, 2.0, 3.0]))
    mean, var = norm.stats()
    assert mean.item() == pytest.approx(2.0) and var.item() == pytest.approx(2.0 / 3.0)
    assert norm.normalize(torch.tensor(3.0)).item() == pytest.approx(1.0 / math.sqrt(2.0 / 3.0))
    norm.update(torch.tensor([10.0]))
    # Debiased EMA: mean = (0.5*0.5*2 + 0.5*10) / (0.5*0.5 + 0.5), same for the mean square.
    mean, var = norm.stats()
    assert mean.item() == pytest.approx(22.0 / 3.0)
    assert var.item() == pytest.approx((0.5 * 14.0 / 3.0 + 100.0) / 1.5 - (22.0 / 3.0) ** 2, rel=1e-5)
    x = torch.tensor([-4.0, 0.5, 17.0])
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
    # Constant targets: the variance floor 1e-2 keeps the std at 0.1.
    flat = mappo.ValueNorm()
    flat.update(torch.full((5,), 3.0))
    assert flat.stats()[1].item() == pytest.approx(1e-2)
    assert flat.normalize(torch.tensor(3.5)).item() == pytest.approx(5.0, rel=1e-4)


def test_default_valuenorm_is_a_cumulative_average():
    norm = mappo.ValueNorm()
    for batch in ([1.0, 1.0], [3.0, 3.0], [5.0, 5.0]):
        norm.update(torch.tensor(batch))
    assert norm.stats()[0].item() == pytest.approx(3.0, rel=1e-4)  # beta ~ 1: plain mean of batches


def test_ratio_aggregation():
    logratio = torch.log(torch.tensor([[2.0, 0.5, 1.5]]))
    assert mappo.aggregate_ratio(logratio, "prod").item() == pytest.approx(1.5)
    assert mappo.aggregate_ratio(logratio, "mean").item() == pytest.approx(4.0 / 3.0)


def test_policy_loss_and_clipfrac_hand_computed():
    ratio = torch.tensor([0.5, 1.0, 1.3, 1.1])
    adv = torch.tensor([1.0, -1.0, 2.0, -2.0])
    loss, clipfrac = mappo.clipped_policy_loss(ratio, adv, 0.2)
    # min(rA, clip(r)A) = [0.5, -1, 2.4, -2.2] -> mean -0.075, loss +0.075.
    assert loss.item() == pytest.approx(0.075)
    assert clipfrac.item() == pytest.approx(0.5)


def test_value_loss_huber_and_clipping():
    one = torch.tensor([1.0])
    # Value moved from 0 to 2 for a target of 1: clipped prediction 0.2 has error 0.8 (0.32),
    # the unclipped error 1 (0.5); the max is kept.
    loss = mappo.value_loss_fn(2 * one, 0 * one, one, 0.2, 10.0, True)
    assert loss.item() == pytest.approx(0.5)
    assert mappo.value_loss_fn(0 * one, 0 * one, 30 * one, 0.2, 10.0, False).item() == pytest.approx(250.0)


def test_actor_matches_harl_parametrisation():
    actor = mappo.Actor(8, 3, (16, 16))
    mean, std = actor(torch.randn(5, 8))
    assert mean.shape == (5, 3) and mean.abs().max() < 0.2  # output gain 0.01
    torch.testing.assert_close(std, torch.full((3,), 0.5 * torch.sigmoid(torch.tensor(1.0)).item()))
    assert isinstance(actor.base[0], torch.nn.LayerNorm)  # input LayerNorm, as HARL
    assert [type(m).__name__ for m in actor.base[1:4]] == ["Linear", "ReLU", "LayerNorm"]


def test_separate_actors_give_per_agent_distributions():
    actors = torch.nn.ModuleList([mappo.Actor(8, 3, (16,)), mappo.Actor(8, 3, (16,))])
    with torch.no_grad():
        actors[1].mean.bias.fill_(1.0)
    dist = mappo.policy(actors, torch.zeros(4, 2, 8))
    assert dist.mean.shape == (4, 2, 3)
    assert torch.allclose(dist.mean[:, 1], torch.ones(4, 3), atol=0.1)
    assert dist.mean[:, 0].abs().max() < 0.1


def test_smoke_run_logs_tags_saves_and_evaluates(tmp_path):
    out = run_script("mappo_mapush.py", TINY + ["--save-model", "--capture-video", "--checkpoint-every", 1], tmp_path)
    assert "evaluation on 4 envs" in out
    run_dir = single_run_dir(tmp_path)
    tags = event_tags(run_dir)
    expected = {
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "charts/learning_rate",
        "charts/success_rate",
        "charts/action_std",
        "charts/action_mean_outside",
        "losses/bounds_loss",
        "losses/value_loss",
        "losses/policy_loss",
        "losses/entropy",
        "losses/old_approx_kl",
        "losses/approx_kl",
        "losses/clipfrac",
        "losses/explained_variance",
        "losses/actor_grad_norm",
        "losses/critic_grad_norm",
        "rewards/progress",
        "rewards/ocb",
        "rewards/success",
        "eval/success_rate",
    }
    assert expected <= tags, expected - tags
    assert os.path.getsize(os.path.join(run_dir, "eval.gif")) > 1000
    # Evaluate the checkpoint without the training command line.
    ckpt = glob.glob(os.path.join(run_dir, "*.cleanrl_model"))[0]
    out = run_script(
        "mappo_mapush.py", ["--eval-checkpoint", ckpt, "--eval-envs", 3, "--max-episode-steps", 5], tmp_path
    )
    assert "success_rate" in out and "collaboration_degree" in out
    actors, critic, value_norm, saved = mappo.load_checkpoint(ckpt, torch.device("cpu"))
    assert tuple(saved["hidden_sizes"]) == (16, 16) and len(actors) == 1
    assert value_norm.debiasing_term.item() > 0  # the value normaliser was trained and saved


def test_same_seed_same_parameters_and_separate_actors(tmp_path):
    params = []
    for k, extra in enumerate([[], [], ["--seed", 2], ["--no-share-param"]]):
        cwd = tmp_path / str(k)
        cwd.mkdir()
        run_script("mappo_mapush.py", TINY + ["--save-model"] + extra, cwd)
        ckpt = glob.glob(os.path.join(single_run_dir(cwd), "*.cleanrl_model"))[0]
        params.append(torch.load(ckpt, weights_only=False))
    same, again, other_seed, separate = params
    for key, value in same["actors"][0].items():
        assert torch.equal(value, again["actors"][0][key]), key
    assert not torch.equal(same["actors"][0]["mean.weight"], other_seed["actors"][0]["mean.weight"])
    assert len(separate["actors"]) == 2


def test_reward_scale_and_variant_flags_reach_the_learner(tmp_path):
    """--reward-scale multiplies what the critic learns: x1000 turns per-step rewards of about -0.01
    into -10, so the value normaliser's mean is far below anything scale 1 produces (~ -0.05)."""
    flags = ["--save-model", "--reward-scale", 1000, "--no-bootstrap-timeouts", "--critic-reward", "mean"]
    flags += ["--team-reward", "--collision-scale", -0.0008, "--std-type", "free", "--anneal-lr"]
    run_script("mappo_mapush.py", TINY + flags, tmp_path)
    ckpt = glob.glob(os.path.join(single_run_dir(tmp_path), "*.cleanrl_model"))[0]
    actors, _, value_norm, saved = mappo.load_checkpoint(ckpt, torch.device("cpu"))
    assert value_norm.stats()[0].item() < -5.0
    assert saved["std_type"] == "free" and actors[0].std().allclose(torch.ones(3), atol=0.05)
    assert saved["team_reward"] and saved["collision_scale"] == -0.0008


def test_resume_continues_exactly_and_refuses_changed_flags(tmp_path):
    assert_resume_is_exact("mappo_mapush.py", TINY + ["--no-share-param"], 64, tmp_path)
    saved = asdict(mappo.Args())
    mappo.check_resume(saved, mappo.Args(total_timesteps=10, eval_envs=3))  # run length and I/O may change
    with pytest.raises(ValueError, match="--gamma 0.99 -> 0.9"):
        mappo.check_resume(saved, mappo.Args(gamma=0.9))


def test_bounds_loss_known_answer():
    """0 inside [-1, 1], squared excess outside, summed over action dimensions."""
    mean = torch.tensor([[0.5, 1.5, -2.0], [1.0, -1.0, 0.0]])
    assert torch.allclose(mappo.bounds_loss(mean), torch.tensor([0.25 + 1.0, 0.0]))
    assert mappo.bounds_loss(torch.zeros(3, 2, 3)).shape == (3, 2)
