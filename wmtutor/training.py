"""What every training loop of the course shares: checkpoints, logs, precision, splits.

* Checkpoints are plain ``torch.save`` dicts of state dicts, numbers, strings and the RNG
  states, written atomically and read with ``torch.load(..., weights_only=True)``: a
  checkpoint can never run code. They are always read onto the CPU and then moved to the
  device the run uses, so a checkpoint made on a GPU resumes on a laptop and back.
* ``TrainingRun`` is the bookkeeping around a loop (resume, the log, the checkpoint after
  each epoch), so that the loop itself shows only forward, loss, backward and step::

      run = TrainingRun(ckpt, model, optimizer, config=..., must_match=..., device=d)
      while run.epoch < epochs:
          for batch in loader:
              loss = ...forward...
              optimizer.zero_grad(); loss.backward(); optimizer.step()
              run.step(len(batch), loss=loss)
          run.end_epoch(**evaluate(model, held_out))

* Logs are JSON lines (one dict per row), rewritten atomically.
* ``autocast("bf16", device)`` turns on bfloat16 matrix multiplies; ``"fp32"`` does nothing;
  ``"auto"`` (the ``laptop`` preset's) is bf16 only where the hardware does bf16 itself
  (``bf16_is_native``): elsewhere torch emulates it, many times slower than fp32.
* ``split_files`` holds out the last few rollout files for validation.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path

import torch

from wmtutor.layout import log_path
from wmtutor.utils import atomic_path, remove_stale_tmp


def save_checkpoint(path: str | os.PathLike, **state) -> None:
    """Write ``state`` (state dicts, numbers, strings) atomically with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint onto the CPU with ``weights_only=True``: tensors and plain data,
    never code. Move what it holds to a device afterwards (``model.to(device)``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a cut-short or foreign file: say which, and what to do
        raise ValueError(
            f"{path}: not a readable wmtutor checkpoint ({type(err).__name__}: {err}); "
            "delete it (or pass --restart) to train from scratch"
        ) from err


def rng_state(device: torch.device) -> dict:
    """The torch RNG states a resumed run needs: the CPU's, and the GPU's when it runs on one."""
    state = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what ``rng_state`` saved (on the CPU: the states are CPU byte tensors)."""
    torch.set_rng_state(state["rng"].cpu())
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


def bf16_is_native(device: torch.device) -> bool:
    """Whether ``device`` does bf16 arithmetic in hardware: a CUDA GPU that supports it, or
    a CPU with AVX512-BF16 or AMX. Elsewhere (many laptops: AVX2 only; ARM) torch emulates
    bf16, and V trains about 35x *slower* than in fp32 (README, "V: the VAE")."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` is bf16 where ``device`` does it in hardware
    (``bf16_is_native``), else fp32; the other two are kept as they are."""
    if precision == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {precision!r}")
    return precision


def precision_note(device: torch.device | str) -> str:
    """One line for logs and benchmarks: whether ``device`` has bf16 in hardware, and what
    precision ``"auto"`` (the ``laptop`` preset's) trains in there."""
    device = torch.device(device)
    native = "yes" if bf16_is_native(device) else "no"
    return (f"bf16 in hardware: {native} (precision 'auto' trains in "
            f"{resolve_precision('auto', device)})")  # fmt: skip


_WARNED: set[str] = set()  # device types already warned of an emulated bf16


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where ``precision`` resolves to bf16 (``resolve_precision``), else
    nothing. bf16 asked for by name on a device that only emulates it is kept (it was asked
    for), with one warning per device type."""
    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    if not bf16_is_native(device) and device.type not in _WARNED:
        _WARNED.add(device.type)
        warnings.warn(
            f"precision 'bf16' on a {device.type} without bf16 in hardware: torch emulates "
            "it, many times slower than fp32 (V about 35x on an AVX2 CPU). Use precision "
            "'auto' (bf16 only where it is native) or 'fp32'",
            stacklevel=2,
        )
    return torch.autocast(device.type, dtype=torch.bfloat16)


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


def _value(v):
    return v.item() if isinstance(v, torch.Tensor) else v


class TrainingRun:
    """The bookkeeping of one resumable training loop (see the module docstring).

    Args:
        ckpt: the checkpoint; its JSON-lines log goes beside it (``layout.log_path``).
        model, optimizer: what is trained; on ``device`` already.
        config: what the checkpoint records about the run (sizes, learning rate, seed).
        must_match: keys the checkpoint's config must have with the same values to be
            resumed (e.g. ``{"z_dim": 32}``); otherwise a ValueError names the key.
        made_from: what the data was (e.g. ``{"rollouts": digest}``); a checkpoint made
            from other data is refused, with the command that trains afresh.
        restart: start from zero (the log is cleared; the checkpoint is replaced at the
            end of the first epoch, not before).
        init_from: with no checkpoint yet, start from this one instead of from zero (its
            model, optimizer, epoch count and log): how a round of iterative training
            goes on training the previous round's M on more data.
        unit: what ``step`` counts, for the rate in the log (``frames``, ``steps``).
        log_every: a ``train`` row every this many steps.
        seed: recorded in the checkpoint (seed torch with it before making the model: a
            resumed run then restores the saved RNG states instead).
    """

    def __init__(
        self,
        ckpt: str | os.PathLike,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        config: dict,
        must_match: dict,
        device: torch.device,
        made_from: dict | None = None,
        restart: bool = False,
        init_from: str | os.PathLike | None = None,
        unit: str = "steps",
        log_every: int = 20,
        seed: int = 0,
    ):
        self.ckpt, self.log_path = Path(ckpt), log_path(ckpt)
        self.model, self.optimizer, self.device = model, optimizer, device
        self.config = {**config, **must_match, "seed": seed, "made_from": made_from or {}}
        self.unit, self.log_every = unit, log_every
        self.epoch, self.step_count, self.log = 0, 0, []
        remove_stale_tmp(self.ckpt.parent)
        if restart:
            self.log_path.unlink(missing_ok=True)
        elif self.ckpt.exists():
            self._resume(self.ckpt, self.log_path, must_match, made_from or {})
        elif init_from is not None:
            init_from = Path(init_from)
            self._resume(init_from, log_path(init_from), must_match, {})
        self._start_epoch()

    def _resume(self, ckpt: Path, log: Path, must_match: dict, made_from: dict) -> None:
        state = load_checkpoint(ckpt)
        old = state.get("config", {})
        for key, value in must_match.items():
            if old.get(key) != value:
                raise ValueError(
                    f"{ckpt} was trained with {key}={old.get(key)!r}, not {value!r}: pass "
                    "restart=True (--restart) to train a new one in its place, or choose "
                    "another folder (--out)"
                )
        for key, value in made_from.items():
            was = old.get("made_from", {}).get(key)
            if was is not None and was != value:
                raise ValueError(
                    f"{ckpt} was trained on other {key} than those there now ({key} "
                    f"{was} then, {value} now): pass --restart to train it anew on them, or "
                    "choose another folder (--out)"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state, self.device)  # the same samples as an uninterrupted run
        self.epoch, self.step_count = int(state["epoch"]), int(state["step"])
        self.log = [r for r in read_log(log) if r["step"] <= self.step_count]

    @property
    def fresh(self) -> bool:
        """Nothing trained or logged yet (log the untrained model's held-out loss now)."""
        return self.epoch == 0 and not self.log

    def record(self, **row) -> None:
        """Add a row to the log (tensors become numbers)."""
        self.log.append({k: _value(v) for k, v in row.items()})

    def _start_epoch(self) -> None:
        self.started, self.seen = time.perf_counter(), 0

    def step(self, n: int, **metrics) -> None:
        """One optimizer step on ``n`` items; a ``train`` row every ``log_every`` steps."""
        self.step_count += 1
        self.seen += n
        if self.step_count % self.log_every == 0:
            rate = self.seen / max(time.perf_counter() - self.started, 1e-9)
            self.record(kind="train", epoch=self.epoch, step=self.step_count, **metrics,
                        **{f"{self.unit}_per_s": rate})  # fmt: skip

    def end_epoch(self, **held_out) -> dict:
        """Close an epoch: its log row (time, rate, ``held_out`` losses), then the
        checkpoint and the log, atomically. Returns the row."""
        self.epoch += 1
        seconds = time.perf_counter() - self.started
        rate = {f"{self.unit}_per_s": self.seen / max(seconds, 1e-9)}
        self.record(kind="epoch", epoch=self.epoch, step=self.step_count, seconds=seconds,
                    **rate, **held_out)  # fmt: skip
        save_checkpoint(
            self.ckpt,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            step=self.step_count,
            config=self.config,
            **rng_state(self.device),
        )
        self.write()
        self._start_epoch()
        return self.log[-1]

    def write(self) -> None:
        """Write the log as it is now."""
        write_log(self.log_path, self.log)
