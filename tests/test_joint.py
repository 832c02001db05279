"""V, M and the inverse model trained together (wmtutor.joint), on squares that the action
moves, with tiny sizes."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from wmtutor.joint import (
    JointModel,
    export_world_model,
    inverse_loss,
    joint_loss,
    load_joint,
    train_joint,
)
from wmtutor.mdnrnn import load_mdnrnn
from wmtutor.presets import Joint, get_preset
from wmtutor.training import load_checkpoint
from wmtutor.vae import encode_frames, load_vae

TINY = get_preset("tiny").doom
GAME = dataclasses.replace(
    TINY,
    vae=dataclasses.replace(TINY.vae, z_dim=8),
    joint=Joint(epochs=2, batch_size=4, seq_len=8, buffer_size=16, lr=1e-3),
)


def moved_squares(folder, n_files=4, length=40, seed=0):
    """Rollouts of a white square that action 0 moves left, 1 keeps, 2 moves right."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_files):
        actions = rng.integers(0, 3, length)
        frames = np.zeros((length, 64, 64, 3), np.uint8)
        frames[:] = (40, 90, 40)
        x = 24
        for t in range(length):
            frames[t, 24:40, x : x + 16] = 255
            x = int(np.clip(x + 4 * (actions[t] - 1), 0, 48))
        name = f"rollout_{i:05d}.npz"
        np.savez_compressed(folder / name, frames=frames, actions=actions,
                            rewards=np.ones(length, np.float32),
                            terminated=np.arange(length) == length - 1,
                            truncated=np.zeros(length, bool), seed=np.int64(i))  # fmt: skip
        files.append({"index": i, "file": name, "length": length, "bytes": 1})
    manifest = {"config": {"game": "squares"}, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def batch(n=2, t=6, seed=0):
    rng = np.random.default_rng(seed)
    frames = torch.from_numpy(rng.integers(0, 255, (n, t, 64, 64, 3), dtype=np.uint8))
    actions = torch.from_numpy(rng.integers(0, 3, (n, t)))
    mask = torch.ones(n, t)
    mask[1, 4:] = 0  # the second window ends early: padding
    return frames, actions, torch.ones(n, t), torch.zeros(n, t), mask


def test_the_loss_is_the_weighted_sum_and_every_part_trains_v():
    torch.manual_seed(0)
    model = JointModel(8, 3, hidden=16)
    terms = joint_loss(model, *batch(), GAME)
    assert set(terms) >= {"vae", "mdnrnn", "inverse", "inverse_acc", "recon", "kl", "z_nll"}
    assert all(torch.isfinite(t) for t in terms.values())
    cfg = GAME.joint
    total = cfg.vae_weight * terms["vae"] + terms["mdnrnn"] + cfg.inverse_weight * terms["inverse"]
    torch.testing.assert_close(terms["loss"], total)
    for part in ("mdnrnn", "inverse"):  # M's and the inverse model's losses reach V's encoder
        model.zero_grad()
        torch.manual_seed(1)
        joint_loss(model, *batch(), GAME)[part].backward()
        grad = model.vae.encoder[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0, part


def test_padding_counts_in_no_term():
    torch.manual_seed(0)
    model = JointModel(8, 3, hidden=16)
    frames, actions, reward, done, mask = batch()
    changed = frames.clone()
    changed[1, 4:] = 255 - changed[1, 4:]  # other pixels where the mask is 0
    torch.manual_seed(1)
    a = joint_loss(model, frames, actions, reward, done, mask, GAME)
    torch.manual_seed(1)
    b = joint_loss(model, changed, actions, reward, done, mask, GAME)
    for key in ("recon", "kl", "inverse", "mdnrnn", "z_nll"):
        torch.testing.assert_close(a[key], b[key])


def test_inverse_loss_for_discrete_and_continuous_actions():
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0]]])
    mask = torch.ones(1, 2)
    ce, acc = inverse_loss(logits, torch.tensor([[0, 2]]), mask)
    assert acc.item() == 0.5 and ce.item() > 0
    mse, acc = inverse_loss(logits, torch.zeros(1, 2, 3), mask)
    assert mse.item() == pytest.approx(25 / 3) and torch.isnan(acc)


def test_training_lowers_the_held_out_loss_and_resumes_exactly(tmp_path):
    data = moved_squares(tmp_path / "data")
    one = dataclasses.replace(GAME, joint=dataclasses.replace(GAME.joint, epochs=1))
    train_joint(data, tmp_path / "resumed" / "joint.pt", one, "doom", progress=False)
    log = train_joint(data, tmp_path / "resumed" / "joint.pt", GAME, "doom", progress=False)
    straight = train_joint(data, tmp_path / "straight" / "joint.pt", GAME, "doom",
                           progress=False)  # fmt: skip
    epochs = [r for r in log if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    assert epochs[-1]["loss"] < epochs[0]["loss"] and epochs[-1]["recon"] < epochs[0]["recon"]
    assert [r["loss"] for r in straight if r["kind"] == "epoch"] == pytest.approx(
        [r["loss"] for r in epochs]
    )
    a = load_checkpoint(tmp_path / "straight" / "joint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "joint.pt")
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])
    bigger = dataclasses.replace(GAME, vae=dataclasses.replace(GAME.vae, z_dim=16))
    with pytest.raises(ValueError, match="z_dim"):
        train_joint(data, tmp_path / "straight" / "joint.pt", bigger, "doom", progress=False)
    heavier = dataclasses.replace(GAME, joint=dataclasses.replace(GAME.joint, inverse_weight=5))
    with pytest.raises(ValueError, match="inverse_weight"):  # the trained epochs used 1
        train_joint(data, tmp_path / "straight" / "joint.pt", heavier, "doom", progress=False)


def test_the_joint_v_and_m_load_as_the_course_s_v_and_m(tmp_path):
    data = moved_squares(tmp_path / "data", n_files=3)
    small = dataclasses.replace(GAME, joint=dataclasses.replace(GAME.joint, epochs=1))
    train_joint(data, tmp_path / "joint.pt", small, "doom", progress=False)
    vae_path, m_path = export_world_model(tmp_path / "joint.pt", tmp_path / "v" / "vae.pt",
                                          tmp_path / "v" / "mdnrnn.pt")  # fmt: skip
    joint = load_joint(tmp_path / "joint.pt", device="cpu")
    vae = load_vae(vae_path, z_dim=8, device="cpu")
    m = load_mdnrnn(m_path, z_dim=8, action_dim=3, device="cpu")
    frames = np.load(data / "rollout_00000.npz")["frames"][:5]
    np.testing.assert_array_equal(encode_frames(vae, frames)[0],
                                  encode_frames(joint.vae, frames)[0])  # fmt: skip
    for key, value in joint.mdnrnn.state_dict().items():
        torch.testing.assert_close(m.state_dict()[key], value)
    assert load_checkpoint(vae_path)["config"]["made_from"]["joint"]
    before = vae_path.read_bytes(), m_path.read_bytes()  # exporting again rewrites nothing
    export_world_model(tmp_path / "joint.pt", vae_path, m_path)
    assert (vae_path.read_bytes(), m_path.read_bytes()) == before
    with pytest.raises(ValueError, match="architecture"):
        export_world_model(vae_path, tmp_path / "x.pt", tmp_path / "y.pt")


def test_cli_trains_resumes_and_exports(tmp_path, capsys):
    from wmtutor.cli import main as cli_main

    data = moved_squares(tmp_path / "data", n_files=3, length=24)
    common = ["--env", "doom", "--preset", "tiny", "--rollouts-dir", str(data), "--quiet",
              "--out", str(tmp_path / "j"), "--seq-len", "6"]  # fmt: skip
    cli_main(["train-joint", *common, "--epochs", "1"])
    out = capsys.readouterr().out
    assert "epoch 1: held-out loss" in out and "% read back" in out and "(untrained)" in out
    assert (tmp_path / "j" / "vae.pt").exists() and (tmp_path / "j" / "mdnrnn.pt").exists()
    cli_main(["train-joint", *common, "--epochs", "2"])  # resumes after epoch 1
    assert "epoch 2: held-out loss" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "j" / "joint.pt")["epoch"] == 2
    with pytest.raises(SystemExit) as exit_info:  # other sizes: refused, nothing replaced
        cli_main(["train-joint", *common, "--inverse-hidden", "7"])
    assert exit_info.value.code == 2 and "restart" in capsys.readouterr().err
