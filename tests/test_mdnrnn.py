"""M (wmtutor/mdnrnn.py): shapes, sampling with tau, heads that learn, resume, errors."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from wmtutor.cli import main as cli_main
from wmtutor.files import load_rollout
from wmtutor.mdnrnn import (
    MDNRNN,
    Prediction,
    done_precision_recall,
    dream,
    load_mdnrnn,
    sample_next,
    teacher_forced,
    train_mdnrnn,
)
from wmtutor.presets import MDNRNN as MDNRNNConfig
from wmtutor.training import load_checkpoint

CONFIG = MDNRNNConfig(hidden=32, seq_len=20, epochs=30, batch_size=8, lr=1e-2, buffer_size=64)


def synthetic_latents(folder, n_files=12, z_dim=4, seed=0):
    """Doom-like encoded rollouts with known rules.

    z follows z_{t+1} = 0.8 z_t + 0.3 noise; reward is 1 exactly when the action is 1;
    the last step (the only done) has z[0] = 4, which never happens otherwise.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_files):
        T = int(rng.integers(25, 45))
        mu = np.zeros((T, z_dim), np.float32)
        for t in range(1, T):
            mu[t] = 0.8 * mu[t - 1] + 0.3 * rng.standard_normal(z_dim)
        mu = np.clip(mu, -2, 2)
        mu[-1, 0] = 4.0
        actions = rng.integers(0, 3, T)
        terminated = np.zeros(T, bool)
        terminated[-1] = True
        name = f"rollout_{i:05d}.npz"
        np.savez(
            folder / name,
            mu=mu,
            logvar=np.full((T, z_dim), np.log(1e-4), np.float32),
            actions=actions,
            rewards=(actions == 1).astype(np.float32),
            terminated=terminated,
            truncated=np.zeros(T, bool),
        )
        files.append({"index": i, "file": name, "length": T, "bytes": 1})
    manifest = {"config": {"game": "doom", "z_dim": z_dim}, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_shapes_for_any_batch():
    model = MDNRNN(z_dim=6, action_dim=3, hidden=16, n_gaussians=5)
    prediction, h, (hn, cn) = model(torch.randn(2, 7, 6), torch.randn(2, 7, 3))
    assert prediction.mu.shape == prediction.logit_pi.shape == (2, 7, 5, 6)
    assert prediction.reward.shape == prediction.done_logit.shape == (2, 7)
    assert h.shape == (2, 7, 16) and hn.shape == cn.shape == (1, 2, 16)
    for batch in [(), (3,), (2, 4)]:
        state = model.initial_state(batch or (1,))
        out, state = model.step(torch.randn(*batch, 6), torch.randn(*batch, 3), state)
        assert out.mu.shape == (*batch, 5, 6) and out.done_logit.shape == batch
        assert sample_next(out, tau=1.0).shape == (*batch, 6)
    with pytest.raises(ValueError, match=r"z \(\.\.\., 6\) and a \(\.\.\., 3\)"):
        model(torch.randn(1, 2, 5), torch.randn(1, 2, 3))


def test_steps_match_the_sequence_forward():
    torch.manual_seed(0)
    model = MDNRNN(z_dim=4, action_dim=2, hidden=8)
    z, a = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    whole, _, _ = model(z, a)
    state = model.initial_state((3,))
    for t in range(5):
        out, state = model.step(z[:, t], a[:, t], state)
        torch.testing.assert_close(out.mu, whole.mu[:, t])
        torch.testing.assert_close(out.done_logit, whole.done_logit[:, t])


def test_samples_follow_the_mixture_at_tau_one_and_concentrate_as_tau_falls():
    pi = torch.tensor([0.3, 0.7])
    logit_pi = pi.log().reshape(1, 2, 1).expand(20000, 2, 1)
    mu = torch.tensor([-2.0, 3.0]).reshape(1, 2, 1).expand(20000, 2, 1)
    sigma = torch.tensor([0.5, 1.0]).reshape(1, 2, 1).expand(20000, 2, 1)
    prediction = Prediction(logit_pi, mu, sigma.log(), torch.zeros(20000), torch.zeros(20000))
    g = torch.Generator().manual_seed(0)
    x = sample_next(prediction, tau=1.0, generator=g)[:, 0]
    mean = (pi * torch.tensor([-2.0, 3.0])).sum()
    var = (pi * (torch.tensor([0.25, 1.0]) + torch.tensor([4.0, 9.0]))).sum() - mean**2
    assert x.mean().item() == pytest.approx(mean.item(), abs=0.05)
    assert x.var().item() == pytest.approx(var.item(), rel=0.05)
    cold = sample_next(prediction, tau=0.01, generator=g)[:, 0]
    assert (cold - 3.0).abs().max() < 0.5  # the heavier component's mean, almost no noise
    assert cold.std() < 0.15


def test_loss_falls_and_the_heads_learn_known_rules(tmp_path):
    data = synthetic_latents(tmp_path / "z")
    log = train_mdnrnn(data, tmp_path / "m" / "mdnrnn.pt", CONFIG, "doom", progress=False)
    epochs = [r for r in log if r["kind"] == "epoch"]
    assert epochs[-1]["z_nll"] < epochs[0]["z_nll"] - 0.3
    assert epochs[-1]["reward_mse"] < 0.05  # reward = [action == 1], read off a
    model = load_mdnrnn(tmp_path / "m" / "mdnrnn.pt", z_dim=4, action_dim=3)
    files = sorted(data.glob("*.npz"))
    scores = done_precision_recall(model, files)
    assert scores["recall"] == 1.0 and scores["precision"] >= 0.9, scores
    rollout = load_rollout(files[0])
    prediction = teacher_forced(model, rollout["mu"], rollout["actions"])
    expected = (rollout["actions"] == 1).astype(np.float32)[:-1]  # the last step is odd
    np.testing.assert_allclose(prediction.reward.numpy()[:-1], expected, atol=0.3)


def test_resume_matches_an_uninterrupted_run_and_mismatches_are_refused(tmp_path):
    data = synthetic_latents(tmp_path / "z")
    config = dataclasses.replace(CONFIG, epochs=2)
    train_mdnrnn(data, tmp_path / "straight" / "mdnrnn.pt", config, "doom", progress=False)
    short = dataclasses.replace(config, epochs=1)
    train_mdnrnn(data, tmp_path / "resumed" / "mdnrnn.pt", short, "doom", progress=False)
    train_mdnrnn(data, tmp_path / "resumed" / "mdnrnn.pt", config, "doom", progress=False)
    a = load_checkpoint(tmp_path / "straight" / "mdnrnn.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "mdnrnn.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    with pytest.raises(ValueError, match="trained with hidden=32, not 64.*restart"):
        wider = dataclasses.replace(config, hidden=64)
        train_mdnrnn(data, tmp_path / "straight" / "mdnrnn.pt", wider, "doom", progress=False)
    with pytest.raises(ValueError, match="action_dim=3, but action_dim=6"):
        load_mdnrnn(tmp_path / "straight" / "mdnrnn.pt", action_dim=6)
    with pytest.raises(ValueError, match="z_dim=4, but z_dim=32"):
        load_mdnrnn(tmp_path / "straight" / "mdnrnn.pt", z_dim=32)
    synthetic_latents(data, n_files=13, seed=1)  # V changed, the latents were re-encoded
    with pytest.raises(ValueError, match="trained on other latents.*--restart"):
        train_mdnrnn(data, tmp_path / "straight" / "mdnrnn.pt", config, "doom", progress=False)


def test_dreams_are_repeatable_and_cold_dreams_are_deterministic():
    torch.manual_seed(0)
    model = MDNRNN(z_dim=4, action_dim=3, hidden=8).eval()
    actions = np.array([0, 1, 2, 1, 0])
    z0 = np.zeros((3, 4), np.float32)
    a = dream(model, z0, actions, tau=1.0, seed=1)
    b = dream(model, z0, actions, tau=1.0, seed=1)
    assert a["z"].shape == (3, 6, 4) and a["done_prob"].shape == (3, 5)
    np.testing.assert_array_equal(a["z"], b["z"])
    assert not np.allclose(a["z"][0], a["z"][1])  # three different dreams
    cold = dream(model, z0, actions, tau=0.0, seed=2)["z"]
    np.testing.assert_array_equal(cold[0], cold[1])


def test_cli_trains_the_mdnrnn(tmp_path, capsys):
    data = synthetic_latents(tmp_path / "z", n_files=4)
    cli_main(["train-mdnrnn", "--env", "doom", "--preset", "tiny", "--latents-dir", str(data),
              "--out", str(tmp_path / "m"), "--epochs", "2", "--quiet"])  # fmt: skip
    assert "epoch 2: held-out loss" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "m" / "mdnrnn.pt")["epoch"] == 2


def test_training_batches_sample_z_afresh_not_mu():
    from wmtutor.mdnrnn import batch_to_tensors

    mu = torch.full((2, 1000, 3), 0.5)
    batch = {"mu": mu, "logvar": torch.full((2, 1000, 3), np.log(0.04)),
             "actions": torch.zeros(2, 1000, dtype=torch.int64),
             "rewards": torch.zeros(2, 1000), "terminated": torch.zeros(2, 1000, dtype=torch.bool),
             "mask": torch.ones(2, 1000)}  # fmt: skip
    z1, a, *_ = batch_to_tensors(batch, action_dim=3, device="cpu")
    z2, *_ = batch_to_tensors(batch, action_dim=3, device="cpu")
    assert not torch.equal(z1, z2)  # a new sample every batch
    assert z1.mean().item() == pytest.approx(0.5, abs=0.02)
    assert z1.std().item() == pytest.approx(0.2, rel=0.05)  # sigma = exp(logvar / 2)
    assert a.shape == (2, 1000, 3) and torch.all(a[..., 0] == 1)  # one-hot of action 0
    z_mu, *_ = batch_to_tensors(batch, action_dim=3, device="cpu", sample=False)
    assert torch.equal(z_mu, mu)  # train_on="mu": the known bug, on purpose
