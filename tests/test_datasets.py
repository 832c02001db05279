"""Streaming datasets (wmtutor/datasets.py): every item once, bounded memory, clear errors."""

import tracemalloc

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wmtutor.datasets import (
    CachedFrames,
    FrameDataset,
    SequenceDataset,
    rollout_files,
    write_frame_cache,
)
from wmtutor.files import RolloutFileError, load_rollout


def write_rollouts(folder, lengths, seed=0):
    """Synthetic rollout files: frame t of file i is filled with a unique (i, t) code."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, T in enumerate(lengths):
        frames = np.zeros((T, 64, 64, 3), np.uint8)
        frames[:, 0, 0, 0] = i
        frames[:, 0, 0, 1] = np.arange(T) % 256
        frames[:, 0, 0, 2] = np.arange(T) // 256
        frames[:, 1:] = np.random.default_rng(seed + i).integers(0, 255, (T, 63, 64, 3))
        terminated = np.zeros(T, bool)
        terminated[-1] = True
        np.savez_compressed(
            folder / f"rollout_{i:05d}.npz",
            frames=frames,
            actions=np.arange(T, dtype=np.int64),
            rewards=np.ones(T, np.float32),
            terminated=terminated,
            truncated=np.zeros(T, bool),
            seed=np.int64(i),
        )
    return folder


def codes(frames):
    frames = np.asarray(frames)
    return [(int(f[0, 0, 0]), int(f[0, 0, 1]) + 256 * int(f[0, 0, 2])) for f in frames]


def test_every_frame_comes_once_per_epoch_shuffled(tmp_path):
    folder = write_rollouts(tmp_path / "r", [30, 50, 20, 40])
    expected = sorted((i, t) for i, T in enumerate([30, 50, 20, 40]) for t in range(T))
    ds = FrameDataset(folder, buffer_size=16, seed=0)
    epoch0 = codes(list(ds))
    assert sorted(epoch0) == expected
    assert epoch0 != expected  # shuffled
    ds.set_epoch(1)
    assert codes(list(ds)) != epoch0  # a new order each epoch
    in_order = codes(list(FrameDataset(folder, shuffle=False)))
    assert in_order == expected
    batches = list(DataLoader(FrameDataset(folder, buffer_size=16), batch_size=25, num_workers=2))
    assert batches[0].shape == (25, 64, 64, 3) and batches[0].dtype == torch.uint8
    assert sorted(codes(torch.cat(batches).numpy())) == expected  # 2 workers: no repeats


def test_whole_batches_hold_every_frame_once_as_the_single_frames_do(tmp_path):
    lengths = [30, 50, 7, 40]
    folder = write_rollouts(tmp_path / "r", lengths)
    expected = sorted((i, t) for i, T in enumerate(lengths) for t in range(T))
    ds = FrameDataset(folder, buffer_size=16, seed=0, batch_size=10)
    batches = list(ds)
    assert all(b.shape[1:] == (64, 64, 3) and b.dtype == np.uint8 for b in batches)
    assert [len(b) for b in batches[:-1]] == [10] * (len(batches) - 1)
    epoch0 = codes(np.concatenate(batches))
    assert sorted(epoch0) == expected and epoch0 != expected  # all of them, shuffled
    assert codes(np.concatenate(list(ds))) == epoch0  # the same seed and epoch: same order
    ds.set_epoch(1)
    assert codes(np.concatenate(list(ds))) != epoch0
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=None, num_workers=workers)
        assert sorted(codes(torch.cat(list(loader)).numpy())) == expected
    ordered = FrameDataset(folder, shuffle=False, batch_size=10)
    assert codes(np.concatenate(list(ordered))) == expected
    with pytest.raises(ValueError, match="batch_size"):
        FrameDataset(folder, batch_size=0)


def test_the_frame_cache_holds_every_frame_and_serves_each_once_per_epoch(tmp_path):
    lengths = [30, 50, 7, 40]
    files = rollout_files(write_rollouts(tmp_path / "r", lengths))
    expected = sorted((i, t) for i, T in enumerate(lengths) for t in range(T))
    path = write_frame_cache(files, tmp_path / "c" / "frames.npy", progress=False)
    assert [p.name for p in path.parent.iterdir()] == ["frames.npy"]  # no temporary left
    cache = np.load(path)
    assert cache.shape == (127, 64, 64, 3) and cache.dtype == np.uint8
    assert codes(cache) == expected  # every frame, in file order, bytes as in the files
    np.testing.assert_array_equal(cache[30:80], load_rollout(files[1], ["frames"])["frames"])

    ds = CachedFrames(path, batch_size=10, seed=0, n_frames=127)
    batches = list(ds)
    assert len(ds) == len(batches) == 13 and [len(b) for b in batches[:-1]] == [10] * 12
    assert all(b.dtype == np.uint8 and b.shape[1:] == (64, 64, 3) for b in batches)
    epoch0 = codes(np.concatenate(batches))
    assert sorted(epoch0) == expected and epoch0 != expected  # all of them, shuffled
    assert codes(np.concatenate(list(ds))) == epoch0  # the same seed and epoch: same order
    ds.set_epoch(1)
    assert codes(np.concatenate(list(ds))) != epoch0
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(codes(torch.cat(list(loader)).numpy())) == expected  # 2 workers: no repeats
    with pytest.raises(ValueError, match="holds 127 frames, expected 128"):
        CachedFrames(path, batch_size=10, n_frames=128)
    np.save(tmp_path / "other.npy", np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"other.npy.*expected uint8 frames \(N, 64, 64, 3\)"):
        CachedFrames(tmp_path / "other.npy", batch_size=10)


def test_a_disk_without_room_for_the_cache_is_a_clear_error(tmp_path, monkeypatch):
    import errno
    import os

    files = rollout_files(write_rollouts(tmp_path / "r", [5]))

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(OSError, match="no room for the frame cache .*frames.npy"):
        write_frame_cache(files, tmp_path / "c" / "frames.npy", progress=False)
    assert list((tmp_path / "c").iterdir()) == []  # nothing half-written left


def test_memory_is_bounded_by_the_buffer_not_the_data(tmp_path):
    small = write_rollouts(tmp_path / "small", [60] * 3)
    large = write_rollouts(tmp_path / "large", [60] * 24)

    def peak(folder):
        tracemalloc.start()
        for _ in FrameDataset(folder, buffer_size=32):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    frame = 64 * 64 * 3
    peak_small, peak_large = peak(small), peak(large)
    assert peak_large < 1.5 * peak_small  # 8x the data, about the same memory
    assert peak_large < (32 + 4 * 60) * frame  # the buffer + one file being read (~3 copies)


def test_sequence_windows_tile_the_episode_and_keep_its_end(tmp_path):
    folder = write_rollouts(tmp_path / "r", [23, 5])
    ds = SequenceDataset(folder, seq_len=8, keys=("frames", "actions", "terminated"), seed=1)
    items = list(ds)
    long = [it for it in items if it["mask"].sum() == 8]
    short = [it for it in items if it["mask"].sum() < 8]
    for it in long:  # consecutive steps of one episode
        np.testing.assert_array_equal(np.diff(it["actions"]), 1)
        assert codes(it["frames"])[0][1] == it["actions"][0]
    assert any(it["actions"][-1] == 22 and it["terminated"][-1] for it in long)  # the end
    assert len(short) == 1  # the 5-step episode, padded
    np.testing.assert_array_equal(short[0]["mask"], [1, 1, 1, 1, 1, 0, 0, 0])
    assert short[0]["terminated"][4] and not short[0]["terminated"][5:].any()
    assert ds.window_starts(23, None) == [0, 8, 15]
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 8, 64, 64, 3) and batch["mask"].shape == (2, 8)


def test_a_cut_short_file_is_named_or_skipped(tmp_path):
    folder = write_rollouts(tmp_path / "r", [10, 10, 10])
    bad = folder / "rollout_00001.npz"
    bad.write_bytes(bad.read_bytes()[:2000])
    with pytest.raises(RolloutFileError, match=r"rollout_00001\.npz.*cut short.*wmtutor gather"):
        list(FrameDataset(folder))
    with pytest.warns(UserWarning, match=r"rollout_00001\.npz"):
        frames = list(FrameDataset(folder, skip_corrupt=True))
    assert len(frames) == 20
    with pytest.warns(UserWarning, match=r"rollout_00001\.npz"):
        assert len(list(SequenceDataset(folder, seq_len=10, skip_corrupt=True))) == 2


def test_wrong_contents_are_clear_errors(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, frames=np.zeros((4, 32, 32, 3), np.uint8), rewards=np.zeros(4))
    with pytest.raises(RolloutFileError, match=r"odd\.npz: frames of shape \(4, 32, 32, 3\)"):
        load_rollout(path)
    with pytest.raises(RolloutFileError, match=r"odd\.npz.*no actions"):
        load_rollout(path, ["actions"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no rollout files"):
        rollout_files(empty)
