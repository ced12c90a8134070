"""mappo_mapush.py: known answers for its maths, then end-to-end runs of the script."""

import glob
import math
import os
import re
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
from conftest import assert_resume_is_exact, event_tags, run_script, single_run_dir

import envs
import happo_mapush as happo
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


@pytest.mark.parametrize("script", [mappo, happo])
def test_value_loss_huber_and_clipping(script):
    one = torch.tensor([1.0])

    def loss(new_value, old_value, target, clip_vloss):
        args = SimpleNamespace(clip_coef=0.2, huber_delta=10.0, clip_vloss=clip_vloss)
        return script.critic_loss(lambda states: new_value, None, old_value, target, args).item()

    # Value moved from 0 to 2 for a target of 1: clipped prediction 0.2 has error 0.8 (0.32),
    # the unclipped error 1 (0.5); the max is kept.
    assert loss(2 * one, 0 * one, one, True) == pytest.approx(0.5)
    assert loss(0 * one, 0 * one, 30 * one, False) == pytest.approx(250.0)  # Huber: 10 * (30 - 5)
    assert loss(0 * one, 0 * one, 3 * one, False) == pytest.approx(4.5)  # quadratic below delta


def test_value_norm_off_is_the_identity():
    norm = mappo.ValueNorm(enabled=False)
    x = torch.tensor([3.0, -7.0])
    norm.update(x)
    assert torch.equal(norm.normalize(x), x) and torch.equal(norm.denormalize(x), x)
    assert norm.debiasing_term.item() == 0.0  # never updated


# HARL's actor: std = 0.5 sigmoid(theta), input LayerNorm, unbounded mean.
HARL_ACTOR = dict(std_type="harl", std_max=0.5, input_layernorm=True, tanh_mean=False)


def test_actor_matches_harl_parametrisation():
    actor = mappo.Actor(8, 3, (16, 16), **HARL_ACTOR)
    mean, std = actor(torch.randn(5, 8))
    assert mean.shape == (5, 3) and mean.abs().max() < 0.2  # output gain 0.01
    torch.testing.assert_close(std, torch.full((3,), 0.5 * torch.sigmoid(torch.tensor(1.0)).item()))
    assert isinstance(actor.base[0], torch.nn.LayerNorm)  # input LayerNorm, as HARL
    assert [type(m).__name__ for m in actor.base[1:4]] == ["Linear", "ReLU", "LayerNorm"]


def test_separate_actors_give_per_agent_distributions():
    actors = torch.nn.ModuleList([mappo.Actor(8, 3, (16,), **HARL_ACTOR), mappo.Actor(8, 3, (16,), **HARL_ACTOR)])
    with torch.no_grad():
        actors[1].mean.bias.fill_(1.0)
    dist = mappo.policy(actors, torch.zeros(4, 2, 8))
    assert dist.mean.shape == (4, 2, 3)
    assert torch.allclose(dist.mean[:, 1], torch.ones(4, 3), atol=0.1)
    assert dist.mean[:, 0].abs().max() < 0.1


def test_smoke_run_logs_tags_saves_and_evaluates(tmp_path):
    out = run_script("mappo_mapush.py", TINY + ["--capture-video"], tmp_path)
    assert "evaluation on 4 envs" in out and "run folder: runs/mapush__mappo_mapush__1__" in out
    assert "evaluation video: runs/" in out and "elapsed=0:00:" in out and " eta=0:00:" in out
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
    checkpoint = mappo.load_checkpoint(ckpt, torch.device("cpu"))  # weights_only: tensors and plain data
    obs_encoder, _, actors, critic, value_norm = mappo.restore_networks(checkpoint, torch.device("cpu"))
    assert tuple(checkpoint["args"]["hidden_sizes"]) == (16, 16) and len(actors) == 1
    assert value_norm.debiasing_term.item() > 0  # the value normaliser was trained and saved
    # The observation statistics were saved: 2 iterations x 8 steps x 8 envs x 2 agents observations.
    assert obs_encoder.count.item() == pytest.approx(256, abs=1e-3) and obs_encoder.out_dim == 10


def test_same_seed_same_parameters_and_separate_actors(tmp_path):
    params = []
    for k, extra in enumerate([[], [], ["--seed", 2], ["--no-share-param"]]):
        cwd = tmp_path / str(k)
        cwd.mkdir()
        run_script("mappo_mapush.py", TINY + extra, cwd)
        ckpt = glob.glob(os.path.join(single_run_dir(cwd), "*.cleanrl_model"))[0]
        params.append(torch.load(ckpt, weights_only=True))
    same, again, other_seed, separate = params
    for key, value in same["actors"].items():
        assert torch.equal(value, again["actors"][key]), key
    assert not torch.equal(same["actors"]["0.mean.weight"], other_seed["actors"]["0.mean.weight"])
    assert {key.split(".")[0] for key in same["actors"]} == {"0"}  # one shared actor
    assert {key.split(".")[0] for key in separate["actors"]} == {"0", "1"}  # one per agent


def test_reward_scale_and_variant_flags_reach_the_learner(tmp_path):
    """--reward-scale multiplies what the critic learns: x1000 turns per-step rewards of about -0.01
    into -10, so the value normaliser's mean is far below anything scale 1 produces (~ -0.05)."""
    flags = ["--reward-scale", 1000, "--no-bootstrap-timeouts", "--value-target", "team-mean"]
    flags += [
        "--env-options",
        "team_reward=True",
        "collision_punishment_scale=-0.0008",
        "--std-type",
        "free",
        "--anneal-lr",
    ]
    run_script("mappo_mapush.py", TINY + flags, tmp_path)
    ckpt = glob.glob(os.path.join(single_run_dir(tmp_path), "*.cleanrl_model"))[0]
    checkpoint = mappo.load_checkpoint(ckpt, torch.device("cpu"))
    _, _, actors, _, value_norm = mappo.restore_networks(checkpoint, torch.device("cpu"))
    saved = checkpoint["args"]
    assert value_norm.stats()[0].item() < -5.0
    assert saved["std_type"] == "free" and actors[0].std().allclose(torch.ones(3), atol=0.05)
    assert envs.parse_task_options(saved["env_options"]) == {"team_reward": True, "collision_punishment_scale": -0.0008}


def test_resume_continues_exactly_and_refuses_changed_flags(tmp_path):
    assert_resume_is_exact("mappo_mapush.py", TINY + ["--no-share-param"], 64, tmp_path)
    path = str(tmp_path / "saved.cleanrl_model")
    saved = {"algo": "mappo", "layout": mappo.CHECKPOINT_LAYOUT, "args": asdict(mappo.Args())}
    torch.save(mappo.floats_as_tensors(saved), path)
    cpu = torch.device("cpu")
    mappo.load_checkpoint(path, cpu, resume_args=mappo.Args(total_timesteps=10, eval_envs=3))  # run length, I/O
    with pytest.raises(SystemExit, match="--gamma 0.99 -> 0.9"):
        mappo.load_checkpoint(path, cpu, resume_args=mappo.Args(gamma=0.9))


@pytest.mark.parametrize("script", [mappo, happo])
def test_input_encoder_running_statistics_known_answer(script):
    """Merged batch statistics equal those of all the data at once; output standardised, clipped."""
    torch.manual_seed(0)
    data = torch.randn(3000, 5, dtype=torch.float64).float() * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0])
    data[:, 4] += 7.0
    encoder = script.InputEncoder(5)
    for chunk in data.split([1000, 1, 1999]):
        encoder.update(chunk.reshape(-1, 1, 5) if len(chunk) > 1 else chunk)  # any leading shape
    prior, N = 1e-4, 3000  # Gymnasium's prior: weight 1e-4 on mean 0, variance 1
    n = prior + N
    data_mean, data_var = data.double().mean(0), data.double().var(0, unbiased=False)
    expected_mean = N * data_mean / n  # Chan's merge is exact, however the data is split
    expected_var = (prior + N * data_var + data_mean**2 * prior * N / n) / n
    torch.testing.assert_close(encoder.mean.double(), expected_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encoder.var.double(), expected_var, rtol=1e-4, atol=1e-6)
    assert encoder.count.item() == pytest.approx(n)
    out = encoder(data)
    torch.testing.assert_close(out.mean(0), torch.zeros(5), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    far = encoder(torch.full((1, 5), 1e6))
    assert far.max().item() == 10.0  # clipped at +-10
    before = encoder.count.clone()
    encoder(data)  # reading does not update
    assert torch.equal(encoder.count, before)
    assert torch.equal(script.InputEncoder(5, normalise=False)(data), data)  # HARL: no normalisation


@pytest.mark.parametrize("script", [mappo, happo])
def test_obs_encoding_turns_the_two_yaws_into_cos_sin(script):
    encoder = script.InputEncoder(8, envs.OBS_YAW_FEATURES, normalise=False)
    obs = torch.arange(8.0).repeat(2, 1)
    obs[0, 4], obs[0, 7] = 0.05, 2 * math.pi - 0.05  # either side of the jump at 0 / 2 pi
    obs[1, 4], obs[1, 7] = 2 * math.pi - 0.05, 0.05
    out = encoder(obs)
    assert encoder.out_dim == 10 and out.shape == (2, 10)
    torch.testing.assert_close(out[:, :6], obs[:, [0, 1, 2, 3, 5, 6]])  # the other features unchanged
    torch.testing.assert_close(
        out[0, 6:], torch.tensor([math.cos(0.05), math.cos(0.05), math.sin(0.05), -math.sin(0.05)])
    )
    torch.testing.assert_close(out[0, 6:8], out[1, 6:8])  # near-equal angles, near-equal features
    assert (out[0] - out[1]).abs().max() < 0.11


def test_per_agent_critic_shapes_and_agent_ids():
    state = torch.randn(4, 5, 23)
    team = mappo.Critic(23, 2, (16,), per_agent=False, input_layernorm=True)
    per_agent = mappo.Critic(23, 2, (16,), per_agent=True, input_layernorm=False)
    assert team(state).shape == (4, 5, 1) and per_agent(state).shape == (4, 5, 2)
    assert per_agent.base[0].in_features == 25  # state + agent one-hot
    values = per_agent(state)
    assert not torch.allclose(values[..., 0], values[..., 1])  # the one-hot tells the agents apart
    with torch.no_grad():  # each column is V(state, e_i)
        manual = per_agent.value(per_agent.base(torch.cat((state, torch.tensor([0.0, 1.0]).expand(4, 5, 2)), -1)))
    torch.testing.assert_close(values[..., 1], manual.squeeze(-1))


def test_gae_per_agent_equals_gae_of_each_agent_alone():
    """(T, E, V) rewards and values with dones (T, E, 1): column i is GAE of agent i's own stream."""
    torch.manual_seed(0)
    T, E, V = 7, 3, 2
    rewards, values, next_value = torch.randn(T, E, V), torch.randn(T, E, V), torch.randn(E, V)
    dones = (torch.rand(T, E, 1) < 0.3).float()
    adv, ret = mappo.compute_gae(rewards, values, next_value, dones, 0.97, 0.9)
    assert adv.shape == (T, E, V)
    for i in range(V):
        adv_i, ret_i = mappo.compute_gae(rewards[..., i], values[..., i], next_value[:, i], dones[..., 0], 0.97, 0.9)
        torch.testing.assert_close(adv[..., i], adv_i)
        torch.testing.assert_close(ret[..., i], ret_i)


HARL_FLAGS = dict(num_minibatches=1, std_max=0.5, obs_norm=False, cos_sin_yaws=False, input_layernorm=True)
HARL_FLAGS.update(value_target="team-sum")


@pytest.mark.parametrize("script", [mappo, happo])
def test_harl_flags_build_harls_networks(script):
    """HARL's settings: raw 8-D input, input LayerNorm, std <= 0.5 from 0.5 sigmoid(1), team V(state).
    (With these flags both scripts reproduce the HARL-equivalent updates bit for bit; see docs.)"""
    args = script.Args(**HARL_FLAGS)
    obs_encoder, state_encoder, actors, critic = script.make_networks(args, 8, 23, 3, 2, torch.device("cpu"))
    obs = torch.randn(4, 2, 8)
    assert torch.equal(obs_encoder(obs, update=True), obs) and torch.equal(state_encoder(obs[:, 0]), obs[:, 0])
    assert isinstance(actors[0].base[0], torch.nn.LayerNorm) and actors[0].base[0].normalized_shape == (8,)
    torch.testing.assert_close(actors[0].std(), torch.full((3,), 0.5 * torch.sigmoid(torch.tensor(1.0)).item()))
    assert critic(torch.randn(4, 23)).shape == (4, 1) and isinstance(critic.base[0], torch.nn.LayerNorm)
    # The defaults: encoded 10-D input without LayerNorm, std ceiling 1, per-agent values.
    obs_encoder, _, actors, critic = script.make_networks(script.Args(), 8, 23, 3, 2, torch.device("cpu"))
    assert obs_encoder.out_dim == 10 and isinstance(actors[0].base[0], torch.nn.Linear)
    assert actors[0].std().max().item() == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item())
    assert critic(torch.randn(4, 23)).shape == (4, 2)


def test_evaluation_reads_but_never_updates_the_observation_statistics():
    obs_encoder, _, actors, _ = mappo.make_networks(mappo.Args(hidden_sizes=(8,)), 8, 23, 3, 2, torch.device("cpu"))
    obs_encoder.update(torch.randn(50, 10))
    before = {k: v.clone() for k, v in obs_encoder.state_dict().items()}
    metrics = envs.evaluate(lambda obs: mappo.policy(actors, obs_encoder(obs)).mean, 4, "cpu", 0, max_episode_steps=5)
    assert set(metrics) == {"success_rate", "finish_time_s", "collaboration_degree"}
    for key, value in obs_encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("script", [mappo, happo])
def test_tanh_mean_keeps_action_means_inside_the_env_s_range(script):
    obs = torch.randn(64, 2, 8)
    for tanh_mean in (False, True):
        torch.manual_seed(0)
        networks = script.make_networks(script.Args(tanh_mean=tanh_mean), 8, 23, 3, 2, torch.device("cpu"))
        obs_encoder, _, actors, _ = networks
        with torch.no_grad():
            for actor in actors:
                actor.mean.weight.mul_(1000.0)  # a mean head driven far beyond the bounds
            mean = script.policy(actors, obs_encoder(obs)).mean
        assert (mean.abs().max() <= 1.0) == tanh_mean


@pytest.mark.parametrize("script", ["mappo_mapush.py", "happo_mapush.py"])
def test_the_best_periodic_evaluation_s_policy_is_kept_beside_the_last(script, tmp_path):
    flags = TINY + ["--total-timesteps", 4 * 64, "--eval-every", 1, "--eval-envs", 6, "--max-episode-steps", 12]
    out = run_script(script, flags, tmp_path)
    evals = re.findall(r"evaluation at global_step=(\d+) on 6 envs: \{'success_rate': ([\d.]+)", out)
    evals += [("256", rate) for rate in re.findall(r"evaluation on 6 envs: \{'success_rate': ([\d.]+)", out)]
    steps, rates = [int(step) for step, _ in evals], [float(rate) for _, rate in evals]  # the last: the final one
    assert steps == [64, 128, 192, 256]
    best = glob.glob(os.path.join(single_run_dir(tmp_path), "*_best.cleanrl_model"))
    assert len(best) == 1 and f"saved to {os.path.relpath(best[0], str(tmp_path))}" in out
    algo = script[:5]
    module = mappo if algo == "mappo" else happo
    checkpoint = module.load_checkpoint(best[0], torch.device("cpu"))
    assert checkpoint["global_step"] == steps[rates.index(max(rates))]  # the first of the best
    assert checkpoint["best_success"] == pytest.approx(max(rates))
    evaluated = run_script(script, ["--eval-checkpoint", best[0], "--eval-envs", 3], tmp_path)
    assert "success_rate" in evaluated
