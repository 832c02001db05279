"""The dream (wmtutor/dream.py): a Gymnasium vector env inside M, and batched generations."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from wmtutor.dream import DreamEnv, dream_generation, dream_one_by_one
from wmtutor.mdnrnn import MDNRNN


@pytest.fixture(scope="module")
def mdnrnn():
    torch.manual_seed(0)
    model = MDNRNN(z_dim=6, action_dim=3, hidden=12).eval()
    with torch.no_grad():  # a done head that fires now and then
        model.done_head.weight.mul_(20.0)
        model.done_head.bias.fill_(-1.0)
    return model


def test_dream_env_follows_the_vector_env_api(mdnrnn):
    z0 = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    env = DreamEnv(mdnrnn, "doom", z0, num_envs=5, tau=1.0, max_steps=15)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.single_action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (5, 6 + 2 * 12)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs) and info == {}
    env.action_space.seed(0)
    ended = 0
    for _ in range(40):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == (5, 30) and reward.shape == terminated.shape == (5,)
        assert terminated.dtype == bool and np.all((reward == 0) | (reward == 1))
        ended += int((terminated | truncated).sum())
        assert np.all(env.steps <= 15)
    assert ended > 0  # episodes end (done head or the cap) and restart
    again = DreamEnv(mdnrnn, "doom", z0, num_envs=5, tau=1.0, max_steps=15)
    np.testing.assert_array_equal(again.reset(seed=1)[0], env.reset(seed=1)[0])
    with pytest.raises(ValueError, match="initial_z must be"):
        DreamEnv(mdnrnn, "doom", np.zeros((3, 4)))


def test_batched_generation_matches_one_episode_at_a_time(mdnrnn):
    rng = np.random.default_rng(0)
    params = rng.normal(0, 1.0, (4, 6 + 12 + 1))
    z0 = rng.normal(size=(3, 6)).astype(np.float32)
    kwargs = dict(tau=1.0, max_steps=30, seed=5)
    batched = dream_generation(mdnrnn, "doom", params, z0, 3, **kwargs)
    alone = dream_one_by_one(mdnrnn, "doom", params, z0, 3, **kwargs)
    assert batched.shape == (4, 3) and batched.min() >= 1 and batched.max() <= 30
    assert len(np.unique(batched)) > 2  # episodes really end at different times
    # same noise, same controllers: the same returns (up to float rounding right at the
    # done threshold, which batched and single matrix products may round differently)
    assert np.mean(batched == alone) >= 0.9 and np.abs(batched - alone).max() <= 2
    cold = [dream_generation(mdnrnn, "doom", params, z0, 3, tau=0.0, max_steps=30, seed=s)
            for s in (1, 2)]  # fmt: skip
    np.testing.assert_array_equal(cold[0], cold[1])  # tau = 0: no randomness left
