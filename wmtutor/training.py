"""What every training loop of the course shares: checkpoints, logs, precision, splits.

* Checkpoints are plain ``torch.save`` dicts of state dicts, numbers, strings and the RNG
  state, written atomically and read with ``torch.load(..., weights_only=True)``: a
  checkpoint can never run code.
* Logs are JSON lines (one dict per row), rewritten atomically.
* ``autocast("bf16", device)`` turns on bfloat16 matrix multiplies; ``"fp32"`` does nothing.
* ``split_files`` holds out the last few rollout files for validation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch

from wmtutor.utils import atomic_path


def save_checkpoint(path: str | os.PathLike, **state) -> None:
    """Write ``state`` (state dicts, numbers, strings) atomically with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``: tensors and plain data, never code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a cut-short or foreign file: say which, and what to do
        raise ValueError(
            f"{path}: not a readable wmtutor checkpoint ({type(err).__name__}: {err}); "
            "delete it (or pass restart) to train from scratch"
        ) from err


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    return contextlib.nullcontext()


def split_files(files: list[Path], val_fraction: float = 0.05) -> tuple[list[Path], list[Path]]:
    """Hold out the last ``val_fraction`` of the rollout files (at least one) for validation."""
    if len(files) < 2:
        raise ValueError(f"need at least 2 rollout files to hold one out, got {len(files)}")
    n_val = max(1, round(len(files) * val_fraction))
    return files[:-n_val], files[-n_val:]


def read_log(path: Path) -> list[dict]:
    """The rows of a JSON-lines training log (empty if there is none yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_log(path: Path, rows: list[dict]) -> None:
    """Rewrite a JSON-lines training log atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def file_digest(path: str | os.PathLike) -> str:
    """A short SHA-256 of a file: which checkpoint made an encoding."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resume(
    ckpt_path: Path,
    log_path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    want: dict,
    restart: bool,
    device: torch.device,
) -> tuple[int, int, list[dict]]:
    """Pick up a training run where its last checkpoint left it: ``(epoch, step, log)``.

    Loads the model, optimizer and torch RNG state from ``ckpt_path`` and keeps the log
    rows up to the saved step. ``want`` (e.g. ``{"z_dim": 32}``) must match the
    checkpoint's config, else a ValueError says which key differs and what to do. With
    ``restart=True`` (or no checkpoint yet) it starts from zero and clears the log.
    """
    if restart or not ckpt_path.exists():
        if restart:
            log_path.unlink(missing_ok=True)
        return 0, 0, []
    state = load_checkpoint(ckpt_path, device)
    old = state.get("config", {})
    for key, value in want.items():
        if old.get(key) != value:
            raise ValueError(
                f"{ckpt_path} was trained with {key}={old.get(key)!r}, not {value!r}: pass "
                "restart=True (--restart) to train a new one in its place, or choose another "
                "folder"
            )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])  # the same samples as an uninterrupted run
    step = int(state["step"])
    return int(state["epoch"]), step, [r for r in read_log(log_path) if r["step"] <= step]
