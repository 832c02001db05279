"""M: the MDN-RNN, which predicts the next latent z from the current z and action.

An LSTM reads ``[z_t, a_t]`` one step at a time; its hidden state ``h_t`` summarises the
past (and is what the controller sees). From ``h_t`` three heads predict what comes next:

* a mixture of ``n_gaussians`` Gaussians over each dimension of ``z_{t+1}`` (diagonal),
  with the mixture head and its math from ``wmtutor.mdn`` (the same code as notebook 01);
* the reward ``r_t`` (a number, squared error);
* whether the episode ends after this step (a logit; ``> 0`` means done, as in the
  original, whose done loss counted each done step ``done_weight = 10`` times).

Training samples ``z`` afresh from each frame's stored ``N(mu, sigma^2)`` in every batch
(feeding ``mu`` alone is a known bug of an earlier implementation). ``step`` and
``sample_next`` are the API the dream and the controller use: batched over any leading
shape, with temperature ``tau`` (mixture logits / tau, sigma * sqrt(tau)).

Shapes: ``z`` ``(B, T, z_dim)``, ``a`` ``(B, T, action_dim)``; mixture parameters
``(B, T, K, z_dim)``; ``reward``, ``done_logit`` ``(B, T)``; the LSTM state ``(h, c)``,
each ``(1, B, hidden)``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wmtutor.datasets import SequenceDataset, rollout_files
from wmtutor.envs import GAMES, action_features
from wmtutor.files import load_rollout, source_digest
from wmtutor.mdn import MDNHead, mdn_nll, mdn_sample
from wmtutor.presets import MDNRNN as MDNRNNConfig
from wmtutor.training import TrainingRun, autocast, load_checkpoint, split_files
from wmtutor.utils import get_device
from wmtutor.vae import reparameterize

ARCHITECTURE = "MDNRNN-v1"
State = tuple[torch.Tensor, torch.Tensor]


class Prediction(NamedTuple):
    """What M predicts at each step (see the module docstring for shapes)."""

    logit_pi: torch.Tensor
    mu: torch.Tensor
    log_sigma: torch.Tensor
    reward: torch.Tensor
    done_logit: torch.Tensor


# ---------------------------------------------------------------------------------------
# The model, its loss, its sampling


class MDNRNN(nn.Module):
    """LSTM over ``[z, a]`` with a mixture head for the next z, and reward and done heads."""

    def __init__(self, z_dim: int, action_dim: int, hidden: int = 256, n_gaussians: int = 5):
        super().__init__()
        if min(z_dim, action_dim, hidden, n_gaussians) < 1:
            raise ValueError(
                f"MDNRNN needs positive sizes, got z_dim={z_dim}, action_dim={action_dim}, "
                f"hidden={hidden}, n_gaussians={n_gaussians}"
            )
        self.z_dim, self.action_dim, self.hidden = z_dim, action_dim, hidden
        self.lstm = nn.LSTM(z_dim + action_dim, hidden, batch_first=True)
        self.mdn = MDNHead(hidden, z_dim, n_gaussians)
        self.reward_head = nn.Linear(hidden, 1)
        self.done_head = nn.Linear(hidden, 1)

    def heads(self, h: torch.Tensor) -> Prediction:
        """The predictions read off hidden states ``h`` ``(..., hidden)``."""
        logit_pi, mu, log_sigma = self.mdn(h)
        return Prediction(
            logit_pi, mu, log_sigma, self.reward_head(h)[..., 0], self.done_head(h)[..., 0]
        )

    def forward(
        self, z: torch.Tensor, a: torch.Tensor, state: State | None = None
    ) -> tuple[Prediction, torch.Tensor, State]:
        """Run over sequences: returns ``(prediction, h, state)``, h ``(B, T, hidden)``."""
        if z.shape[-1] != self.z_dim or a.shape[-1] != self.action_dim:
            raise ValueError(
                f"M expects z (..., {self.z_dim}) and a (..., {self.action_dim}), got "
                f"{tuple(z.shape)} and {tuple(a.shape)}"
            )
        h, state = self.lstm(torch.cat([z, a], dim=-1), state)
        return self.heads(h), h, state

    def initial_state(self, batch_shape: tuple[int, ...] = (1,), device=None) -> State:
        """Zeros: the state before the first step, for ``batch_shape`` games at once."""
        n = int(np.prod(batch_shape))
        zeros = torch.zeros(1, n, self.hidden, device=device)
        return zeros, zeros.clone()

    @torch.no_grad()
    def step(self, z: torch.Tensor, a: torch.Tensor, state: State) -> tuple[Prediction, State]:
        """One step for a batch of any leading shape: ``z (..., z_dim)``, ``a (..., action_dim)``.

        ``state`` is ``initial_state(batch_shape)`` or what the previous step returned.
        The prediction's tensors have shape ``(..., K, z_dim)`` and ``(...)``.
        """
        batch_shape = z.shape[:-1]
        flat = (z.reshape(-1, 1, self.z_dim), a.reshape(-1, 1, self.action_dim))
        prediction, _, state = self(*flat, state)
        return Prediction(*(t.reshape((*batch_shape, *t.shape[2:])) for t in prediction)), state


def sample_next(
    prediction: Prediction,
    tau: float = 1.0,
    generator: torch.Generator | None = None,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """A sample of the next z from M's mixture at temperature ``tau``: ``(..., z_dim)``.

    ``noise = (u, eps)`` fixes the randomness (see ``wmtutor.mdn.mdn_sample``).
    """
    return mdn_sample(
        prediction.logit_pi, prediction.mu, prediction.log_sigma, tau, generator, noise
    )


def mdnrnn_loss(
    prediction: Prediction,
    z: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    mask: torch.Tensor,
    done_weight: float = 10.0,
    reward_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """M's loss on a window: ``{"loss", "z_nll", "reward_mse", "done_bce"}``.

    ``prediction`` covers the window's T steps; ``z`` ``(B, T, z_dim)`` is the window's
    latents, so step t's mixture is scored on ``z[:, t + 1]`` (T - 1 targets). ``reward``
    and ``done`` ``(B, T)`` are scored at every step; ``mask`` ``(B, T)`` is 0 on padding.
    ``z_nll`` is per latent dimension (mean over dimensions and steps).
    """
    mask = mask.float()
    z_mask = mask[:, 1:] * mask[:, :-1]
    nll = mdn_nll(
        prediction.logit_pi[:, :-1].float(),
        prediction.mu[:, :-1].float(),
        prediction.log_sigma[:, :-1].float(),
        z[:, 1:].float(),
        reduction="none",
    ).mean(-1)
    z_nll = (nll * z_mask).sum() / z_mask.sum().clamp(min=1)
    n = mask.sum().clamp(min=1)
    reward_mse = ((prediction.reward.float() - reward.float()).square() * mask).sum() / n
    pos_weight = torch.tensor(done_weight, device=done.device)
    bce = F.binary_cross_entropy_with_logits(
        prediction.done_logit.float(), done.float(), pos_weight=pos_weight, reduction="none"
    )
    done_bce = (bce * mask).sum() / n
    loss = z_nll + reward_weight * reward_mse + done_bce
    return {"loss": loss, "z_nll": z_nll, "reward_mse": reward_mse, "done_bce": done_bce}


# ---------------------------------------------------------------------------------------
# Checkpoints


def load_mdnrnn(
    path: str | os.PathLike,
    z_dim: int | None = None,
    action_dim: int | None = None,
    device: str | torch.device | None = None,
) -> MDNRNN:
    """The trained M in checkpoint ``path``, in eval mode, on ``device`` (default:
    ``wmtutor.utils.get_device()``); a clear error if it does not fit."""
    state = load_checkpoint(path)
    config = state.get("config", {})
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(
            f"{path}: architecture {config.get('architecture')!r}, expected {ARCHITECTURE!r}"
        )
    for key, want in (("z_dim", z_dim), ("action_dim", action_dim)):
        if want is not None and config.get(key) != want:
            raise ValueError(
                f"{path} holds an MDN-RNN with {key}={config.get(key)}, but {key}={want} was "
                "asked for: it was trained on another V or game"
            )
    model = MDNRNN(config["z_dim"], config["action_dim"], config["hidden"], config["n_gaussians"])
    model.load_state_dict(state["model"])
    return model.to(get_device(device)).eval()


# ---------------------------------------------------------------------------------------
# Training


KEYS = ("mu", "logvar", "actions", "rewards", "terminated")


def batch_to_tensors(batch: dict, action_dim: int, device, generator=None,
                     sample: bool = True) -> tuple:  # fmt: skip
    """A DataLoader batch of latent windows -> ``(z, a, reward, done, mask)`` tensors.

    ``z`` is sampled afresh from ``N(mu, sigma^2)`` (V's ``reparameterize``); with
    ``sample=False`` it is ``mu`` itself (the known bug, for notebook 05's exercise).
    Actions become M's features.
    """
    mu = batch["mu"].to(device, non_blocking=True)
    logvar = batch["logvar"].to(device, non_blocking=True)
    z = reparameterize(mu, logvar, generator) if sample else mu
    actions = batch["actions"].numpy()
    a = action_features(actions.reshape(-1, *actions.shape[2:]), action_dim)
    a = torch.from_numpy(a).reshape(*actions.shape[:2], action_dim).to(device)
    reward = batch["rewards"].to(device).float()
    done = batch["terminated"].to(device).float()
    return z, a, reward, done, batch["mask"].to(device)


@torch.no_grad()
def evaluate(model: MDNRNN, loader, config: MDNRNNConfig, device, max_batches: int = 50) -> dict:
    """Mean loss terms of ``model`` over (up to ``max_batches``) batches of held-out windows."""
    model.eval()
    generator = torch.Generator(device).manual_seed(0)
    sums: dict[str, float] = {}
    n = 0
    for i, batch in enumerate(loader):
        if i == max_batches:
            break
        z, a, reward, done, mask = batch_to_tensors(batch, model.action_dim, device, generator)
        with autocast(config.precision, device):
            prediction, _, _ = model(z, a)
        terms = mdnrnn_loss(
            prediction, z, reward, done, mask, config.done_weight, config.reward_weight
        )
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        n += 1
    model.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


def train_mdnrnn(
    latents: str | os.PathLike | list,
    ckpt: str | os.PathLike,
    config: MDNRNNConfig,
    game: str,
    *,
    seed: int = 0,
    restart: bool = False,
    init_from: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    log_every: int = 10,
    progress: bool = True,
) -> list[dict]:
    """Train M on encoded rollouts (a folder from ``wmtutor encode``, or a list of files);
    return the log.

    Writes ``ckpt`` (e.g. ``mdnrnn.pt``, atomically after each epoch: model, optimizer,
    epoch, RNG states, config and the digest of the latents it learnt from) and its log
    beside it. Re-running resumes after the last finished epoch; ``restart=True`` starts
    over; ``init_from`` starts from another checkpoint (iterative training). A checkpoint
    of another z_dim, action size or hidden size, or one trained on other latents, is
    refused.
    """
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}: expected one of {', '.join(GAMES)}")
    device = get_device(device)
    train_files, val_files = split_files(rollout_files(latents))
    z_dim = load_rollout(train_files[0], ["mu"])["mu"].shape[1]
    action_dim = GAMES[game].action_dim
    torch.manual_seed(seed)  # the same initial weights and samples for the same seed
    model = MDNRNN(z_dim, action_dim, config.hidden, config.n_gaussians).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shape = {"architecture": ARCHITECTURE, "z_dim": z_dim, "action_dim": action_dim,
             "hidden": config.hidden, "n_gaussians": config.n_gaussians}  # fmt: skip
    run = TrainingRun(
        ckpt, model, optimizer, config={**asdict(config), "game": game}, must_match=shape,
        made_from={"latents": source_digest(latents)}, device=device, restart=restart,
        init_from=init_from, unit="steps", log_every=log_every, seed=seed,
    )  # fmt: skip
    val_loader = DataLoader(
        SequenceDataset(val_files, config.seq_len, KEYS, shuffle=False),
        batch_size=config.batch_size,
    )
    if run.fresh:
        run.record(kind="epoch", epoch=0, step=0, **evaluate(model, val_loader, config, device))
        run.write()
    dataset = SequenceDataset(
        train_files, config.seq_len, KEYS, buffer_size=config.buffer_size, seed=seed
    )
    bar = tqdm(total=config.epochs, initial=min(run.epoch, config.epochs), desc="MDN-RNN",
               unit="epoch", disable=not progress or run.epoch >= config.epochs)  # fmt: skip
    model.train()
    while run.epoch < config.epochs:
        dataset.set_epoch(run.epoch)
        loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.num_workers,
                            pin_memory=device.type == "cuda")  # fmt: skip
        for batch in loader:
            z, a, reward, done, mask = batch_to_tensors(
                batch, action_dim, device, sample=config.train_on == "sample"
            )  # the held-out loss is always on sampled z (evaluate)
            with autocast(config.precision, device):
                prediction, _, _ = model(z, a)
            terms = mdnrnn_loss(
                prediction, z, reward, done, mask, config.done_weight, config.reward_weight
            )
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            run.step(int(mask.sum()), **terms)
        row = run.end_epoch(**evaluate(model, val_loader, config, device))
        bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    return run.log


# ---------------------------------------------------------------------------------------
# Using M: teacher forcing, open-loop dreams, the done head


@torch.no_grad()
def teacher_forced(model: MDNRNN, z: np.ndarray, actions: np.ndarray) -> Prediction:
    """M's prediction at every step of one real sequence: ``z (T, z_dim)``, game actions."""
    device = next(model.parameters()).device
    a = torch.from_numpy(action_features(actions, model.action_dim)).to(device)
    prediction, _, _ = model(torch.as_tensor(z, dtype=torch.float32, device=device)[None], a[None])
    return Prediction(*(t[0] for t in prediction))


@torch.no_grad()
def dream(
    model: MDNRNN,
    z0: np.ndarray,
    actions: np.ndarray,
    tau: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """An open-loop dream: from a real ``z0``, feed M its own samples under given actions.

    ``z0`` ``(z_dim,)`` or ``(B, z_dim)`` (B dreams at once, e.g. one per tau); ``actions``
    the game's recorded actions ``(T, ...)``, the same for every dream. Returns ``z``
    ``(B, T + 1, z_dim)`` (z0 first), ``done_prob`` and ``reward`` ``(B, T)``.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    z = torch.as_tensor(np.asarray(z0, dtype=np.float32), device=device).reshape(-1, model.z_dim)
    a_all = torch.from_numpy(action_features(actions, model.action_dim)).to(device)
    state = model.initial_state((len(z),), device)
    zs, done, reward = [z], [], []
    for t in range(len(a_all)):
        a = a_all[t].expand(len(z), -1)
        prediction, state = model.step(z, a, state)
        z = sample_next(prediction, tau, generator)
        zs.append(z)
        done.append(torch.sigmoid(prediction.done_logit))
        reward.append(prediction.reward)
    return {
        "z": torch.stack(zs, 1).cpu().numpy(),
        "done_prob": torch.stack(done, 1).cpu().numpy(),
        "reward": torch.stack(reward, 1).cpu().numpy(),
    }


@torch.no_grad()
def done_precision_recall(model: MDNRNN, files: list[Path]) -> dict[str, float]:
    """How well the done head predicts the end (logit > 0 = done), teacher-forced on ``files``.

    Counts over every step of every file: precision = predicted ends that were ends,
    recall = ends that were predicted. Also the counts themselves.
    """
    tp = fp = fn = steps = 0
    for path in files:
        data = load_rollout(path, ["mu", "actions", "terminated"])
        predicted = teacher_forced(model, data["mu"], data["actions"]).done_logit.cpu().numpy() > 0
        actual = data["terminated"].astype(bool)
        tp += int((predicted & actual).sum())
        fp += int((predicted & ~actual).sum())
        fn += int((~predicted & actual).sum())
        steps += len(actual)
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "steps": steps,
    }
