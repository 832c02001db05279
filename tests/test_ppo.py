"""PPO in the dream (wmtutor/ppo.py): the SB3 adapter, training and resuming, and the actor
played as C (wmtutor.controller.PolicyController)."""

import dataclasses
import json
import tempfile

import numpy as np
import pytest
import torch

from wmtutor.controller import Controller, PolicyController, evaluate_params, load_policy
from wmtutor.dream import DreamEnv
from wmtutor.mdnrnn import MDNRNN
from wmtutor.ppo import PPO_CHECKPOINT, PPO_LOG, make_dream_vec_env, train_ppo
from wmtutor.presets import PPO

CONFIG = PPO(n_envs=4, n_steps=8, batch_size=16, epochs=2, net=(8,))


def dream(mdnrnn, n_envs=4, max_steps=5, **kw):
    z0 = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    return DreamEnv(mdnrnn, "doom", z0, num_envs=n_envs, tau=1.0, max_steps=max_steps, **kw)


def test_the_adapter_resets_an_ended_dream_in_the_same_step():
    never = MDNRNN(z_dim=6, action_dim=3, hidden=12).eval()
    with torch.no_grad():  # M never predicts death: only the cap ends a dream
        never.done_head.weight.zero_()
        never.done_head.bias.fill_(-20.0)
    env = make_dream_vec_env(dream(never), "zch")
    assert env.observation_space.shape == (6 + 2 * 12,) and env.action_space.n == 3
    env.seed(3)
    obs = env.reset()
    assert obs.shape == (4, 30)
    for t in range(1, 6):
        obs, reward, done, infos = env.step(np.array([0, 1, 2, 1]))
        assert obs.shape == (4, 30) and reward.dtype == np.float32
        if t < 5:
            assert not done.any() and all(i == {} for i in infos)
    assert done.all()  # the cap: truncated, so SB3 bootstraps from the terminal observation
    for info in infos:
        assert info["TimeLimit.truncated"] and info["episode"] == {"r": 5.0, "l": 5}
        assert info["terminal_observation"].shape == (30,)
    assert env.finished == [(5.0, 5)] * 4 and env.steps == 20
    # the returned observation is already the new dream's start: h and c are zero again
    np.testing.assert_array_equal(obs[:, 6:], 0)
    assert (env.dream.steps == 0).all()
    obs, reward, done, _ = env.step(np.zeros(4, dtype=int))
    assert reward.tolist() == [1.0] * 4 and not done.any()  # no step is lost to a reset


def test_the_adapter_refuses_a_game_with_continuous_actions(mdnrnn):
    model = MDNRNN(z_dim=6, action_dim=3, hidden=12)
    env = DreamEnv(model, "carracing", np.zeros((2, 6), np.float32), reward="predicted")
    with pytest.raises(ValueError, match="three choices"):
        make_dream_vec_env(env)


def test_dream_starts_drawn_from_v_s_posterior(mdnrnn):
    mu = np.zeros((10, 6), np.float32)
    env = DreamEnv(mdnrnn, "doom", mu, num_envs=500, initial_logvar=np.full((10, 6), np.log(4.0)))
    z = env.reset(seed=0)[0][:, :6]
    assert abs(z.std() - 2.0) < 0.1 and abs(z.mean()) < 0.1
    with pytest.raises(ValueError, match="initial_logvar must be"):
        DreamEnv(mdnrnn, "doom", mu, initial_logvar=np.zeros((3, 6)))


def test_ppo_trains_saves_resumes_and_its_actor_plays_as_sb3_would(mdnrnn, tmp_path, monkeypatch):
    temp = tmp_path / "temp"  # SB3's default logger makes a folder here on every learn()
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)  # else SB3 would write there
    chunk = CONFIG.n_envs * CONFIG.n_steps
    log = train_ppo(tmp_path / "ppo", dream(mdnrnn, max_steps=20), CONFIG, 2 * chunk, seed=1,
                    progress=False)  # fmt: skip
    assert list(temp.glob("SB3-*")) == []
    tmp_path = tmp_path / "ppo"
    assert [r["dream_steps"] for r in log] == [chunk, 2 * chunk]
    assert all(r["seconds"] > 0 for r in log)
    assert json.loads((tmp_path / PPO_LOG).read_text()) == log
    before = (tmp_path / PPO_CHECKPOINT).read_bytes()
    # done already: nothing is trained, nothing is rewritten
    again = train_ppo(tmp_path, dream(mdnrnn, max_steps=20), CONFIG, 2 * chunk, progress=False)
    assert again == log and (tmp_path / PPO_CHECKPOINT).read_bytes() == before
    # more steps: resumes from the checkpoint and appends
    more = train_ppo(tmp_path, dream(mdnrnn, max_steps=20), CONFIG, 3 * chunk, progress=False)
    assert more[:2] == log and more[2]["dream_steps"] == 3 * chunk
    assert more[2]["seconds"] > log[1]["seconds"]
    saved = torch.load(tmp_path / PPO_CHECKPOINT, weights_only=True)
    assert saved["dream_steps"] == 3 * chunk

    # the actor, rebuilt without SB3, picks the action SB3's own policy picks
    from stable_baselines3 import PPO as SB3PPO

    env = make_dream_vec_env(dream(mdnrnn, max_steps=20), "zch")
    model = SB3PPO("MlpPolicy", env, n_steps=8, batch_size=16,
                   policy_kwargs={"net_arch": list(CONFIG.net)}, device="cpu")  # fmt: skip
    model.policy.load_state_dict(saved["sb3_policy"])
    policy = load_policy(tmp_path / PPO_CHECKPOINT)
    assert isinstance(policy, PolicyController)
    rng = np.random.default_rng(0)
    z, h, c = rng.normal(size=(64, 6)), rng.normal(size=(64, 12)), rng.normal(size=(64, 12))
    x = Controller(6, 12, 1, "zch", False).features(z, h, c).numpy()
    expected, _ = model.predict(x, deterministic=True)
    y = policy(z, h, c)
    assert y.shape == (64, 1)
    np.testing.assert_array_equal(y[:, 0].numpy() + 1, expected)


def test_a_resume_with_other_sizes_or_another_m_is_refused(mdnrnn, tmp_path):
    chunk = CONFIG.n_envs * CONFIG.n_steps
    train_ppo(tmp_path, dream(mdnrnn), CONFIG, chunk, made_from={"mdnrnn": "a"}, progress=False)
    other = dataclasses.replace(CONFIG, n_steps=16)
    with pytest.raises(ValueError, match="n_steps"):
        train_ppo(tmp_path, dream(mdnrnn), other, 4 * chunk, made_from={"mdnrnn": "a"},
                  progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="mdnrnn"):
        train_ppo(tmp_path, dream(mdnrnn), CONFIG, 4 * chunk, made_from={"mdnrnn": "b"},
                  progress=False)  # fmt: skip
    log = train_ppo(tmp_path, dream(mdnrnn), other, 2 * 16 * 4, made_from={"mdnrnn": "b"},
                    restart=True, progress=False)  # fmt: skip
    assert [r["dream_steps"] for r in log] == [64, 128]
    with pytest.raises(ValueError, match="n_envs"):
        train_ppo(tmp_path / "x", dream(mdnrnn, n_envs=3), CONFIG, chunk, progress=False)


def test_a_foreign_file_is_not_a_policy(tmp_path):
    path = tmp_path / "ppo.pt"
    torch.save({"something": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a PPO checkpoint"):
        load_policy(path)
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "missing.pt")


def test_params_and_a_policy_are_not_mixed_up():
    spec = {"game": "doom", "policy": "ppo.pt"}
    with pytest.raises(ValueError, match="params=None"):
        evaluate_params(spec, np.zeros(3), 1, 10, workers=1)
    with pytest.raises(ValueError, match="no PPO 'policy'"):
        evaluate_params({"game": "doom"}, None, 1, 10, workers=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ppo_trains_on_m_s_gpu_and_its_actor_plays_there(mdnrnn, tmp_path):
    gpu = MDNRNN(z_dim=6, action_dim=3, hidden=12).cuda().eval()
    gpu.load_state_dict(mdnrnn.state_dict())
    chunk = CONFIG.n_envs * CONFIG.n_steps
    train_ppo(tmp_path, dream(gpu, max_steps=20), CONFIG, chunk, progress=False)
    cpu_policy = load_policy(tmp_path / PPO_CHECKPOINT)  # saved from the GPU, read on the CPU
    gpu_policy = load_policy(tmp_path / PPO_CHECKPOINT, "cuda")
    rng = np.random.default_rng(0)
    z, h, c = rng.normal(size=(16, 6)), rng.normal(size=(16, 12)), rng.normal(size=(16, 12))
    zt, ht, ct = (torch.as_tensor(x, device="cuda") for x in (z, h, c))
    np.testing.assert_array_equal(gpu_policy(zt, ht, ct).cpu().numpy(), cpu_policy(z, h, c).numpy())
