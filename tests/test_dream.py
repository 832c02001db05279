"""The dream (wmtutor/dream.py): a Gymnasium vector env inside M, and batched generations."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from wmtutor.dream import DreamEnv, dream_generation, dream_one_by_one
from wmtutor.mdnrnn import MDNRNN


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


@pytest.fixture(scope="module")
def dream_spec(mdnrnn, tmp_path_factory):
    """M saved as a checkpoint, V, and a folder of 'encoded rollouts' to start dreams from."""
    from wmtutor.training import save_checkpoint
    from wmtutor.vae import ConvVAE

    folder = tmp_path_factory.mktemp("dream")
    save_checkpoint(folder / "m.pt", model=mdnrnn.state_dict(),
                    config={"architecture": "MDNRNN-v1", "z_dim": 6, "action_dim": 3,
                            "hidden": 12, "n_gaussians": 5})  # fmt: skip
    torch.manual_seed(0)
    save_checkpoint(folder / "vae.pt", model=ConvVAE(6).state_dict(),
                    config={"architecture": "ConvVAE-v1", "z_dim": 6})  # fmt: skip
    latents = folder / "latents"
    latents.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        name = f"rollout_{i:05d}.npz"
        np.savez(latents / name, mu=rng.normal(size=(5, 6)).astype(np.float32),
                 logvar=np.full((5, 6), -2.0, np.float32))  # fmt: skip
        files.append({"index": i, "file": name, "length": 5})
    (latents / "manifest.json").write_text(json.dumps({"config": {"z_dim": 6}, "files": files}))
    return {"game": "doom", "vae": str(folder / "vae.pt"), "mdnrnn": str(folder / "m.pt"),
            "latents": str(latents), "inputs": "zch", "bias": False, "frame_skip": 1}  # fmt: skip


def test_training_in_the_dream_resumes_exactly(dream_spec, tmp_path):
    from wmtutor.controller import load_controller_state, train_controller
    from wmtutor.dream import InDream
    from wmtutor.presets import Controller, Dream, SettingError

    config = Controller(popsize=6, trials=3, generations=4, max_steps=25, eval_every=2,
                        eval_episodes=5, inputs="zch", bias=False)  # fmt: skip
    dream = Dream(tau=1.0)

    def judge(d=dream):
        return InDream.from_spec(dream_spec, d, device="cpu")

    log = train_controller(tmp_path / "a", config, judge(), progress=False)
    assert [row["where"] for row in log] == ["dream"] * 4
    assert all(1 <= row["worst"] <= row["mean"] <= row["best"] <= 25 for row in log)
    assert "eval_mean" in log[1] and "eval_mean" not in log[0]
    state = load_controller_state(tmp_path / "a")
    assert state["mean_params"].shape == (6 + 12 + 12,)  # [z, c, h] -> 1 output, no bias
    short = Controller(**{**config.__dict__, "generations": 2})
    train_controller(tmp_path / "b", short, judge(), progress=False)
    again = train_controller(tmp_path / "b", config, judge(), progress=False)
    np.testing.assert_array_equal(
        state["es_mean"], load_controller_state(tmp_path / "b")["es_mean"]
    )
    assert [r["best"] for r in again] == [r["best"] for r in log]
    for bad in (dict(tau=-1.0), dict(tau=float("inf")), dict(done_threshold=1.5)):
        with pytest.raises(SettingError, match=next(iter(bad))):
            Dream(**bad)
    with pytest.raises(ValueError, match="tau -1: expected a number in"):
        DreamEnv(judge().mdnrnn, "doom", np.zeros((2, 6)), tau=-1)
    # another temperature dreams other dreams
    other = train_controller(tmp_path / "c", config, judge(Dream(tau=0.1)), progress=False)
    assert [r["best"] for r in other] != [r["best"] for r in log]
    with pytest.raises(
        ValueError, match="trained in the dream \\(tau 1, .*not in the dream \\(tau 0.1"
    ):
        train_controller(tmp_path / "a", config, judge(Dream(tau=0.1)), progress=False)


def test_a_dream_can_pay_the_reward_m_predicts_instead_of_survival(mdnrnn, dream_spec, tmp_path):
    # CarRacing's and Pong's dreams (their `dream.reward`): a step pays what M's reward
    # head says, not +1 for staying alive.
    from wmtutor.controller import train_controller
    from wmtutor.dream import InDream
    from wmtutor.presets import Controller, Dream, SettingError, get_preset

    rng = np.random.default_rng(1)
    params = rng.normal(0, 1.0, (4, 6 + 12 + 1))
    z0 = rng.normal(size=(3, 6)).astype(np.float32)
    kwargs = dict(tau=0.0, max_steps=30, seed=5)
    steps = dream_generation(mdnrnn, "doom", params, z0, 3, **kwargs)
    paid = dream_generation(mdnrnn, "doom", params, z0, 3, reward="predicted", **kwargs)
    alone = dream_one_by_one(mdnrnn, "doom", params, z0, 3, reward="predicted", **kwargs)
    assert paid.shape == (4, 3) and np.all(np.isfinite(paid))
    assert not np.any(np.isin(paid, steps))  # not a count of steps
    assert np.mean(np.isclose(paid, alone, atol=1e-4)) >= 0.9  # the same sum, one at a time
    # ... and the sum of M's reward head along one dream, stepped here by hand
    from wmtutor.controller import Controller as C
    from wmtutor.envs import make_env
    from wmtutor.mdnrnn import sample_next

    adapter, controller = make_env("doom").adapter, C(6, 12, 1, "zh", True)
    controller.set_params(params[0])
    z, state, total = torch.as_tensor(z0[:1]), mdnrnn.initial_state((1,), "cpu"), 0.0
    with torch.no_grad():
        for _ in range(30):
            a = adapter.features(adapter(controller(z, state[0][0], state[1][0])))
            prediction, state = mdnrnn.step(z, a, state)
            total += prediction.reward.item()
            z = sample_next(prediction, 0.0, torch.Generator().manual_seed(0))  # tau 0: mu
            if torch.sigmoid(prediction.done_logit).item() > 0.5:
                break
    assert alone[0, 0] == pytest.approx(total, abs=1e-4)
    with pytest.raises(SettingError, match="reward"):
        Dream(reward="tiles")
    with pytest.raises(ValueError, match="reward must be"):
        dream_generation(mdnrnn, "doom", params, z0, 3, reward="tiles")
    assert get_preset("laptop").carracing.dream.reward == "predicted"
    assert get_preset("laptop").doom.dream.reward == "survival"  # the paper's

    config = Controller(popsize=4, trials=2, generations=2, max_steps=20, inputs="zch",
                        bias=False)  # fmt: skip
    judge = InDream.from_spec(dream_spec, Dream(tau=1.0, reward="predicted"), device="cpu")
    assert "reward predicted" in judge.description
    log = train_controller(tmp_path / "a", config, judge, progress=False)
    assert len(log) == 2 and "dream_steps" not in log[0]  # returns are not steps here
    with pytest.raises(ValueError, match="reward predicted.*not in the dream \\(tau 1, done "):
        train_controller(tmp_path / "a", config, InDream.from_spec(dream_spec, Dream(tau=1.0)),
                         progress=False)  # fmt: skip


def test_the_agent_plays_one_dream_and_sees_it_decoded(dream_spec):
    from wmtutor.dream import dream_episode, initial_latents
    from wmtutor.mdnrnn import load_mdnrnn
    from wmtutor.vae import load_vae

    mu, logvar = initial_latents(dream_spec["latents"])
    assert mu.shape == logvar.shape == (4, 6)
    m, vae = (
        load_mdnrnn(dream_spec["mdnrnn"], device="cpu"),
        load_vae(dream_spec["vae"], device="cpu"),
    )
    env = DreamEnv(m, "doom", mu, tau=1.0, max_steps=30, vae=vae)
    params = np.random.default_rng(0).normal(0, 1, 6 + 2 * 12)
    out = dream_episode(env, params, "zch", seed=3)
    T = len(out["actions"])
    assert 1 <= T <= 30 and out["return"] == T  # +1 per step survived
    assert out["frames"].shape == (T, 64, 64, 3) and out["frames"].dtype == np.uint8
    assert out["z"].shape == (T, 6) and set(out["actions"]) <= {0, 1, 2}
    again = dream_episode(env, params, "zch", seed=3, render=False)
    np.testing.assert_array_equal(again["actions"], out["actions"])  # seeded: the same dream
    with pytest.raises(ValueError, match="num_envs must be 1"):
        dream_episode(DreamEnv(m, "doom", mu, num_envs=2), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_dream_runs_on_the_gpu_as_on_the_cpu(mdnrnn):
    rng = np.random.default_rng(0)
    params = rng.normal(0, 1.0, (4, 6 + 12 + 1))
    z0 = rng.normal(size=(3, 6)).astype(np.float32)
    gpu = MDNRNN(z_dim=6, action_dim=3, hidden=12).cuda().eval()
    gpu.load_state_dict(mdnrnn.state_dict())
    kwargs = dict(tau=0.0, max_steps=30, seed=5)  # tau 0: no noise, so devices can agree
    on_cpu = dream_generation(mdnrnn, "doom", params, z0, 3, **kwargs)
    on_gpu = dream_generation(gpu, "doom", params, z0, 3, **kwargs)
    assert np.mean(on_cpu == on_gpu) >= 0.9
    paid = [dream_generation(m, "doom", params, z0, 3, reward="predicted", **kwargs)
            for m in (mdnrnn, gpu)]  # fmt: skip
    assert np.mean(np.isclose(paid[0], paid[1], atol=1e-3)) >= 0.9
    env = DreamEnv(gpu, "doom", z0, num_envs=2, tau=1.0, max_steps=15)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([0, 2]))
    assert env.z.device.type == "cuda" and obs.shape == (2, 30)
