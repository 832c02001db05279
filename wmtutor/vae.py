"""V: the convolutional variational autoencoder that turns a 64×64 frame into a small z.

The paper's architecture exactly (Ha & Schmidhuber 2018, appendix A.1; the original code,
hardmaru/WorldModelsExperiments, vae/vae.py):

    encoder: 4 × [conv 4×4, stride 2, ReLU] with 32, 64, 128, 256 channels
             (64 → 31 → 14 → 6 → 2), flatten 2·2·256 = 1024 → dense mu, dense logvar
    decoder: dense z → 1024, reshape 1×1×1024,
             4 × transposed conv, stride 2, with 128, 64, 32, 3 channels and kernels
             5, 5, 6, 6 (1 → 5 → 13 → 30 → 64), ReLU between, sigmoid at the end

For z = 32 that is 4,348,547 parameters. The loss is the original's: squared error
summed over the pixels, plus the KL divergence to N(0, I) summed over z, floored at
``kl_tolerance · z_dim`` per frame so that the model is free to use that much
information without penalty (``kl_tolerance = 0.5``). Two options go beyond the paper,
both for Pong, whose ball is a pixel or two: ``foreground_weight`` counts the pixels that
differ from the median frame (the background) that many times in the squared error (1 is
the paper's loss), and ``told_weight`` also fits ``mu[:, :4]`` to where the ball and the
agent's paddle are, found in each frame by their colours (``told_error``; 0 is the
paper's). Without being told, the paper's encoder never learns to see the ball (README,
"Why V does not keep them").

This file also trains V from the streaming frame dataset (``train_vae``, resumable, a
checkpoint per epoch) and encodes rollouts into latent statistics (``encode_rollouts``),
the input of the MDN-RNN. Shapes: frames ``(B, 64, 64, 3)`` uint8 or ``(B, 3, 64, 64)``
float in [0, 1]; ``z``, ``mu``, ``logvar`` ``(B, z_dim)``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wmtutor.datasets import (
    FRAME_BYTES,
    CachedFrames,
    FrameDataset,
    rollout_files,
    write_frame_cache,
)
from wmtutor.envs import GAMES
from wmtutor.files import (
    digest,
    entry_is_whole,
    load_rollout,
    manifest_digest,
    read_manifest,
    save_arrays,
    source_digest,
    write_manifest,
)
from wmtutor.layout import MANIFEST, frame_cache_path, frame_caches
from wmtutor.presets import VAE
from wmtutor.training import TrainingRun, autocast, load_checkpoint, split_files
from wmtutor.utils import get_device, remove_stale_tmp

ARCHITECTURE = "ConvVAE-v1"  # bump when the layers change: old checkpoints are then refused
KL_TOLERANCE = 0.5
FOREGROUND = 0.1  # a pixel is foreground where a channel is this far (of 1) from the background


# ---------------------------------------------------------------------------------------
# The model, its loss, its sampling


class ConvVAE(nn.Module):
    """The World Models VAE. ``forward(x)`` returns ``(x_hat, mu, logvar)``."""

    def __init__(self, z_dim: int = 32):
        super().__init__()
        if not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"z_dim must be a positive integer, got {z_dim!r}")
        self.z_dim = z_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(128, 256, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(1024, z_dim)
        self.fc_logvar = nn.Linear(1024, z_dim)
        self.fc_decode = nn.Linear(z_dim, 1024)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 6, stride=2),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, 64, 64)`` in [0, 1] -> ``mu, logvar``, each ``(B, z_dim)``."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, z_dim)`` -> ``(B, 3, 64, 64)`` in [0, 1]."""
        return self.decoder(self.fc_decode(z).view(-1, 1024, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A sample z = mu + sigma * eps, eps ~ N(0, I): differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def vae_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kl_tolerance: float = KL_TOLERANCE,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The original's loss, averaged over the batch: ``(loss, recon, kl)``.

    recon: squared error summed over the 3·64·64 pixel values of each frame.
    kl: KL(N(mu, sigma²) || N(0, I)) summed over z, floored per frame at
    ``kl_tolerance · z_dim`` (below that, the KL costs nothing).
    weights: ``(B, 1, 64, 64)`` per-pixel weights of the squared error in ``loss`` (see
    ``pixel_weights``; None: all 1, the paper's loss). ``recon`` stays unweighted, so that
    it compares across weights.
    """
    error = (x_hat.float() - x.float()).pow(2)
    recon = error.sum(dim=(1, 2, 3))
    fitted = recon if weights is None else (weights * error).sum(dim=(1, 2, 3))
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    kl = torch.clamp(kl, min=kl_tolerance * mu.shape[1])
    return (fitted + kl).mean(), recon.mean(), kl.mean()


def told_error(mu: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """How far ``mu[:, :k]`` is from where the objects are: the squared error against
    ``targets`` ``(B, k)`` where ``known`` ``(B, k)`` is 1, summed over the k numbers and
    averaged over the batch (``GameSpec.positions`` gives both, e.g. Pong's ball row,
    column and presence and its paddle's row). V's loss adds it ×``told_weight``.

    Raises:
        ValueError: z has fewer than k numbers.
    """
    k = targets.shape[1]
    if mu.shape[1] < k:
        raise ValueError(f"V is told {k} numbers, but its z_dim is {mu.shape[1]}: use z_dim >= {k}")
    return (known * (mu[:, :k].float() - targets).pow(2)).sum(dim=1).mean()


def pixel_weights(
    x: torch.Tensor, x_hat: torch.Tensor, background: torch.Tensor, weight: float
) -> torch.Tensor:
    """Per-pixel weights ``(B, 1, 64, 64)``: ``weight`` where the frame ``x`` or its
    reconstruction ``x_hat`` (both ``(B, 3, 64, 64)``) differs from ``background``
    (``(3, 64, 64)``) by more than ``FOREGROUND`` in a channel, 1 elsewhere. Counting the
    reconstruction's foreground too makes an object drawn where there is none cost as much
    as one left out. (Early in training, when the reconstruction is still far from the
    background nearly everywhere, that is nearly every pixel: the weight starts uniform.)"""

    def foreground(y: torch.Tensor) -> torch.Tensor:
        return (y.detach().float() - background).abs().amax(dim=1, keepdim=True) > FOREGROUND

    return 1.0 + (weight - 1.0) * (foreground(x) | foreground(x_hat)).float()


def median_frame(files: list[Path], n: int = 1024, seed: int = 1) -> torch.Tensor:
    """The background: the per-pixel median of ``n`` frames drawn from ``files``, float
    ``(3, 64, 64)`` in [0, 1]. Objects that move are off the median at most pixels."""
    return to_input(heldout_frames(files, n, seed)).median(dim=0).values


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL of each latent dimension over a batch, ``(z_dim,)``: which ones V uses."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)


def to_input(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames ``(B, 64, 64, 3)`` -> float ``(B, 3, 64, 64)`` in [0, 1]."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.shape[-3:] != (64, 64, 3):
        shape = tuple(frames.shape)
        raise ValueError(f"expected uint8 frames (B, 64, 64, 3), got {frames.dtype} {shape}")
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def to_frames(x: torch.Tensor) -> np.ndarray:
    """Decoder output ``(B, 3, 64, 64)`` in [0, 1] -> uint8 frames ``(B, 64, 64, 3)``."""
    return (x.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def load_vae(
    path: str | os.PathLike, z_dim: int | None = None, device: str | torch.device | None = None
) -> ConvVAE:
    """The trained ``ConvVAE`` in checkpoint ``path``, in eval mode, on ``device`` (default:
    ``wmtutor.utils.get_device()``). The checkpoint is read onto the CPU, then moved.

    Raises:
        ValueError: the checkpoint is not a ConvVAE of this architecture, or its z_dim is
            not the ``z_dim`` asked for.
    """
    state = load_checkpoint(path)
    config = state.get("config", {})
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(
            f"{path}: architecture {config.get('architecture')!r}, expected {ARCHITECTURE!r}"
        )
    if z_dim is not None and config.get("z_dim") != z_dim:
        raise ValueError(
            f"{path} holds a VAE with z_dim={config.get('z_dim')}, but z_dim={z_dim} was asked "
            "for: use the matching preset, or retrain with restart"
        )
    model = ConvVAE(config["z_dim"])
    model.load_state_dict(state["model"])
    return model.to(get_device(device)).eval()


# ---------------------------------------------------------------------------------------
# Training


def heldout_frames(files: list[Path], n: int, seed: int = 0) -> torch.Tensor:
    """``n`` frames drawn at random from ``files`` (the held-out ones, for validation),
    uint8 ``(n, 64, 64, 3)``.

    About the same number from each file, read one at a time: memory is ``n`` frames,
    whatever the number of files.
    """
    rng = np.random.default_rng(seed)
    per_file = -(-n // len(files))
    picked, total = [], 0
    for path in files:
        frames = load_rollout(path, ["frames"])["frames"]
        k = min(per_file, len(frames), n - total)
        picked.append(frames[np.sort(rng.choice(len(frames), k, replace=False))])
        total += k
        if total >= n:
            break
    return torch.from_numpy(np.concatenate(picked))


def weigh(x, x_hat, background: torch.Tensor | None, config: VAE) -> torch.Tensor | None:
    """``pixel_weights`` for ``config``, or None for the paper's loss."""
    if config.foreground_weight == 1 or background is None:
        return None
    return pixel_weights(x, x_hat, background, config.foreground_weight)


def told_finder(config: VAE, rollouts: str | os.PathLike) -> Callable | None:
    """The game's ``positions`` finder when ``config.told_weight`` > 0, else None.

    Raises:
        ValueError: the rollouts' game has no finder (only Pong's objects are found).
    """
    if config.told_weight == 0:
        return None
    game = read_manifest(rollouts)["config"].get("game")
    finder = GAMES[game].positions if game in GAMES else None
    if finder is None:
        known = [name for name, spec in GAMES.items() if spec.positions is not None]
        raise ValueError(
            f"told_weight={config.told_weight!r}, but {rollouts} holds {game!r} rollouts: V "
            f"can be told where the objects are only in {', '.join(known)} (use 0)"
        )
    return finder


def add_told(loss: torch.Tensor, mu: torch.Tensor, x: torch.Tensor, finder: Callable | None,
             config: VAE) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """``loss`` plus ``told_weight`` × the told error of ``mu`` on frames ``x``, and
    ``{"told": error}`` for the log; ``loss`` and ``{}`` when V is not told (no finder)."""
    if finder is None:
        return loss, {}
    told = told_error(mu, *finder(x))
    return loss + config.told_weight * told, {"told": told}


@torch.no_grad()
def evaluate(
    model: ConvVAE,
    frames: torch.Tensor,
    config: VAE,
    batch: int = 256,
    background: torch.Tensor | None = None,
    finder: Callable | None = None,
) -> dict:
    """Mean loss, recon and KL of ``model`` on uint8 ``frames`` (z sampled, as in training;
    the loss weighted as in training when ``config.foreground_weight`` > 1, given the
    ``background``, and told, with ``told`` beside them, given the ``finder``)."""
    model.eval()
    device = next(model.parameters()).device
    totals: dict[str, float] = {}
    generator = torch.Generator(device).manual_seed(0)
    for i in range(0, len(frames), batch):
        x = to_input(frames[i : i + batch]).to(device)
        with autocast(config.precision, device):
            mu, logvar = model.encode(x)
            x_hat = model.decode(reparameterize(mu.float(), logvar.float(), generator))
        weights = weigh(x, x_hat, background, config)
        loss, recon, kl = vae_loss(x, x_hat, mu, logvar, config.kl_tolerance, weights)
        loss, told = add_told(loss, mu, x, finder, config)
        for key, value in dict(loss=loss, recon=recon, kl=kl, **told).items():
            totals[key] = totals.get(key, 0.0) + value.item() * len(x)
    model.train()
    return {key: total / len(frames) for key, total in totals.items()}


def use_frame_cache(config: VAE, device: torch.device, n_frames: int, folder: Path) -> bool:
    """Whether V reads its frames from a cache (``config.frame_cache``): ``on``, ``off``,
    or ``auto``: on a GPU (where decompressing the files one at a time would leave it
    waiting), when the cache takes at most half the disk's free space."""
    if config.frame_cache != "auto":
        return config.frame_cache == "on"
    if device.type != "cuda":
        return False
    folder = next(p for p in (folder, *folder.parents) if p.exists())
    return n_frames * FRAME_BYTES <= shutil.disk_usage(folder).free // 2


def train_vae(
    rollouts: str | os.PathLike,
    ckpt: str | os.PathLike,
    config: VAE,
    *,
    seed: int = 0,
    restart: bool = False,
    device: str | torch.device | None = None,
    val_frames: int = 1024,
    log_every: int = 20,
    progress: bool = True,
) -> list[dict]:
    """Train V on the frames of a rollout folder; return the log (one dict per row).

    Writes ``ckpt`` (e.g. ``vae.pt``: model, optimizer, epoch, RNG states, config and the
    digest of the rollouts it learnt from; atomically after every epoch) and its log
    beside it (``vae_log.jsonl``: a ``train`` row every ``log_every`` steps and an
    ``epoch`` row with the held-out loss after each epoch). Running it again resumes after
    the last finished epoch with the same optimizer state; ``restart=True`` starts over.
    A checkpoint of another z_dim or architecture, one trained on other rollouts, or one
    trained with another ``foreground_weight`` or ``told_weight``, is refused.

    The frames stream from the rollout files through a shuffle buffer, or, where
    ``use_frame_cache`` says so (on a GPU), come from a frame cache written once beside
    ``ckpt`` (``vae_frames_<digest>.npy``), kept across an interruption and removed when
    V is trained.
    """
    ckpt = Path(ckpt)
    device = get_device(device)
    files = rollout_files(rollouts)
    train_files, val_files = split_files(files)
    made_from = {"rollouts": source_digest(rollouts)}
    if ckpt.exists() and not restart:  # older checkpoints lack these keys: the paper's loss
        trained = load_checkpoint(ckpt).get("config", {})
        for key, paper in (("foreground_weight", 1.0), ("told_weight", 0.0)):
            was = trained.get(key, paper)
            if was != getattr(config, key):
                raise ValueError(
                    f"{ckpt} was trained with {key}={was!r}, not {getattr(config, key)!r}: "
                    "pass restart=True (--restart) to train a new one in its place, or "
                    "choose another folder (--out)"
                )
    finder = told_finder(config, rollouts)
    val = heldout_frames(val_files, val_frames)
    background = None
    if config.foreground_weight != 1:
        background = median_frame(train_files).to(device)
    torch.manual_seed(seed)  # the same initial weights and samples for the same seed
    model = ConvVAE(config.z_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")
    run = TrainingRun(
        ckpt, model, optimizer, config=asdict(config),
        must_match={"architecture": ARCHITECTURE, "z_dim": config.z_dim}, made_from=made_from,
        device=device, restart=restart, unit="frames", log_every=log_every, seed=seed,
    )  # fmt: skip
    if run.fresh:
        run.record(kind="epoch", epoch=0, step=0,
                   **evaluate(model, val, config, 256, background, finder))  # fmt: skip
        run.write()

    # Whole batches, from the frame cache or cut from the shuffle buffer (by loader
    # workers if num_workers > 0), pinned for a fast copy to a GPU.
    n_frames = sum(len(load_rollout(p, ["rewards"])["rewards"]) for p in train_files)
    cache = frame_cache_path(ckpt, made_from["rollouts"])
    for old in frame_caches(ckpt):
        if old != cache:  # the cache of other rollouts (this one goes when V is trained)
            old.unlink()
    dataset = None
    if run.epoch < config.epochs and (
        (cache.exists() and config.frame_cache != "off")  # an interrupted run's: go on with it
        or use_frame_cache(config, device, n_frames, ckpt.parent)
    ):
        if cache.exists():
            try:
                dataset = CachedFrames(cache, config.batch_size, seed, n_frames)
            except ValueError as err:  # not a whole cache of these frames: write it again
                warnings.warn(f"{err}: writing the frame cache again", stacklevel=2)
        if dataset is None:
            write_frame_cache(train_files, cache, progress)
            dataset = CachedFrames(cache, config.batch_size, seed, n_frames)
    else:
        dataset = FrameDataset(train_files, buffer_size=config.buffer_size, seed=seed,
                               batch_size=config.batch_size)  # fmt: skip
    model.train()
    while run.epoch < config.epochs:
        dataset.set_epoch(run.epoch)
        loader = DataLoader(dataset, batch_size=None, num_workers=config.num_workers,
                            pin_memory=device.type == "cuda")  # fmt: skip
        label = f"VAE epoch {run.epoch + 1}/{config.epochs}"
        for frames in tqdm(loader, label, total=-(-n_frames // config.batch_size),
                           unit="batch", disable=not progress, leave=False):  # fmt: skip
            x = to_input(frames).to(device, non_blocking=True)
            with autocast(config.precision, device):
                x_hat, mu, logvar = model(x)
            weights = weigh(x, x_hat, background, config)
            loss, recon, kl = vae_loss(x, x_hat, mu, logvar, config.kl_tolerance, weights)
            loss, told = add_told(loss, mu, x, finder, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            run.step(len(x), loss=loss, recon=recon, kl=kl, **told)
        run.end_epoch(**evaluate(model, val, config, 256, background, finder))
    cache.unlink(missing_ok=True)  # V is trained: the cache has served (12 KB a frame)
    return run.log


# ---------------------------------------------------------------------------------------
# Encoding rollouts into latent statistics (the MDN-RNN's data)


@torch.no_grad()
def encode_frames(model: ConvVAE, frames: np.ndarray, batch_size: int = 512) -> tuple:
    """``mu, logvar`` as float32 arrays ``(T, z_dim)`` for uint8 frames ``(T, 64, 64, 3)``."""
    device = next(model.parameters()).device
    mus, logvars = [], []
    for i in range(0, len(frames), batch_size):
        mu, logvar = model.encode(to_input(frames[i : i + batch_size]).to(device))
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def encode_rollouts(
    vae_path: str | os.PathLike,
    rollouts: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Encode every rollout of a folder with V: one ``.npz`` per rollout; return the manifest.

    Each output file holds ``mu`` and ``logvar`` ``(T, z_dim)`` float32, one row per frame
    of the rollout, and the rollout's ``actions``, ``rewards``, ``terminated`` and
    ``truncated``, so it lines up step for step. Files are written atomically. Running it
    again encodes only what is missing or broken (each file is checked against the size
    and SHA-256 in the manifest) and what came from a rollout that changed; a different
    V checkpoint re-encodes everything, with a warning. The manifest records the digests
    of V and of the rollouts (``vae_digest``, ``rollouts_digest``).
    """
    out_dir = Path(out_dir)
    device = get_device(device)
    if not Path(vae_path).is_file():
        raise FileNotFoundError(f"{vae_path}: no such checkpoint (`wmtutor train-vae` makes one)")
    source = read_manifest(rollouts)
    vae_digest = digest(vae_path)
    model = load_vae(vae_path, device=device)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir)
    kept: dict[str, dict] = {}
    if (out_dir / MANIFEST).exists():
        previous = read_manifest(out_dir)
        if previous["config"].get("vae_digest") not in (None, vae_digest):
            warnings.warn(f"{vae_path} changed since {out_dir} was encoded: encoding every "
                          "rollout again", stacklevel=2)  # fmt: skip
        else:
            kept = {e["file"]: e for e in previous["files"]}
    entries, todo = [], []
    for entry in source["files"]:
        old = kept.get(entry["file"])
        same_source = old is not None and old.get("source_sha256") == entry.get("sha256")
        if old is not None and same_source and entry_is_whole(out_dir, old):
            entries.append(old)
            continue
        if old is not None and same_source:
            warnings.warn(f"{out_dir / entry['file']} is missing or broken: encoding it again",
                          stacklevel=2)  # fmt: skip
        entries.append(None)
        todo.append((len(entries) - 1, entry))
    for i, entry in tqdm(todo, "encode", unit="ep", disable=not progress or not todo):
        data = load_rollout(Path(rollouts) / entry["file"])
        mu, logvar = encode_frames(model, data["frames"], batch_size)
        arrays = {"mu": mu, "logvar": logvar}
        for key in ("actions", "rewards", "terminated", "truncated"):
            arrays[key] = data[key]
        written = save_arrays(out_dir / entry["file"], compress=False, **arrays)
        entries[i] = {"index": entry["index"], "file": entry["file"], "length": len(mu),
                      "source_sha256": entry.get("sha256"), **written}  # fmt: skip
    config = {**source["config"], "vae_digest": vae_digest, "z_dim": model.z_dim,
              "rollouts_digest": manifest_digest(source)}  # fmt: skip
    return write_manifest(
        out_dir, {"config": config, "preset": source.get("preset", ""), "files": entries}
    )


# ---------------------------------------------------------------------------------------
# Looking inside V


@torch.no_grad()
def decode_latent(model: ConvVAE, z: torch.Tensor | np.ndarray) -> np.ndarray:
    """Decode latents ``(z_dim,)`` or ``(B, z_dim)`` into uint8 frames ``(B, 64, 64, 3)``."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, model.z_dim)
    return to_frames(model.decode(z.to(next(model.parameters()).device)))


def traverse(model: ConvVAE, z: np.ndarray, dims: list[int], values: np.ndarray) -> np.ndarray:
    """Sweep each of ``dims`` over ``values`` from the point ``z`` (the others fixed).

    Returns uint8 frames ``(len(dims), len(values), 64, 64, 3)``: one row per dimension.
    """
    rows = []
    for d in dims:
        zs = np.repeat(np.asarray(z, dtype=np.float32)[None], len(values), axis=0)
        zs[:, d] = values
        rows.append(decode_latent(model, zs))
    return np.stack(rows)
