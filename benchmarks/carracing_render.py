"""Is ``wmtutor``'s CarRacing renderer the same game, and how much faster is it?

    python benchmarks/carracing_render.py                 # 20 tracks x 1000 steps, 2 drivers
    python benchmarks/carracing_render.py --tracks 2 --steps 200   # a quick look

Gymnasium's ``CarRacing-v3`` and ``wmtutor.fastcar.FastCarRacing`` are stepped side by
side with the same seed and the same actions, and every observation (the 96×96 frame the
course uses) is compared byte for byte; every ``--full-every`` steps the 600×400
``render()`` picture is compared too, and the rewards and ends must agree. Two drivers:

* ``random``: white noise, the course's random play (the car spins on the grass);
* ``driver``: a pure-pursuit driver that follows the track's centre line at speed, the
  way a trained controller drives (tiles are visited, change colour, laps are finished);
* ``driver-colours``: the same with ``domain_randomize=True`` (other colours every track).

Then the speed: each renderer alone, a whole episode of random play on each of
``--speed-tracks`` other tracks (the zoomed-out first second included), the two taking
turns track by track in one run (these machines are noisy), as steps per second on one
core, and their ratio. Exits non-zero if any frame differs.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from wmtutor import fastcar  # noqa: E402


def make(fast: bool, randomize: bool = False) -> gym.Env:
    env_id = fastcar.register() if fast else "CarRacing-v3"
    return gym.make(env_id, render_mode="rgb_array", domain_randomize=randomize)


def pursuit(env: gym.Env, lookahead: int = 5, speed: float = 50.0) -> np.ndarray:
    """Steer toward the centre-line point ``lookahead`` tiles past the nearest one; gas
    below ``speed``, brake above it."""
    game = env.unwrapped
    track = np.array([t[2:4] for t in game.track])
    pos = np.array(game.car.hull.position)
    near = int(np.argmin(((track - pos) ** 2).sum(axis=1)))
    goal = track[(near + lookahead) % len(track)]
    heading = game.car.hull.angle + math.pi / 2
    want = math.atan2(goal[1] - pos[1], goal[0] - pos[0])
    error = (want - heading + math.pi) % (2 * math.pi) - math.pi
    v = np.linalg.norm(game.car.hull.linearVelocity)
    steer = float(np.clip(-2.0 * error, -1, 1))
    return np.array([steer, 0.5 if v < speed else 0.0, 0.3 if v > speed + 10 else 0.0])


def compare(track_seed: int, driver: str, steps: int, full_every: int) -> dict:
    """Step both renderers with the same actions; count differing frames."""
    randomize = driver.endswith("-colours")
    envs = [make(False, randomize), make(True, randomize)]
    obs = [e.reset(seed=track_seed)[0] for e in envs]
    rng = np.random.default_rng(track_seed)
    out = {"frames": 1, "differ": int(not np.array_equal(*obs)), "full": 0, "full_differ": 0,
           "reward": 0.0, "tiles": 0, "end": "limit"}  # fmt: skip
    for t in range(steps):
        if driver.startswith("random"):
            action = rng.uniform([-1, 0, 0], [1, 1, 1])
        else:
            action = pursuit(envs[0])
        results = [e.step(action) for e in envs]
        (o0, r0, te0, tr0, _), (o1, r1, te1, tr1, _) = results
        out["frames"] += 1
        out["differ"] += int(not np.array_equal(o0, o1))
        if (r0, te0, tr0) != (r1, te1, tr1):
            raise SystemExit(f"track {track_seed} step {t}: rewards or ends differ")
        out["reward"] += r0
        if full_every and t % full_every == 0:
            out["full"] += 1
            out["full_differ"] += int(not np.array_equal(envs[0].render(), envs[1].render()))
        if te0 or tr0:
            out["end"] = "lap" if te0 and out["reward"] > 0 else ("out" if te0 else "limit")
            break
    out["tiles"] = envs[0].unwrapped.tile_visited_count
    for e in envs:
        e.close()
    return out


def speed(fast: bool, track_seed: int, driver: str, steps: int) -> tuple[float, int]:
    """Seconds spent in ``step`` over one episode (``steps`` at most, the first second's
    zoomed-out view included) with ``driver``, and the number of steps."""
    env = make(fast, driver.endswith("-colours"))
    env.reset(seed=track_seed)
    rng = np.random.default_rng(track_seed)
    n, seconds = 0, 0.0
    for _ in range(steps):
        random = driver.startswith("random")
        action = rng.uniform([-1, 0, 0], [1, 1, 1]) if random else pursuit(env)
        n += 1
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        seconds += time.perf_counter() - start
        if terminated or truncated:
            break
    env.close()
    return seconds, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000, help="steps per track (the game's 1000)")
    parser.add_argument("--drivers", nargs="+", default=["random", "driver", "driver-colours"],
                        help="random, driver; -colours: with domain_randomize")  # fmt: skip
    parser.add_argument("--full-every", type=int, default=50,
                        help="compare the 600x400 render() every N steps (0: never)")  # fmt: skip
    parser.add_argument("--speed-tracks", type=int, default=4,
                        help="tracks timed (an episode each, on each renderer)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1000, help="first track seed")
    args = parser.parse_args()
    if not fastcar.checked():
        raise SystemExit("this Gymnasium's CarRacing drawing code is not the one checked: "
                         f"{fastcar.source_digests()}")  # fmt: skip

    seeds = list(range(args.seed, args.seed + args.tracks))
    print(f"same pixels? {args.tracks} tracks x up to {args.steps} steps per driver\n")
    print("| driver | frames compared | differing | 600x400 pictures | differing | "
          "tiles visited (mean) | laps finished |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    any_diff = 0
    for driver in args.drivers if seeds else []:  # --tracks 0: the speed alone
        rows = [compare(s, driver, args.steps, args.full_every) for s in seeds]
        frames, differ = sum(r["frames"] for r in rows), sum(r["differ"] for r in rows)
        full, full_differ = sum(r["full"] for r in rows), sum(r["full_differ"] for r in rows)
        any_diff += differ + full_differ
        tiles = np.mean([r["tiles"] for r in rows])
        laps = sum(r["end"] == "lap" for r in rows)
        print(f"| {driver} | {frames} | {differ} | {full} | {full_differ} | {tiles:.0f} | "
              f"{laps}/{len(rows)} |", flush=True)  # fmt: skip

    speed_seeds = [args.seed + 10_000 + k for k in range(args.speed_tracks)]
    print(
        f"\nspeed: {len(speed_seeds)} other tracks, one episode each (up to {args.steps} "
        "steps) on each renderer in turn, one process (one core), time in step() only\n"
    )
    print("| driver | Gymnasium's renderer (steps/s) | wmtutor's (steps/s) | ratio |")
    print("|---|---:|---:|---:|")
    for driver in [d for d in args.drivers if not d.endswith("-colours")]:
        times, steps = {False: 0.0, True: 0.0}, {False: 0, True: 0}
        for s in speed_seeds:
            for fast in (False, True):
                seconds, n = speed(fast, s, driver, args.steps)
                times[fast] += seconds
                steps[fast] += n
        slow, fast = steps[False] / times[False], steps[True] / times[True]
        print(f"| {driver} | {slow:.0f} | {fast:.0f} | {fast / slow:.2f}x |", flush=True)
    if any_diff:
        raise SystemExit(f"{any_diff} frames differ")


if __name__ == "__main__":
    main()
