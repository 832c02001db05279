"""Small helpers every stage uses: seeding, atomic writes, and where artifacts live."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators; return a fresh NumPy Generator.

    Call it at the top of a notebook or script: the same seed then gives the same run
    (on the same machine and library versions). Code that needs its own randomness
    should take the returned Generator (or a ``seed`` argument) rather than the globals.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    import torch  # here, so that light processes (gathering workers) never load torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Whatever was at ``path`` before stays intact if the writer fails or is killed:
    readers see either the old file or the complete new one, never half of one.

    Example::

        with atomic_path("assets/mdn_toy.png") as tmp:
            fig.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def runs_dir(*parts: str) -> Path:
    """The folder where artifacts go (rollouts, checkpoints, GIFs), created if missing.

    ``$WMTUTOR_RUNS`` if set; else ``runs/`` at the top of the checkout when wmtutor is
    used from one (the usual case, so notebooks and the CLI share their artifacts);
    else ``~/.cache/wmtutor/runs``. ``parts`` are joined below it, e.g.
    ``runs_dir("toys", "tiny")``.
    """
    root = os.environ.get("WMTUTOR_RUNS")
    if root:
        base = Path(root).expanduser()
    else:
        checkout = Path(__file__).resolve().parents[1]
        if (checkout / "pyproject.toml").exists():
            base = checkout / "runs"
        else:
            base = Path.home() / ".cache" / "wmtutor" / "runs"
    out = base.joinpath(*parts)
    out.mkdir(parents=True, exist_ok=True)
    return out
