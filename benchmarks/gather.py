"""How fast rollouts are gathered, and how much memory streaming them back takes.

    python benchmarks/gather.py                 # every game, 1 and 2 workers; the memory test
    python benchmarks/gather.py --skip-gather --skip-policies --multiples 1 4 16 64

Prints three Markdown tables (the README has them):

1. Per game: raw environment steps/s in one process (random actions, 64×64 frames made),
   then gathering frames/s (policy, compression and atomic writes included) with 1 and
   2 worker processes, measured one after the other in this run.
2. CarRacing, white noise against brownian random play: distance driven and share of
   track tiles touched in 500 steps, mean over 6 seeds (same seeds for both).
3. Peak memory of one epoch of ``FrameDataset`` (batches of 100 through a DataLoader) over
   data sets 1×, 4× and 16× the size of its shuffle buffer: it must stay flat.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wmtutor.envs import make_env
from wmtutor.rollouts import distance_driven, gather, make_policy, play, track_coverage

# Per game: (rollouts, max_steps, frame_skip, policy) for the gathering runs.
GATHER = {
    "carracing": (6, 500, 1, "brownian"),
    "doom": (24, 2100, 1, "held"),
    "pong": (8, 1000, 4, "held"),
}


def env_steps_per_s(game: str, frame_skip: int, seconds: float = 3.0) -> float:
    env = make_env(game, frame_skip=frame_skip)
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def gather_fps(game: str, workers: int) -> float:
    n, max_steps, frame_skip, policy = GATHER[game]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = gather(
            game,
            n,
            tmp,
            policy=policy,
            max_steps=max_steps,
            frame_skip=frame_skip,
            workers=workers,
            progress=False,
        )
        return manifest["frames"] / (time.perf_counter() - start)


def policy_table(steps: int, seeds: int) -> list[dict]:
    env = make_env("carracing", max_steps=steps)
    rows = []
    for name in ("white", "brownian"):
        runs = [play(env, make_policy(name, env, seed), seed) for seed in range(seeds)]
        rows.append(
            {
                "policy": name,
                "distance": np.mean([distance_driven(r) for r in runs]),
                "coverage": np.mean([track_coverage(r) for r in runs]),
                "change": np.mean([np.abs(np.diff(r["actions"], axis=0)).mean() for r in runs]),
            }
        )
    env.close()
    return rows


MEMORY_CHILD = r"""
import resource, sys
from torch.utils.data import DataLoader
from wmtutor.datasets import FrameDataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = 0
for batch in DataLoader(FrameDataset(sys.argv[1], buffer_size=int(sys.argv[2])), batch_size=100):
    frames += len(batch)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(frames, before, after)
"""


def memory_table(buffer_size: int, file_frames: int, multiples: list[int]) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        written = 0
        for multiple in multiples:
            need = multiple * buffer_size // file_frames
            while written < need:  # grow the same folder: 1x, then 4x, then 16x
                frames = rng.integers(0, 255, (file_frames, 64, 64, 3), dtype=np.uint8)
                np.savez(
                    folder / f"rollout_{written:05d}.npz",
                    frames=frames,
                    rewards=np.zeros(file_frames, np.float32),
                )
                written += 1
            out = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, str(folder), str(buffer_size)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            n_frames, before, after = (int(x) for x in out)
            rows.append(
                {
                    "multiple": multiple,
                    "frames": n_frames,
                    "data_mib": n_frames * 64 * 64 * 3 / 2**20,
                    "peak_extra_mib": (after - before) / 1024,  # ru_maxrss is in KiB
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=list(GATHER), choices=list(GATHER))
    parser.add_argument("--buffer-size", type=int, default=2048, help="FrameDataset buffer")
    parser.add_argument("--file-frames", type=int, default=512, help="frames per test file")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-gather", action="store_true")
    parser.add_argument("--skip-policies", action="store_true")
    args = parser.parse_args()

    if not args.skip_gather:
        print(
            "| game | env steps/s (1 process) | gather frames/s, 1 worker | 2 workers | speed-up |"
        )
        print("|---|---:|---:|---:|---:|")
    for game in [] if args.skip_gather else args.games:
        raw = env_steps_per_s(game, GATHER[game][2])
        one, two = gather_fps(game, 1), gather_fps(game, 2)
        print(f"| {game} | {raw:.0f} | {one:.0f} | {two:.0f} | {two / one:.2f} |", flush=True)

    if not args.skip_policies:
        print("\nCarRacing, 500 steps, mean of 6 seeds:\n")
        print("| policy | distance driven (units) | track tiles touched | action change per step |")
        print("|---|---:|---:|---:|")
        for row in policy_table(steps=500, seeds=6):
            print(
                f"| {row['policy']} | {row['distance']:.0f} | {100 * row['coverage']:.1f} % "
                f"| {row['change']:.3f} |",
                flush=True,
            )

    if not args.skip_memory:
        print(
            f"\nFrameDataset, buffer {args.buffer_size} frames "
            f"({args.buffer_size * 12288 / 2**20:.0f} MiB), files of {args.file_frames} frames:\n"
        )
        print("| data set | frames | data (MiB) | peak memory above start (MiB) |")
        print("|---|---:|---:|---:|")
        for row in memory_table(args.buffer_size, args.file_frames, args.multiples):
            print(
                f"| {row['multiple']}× buffer | {row['frames']} | {row['data_mib']:.0f} "
                f"| {row['peak_extra_mib']:.0f} |",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\n(peak RSS of this process: {peak} MiB)")


if __name__ == "__main__":
    main()
