"""Play the games at random and record what is seen: the first step of World Models.

* **Policies**: ``white`` (``action_space.sample()`` every step), ``brownian`` (smooth,
  correlated controller outputs: a random walk in [-1, 1] through the game's action
  adapter) and ``held`` (a random action held for 1-10 steps, as the original Doom data).
* **play(env, policy, seed)** records one episode in memory.
* **gather(game, n_rollouts, out_dir, ...)** records many, in parallel worker processes,
  one compressed ``.npz`` per episode, written atomically. The same command gives the
  same data (each episode's seed is derived from the base seed and its index), and
  re-running it resumes: finished episodes are kept, missing ones gathered.
* **get_rollouts(game)** is what notebooks call: the preset's rollouts, from the runs
  folder, gathered first if missing.

A rollout file holds, for an episode of T agent steps:

==============  ===================  =================================================
key             shape, dtype         meaning
==============  ===================  =================================================
``frames``      (T, 64, 64, 3) uint8  the observation *before* each action
``actions``     (T, ...) float32/int  the action taken (game's own format)
``rewards``     (T,) float32         reward after each action
``terminated``  (T,) bool            the game ended at this step (crash, death, 21 pts)
``truncated``   (T,) bool            the step cap ended the episode here
``seed``        () int64             the seed the episode was played with
``frame_skip``  () int64             game frames per agent step
``positions``   (T, 2) float32       CarRacing only: the car's (x, y) before each action
``track``       (N, 2) float32       CarRacing only: the centre line of the track
==============  ===================  =================================================

The folder's ``manifest.json`` says what made it (game, policy, preset, sizes) and lists
each file with its length; later stages read it rather than opening every file.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmtutor.envs import GAMES, GameEnv, make_env
from wmtutor.presets import Preset, get_preset
from wmtutor.utils import atomic_path, runs_dir

MANIFEST = "manifest.json"
TIME_KEYS = ("frames", "actions", "rewards", "terminated", "truncated", "positions")
MAX_ATTEMPTS = 20  # tries per episode to get one at least min_length long

# ---------------------------------------------------------------------------------------
# Policies: each is called with the current frame and returns the game's action.


class WhitePolicy:
    """White noise: a fresh ``action_space.sample()`` every step."""

    def __init__(self, env: GameEnv, seed: int):
        self.space = env.action_space
        self.space.seed(seed)

    def __call__(self, frame: np.ndarray) -> Any:
        return self.space.sample()


class BrownianPolicy:
    """Smooth random actions: a random walk of the controller's outputs ``y`` in [-1, 1].

    Each step ``y += sqrt(dt) * N(0, 1)``, clipped to [-1, 1], then the game's adapter
    turns ``y`` into an action (so the walk is the same for every game). With the
    default ``dt = 1/50`` an output takes ~50 steps to wander across its range: CarRacing
    steers in long arcs and keeps accelerating, and so covers much more of the track than
    white noise, whose actions average out to standing still.
    """

    def __init__(self, env: GameEnv, seed: int, dt: float = 1 / 50):
        self.adapter = env.adapter
        self.rng = np.random.default_rng(seed)
        self.scale = float(np.sqrt(dt))
        self.y = self.rng.uniform(-1, 1, size=self.adapter.size)

    def __call__(self, frame: np.ndarray) -> Any:
        action = self.adapter(self.y.astype(np.float32))
        self.y = np.clip(self.y + self.scale * self.rng.standard_normal(self.y.shape), -1, 1)
        return action


class HeldPolicy:
    """A random action (``action_space.sample()``) held for 1-10 steps, then a new one."""

    def __init__(self, env: GameEnv, seed: int, min_hold: int = 1, max_hold: int = 10):
        self.space = env.action_space
        self.space.seed(seed)
        self.rng = np.random.default_rng(seed)
        self.min_hold, self.max_hold = min_hold, max_hold
        self.left, self.action = 0, None

    def __call__(self, frame: np.ndarray) -> Any:
        if self.left == 0:
            self.action = self.space.sample()
            self.left = int(self.rng.integers(self.min_hold, self.max_hold + 1))
        self.left -= 1
        return self.action


POLICIES: dict[str, Callable[[GameEnv, int], Callable[[np.ndarray], Any]]] = {
    "white": WhitePolicy,
    "brownian": BrownianPolicy,
    "held": HeldPolicy,
}


def make_policy(name: str, env: GameEnv, seed: int) -> Callable[[np.ndarray], Any]:
    """A random policy by name (``white``, ``brownian`` or ``held``) for ``env``."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: expected one of {', '.join(POLICIES)}")
    return POLICIES[name](env, seed)


# ---------------------------------------------------------------------------------------
# One episode


def rollout_seed(base_seed: int, index: int, attempt: int = 0) -> int:
    """The seed of episode ``index`` (and retry ``attempt``): independent of how many run."""
    state = np.random.SeedSequence([base_seed, index, attempt]).generate_state(1, np.uint32)
    return int(state[0])


def play(
    env: GameEnv,
    policy: Callable[[np.ndarray], Any],
    seed: int,
    raw: bool = False,
) -> dict[str, np.ndarray]:
    """Play one episode of ``env`` with ``policy``; return its arrays (see the module doc).

    With ``raw=True`` the full-size frames are kept too, under ``raw_frames``.
    """
    frame, info = env.reset(seed=seed)
    frames, actions, rewards, terminated, truncated, positions, raws = [], [], [], [], [], [], []
    while True:
        action = policy(frame)
        frames.append(frame)
        actions.append(action)
        if raw:
            raws.append(env.raw_frame)
        if "position" in info:
            positions.append(info["position"])
        frame, reward, term, trunc, info = env.step(action)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        if term or trunc:
            break
    out = {
        "frames": np.stack(frames),
        "actions": np.asarray(actions, dtype=np.float32 if env.name == "carracing" else np.int64),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminated": np.asarray(terminated, dtype=bool),
        "truncated": np.asarray(truncated, dtype=bool),
        "seed": np.int64(seed),
        "frame_skip": np.int64(env.frame_skip),
    }
    if positions:
        out["positions"] = np.stack(positions)
        track = env.unwrapped.track
        out["track"] = np.asarray([(x, y) for *_, x, y in track], dtype=np.float32)
    if raw:
        out["raw_frames"] = np.stack(raws)
    return out


def track_coverage(rollout: dict[str, np.ndarray]) -> float:
    """CarRacing: the fraction of the track's tiles the car touched (from the rewards).

    Each frame costs 0.1 and each newly visited tile pays 1000 / n_tiles, so
    ``(sum(rewards) + 0.1 * frames) / 1000`` is exactly the fraction visited (leaving the
    playfield costs a further 100 once; that step is not counted).
    """
    if "track" not in rollout:
        raise ValueError("track_coverage needs a CarRacing rollout (with a 'track' array)")
    rewards = np.asarray(rollout["rewards"], dtype=np.float64)
    rewards = np.where(rewards <= -50, rewards + 100, rewards)  # off the playfield
    frames = len(rewards) * int(rollout.get("frame_skip", 1))
    return float((rewards.sum() + 0.1 * frames) / 1000.0)


def distance_driven(rollout: dict[str, np.ndarray]) -> float:
    """CarRacing: the length of the car's path, in the game's units (a tile is ~6.7 long)."""
    if "positions" not in rollout:
        raise ValueError("distance_driven needs a CarRacing rollout (with 'positions')")
    return float(np.linalg.norm(np.diff(rollout["positions"], axis=0), axis=1).sum())


# ---------------------------------------------------------------------------------------
# The files: one .npz per episode, and the folder's manifest


class RolloutFileError(ValueError):
    """A rollout file that cannot be read; the message names the file and what to do."""


def load_rollout(path: str | os.PathLike, keys: Sequence[str] | None = None) -> dict:
    """Read a rollout ``.npz`` (all arrays, or only ``keys``) and check its shapes.

    Raises:
        RolloutFileError: the file is missing, cut short, corrupt, lacks a key, or its
            arrays disagree on the episode length.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys or () if k not in data.files]
            if missing:
                raise KeyError(f"no {', '.join(missing)} (it has {', '.join(data.files)})")
            out = {k: data[k] for k in (keys or data.files)}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise RolloutFileError(
            f"{path}: cannot read this rollout file ({type(err).__name__}: {err}). It is "
            "corrupt or was cut short: delete it and re-run `wmtutor gather` to replace it, "
            "or pass skip_corrupt=True to skip it."
        ) from err
    lengths = {k: len(v) for k, v in out.items() if k in TIME_KEYS or k in ("mu", "logvar")}
    if len(set(lengths.values())) > 1:
        raise RolloutFileError(f"{path}: arrays of different lengths {lengths}")
    frames = out.get("frames")
    if frames is not None and (frames.ndim != 4 or frames.shape[1:] != (64, 64, 3)):
        raise RolloutFileError(f"{path}: frames of shape {frames.shape}, expected (T, 64, 64, 3)")
    if frames is not None and frames.dtype != np.uint8:
        raise RolloutFileError(f"{path}: frames of dtype {frames.dtype}, expected uint8")
    return out


def read_manifest(folder: str | os.PathLike) -> dict:
    """The ``manifest.json`` of a rollout folder (see ``wmtutor.rollouts.gather``)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: {folder} is not a rollout folder (make one with `wmtutor gather`)"
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or "config" not in manifest or "files" not in manifest:
        raise ValueError(f"{path} is not a wmtutor rollout manifest (no 'config' or 'files')")
    return manifest


# ---------------------------------------------------------------------------------------
# Many episodes, in parallel, to disk


@dataclass(frozen=True)
class GatherConfig:
    """What makes a rollout folder; re-running with another config is refused."""

    game: str
    policy: str
    max_steps: int | None
    frame_skip: int
    min_length: int
    seed: int

    def check(self) -> None:
        if self.game not in GAMES:
            raise ValueError(f"unknown game {self.game!r}: expected one of {', '.join(GAMES)}")
        if self.policy not in POLICIES:
            raise ValueError(
                f"unknown policy {self.policy!r}: expected one of {', '.join(POLICIES)}"
            )
        if self.min_length < 0:
            raise ValueError(f"min_length must be >= 0, got {self.min_length}")


_WORKER_ENVS: dict[tuple, GameEnv] = {}  # one environment per worker process, reused


def _worker_env(config: GatherConfig) -> GameEnv:
    key = (config.game, config.frame_skip, config.max_steps)
    if key not in _WORKER_ENVS:
        _WORKER_ENVS[key] = make_env(
            config.game, frame_skip=config.frame_skip, max_steps=config.max_steps
        )
    return _WORKER_ENVS[key]


def rollout_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"rollout_{index:05d}.npz"


def gather_one(config: GatherConfig, index: int, out_dir: str) -> dict:
    """Play episode ``index`` and write it atomically; return its manifest entry.

    An episode that ends (terminated) before ``min_length`` steps is played again with
    the next derived seed, up to ``MAX_ATTEMPTS`` times (then the longest is kept).
    """
    env = _worker_env(config)
    start = time.perf_counter()
    best = None
    for attempt in range(MAX_ATTEMPTS):
        seed = rollout_seed(config.seed, index, attempt)
        episode = play(env, make_policy(config.policy, env, seed), seed)
        length = len(episode["rewards"])
        if best is None or length > len(best["rewards"]):
            best = episode
        if length >= config.min_length or not episode["terminated"][-1]:
            break
    path = rollout_path(Path(out_dir), index)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **best)
    return {
        "index": index,
        "file": path.name,
        "length": int(len(best["rewards"])),
        "return": float(best["rewards"].sum()),
        "seed": int(best["seed"]),
        "bytes": path.stat().st_size,
        "seconds": time.perf_counter() - start,
    }


def _entry_from_file(path: Path, index: int) -> dict:
    data = load_rollout(path, ["frames", "rewards", "seed"])
    return {
        "index": index,
        "file": path.name,
        "length": len(data["rewards"]),
        "return": float(data["rewards"].sum()),
        "seed": int(data["seed"]),
        "bytes": path.stat().st_size,
        "seconds": None,
    }


def _write_manifest(out_dir: Path, config: GatherConfig, preset: str, entries: dict) -> dict:
    files = [entries[i] for i in sorted(entries)]
    manifest = {
        "config": config.__dict__,
        "preset": preset,
        "n_rollouts": len(files),
        "frames": sum(e["length"] for e in files),
        "bytes": sum(e["bytes"] for e in files),
        "files": files,
    }
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def gather(
    game: str,
    n_rollouts: int,
    out_dir: str | os.PathLike,
    *,
    policy: str = "held",
    max_steps: int | None = None,
    frame_skip: int = 1,
    min_length: int = 0,
    seed: int = 0,
    workers: int | None = None,
    preset: str = "",
    progress: bool = True,
) -> dict:
    """Record ``n_rollouts`` random episodes of ``game`` into ``out_dir``; return the manifest.

    Episodes run in ``workers`` processes (default: one per core; 1 runs them here, in
    this process), each writing its own ``rollout_NNNNN.npz`` atomically. Re-running
    resumes: files already there are kept (they are checked, and a corrupt one is
    replaced with a warning) and only the missing ones are played. The manifest is
    rewritten as episodes finish, so a killed run loses at most the episodes in flight.

    Raises:
        ValueError: bad arguments, or ``out_dir`` holds rollouts made with another
            game, policy, cap, frame skip, minimum length or seed.
    """
    if not isinstance(n_rollouts, (int, np.integer)) or n_rollouts < 1:
        raise ValueError(f"n_rollouts must be a positive integer, got {n_rollouts!r}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_steps is None:
        max_steps = GAMES[game].default_max_steps if game in GAMES else None
    config = GatherConfig(game, policy, max_steps, int(frame_skip), int(min_length), int(seed))
    config.check()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Resume: what is there already, made with the same settings?
    entries: dict[int, dict] = {}
    if (out_dir / MANIFEST).exists():
        old = read_manifest(out_dir)
        if old["config"] != config.__dict__:
            diff = {
                k: (old["config"].get(k), v)
                for k, v in config.__dict__.items()
                if old["config"].get(k) != v
            }
            raise ValueError(
                f"{out_dir} holds rollouts made with other settings "
                f"({', '.join(f'{k}: {a!r} there, {b!r} asked' for k, (a, b) in diff.items())}); "
                "choose another folder (--out) or the same settings"
            )
        entries = {int(e["index"]): e for e in old["files"]}
    for i in range(n_rollouts):
        path = rollout_path(out_dir, i)
        if i in entries and not path.exists():
            del entries[i]  # listed but deleted by hand: gather it again
        elif i not in entries and path.exists():  # finished after the last manifest write
            try:
                entries[i] = _entry_from_file(path, i)
            except RolloutFileError as err:
                warnings.warn(f"gathering it again: {err}", stacklevel=2)
                path.unlink()
    entries = {i: e for i, e in entries.items() if i < n_rollouts}
    todo = [i for i in range(n_rollouts) if i not in entries]
    manifest = _write_manifest(out_dir, config, preset, entries)
    if not todo:
        return manifest

    from tqdm.auto import tqdm

    bar = tqdm(
        total=n_rollouts,
        initial=n_rollouts - len(todo),
        desc=f"gather {game}/{policy}",
        unit="ep",
        disable=not progress,
    )
    last_write = time.monotonic()

    def done(entry: dict) -> None:
        nonlocal last_write, manifest
        entries[entry["index"]] = entry
        bar.set_postfix(frames=sum(e["length"] for e in entries.values()), refresh=False)
        bar.update(1)
        if time.monotonic() - last_write > 2.0:
            manifest = _write_manifest(out_dir, config, preset, entries)
            last_write = time.monotonic()

    try:
        if workers == 1:
            for i in todo:
                done(gather_one(config, i, str(out_dir)))
        else:
            context = multiprocessing.get_context("spawn")  # no forked game or torch state
            with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
                futures = [pool.submit(gather_one, config, i, str(out_dir)) for i in todo]
                try:
                    for future in cf.as_completed(futures):
                        done(future.result())
                except cf.process.BrokenProcessPool as err:
                    raise RuntimeError(
                        "a gathering worker process died. If you called gather() from a "
                        "script, put the call under `if __name__ == '__main__':` (workers "
                        "are spawned and import your script again); workers=1 runs without "
                        "worker processes. Re-running resumes where this stopped."
                    ) from err
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
        manifest = _write_manifest(out_dir, config, preset, entries)
    return manifest


def rollouts_dir(game: str, preset: Preset | str | None = None) -> Path:
    """Where the preset's rollouts of ``game`` live: ``runs/<game>/<preset>/rollouts``."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    return runs_dir(game, preset.name, "rollouts")


def get_rollouts(
    game: str,
    preset: Preset | str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """The preset's random rollouts of ``game``: read from the runs folder, gathered if missing.

    Every notebook that needs data calls this, so each one also runs on its own. Returns
    the manifest, with ``manifest["dir"]`` the folder.
    """
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    data = preset.game(game).data
    out_dir = rollouts_dir(game, preset)
    manifest = gather(
        game,
        data.n_rollouts,
        out_dir,
        policy=data.policy,
        max_steps=data.max_steps,
        frame_skip=data.frame_skip,
        min_length=data.min_length,
        seed=preset.seed,
        workers=workers,
        preset=preset.name,
        progress=progress,
    )
    return dict(manifest, dir=str(out_dir))


def summarize(manifest: dict) -> dict:
    """Sizes of a rollout folder: episodes, frames, lengths, disk, speed and returns.

    ``frames_per_s`` is per worker process (frames over the seconds each episode took,
    compression and writing included), for episodes gathered in this folder's runs.
    """
    files = manifest["files"]
    lengths = np.array([e["length"] for e in files])
    timed = [e for e in files if e.get("seconds")]
    return {
        "game": manifest["config"]["game"],
        "policy": manifest["config"]["policy"],
        "rollouts": len(files),
        "frames": int(lengths.sum()),
        "mean_length": float(lengths.mean()),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "mib": manifest["bytes"] / 2**20,
        "kib_per_frame": manifest["bytes"] / 2**10 / max(1, lengths.sum()),
        "frames_per_s": (
            sum(e["length"] for e in timed) / sum(e["seconds"] for e in timed) if timed else None
        ),
        "mean_return": float(np.mean([e["return"] for e in files])),
    }
