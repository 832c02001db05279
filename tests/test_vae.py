"""V (wmtutor/vae.py): the paper's architecture, its loss, training that resumes, encoding."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from wmtutor.cli import main as cli_main
from wmtutor.envs import pong_positions
from wmtutor.files import load_rollout, read_manifest, source_digest
from wmtutor.layout import frame_cache_path
from wmtutor.presets import VAE
from wmtutor.training import load_checkpoint, save_checkpoint
from wmtutor.vae import (
    ConvVAE,
    encode_frames,
    encode_rollouts,
    kl_per_dimension,
    load_vae,
    median_frame,
    pixel_weights,
    to_frames,
    to_input,
    told_error,
    train_vae,
    use_frame_cache,
    vae_loss,
)

TINY = VAE(z_dim=8, epochs=3, batch_size=16, lr=1e-3, buffer_size=64)


def write_rollouts(folder, frames: list[np.ndarray], game: str, actions: list | None = None):
    """A rollout folder of ``game`` holding one file per array of uint8 frames ``(T, 64, 64, 3)``
    (``actions``, default 0; a reward of 1 per step, the last step terminal) and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, episode in enumerate(frames):
        length = len(episode)
        np.savez_compressed(
            folder / f"rollout_{i:05d}.npz",
            frames=episode,
            actions=np.zeros(length, np.int64) if actions is None else actions[i],
            rewards=np.ones(length, np.float32),
            terminated=np.arange(length) == length - 1,
            truncated=np.zeros(length, bool),
            seed=np.int64(i),
        )
    files = [
        {"index": i, "file": f"rollout_{i:05d}.npz", "length": len(episode), "bytes": 1}
        for i, episode in enumerate(frames)
    ]
    manifest = {"config": {"game": game}, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def square_rollouts(folder, n_files=4, length=48, seed=0):
    """Rollouts whose frames are a coloured square moving over a plain background."""
    rng = np.random.default_rng(seed)
    episodes, actions = [], []
    for i in range(n_files):
        frames = np.zeros((length, 64, 64, 3), np.uint8)
        frames[:] = rng.integers(0, 255, 3)
        for t in range(length):
            x, y = (t * 3 + 7 * i) % 48, (t * 2 + 11 * i) % 48
            frames[t, y : y + 16, x : x + 16] = (255, 255, 255)
        episodes.append(frames)
        actions.append(rng.integers(0, 3, length))
    return write_rollouts(folder, episodes, "squares", actions)


def test_the_papers_architecture_and_parameter_count():
    model = ConvVAE(32)
    assert sum(p.numel() for p in model.parameters()) == 4_348_547
    x = torch.rand(5, 3, 64, 64)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == (5, 3, 64, 64) and mu.shape == logvar.shape == (5, 32)
    assert 0 <= x_hat.min() and x_hat.max() <= 1  # sigmoid output
    assert ConvVAE(64).decode(torch.zeros(2, 64)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="z_dim"):
        ConvVAE(0)


def test_loss_is_summed_error_plus_floored_kl():
    x = torch.zeros(2, 3, 64, 64)
    x_hat = torch.full_like(x, 0.5)
    zeros = torch.zeros(2, 4)
    loss, recon, kl = vae_loss(x, x_hat, zeros, zeros, kl_tolerance=0.5)
    assert recon.item() == pytest.approx(3 * 64 * 64 * 0.25)
    assert kl.item() == pytest.approx(0.5 * 4)  # KL 0, floored at 0.5 * z_dim
    mu = torch.full((2, 4), 2.0)
    _, _, kl = vae_loss(x, x_hat, mu, zeros, kl_tolerance=0.5)
    assert kl.item() == pytest.approx(0.5 * 4 * 4)  # 0.5 * sum(mu^2) above the floor
    np.testing.assert_allclose(kl_per_dimension(mu, zeros).numpy(), 2.0)


def test_foreground_pixels_weigh_more_and_the_reported_recon_stays_plain():
    background = torch.full((3, 64, 64), 0.2)
    x = background.expand(2, 3, 64, 64).clone()
    x[:, :, 10:12, 20:22] = 1.0  # a 2x2 ball, left out by the reconstruction
    x_hat = background.expand(2, 3, 64, 64).clone()
    x_hat[1, :, 40, 40] = 0.9  # frame 1's reconstruction also draws a dot that is not there
    weights = pixel_weights(x, x_hat, background, 30.0)
    assert weights.shape == (2, 1, 64, 64)
    assert (weights[:, :, 10:12, 20:22] == 30).all() and weights[1, 0, 40, 40] == 30
    assert weights.sum().item() == pytest.approx(2 * 64 * 64 + 29 * (2 * 4 + 1))
    zeros = torch.zeros(2, 4)
    plain = vae_loss(x, x_hat, zeros, zeros)
    weighted = vae_loss(x, x_hat, zeros, zeros, weights=weights)
    assert weighted[1].item() == pytest.approx(plain[1].item())  # recon: unweighted
    ball = 3 * 4 * 0.8**2
    assert plain[1].item() == pytest.approx(ball + 3 * 0.7**2 / 2)
    assert weighted[0].item() == pytest.approx(30 * plain[1].item() + plain[2].item())


def test_the_background_is_the_median_frame(tmp_path):
    data = square_rollouts(tmp_path / "data", n_files=1)
    frames = load_rollout(data / "rollout_00000.npz", ["frames"])["frames"]
    background = median_frame([data / "rollout_00000.npz"], n=48)
    assert background.shape == (3, 64, 64)
    torch.testing.assert_close(background[:, 63, 63], to_input(frames[:1])[0, :, 63, 63])


def test_training_weighs_the_foreground_only_when_asked(tmp_path):
    """Weight 1 is the paper's loss (loss = recon + KL); weight 30 trains on the weighted
    error (and reports the plain recon beside it), in training and in held-out rows."""
    data = square_rollouts(tmp_path / "data")
    for weight in (1.0, 30.0):
        config = dataclasses.replace(TINY, epochs=1, foreground_weight=weight)
        log = train_vae(data, tmp_path / f"w{weight}" / "vae.pt", config, progress=False,
                        log_every=1)  # fmt: skip
        for kind in ("train", "epoch"):
            rows = [r for r in log if r["kind"] == kind]
            gap = np.array([r["loss"] - r["recon"] - r["kl"] for r in rows])
            if weight == 1:
                np.testing.assert_allclose(gap, 0, atol=1e-3)
            else:  # the square is foreground: its error counts 29 more times
                assert (gap > 1).all(), (kind, gap)
        state = load_checkpoint(tmp_path / f"w{weight}" / "vae.pt")
        assert state["config"]["foreground_weight"] == weight
    other = dataclasses.replace(TINY, epochs=2, foreground_weight=1.0)  # not what trained it
    with pytest.raises(ValueError, match="foreground_weight=30.0, not 1.0"):
        train_vae(data, tmp_path / "w30.0" / "vae.pt", other, progress=False)


COURT, BALL, PADDLE, OPPONENT = (144, 72, 17), (236, 236, 236), (92, 186, 92), (213, 130, 74)


def pong_frame(ball: tuple[int, int] | None, paddle: int) -> np.ndarray:
    """A 64×64 frame in Pong's colours: a 4×4 ball from ``ball`` (row, column; None: none),
    the agent's paddle (right) from row ``paddle``, 8 rows tall, the opponent's on the left.
    (Larger than Pong's, so that a tiny V learns them in seconds.)"""
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:] = COURT
    frame[20:28, 4:6] = OPPONENT
    frame[paddle : paddle + 8, 56:60] = PADDLE
    if ball is not None:
        frame[ball[0] : ball[0] + 4, ball[1] : ball[1] + 4] = BALL
    return frame


def pong_rollouts(folder, n_files=4, length=48):
    """Rollouts of "pong" frames (``pong_frame``): the ball crosses the court, the paddle
    moves, and the ball is gone in every 8th frame (a point was just played)."""
    episodes = [
        np.stack(
            [
                pong_frame(
                    None if t % 8 == 7 else ((5 * t + 9 * i) % 60, (3 * t + 13 * i) % 56 + 4),
                    (2 * t + 7 * i) % 56,
                )
                for t in range(length)
            ]
        )  # fmt: skip
        for i in range(n_files)
    ]
    return write_rollouts(folder, episodes, "pong")


def test_pong_positions_finds_the_ball_and_the_paddle_by_colour():
    frames = np.stack([pong_frame((10, 30), 40), pong_frame(None, 0)])
    targets, known = pong_positions(to_input(frames))
    grid = np.linspace(-2, 2, 64)
    ball_row, ball_col = grid[10:14].mean(), grid[30:34].mean()
    np.testing.assert_allclose(targets[0].numpy(), [ball_row, ball_col, 1, grid[40:48].mean()],
                               atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(known.numpy(), [[1, 1, 1, 1], [0, 0, 1, 1]])
    assert targets[1, 2] == -1  # no ball: its presence is -1, its place unknown
    np.testing.assert_allclose(targets[1, 3].item(), grid[0:8].mean(), atol=1e-5)
    for wrong in (frames, torch.as_tensor(frames).permute(0, 3, 1, 2)):  # numpy, uint8 torch
        with pytest.raises(ValueError, match="expected float torch frames"):
            pong_positions(wrong)


def test_told_error_counts_only_what_is_known():
    mu = torch.zeros(2, 8)
    targets = torch.tensor([[1.0, 2.0, 1.0, 0.5], [1.0, 2.0, -1.0, 0.5]])
    known = torch.tensor([[1.0, 1, 1, 1], [0, 0, 1, 1]])
    assert told_error(mu, targets, known).item() == pytest.approx((6.25 + 1.25) / 2)
    mu[:, :4] = targets
    assert told_error(mu, targets, known).item() == 0


def test_a_told_v_learns_where_the_objects_are_and_only_in_pong(tmp_path):
    """told_weight fits mu[:, :4] to the colour finder's positions: the held-out error
    falls, the loss holds it ×told_weight, and a checkpoint keeps what it was told."""
    data = pong_rollouts(tmp_path / "data")
    config = dataclasses.replace(TINY, epochs=6, batch_size=4, told_weight=100.0)
    log = train_vae(data, tmp_path / "told" / "vae.pt", config, progress=False, log_every=1)
    epochs = [r for r in log if r["kind"] == "epoch"]
    assert epochs[-1]["told"] < 0.5 * epochs[0]["told"], [r["told"] for r in epochs]
    for r in (r for r in log if r["kind"] in ("train", "epoch")):
        assert r["loss"] == pytest.approx(r["recon"] + r["kl"] + 100 * r["told"], rel=1e-3)
    assert load_checkpoint(tmp_path / "told" / "vae.pt")["config"]["told_weight"] == 100.0
    untold = dataclasses.replace(config, epochs=5, told_weight=0.0)
    with pytest.raises(ValueError, match="told_weight=100.0, not 0.0"):
        train_vae(data, tmp_path / "told" / "vae.pt", untold, progress=False)
    plain = train_vae(data, tmp_path / "untold" / "vae.pt", dataclasses.replace(config, epochs=1,
                      told_weight=0.0), progress=False)  # fmt: skip
    assert all("told" not in r for r in plain)
    squares = square_rollouts(tmp_path / "squares")  # no finder for this game
    with pytest.raises(ValueError, match=r"told_weight=100.0, but .*squares.* only in pong"):
        train_vae(squares, tmp_path / "sq" / "vae.pt", config, progress=False)
    assert not (tmp_path / "sq").exists()
    with pytest.raises(ValueError, match="z_dim is 2"):
        told_error(torch.zeros(3, 2), torch.zeros(3, 4), torch.ones(3, 4))


def test_a_checkpoint_from_before_told_weight_was_untold(tmp_path):
    """A V saved before the setting existed has no told_weight: it resumes untold and is
    refused as a told V (and the pipeline reads it as told_weight 0)."""
    from wmtutor.pipeline import _own_config

    data = pong_rollouts(tmp_path / "data", n_files=2, length=24)
    ckpt = tmp_path / "v" / "vae.pt"
    config = dataclasses.replace(TINY, epochs=1, precision="bf16")  # bf16 on the CPU too
    train_vae(data, ckpt, config, progress=False)
    state = load_checkpoint(ckpt)
    del state["config"]["told_weight"]
    save_checkpoint(ckpt, **state)
    assert _own_config(VAE, state["config"], dataclasses.replace(config, told_weight=1.0)) == config
    with pytest.raises(ValueError, match="told_weight=0.0, not 100.0"):
        train_vae(data, ckpt, dataclasses.replace(config, told_weight=100.0), progress=False)
    told = dataclasses.replace(config, epochs=2, told_weight=100.0)
    log = train_vae(data, tmp_path / "told" / "vae.pt", told, progress=False, log_every=1)
    assert all(np.isfinite(r["told"]) for r in log if r["kind"] in ("train", "epoch"))


def test_frames_round_trip_through_the_input_format():
    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    x = to_input(frames)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32 and x.max() <= 1
    np.testing.assert_array_equal(to_frames(x), frames)
    with pytest.raises(ValueError, match="uint8 frames"):
        to_input(frames.astype(np.float32))


def test_training_lowers_the_held_out_loss(tmp_path):
    data = square_rollouts(tmp_path / "data")
    log = train_vae(data, tmp_path / "v" / "vae.pt", TINY, progress=False, log_every=2)
    epochs = [r for r in log if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3]
    assert epochs[-1]["recon"] < 0.7 * epochs[0]["recon"]
    assert any(r["kind"] == "train" for r in log)
    state = load_checkpoint(tmp_path / "v" / "vae.pt")
    assert state["epoch"] == 3 and state["config"]["z_dim"] == 8


def test_resuming_continues_exactly_like_an_uninterrupted_run(tmp_path):
    data = square_rollouts(tmp_path / "data")
    config = dataclasses.replace(TINY, epochs=2)
    train_vae(data, tmp_path / "straight" / "vae.pt", config, progress=False)
    train_vae(
        data, tmp_path / "resumed" / "vae.pt", dataclasses.replace(config, epochs=1), progress=False
    )
    log = train_vae(data, tmp_path / "resumed" / "vae.pt", config, progress=False)
    assert [r["epoch"] for r in log if r["kind"] == "epoch"] == [0, 1, 2]
    a = load_checkpoint(tmp_path / "straight" / "vae.pt")
    b = load_checkpoint(tmp_path / "resumed" / "vae.pt")
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    before = (tmp_path / "resumed" / "vae.pt").read_bytes()
    train_vae(data, tmp_path / "resumed" / "vae.pt", config, progress=False)  # nothing left to do
    assert (tmp_path / "resumed" / "vae.pt").read_bytes() == before


def test_the_frame_cache_trains_resumes_exactly_and_is_removed_when_v_is_done(
    tmp_path, monkeypatch
):
    import wmtutor.vae as vae_module

    data = square_rollouts(tmp_path / "data")
    config = dataclasses.replace(TINY, epochs=2, frame_cache="on")
    straight = tmp_path / "straight" / "vae.pt"
    log = train_vae(data, straight, config, progress=False)
    assert log[-1]["epoch"] == 2 and log[-1]["recon"] < 0.9 * log[0]["recon"]
    assert sorted(p.name for p in straight.parent.iterdir()) == ["vae.pt", "vae_log.jsonl"]

    # interrupted in the middle of epoch 2: the cache stays for the resume
    ckpt = tmp_path / "resumed" / "vae.pt"
    calls, real_loss = [], vae_module.vae_loss

    def interrupt_in_epoch_2(*args):
        calls.append(1)
        if len(calls) == 14:  # 9 batches an epoch (136 frames / 16)
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(vae_module, "vae_loss", interrupt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_vae(data, ckpt, config, progress=False)
    monkeypatch.setattr(vae_module, "vae_loss", real_loss)
    (cache,) = ckpt.parent.glob("vae_frames_*.npy")
    stale = ckpt.with_name("vae_frames_0123456789abcdef.npy")  # other rollouts' cache
    mine = ckpt.with_name("vae_frames_mine.npy")  # not a cache's name: the user's file
    np.save(stale, np.zeros((1, 64, 64, 3), np.uint8))
    np.save(mine, np.zeros(1))
    made = []
    real_write = vae_module.write_frame_cache
    monkeypatch.setattr(
        vae_module, "write_frame_cache", lambda *a: made.append(a) or real_write(*a)
    )
    train_vae(data, ckpt, config, progress=False)
    assert made == [] and not cache.exists() and not stale.exists() and mine.exists()
    a, b = load_checkpoint(straight), load_checkpoint(ckpt)
    for key in a["model"]:  # the batches of each epoch come from (seed, epoch) alone
        torch.testing.assert_close(a["model"][key], b["model"][key])

    # a cache cut short is written again; one left by a run told "off" is removed
    other = tmp_path / "other" / "vae.pt"
    train_vae(data, other, dataclasses.replace(config, epochs=1), progress=False)
    broken = frame_cache_path(other, source_digest(data))
    np.save(broken, np.zeros((3, 64, 64, 3), np.uint8))
    made.clear()
    with pytest.warns(UserWarning, match="holds 3 frames.*writing the frame cache again"):
        train_vae(data, other, config, progress=False)
    assert len(made) == 1 and not broken.exists()
    np.save(broken, np.zeros((3, 64, 64, 3), np.uint8))
    train_vae(data, other, dataclasses.replace(config, epochs=3, frame_cache="off"),
              progress=False)  # fmt: skip
    assert len(made) == 1 and not broken.exists()


def test_the_frame_cache_is_used_on_a_gpu_when_it_fits_unless_told(tmp_path, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = dataclasses.replace(TINY, frame_cache="auto")
    free = __import__("shutil").disk_usage(tmp_path).free
    assert not use_frame_cache(auto, cpu, 10, tmp_path)  # a CPU keeps up with the files
    assert use_frame_cache(auto, cuda, 10, tmp_path / "not" / "made")
    assert not use_frame_cache(auto, cuda, free // 12288, tmp_path)  # more than half the disk
    assert use_frame_cache(dataclasses.replace(TINY, frame_cache="on"), cpu, 10, tmp_path)
    assert not use_frame_cache(dataclasses.replace(TINY, frame_cache="off"), cuda, 10, tmp_path)
    with pytest.raises(ValueError, match="frame_cache"):
        dataclasses.replace(TINY, frame_cache="always")


def test_mismatched_or_broken_checkpoints_are_clear_errors(tmp_path):
    data = square_rollouts(tmp_path / "data")
    train_vae(data, tmp_path / "v" / "vae.pt", dataclasses.replace(TINY, epochs=1), progress=False)
    with pytest.raises(ValueError, match="trained with z_dim=8, not 16.*restart"):
        train_vae(
            data, tmp_path / "v" / "vae.pt", dataclasses.replace(TINY, z_dim=16), progress=False
        )
    with pytest.raises(ValueError, match="z_dim=8, but z_dim=64"):
        load_vae(tmp_path / "v" / "vae.pt", z_dim=64)
    save_checkpoint(tmp_path / "other.pt", model={}, config={"architecture": "Something"})
    with pytest.raises(ValueError, match="other.pt: architecture 'Something'"):
        load_vae(tmp_path / "other.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "v" / "vae.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match="cut.pt: not a readable wmtutor checkpoint"):
        load_vae(tmp_path / "cut.pt")
    wider = dataclasses.replace(TINY, z_dim=16, epochs=1)
    log = train_vae(data, tmp_path / "v" / "vae.pt", wider, restart=True, progress=False)
    assert load_vae(tmp_path / "v" / "vae.pt").z_dim == 16 and log[-1]["epoch"] == 1


def test_encoded_files_line_up_with_the_rollouts(tmp_path):
    data = square_rollouts(tmp_path / "data", n_files=3, length=20)
    train_vae(data, tmp_path / "v" / "vae.pt", dataclasses.replace(TINY, epochs=1), progress=False)
    manifest = encode_rollouts(tmp_path / "v" / "vae.pt", data, tmp_path / "z", progress=False)
    model = load_vae(tmp_path / "v" / "vae.pt")
    assert manifest == read_manifest(tmp_path / "z") and manifest["config"]["z_dim"] == 8
    for entry in manifest["files"]:
        rollout = load_rollout(data / entry["file"])
        latent = load_rollout(tmp_path / "z" / entry["file"])
        assert latent["mu"].shape == latent["logvar"].shape == (20, 8)
        mu, logvar = encode_frames(model, rollout["frames"][5:6])
        np.testing.assert_allclose(latent["mu"][5], mu[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(latent["logvar"][5], logvar[0], rtol=1e-4, atol=1e-5)
        for key in ("actions", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(latent[key], rollout[key])
    stamp = (tmp_path / "z" / "rollout_00000.npz").stat().st_mtime_ns
    encode_rollouts(tmp_path / "v" / "vae.pt", data, tmp_path / "z", progress=False)
    assert (tmp_path / "z" / "rollout_00000.npz").stat().st_mtime_ns == stamp  # kept
    broken = tmp_path / "z" / "rollout_00001.npz"
    whole = broken.read_bytes()
    broken.write_bytes(whole[:100])  # cut short: caught by its size and checksum
    with pytest.warns(UserWarning, match="rollout_00001.npz is missing or broken"):
        encode_rollouts(tmp_path / "v" / "vae.pt", data, tmp_path / "z", progress=False)
    assert broken.read_bytes() == whole
    assert (tmp_path / "z" / "rollout_00000.npz").stat().st_mtime_ns == stamp
    train_vae(data, tmp_path / "v" / "vae.pt", dataclasses.replace(TINY, epochs=2), progress=False)
    with pytest.warns(UserWarning, match="vae.pt changed since"):
        encode_rollouts(tmp_path / "v" / "vae.pt", data, tmp_path / "z", progress=False)
    assert (tmp_path / "z" / "rollout_00000.npz").stat().st_mtime_ns != stamp  # new V


def test_a_checkpoint_trained_on_other_data_is_not_resumed_on_this(tmp_path):
    data = square_rollouts(tmp_path / "data", n_files=3, length=20)
    ckpt = tmp_path / "v" / "vae.pt"
    train_vae(data, ckpt, dataclasses.replace(TINY, epochs=1), progress=False)
    square_rollouts(data, n_files=4, length=20, seed=1)  # the folder now holds other frames
    with pytest.raises(ValueError, match="trained on other rollouts.*--restart"):
        train_vae(data, ckpt, dataclasses.replace(TINY, epochs=2), progress=False)
    log = train_vae(data, ckpt, dataclasses.replace(TINY, epochs=1), restart=True, progress=False)
    assert log[-1]["epoch"] == 1


def test_checkpoints_are_read_onto_the_cpu_then_moved(tmp_path, monkeypatch):
    data = square_rollouts(tmp_path / "data", n_files=2, length=16)
    ckpt = tmp_path / "v" / "vae.pt"
    train_vae(data, ckpt, dataclasses.replace(TINY, epochs=1), device="cpu", progress=False)
    state = load_checkpoint(ckpt)
    assert state["rng"].device.type == "cpu" and state["rng"].dtype == torch.uint8
    assert all(t.device.type == "cpu" for t in state["model"].values())
    asked = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: asked.append(k) or real_load(*a, **k))
    load_vae(ckpt, device="cpu")
    assert asked == [{"map_location": "cpu", "weights_only": True}]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_resumed_on_another_device_goes_on_where_it_stopped(tmp_path):
    data = square_rollouts(tmp_path / "data")
    config = dataclasses.replace(TINY, epochs=2)
    for first, second in (("cuda", "cuda"), ("cuda", "cpu"), ("cpu", "cuda")):
        ckpt = tmp_path / f"{first}-{second}" / "vae.pt"
        train_vae(data, ckpt, dataclasses.replace(config, epochs=1), device=first, progress=False)
        log = train_vae(data, ckpt, config, device=second, progress=False)
        assert [r["epoch"] for r in log if r["kind"] == "epoch"] == [0, 1, 2]
        assert load_checkpoint(ckpt)["epoch"] == 2
    straight = tmp_path / "straight" / "vae.pt"
    train_vae(data, straight, config, device="cuda", progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(tmp_path / "cuda-cuda" / "vae.pt")
    for key in a["model"]:  # resumed on the GPU: as exact as on the CPU
        torch.testing.assert_close(a["model"][key], b["model"][key])


def test_cli_trains_and_encodes(tmp_path, capsys):
    data = pong_rollouts(tmp_path / "data", n_files=2, length=16)
    common = ["--env", "pong", "--preset", "tiny", "--rollouts-dir", str(data), "--quiet"]
    cli_main(["train-vae", *common, "--out", str(tmp_path / "v"), "--epochs", "1"])
    out = capsys.readouterr().out
    assert "epoch 1: held-out loss" in out and ", told " in out  # tiny's Pong V is told
    vae = str(tmp_path / "v" / "vae.pt")
    cli_main(["encode", *common, "--vae", vae, "--out", str(tmp_path / "z")])
    assert "2 rollouts, 32 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train-vae", *common, "--out", str(tmp_path / "v"), "--z-dim", "4"])
    assert exit_info.value.code == 2 and "restart" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_v_reads_its_frames_from_the_cache(tmp_path, monkeypatch):
    import wmtutor.vae as vae_module

    data = square_rollouts(tmp_path / "data")
    made, real_write = [], vae_module.write_frame_cache
    monkeypatch.setattr(
        vae_module, "write_frame_cache", lambda *a: made.append(a) or real_write(*a)
    )
    ckpt = tmp_path / "v" / "vae.pt"
    log = train_vae(data, ckpt, dataclasses.replace(TINY, epochs=1), device="cuda", progress=False)
    assert len(made) == 1 and log[-1]["epoch"] == 1  # auto: the cache, on CUDA
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["vae.pt", "vae_log.jsonl"]
    assert load_vae(ckpt, device="cpu").fc_mu.weight.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_told_v_trains_on_a_gpu_and_finds_what_the_cpu_finds(tmp_path):
    frames = to_input(np.stack([pong_frame((10, 30), 40), pong_frame(None, 0)]))
    on_cpu, on_gpu = pong_positions(frames), pong_positions(frames.cuda())
    assert on_gpu[0].device.type == "cuda"
    for a, b in zip(on_cpu, on_gpu, strict=True):
        torch.testing.assert_close(a, b.cpu())
    data = pong_rollouts(tmp_path / "data", n_files=2, length=24)
    config = dataclasses.replace(TINY, epochs=1, told_weight=100.0)
    log = train_vae(data, tmp_path / "v" / "vae.pt", config, device="cuda", progress=False)
    assert np.isfinite([r["told"] for r in log if r["kind"] == "epoch"]).all()
