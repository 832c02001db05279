"""Small helpers every stage uses: seeding, the device, and atomic writes.

Nothing here imports torch at module level: gathering workers import this module and must
start fast (torch alone takes about a second to import).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for type hints only; see the module docstring
    import torch

DEVICE_ENV_VAR = "WMTUTOR_DEVICE"


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators; return a fresh NumPy Generator.

    Call it at the top of a notebook or script: the same seed then gives the same run
    (on the same machine and library versions). Code that needs its own randomness
    should take the returned Generator (or a ``seed`` argument) rather than the globals.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    import torch  # here, not at the top: gathering workers never load torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA's generators too
    return np.random.default_rng(seed)


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The one device decision of a run: ``name``, else ``$WMTUTOR_DEVICE``, else CUDA if
    there is a GPU, else the CPU. Every stage takes the result and passes it down.

    Raises:
        ValueError: ``name`` is not a device torch knows, or asks for CUDA where there is
            none (the message says what is available).
    """
    import torch  # here, not at the top: see the module docstring

    if isinstance(name, torch.device):
        return name
    source = "--device"
    if name is None or str(name).strip() == "":
        name, source = os.environ.get(DEVICE_ENV_VAR, "").strip(), f"${DEVICE_ENV_VAR}"
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name).strip())
    except RuntimeError:
        raise ValueError(f"{source} {name!r}: not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source} {name!r}: this machine has no CUDA GPU; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"{source} {name!r}: there are only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise ValueError(f"{source} {name!r}: expected cpu, cuda or cuda:N")
    return device


# ---------------------------------------------------------------------------------------
# Atomic writes


TMP_SUFFIX = ".tmp"


# The process's umask, read once: reading it means setting it, which threads (the
# pipeline's clock) must not do at the same time.
UMASK = os.umask(0)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Whatever was at ``path`` before stays intact if the writer fails or is killed:
    readers see either the old file or the complete new one, never half of one. The
    temporary file's name carries the writer's process id (``.<name>.<pid>.<random>.tmp``)
    so that ``remove_stale_tmp`` can tell the litter of a killed writer from a live one.

    Example::

        with atomic_path("assets/mdn_toy.png") as tmp:
            fig.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _alive(pid: int) -> bool:
    """Is process ``pid`` running? (A zombie, dead but not yet reaped, is not.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # Linux: a killed worker whose parent died too may linger as a zombie
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; return them.

    Only files named by ``atomic_path`` whose writing process is gone are removed (a
    concurrent writer's files are left alone). Every stage calls this on its output
    folder when it starts.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        parts = tmp.name.split(".")  # "", name..., pid, random, "tmp"
        pid = parts[-3] if len(parts) >= 4 else ""
        if pid.isdigit() and _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# ---------------------------------------------------------------------------------------
# Worker processes


def die_with_parent() -> None:
    """Make this (worker) process end, with every process it started, when its parent
    dies, even of ``kill -9``: a ``ProcessPoolExecutor`` initializer.

    The worker becomes the leader of a process group of its own (so a game it starts,
    such as ViZDoom's engine, is in it) and asks Linux (``prctl(PR_SET_PDEATHSIG)``) for a
    signal when its parent goes; the handler kills the whole group. Elsewhere than on
    Linux this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here, not at the top: only workers on Linux need it

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    parent = os.getppid()
    os.setpgid(0, 0)
    signal.signal(signal.SIGUSR1, lambda *_: os.killpg(0, signal.SIGKILL))
    libc.prctl(1, int(signal.SIGUSR1))  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.killpg(0, signal.SIGKILL)
