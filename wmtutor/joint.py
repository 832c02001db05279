"""V, M and an inverse model trained together: one optimizer, one weighted loss.

Beyond the paper (for notebook 08, to come). The paper trains V alone, then M on V's codes: V keeps
what is big on the screen, whether or not the agent can change it. Here the three are
trained at once on windows of real frames,

    loss = vae_weight · L_vae + L_mdnrnn + inverse_weight · L_inverse

where L_vae is V's own loss (``vae.vae_loss``, per frame), L_mdnrnn is M's
(``mdnrnn.mdnrnn_loss``, on the z that V samples in the same pass, so its gradient
reaches V's encoder) and L_inverse is how badly a small network reads the action a_t
back from ``(z_t, z_{t+1})`` (cross-entropy for a game of discrete actions, squared error
for CarRacing's three numbers). The inverse term is the reason for the exercise: it
pushes z to keep what the actions change (the idea of "Decoupling Dynamics and Reward
for Transfer Learning", arXiv 1804.10689).

Nothing of V or M is written twice: ``JointModel`` holds a ``ConvVAE`` and an ``MDNRNN``
and ``export_world_model`` writes them as the ``vae.pt`` and ``mdnrnn.pt`` checkpoints
the rest of the course loads (``load_vae``, ``load_mdnrnn``, the dream, the agent).

Shapes: frames ``(B, T, 64, 64, 3)`` uint8; ``z`` ``(B, T, z_dim)``; actions ``(B, T)``
int or ``(B, T, action_dim)`` float; ``mask`` ``(B, T)``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wmtutor import mdnrnn as m
from wmtutor import vae as v
from wmtutor.datasets import SequenceDataset, rollout_files
from wmtutor.envs import GAMES, action_features
from wmtutor.files import digest, source_digest
from wmtutor.presets import Game
from wmtutor.training import TrainingRun, autocast, load_checkpoint, save_checkpoint, split_files
from wmtutor.utils import get_device

ARCHITECTURE = "Joint-v1"
KEYS = ("frames", "actions", "rewards", "terminated")


# ---------------------------------------------------------------------------------------
# The model and its loss


class InverseModel(nn.Module):
    """``(z_t, z_{t+1})`` -> the action taken between them: logits over the game's
    actions (discrete) or the action's numbers (continuous), ``(..., action_dim)``."""

    def __init__(self, z_dim: int, action_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * z_dim, hidden), nn.ReLU(), nn.Linear(hidden, action_dim)
        )

    def forward(self, z: torch.Tensor, z_next: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, z_next], dim=-1))


class JointModel(nn.Module):
    """V (``vae``), M (``mdnrnn``) and the inverse model (``inverse``), as one module."""

    def __init__(self, z_dim: int, action_dim: int, hidden: int, n_gaussians: int = 5,
                 inverse_hidden: int = 128):  # fmt: skip
        super().__init__()
        self.vae = v.ConvVAE(z_dim)
        self.mdnrnn = m.MDNRNN(z_dim, action_dim, hidden, n_gaussians)
        self.inverse = InverseModel(z_dim, action_dim, inverse_hidden)
        self.z_dim, self.action_dim = z_dim, action_dim


def inverse_loss(
    logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse model's loss and accuracy over the masked steps ``(B, T - 1)``:
    cross-entropy and the share of actions read back exactly for int ``actions``
    ``(B, T - 1)``; squared error (per number) and nan for float ``(B, T - 1, action_dim)``."""
    mask = mask.float()
    n = mask.sum().clamp(min=1)
    if actions.is_floating_point():
        error = (logits.float() - actions).square().mean(-1)
        return (error * mask).sum() / n, torch.tensor(float("nan"))
    target = actions.long()
    ce = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none")
    hits = (logits.argmax(-1) == target).float()
    return (ce.view_as(mask) * mask).sum() / n, ((hits * mask).sum() / n).detach()


def joint_loss(
    model: JointModel,
    frames: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    mask: torch.Tensor,
    game: Game,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The weighted sum and its parts on a batch of windows: ``{"loss", "vae", "recon",
    "kl", "mdnrnn", "z_nll", "reward_mse", "done_bce", "inverse", "inverse_acc"}``.

    ``frames`` uint8 ``(B, T, 64, 64, 3)``; ``actions`` as recorded; ``reward``,
    ``done``, ``mask`` ``(B, T)``. Padding steps (``mask`` 0) count in no term.
    ``generator`` draws V's samples of z (None: torch's global one).
    """
    config = game.joint
    B, T = frames.shape[:2]
    x = v.to_input(frames.reshape(B * T, *frames.shape[2:]))
    with autocast(config.precision, x.device):
        mu, logvar = model.vae.encode(x)
        z = v.reparameterize(mu.float(), logvar.float(), generator)
        x_hat = model.vae.decode(z)
    real = mask.reshape(-1).bool()
    vae_terms = v.vae_loss(x[real], x_hat[real], mu[real], logvar[real],
                           game.vae.kl_tolerance)  # fmt: skip
    z = z.view(B, T, -1)
    a = action_features(actions.reshape(B * T, *actions.shape[2:]), model.action_dim)
    with autocast(config.precision, x.device):
        prediction, _, _ = model.mdnrnn(z, a.view(B, T, -1))
        logits = model.inverse(z[:, :-1], z[:, 1:])
    mdn_terms = m.mdnrnn_loss(prediction, z, reward, done, mask, game.mdnrnn.done_weight,
                              game.mdnrnn.reward_weight)  # fmt: skip
    inverse, accuracy = inverse_loss(logits, actions[:, :-1], mask[:, 1:] * mask[:, :-1])
    loss = config.vae_weight * vae_terms[0] + mdn_terms["loss"] + config.inverse_weight * inverse
    return {"loss": loss, "vae": vae_terms[0], "recon": vae_terms[1], "kl": vae_terms[2],
            "mdnrnn": mdn_terms["loss"], "z_nll": mdn_terms["z_nll"],
            "reward_mse": mdn_terms["reward_mse"], "done_bce": mdn_terms["done_bce"],
            "inverse": inverse, "inverse_acc": accuracy}  # fmt: skip


# ---------------------------------------------------------------------------------------
# Training, resumable like every stage


def _tensors(batch: dict, device: torch.device) -> tuple:
    return tuple(batch[k].to(device, non_blocking=True) for k in (*KEYS, "mask"))


@torch.no_grad()
def evaluate(model: JointModel, loader, game: Game, device, max_batches: int = 20) -> dict:
    """Mean loss terms over (up to ``max_batches``) batches of held-out windows."""
    model.eval()
    generator = torch.Generator(device).manual_seed(0)  # the same z samples every epoch
    sums: dict[str, float] = {}
    n = 0
    for i, batch in enumerate(loader):
        if i == max_batches:
            break
        for k, t in joint_loss(model, *_tensors(batch, device), game, generator).items():
            sums[k] = sums.get(k, 0.0) + t.item()
        n += 1
    model.train()
    return {k: s / max(n, 1) for k, s in sums.items()}


def train_joint(
    rollouts: str | os.PathLike,
    ckpt: str | os.PathLike,
    game_config: Game,
    game: str,
    *,
    seed: int = 0,
    restart: bool = False,
    device: str | torch.device | None = None,
    log_every: int = 10,
    progress: bool = True,
) -> list[dict]:
    """Train V, M and the inverse model together on a rollout folder's frames; return the
    log (a ``train`` row every ``log_every`` steps, an ``epoch`` row with the held-out
    terms after each epoch).

    ``game_config`` is the preset's section of the game (``preset.game(game)``): its
    ``joint`` sizes, V's z_dim and KL allowance, M's sizes and loss weights. Writes
    ``ckpt`` (e.g. ``joint.pt``) atomically after every epoch and its log beside it;
    running again resumes after the last finished epoch, ``restart=True`` starts over; a
    checkpoint of other sizes or other rollouts is refused.
    """
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}: expected one of {', '.join(GAMES)}")
    device = get_device(device)
    config = game_config.joint
    train_files, val_files = split_files(rollout_files(rollouts))
    shape = {"architecture": ARCHITECTURE, "z_dim": game_config.vae.z_dim,
             "action_dim": GAMES[game].action_dim, "hidden": game_config.mdnrnn.hidden,
             "n_gaussians": game_config.mdnrnn.n_gaussians,
             "inverse_hidden": config.inverse_hidden}  # fmt: skip
    # What the epochs already trained were trained with: a resume must not change it.
    same = {k: getattr(config, k) for k in ("vae_weight", "inverse_weight", "lr", "batch_size",
                                            "seq_len", "grad_clip")}  # fmt: skip
    torch.manual_seed(seed)  # the same initial weights and samples for the same seed
    model = JointModel(shape["z_dim"], shape["action_dim"], shape["hidden"],
                       shape["n_gaussians"], config.inverse_hidden).to(device)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = TrainingRun(
        ckpt, model, optimizer, config={**asdict(config), **shape, "game": game,
        "vae": asdict(game_config.vae), "mdnrnn": asdict(game_config.mdnrnn)},
        must_match={**shape, **same}, made_from={"rollouts": source_digest(rollouts)},
        device=device, restart=restart, unit="frames", log_every=log_every, seed=seed,
    )  # fmt: skip
    val_loader = DataLoader(SequenceDataset(val_files, config.seq_len, KEYS, shuffle=False),
                            batch_size=config.batch_size)  # fmt: skip
    if run.fresh:
        held_out = evaluate(model, val_loader, game_config, device)
        run.record(kind="epoch", epoch=0, step=0, **held_out)
        run.write()
    dataset = SequenceDataset(train_files, config.seq_len, KEYS, buffer_size=config.buffer_size,
                              seed=seed)  # fmt: skip
    bar = tqdm(total=config.epochs, initial=min(run.epoch, config.epochs), desc="V+M+inverse",
               unit="epoch", disable=not progress or run.epoch >= config.epochs)  # fmt: skip
    model.train()
    while run.epoch < config.epochs:
        dataset.set_epoch(run.epoch)
        for batch in DataLoader(dataset, batch_size=config.batch_size):
            frames, actions, reward, done, mask = _tensors(batch, device)
            terms = joint_loss(model, frames, actions, reward, done, mask, game_config)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            run.step(int(mask.sum()), **terms)
        row = run.end_epoch(**evaluate(model, val_loader, game_config, device))
        bar.set_postfix(loss=f"{row['loss']:.1f}", refresh=False)
        bar.update(1)
    bar.close()
    return run.log


def _joint_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state, config)`` of a joint checkpoint, read onto the CPU; a clear error if it is
    something else."""
    state = load_checkpoint(path)
    config = state.get("config", {})
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(
            f"{path}: architecture {config.get('architecture')!r}, expected {ARCHITECTURE!r}"
        )
    return state, config


def load_joint(path: str | os.PathLike, device: str | torch.device | None = None) -> JointModel:
    """The trained ``JointModel`` in checkpoint ``path``, in eval mode, on ``device``."""
    state, config = _joint_checkpoint(path)
    model = JointModel(config["z_dim"], config["action_dim"], config["hidden"],
                       config["n_gaussians"], config["inverse_hidden"])  # fmt: skip
    model.load_state_dict(state["model"])
    return model.to(get_device(device)).eval()


def export_world_model(path: str | os.PathLike, vae_out: str | os.PathLike,
                       mdnrnn_out: str | os.PathLike) -> tuple[Path, Path]:  # fmt: skip
    """Write the jointly trained V and M of checkpoint ``path`` as a ``vae.pt`` and an
    ``mdnrnn.pt`` that ``load_vae`` and ``load_mdnrnn`` read, each recording that it came
    from ``path``. Files already exported from this very checkpoint are left as they are
    (their digests stay, so nothing that recorded them is invalidated). Returns the paths."""
    made_from = {"joint": digest(path)}
    if all(Path(out).exists() and load_checkpoint(out).get("config", {}).get("made_from")
           == made_from for out in (vae_out, mdnrnn_out)):  # fmt: skip
        return Path(vae_out), Path(mdnrnn_out)
    state, config = _joint_checkpoint(path)
    parts = (
        # trained with the joint loss, whose V term is the paper's (no foreground weight,
        # not told where the objects are)
        ("vae.", vae_out, {**config["vae"], "architecture": v.ARCHITECTURE,
                           "foreground_weight": 1.0, "told_weight": 0.0}),
        ("mdnrnn.", mdnrnn_out, {**config["mdnrnn"], "architecture": m.ARCHITECTURE,
                                 "z_dim": config["z_dim"], "action_dim": config["action_dim"],
                                 "game": config["game"]}),
    )  # fmt: skip
    written = []
    for prefix, out, part_config in parts:
        weights = {k[len(prefix) :]: t for k, t in state["model"].items() if k.startswith(prefix)}
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, model=weights, config={**part_config, "made_from": made_from},
                        epoch=state.get("epoch"), step=state.get("step"))  # fmt: skip
        written.append(out)
    return written[0], written[1]
