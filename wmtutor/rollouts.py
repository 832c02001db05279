"""Play the games at random and record what is seen: the first step of World Models.

* **Policies**: ``white`` (``action_space.sample()`` every step), ``brownian`` (smooth,
  correlated controller outputs: a random walk in [-1, 1] through the game's action
  adapter) and ``held`` (a random action held for 1-10 steps, as the original Doom data).
* **play(env, policy, seed)** records one episode in memory.
* **gather(game, n_rollouts, out_dir, ...)** records many, in parallel worker processes,
  one compressed ``.npz`` per episode, written atomically. The same command gives the
  same data (each episode's seed is derived from the base seed and its index), and
  re-running it resumes: finished episodes are kept, missing ones gathered.

The file format (one ``.npz`` per episode, and the folder's ``manifest.json`` with a
checksum per file) is ``wmtutor.files``. This module never imports torch: spawned
gathering workers start in a fraction of a second.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from wmtutor.envs import GAMES, GameEnv, make_env
from wmtutor.files import (
    RolloutFileError,
    digest,
    entry_is_whole,
    load_rollout,
    read_manifest,
    save_arrays,
    write_manifest,
)
from wmtutor.layout import MANIFEST
from wmtutor.utils import die_with_parent, remove_stale_tmp

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
        """Refuse a meaningless setting, naming it (before anything is written)."""
        if self.game not in GAMES:
            raise ValueError(f"unknown game {self.game!r}: expected one of {', '.join(GAMES)}")
        if self.policy not in POLICIES:
            raise ValueError(
                f"unknown policy {self.policy!r}: expected one of {', '.join(POLICIES)}"
            )
        for name, low in (("max_steps", 1), ("frame_skip", 1), ("min_length", 0), ("seed", 0)):
            value = getattr(self, name)
            if value is None and name == "max_steps":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} {value!r}: expected an integer >= {low}")


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
    written = save_arrays(path, **best)
    return {
        "index": index,
        "file": path.name,
        "length": int(len(best["rewards"])),
        "return": float(best["rewards"].sum()),
        "seed": int(best["seed"]),
        **written,
        "seconds": time.perf_counter() - start,
    }


def _write_manifest(out_dir: Path, config: GatherConfig, preset: str, target: int,
                    entries: dict) -> dict:  # fmt: skip
    files = [entries[i] for i in sorted(entries)]
    manifest = {"config": asdict(config), "preset": preset, "target": target, "files": files}
    return write_manifest(out_dir, manifest)


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def check_workers(workers: object) -> int:
    """``workers`` must be an integer >= 1 (None: one per core); returns it."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers {workers!r}: expected an integer >= 1")
    return int(workers)


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
    resumes: every file the manifest lists is checked against its recorded size and
    SHA-256, and broken or missing ones are played again (with a warning); a finished
    file the manifest does not list yet is read and kept. The manifest is rewritten as
    episodes finish, so a killed run loses at most the episodes in flight. Asking for
    fewer episodes than the folder holds keeps them all (nothing is deleted).

    Raises:
        ValueError: bad arguments, or ``out_dir`` holds rollouts made with another
            game, policy, cap, frame skip, minimum length or seed.
    """
    if (
        isinstance(n_rollouts, bool)
        or not isinstance(n_rollouts, (int, np.integer))
        or (n_rollouts < 1)
    ):
        raise ValueError(f"n_rollouts {n_rollouts!r}: expected an integer >= 1")
    workers = check_workers(workers)
    if max_steps is None:
        max_steps = GAMES[game].default_max_steps if game in GAMES else None
    config = GatherConfig(game, policy, max_steps, frame_skip, min_length, seed)
    config.check()
    out_dir = Path(out_dir)

    # Resume: what is there already, made with the same settings?
    entries: dict[int, dict] = {}
    target = int(n_rollouts)
    if (out_dir / MANIFEST).exists():
        old = read_manifest(out_dir)
        if old["config"] != asdict(config):
            diff = {
                k: (old["config"].get(k), v)
                for k, v in asdict(config).items()
                if old["config"].get(k) != v
            }
            raise ValueError(
                f"{out_dir} holds rollouts made with other settings "
                f"({', '.join(f'{k}: {a!r} there, {b!r} asked' for k, (a, b) in diff.items())}); "
                "choose another folder (--out) or the same settings"
            )
        entries = {int(e["index"]): e for e in old["files"]}
        target = max(target, int(old.get("target", len(entries))))
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir)
    for i in range(max(target, max(entries, default=-1) + 1)):
        path = rollout_path(out_dir, i)
        if i in entries and not entry_is_whole(out_dir, entries[i]):
            what = "missing" if not path.exists() else "broken (size or checksum differs)"
            warnings.warn(f"{path} is {what}: gathering it again", stacklevel=2)
            del entries[i]
            path.unlink(missing_ok=True)
        elif i not in entries and path.exists():  # finished after the last manifest write
            try:
                entries[i] = _entry_from_file(path, i)
            except RolloutFileError as err:
                warnings.warn(f"gathering it again: {err}", stacklevel=2)
                path.unlink()
    todo = [i for i in range(target) if i not in entries]
    manifest = _write_manifest(out_dir, config, preset, target, entries)
    if not todo:
        return manifest

    bar = tqdm(
        total=target,
        initial=target - len(todo),
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
            manifest = _write_manifest(out_dir, config, preset, target, entries)
            last_write = time.monotonic()

    try:
        if workers == 1:
            for i in todo:
                done(gather_one(config, i, str(out_dir)))
        else:
            context = multiprocessing.get_context("spawn")  # no forked game or torch state
            with cf.ProcessPoolExecutor(
                min(workers, len(todo)), mp_context=context, initializer=die_with_parent
            ) as pool:
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
        manifest = _write_manifest(out_dir, config, preset, target, entries)
    return manifest


def _entry_from_file(path: Path, index: int) -> dict:
    data = load_rollout(path, ["frames", "rewards", "seed"])
    return {
        "index": index,
        "file": path.name,
        "length": len(data["rewards"]),
        "return": float(data["rewards"].sum()),
        "seed": int(data["seed"]),
        "bytes": path.stat().st_size,
        "sha256": digest(path),
        "seconds": None,
    }


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
