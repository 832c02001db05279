"""Streaming datasets over rollout files: memory is bounded by a buffer, not by the data.

Ten thousand rollouts are ten million frames (120 GB as uint8): they never fit in memory,
and earlier implementations that loaded everything could not even hold 2,000 episodes in
16 GB. These datasets read one file at a time and mix items through a *shuffle buffer*
of fixed size:

* ``FrameDataset`` yields single frames, ``(64, 64, 3)`` uint8, for the VAE.
* ``SequenceDataset`` yields fixed-length windows over episodes (dicts of
  ``(seq_len, ...)`` arrays plus a ``mask``), for the MDN-RNN.

Where reading is the bottleneck (V on a GPU: the model outruns decompressing the files),
``write_frame_cache`` copies every frame once into one uint8 array on disk, and
``CachedFrames`` reads batches from it as a memory map, in a fresh permutation each epoch:
memory is then the operating system's page cache, which gives back what it must.

Both are ``torch.utils.data.IterableDataset``\\ s: wrap them in a ``DataLoader`` to batch
(``DataLoader(FrameDataset(dir), batch_size=100)`` gives ``(100, 64, 64, 3)`` uint8
tensors); with ``num_workers > 0`` each worker reads its own share of the files.
Memory at any moment is the buffer (``buffer_size`` items, copied out of their files)
plus the one file being read, whatever the number of files.

A file that cannot be read (cut short, corrupt, wrong shapes) raises ``RolloutFileError``
naming it; with ``skip_corrupt=True`` it is skipped with a warning instead.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info
from tqdm.auto import tqdm

from wmtutor.files import RolloutFileError, load_rollout, read_manifest
from wmtutor.layout import MANIFEST
from wmtutor.utils import atomic_path

FRAME_BYTES = 64 * 64 * 3  # one uint8 frame


def rollout_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The rollout files of a folder (those its manifest lists), or a list of files as given."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder of rollouts")
        if (folder / MANIFEST).exists():
            files = [folder / e["file"] for e in read_manifest(folder)["files"]]
        else:
            files = sorted(folder.glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"{folder} holds no rollout files (run `wmtutor gather`)")
        return files
    return [Path(p) for p in source]


class _Streaming(IterableDataset):
    """Files in a (per-epoch) shuffled order, split across DataLoader workers."""

    def __init__(self, source, *, buffer_size: int, shuffle: bool, seed: int, skip_corrupt: bool):
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.files = rollout_files(source)
        self.buffer_size = int(buffer_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.skip_corrupt = skip_corrupt
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle order per epoch (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def _rng_and_files(self) -> tuple[np.random.Generator, list[Path]]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        order_rng = np.random.default_rng([self.seed, self.epoch])  # same order in all workers
        files = list(self.files)
        if self.shuffle:
            files = [files[i] for i in order_rng.permutation(len(files))]
        rng = np.random.default_rng([self.seed, self.epoch, worker + 1])
        return rng, files[worker::n_workers]

    def _load(self, path: Path, keys: Sequence[str]) -> dict | None:
        try:
            return load_rollout(path, keys)
        except RolloutFileError as err:
            if not self.skip_corrupt:
                raise
            warnings.warn(f"skipping {err}", stacklevel=3)
            return None

    def _items(self, rng: np.random.Generator, files: list[Path]) -> Iterator:
        raise NotImplementedError

    def __iter__(self) -> Iterator:
        rng, files = self._rng_and_files()
        items = self._items(rng, files)
        if not self.shuffle:
            yield from items
            return
        buffer: list = []
        for item in items:  # reservoir-style: a random buffered item leaves, the new one enters
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            i = int(rng.integers(len(buffer)))
            yield buffer[i]
            buffer[i] = item
        for i in rng.permutation(len(buffer)):
            yield buffer[i]


class FrameDataset(_Streaming):
    """Every frame of every rollout, shuffled: one ``(64, 64, 3)`` uint8 array at a time,
    or with ``batch_size`` whole batches ``(batch_size, 64, 64, 3)``.

    Args:
        source: a rollout folder or a list of ``.npz`` files.
        buffer_size: frames held for shuffling (12 KB each: 8192 frames = 100 MB).
        shuffle: shuffle the file order and mix frames through the buffer.
        seed: the shuffle's seed (the order also changes with ``set_epoch``).
        skip_corrupt: skip unreadable files with a warning instead of raising.
        batch_size: yield batches, cut from a NumPy buffer in one vectorised step each
            (what a GPU needs: a frame at a time, Python and the DataLoader's collate
            cost more than the model). Use it with ``DataLoader(dataset, batch_size=None,
            num_workers=k)``; the last batch of each worker may be smaller.
    """

    def __init__(
        self,
        source,
        buffer_size: int = 8192,
        shuffle: bool = True,
        seed: int = 0,
        skip_corrupt: bool = False,
        batch_size: int | None = None,
    ):
        super().__init__(
            source, buffer_size=buffer_size, shuffle=shuffle, seed=seed, skip_corrupt=skip_corrupt
        )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def _items(self, rng: np.random.Generator, files: list[Path]) -> Iterator[np.ndarray]:
        for path in files:
            data = self._load(path, ["frames"])
            if data is not None:
                for frame in data["frames"]:
                    yield frame.copy()  # a copy: a view would keep the whole file alive

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.batch_size is None:
            yield from super().__iter__()
            return
        rng, files = self._rng_and_files()
        out: list[np.ndarray] = []
        for frames in self._batches(rng, files):
            out.append(frames)
            while sum(len(f) for f in out) >= self.batch_size:
                joined = np.concatenate(out)
                yield joined[: self.batch_size]
                out = [joined[self.batch_size :]]
        rest = np.concatenate(out) if out else np.empty((0, 64, 64, 3), np.uint8)
        for i in range(0, len(rest), self.batch_size):
            yield rest[i : i + self.batch_size]

    def _batches(self, rng: np.random.Generator, files: list[Path]) -> Iterator[np.ndarray]:
        """The reservoir of the single-frame path, k frames at a time: each new frame takes
        the slot of a buffered one drawn at random, which leaves."""
        buffer = np.empty((self.buffer_size, 64, 64, 3), np.uint8)
        n = 0
        for path in files:
            data = self._load(path, ["frames"])
            if data is None:
                continue
            frames = data["frames"]
            if not self.shuffle:
                yield frames
                continue
            i = 0
            while i < len(frames):
                if n < self.buffer_size:  # filling the buffer
                    take = min(self.buffer_size - n, len(frames) - i)
                    buffer[n : n + take] = frames[i : i + take]
                    n, i = n + take, i + take
                    continue
                take = min(self.batch_size, len(frames) - i)
                slots = rng.choice(self.buffer_size, take, replace=False)
                yield buffer[slots]  # fancy indexing copies: the buffer can be refilled
                buffer[slots] = frames[i : i + take]
                i += take
        if self.shuffle:
            yield buffer[rng.permutation(n)]


class SequenceDataset(_Streaming):
    """Windows of ``seq_len`` consecutive steps over each rollout, for the MDN-RNN.

    Each item is a dict of ``keys`` arrays shaped ``(seq_len, ...)`` plus ``mask``
    ``(seq_len,)`` float32 (1 for real steps, 0 for padding). Windows tile each episode
    and one always ends on its last step (so the moment of death is never dropped); the
    tiling starts at a random offset each epoch. An episode shorter than ``seq_len``
    gives one window, padded with zeros at the end.

    Args:
        source: a rollout folder or a list of ``.npz`` files.
        seq_len: steps per window.
        keys: which arrays to cut into windows.
        buffer_size: windows held for shuffling.
        shuffle, seed, skip_corrupt: as for ``FrameDataset``.
    """

    def __init__(
        self,
        source,
        seq_len: int,
        keys: Sequence[str] = ("frames", "actions", "rewards", "terminated"),
        buffer_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        skip_corrupt: bool = False,
    ):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        super().__init__(
            source, buffer_size=buffer_size, shuffle=shuffle, seed=seed, skip_corrupt=skip_corrupt
        )
        self.seq_len = int(seq_len)
        self.keys = tuple(keys)

    def window_starts(self, length: int, rng: np.random.Generator | None) -> list[int]:
        """Where this epoch's windows start in an episode of ``length`` steps."""
        if length <= self.seq_len:
            return [0]
        last = length - self.seq_len
        offset = int(rng.integers(self.seq_len)) if rng is not None else 0
        starts = list(range(offset, last + 1, self.seq_len))
        if not starts or starts[-1] != last:
            starts.append(last)
        return starts

    def _items(self, rng: np.random.Generator, files: list[Path]) -> Iterator[dict]:
        for path in files:
            data = self._load(path, self.keys)
            if data is None:
                continue
            length = len(data[self.keys[0]])
            for start in self.window_starts(length, rng if self.shuffle else None):
                n = min(self.seq_len, length - start)
                item = {}
                for key in self.keys:
                    window = np.zeros((self.seq_len, *data[key].shape[1:]), data[key].dtype)
                    window[:n] = data[key][start : start + n]
                    item[key] = window
                mask = np.zeros(self.seq_len, np.float32)
                mask[:n] = 1
                item["mask"] = mask
                yield item


# ---------------------------------------------------------------------------------------
# A frame cache: every frame once, in one memory-mapped array


def write_frame_cache(
    files: Sequence[str | os.PathLike], path: str | os.PathLike, progress: bool = True
) -> Path:
    """Copy every frame of ``files``, in order, into the ``.npy`` file ``path``: uint8
    ``(N, 64, 64, 3)``, ``N`` the frames of all files. Written atomically (a killed writer
    leaves no half cache). Return ``path``."""
    files = [Path(p) for p in files]
    lengths = [len(load_rollout(p, ["rewards"])["rewards"]) for p in files]
    with atomic_path(path) as tmp:
        cache = np.lib.format.open_memmap(tmp, "w+", np.uint8, (sum(lengths), 64, 64, 3))
        try:
            _reserve(tmp)  # the disk space now, or a clear error (a full disk under a
            start = 0  # memory map would kill the process with SIGBUS, no message)
            for p, n in tqdm(list(zip(files, lengths, strict=True)), "frame cache",
                             unit="file", disable=not progress, leave=False):  # fmt: skip
                frames = load_rollout(p, ["frames"])["frames"]
                if len(frames) != n:
                    raise RolloutFileError(f"{p}: {len(frames)} frames but {n} rewards")
                cache[start : start + n] = frames
                start += n
            cache.flush()
        finally:
            del cache  # the map closes, on failure too
    return Path(path)


def _reserve(path: Path) -> None:
    """Allocate the whole of file ``path`` on disk (where the system can), or raise."""
    if not hasattr(os, "posix_fallocate"):
        return
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        raise OSError(err.errno, f"no room for the frame cache {path} "
                      f"({size / 2**20:.0f} MiB): {err.strerror}") from err  # fmt: skip
    finally:
        os.close(fd)


class CachedFrames(IterableDataset):
    """Batches ``(≤ batch_size, 64, 64, 3)`` uint8 from a cache of ``write_frame_cache``.

    Each epoch (``set_epoch``) visits every frame once, in a permutation drawn from
    ``(seed, epoch)`` (a resumed run sees the same batches); each batch reads its frames in
    file order, so the disk is read forward. With ``DataLoader(dataset, batch_size=None,
    num_workers=k)`` each worker yields its share of the batches.

    Raises:
        ValueError: ``path`` is not a frame cache of ``n_frames`` frames (when given).
    """

    def __init__(self, path: str | os.PathLike, batch_size: int, seed: int = 0,
                 n_frames: int | None = None):  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path, self.batch_size, self.seed, self.epoch = Path(path), batch_size, seed, 0
        frames = np.load(self.path, mmap_mode="r")
        if frames.dtype != np.uint8 or frames.shape[1:] != (64, 64, 3):
            raise ValueError(f"{self.path}: {frames.dtype} {frames.shape}, "
                             "expected uint8 frames (N, 64, 64, 3)")  # fmt: skip
        if n_frames is not None and len(frames) != n_frames:
            raise ValueError(f"{self.path} holds {len(frames)} frames, expected {n_frames}")
        self.n_frames = len(frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.n_frames // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = np.load(self.path, mmap_mode="r")  # opened in each worker
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_frames)
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for b in range(worker, len(self), n_workers):
            rows = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
            yield frames[rows]  # fancy indexing copies out of the map
