"""Does V keep Pong's ball? The ball is 2×4 pixels of a 160×160 field: after the resize to
64×64 it is a faint blob of about one pixel, and a VAE trained on mean squared error can
score well by drawing the field and the paddles and leaving it out.

    python benchmarks/pong_ball.py --preset laptop            # trains the preset's V if missing
    python benchmarks/pong_ball.py --preset laptop --vae PATH  # another V

New episodes of random play (seeds no training used) are played; in every frame where
the ball is on the field (found exactly in the raw frame by its colour) the ball's
contrast against the background is measured in the 64×64 frame V sees and in V's
reconstruction of it (decoded from ``mu``), in a 3×3 window around where the ball is.
The ball is *kept* when the reconstruction has at least half the frame's contrast there.
Printed: frames with the ball, the median contrast, the share kept, and the same for the
agent's paddle; then whether z *carries* each position even where the picture blurs it:
the R² of a linear probe from ``mu`` to the object's row and column, fitted on the first
half of the frames and scored on the second (C reads z, not the picture).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wmtutor.envs import FRAME_SHAPE, make_env
from wmtutor.pipeline import get_vae
from wmtutor.presets import get_preset
from wmtutor.vae import decode_latent, encode_frames, load_vae

BALL = (236, 236, 236)  # ALE Pong's ball; the field is (144, 72, 17)
FIELD = np.array([144, 72, 17], dtype=np.float32)
AGENT_PADDLE = (92, 186, 92)
TOP, BOTTOM = 34, 194  # crop_pong's rows
EPISODE_SEED = 900_000  # far from every seed gathering uses


def play(episodes: int, steps: int, frame_skip: int) -> tuple[np.ndarray, list, list]:
    """64×64 frames of random play, and per frame the ball's and the agent paddle's centre
    in 64×64 coordinates (None where absent)."""
    env = make_env("pong", frame_skip=frame_skip)
    frames, balls, paddles = [], [], []
    scale = FRAME_SHAPE[0] / (BOTTOM - TOP)
    for e in range(episodes):
        frame, _ = env.reset(seed=EPISODE_SEED + e)
        env.action_space.seed(EPISODE_SEED + e)
        for _ in range(steps):
            frame, _, terminated, truncated, _ = env.step(env.action_space.sample())
            field = env.raw_frame[TOP:BOTTOM]
            frames.append(frame)
            for colour, out in ((BALL, balls), (AGENT_PADDLE, paddles)):
                where = np.argwhere((field == colour).all(axis=-1))
                out.append(None if len(where) == 0 else (where.mean(axis=0) + 0.5) * scale - 0.5)
            if terminated or truncated:
                break
    env.close()
    return np.stack(frames), balls, paddles


def contrast(frames: np.ndarray, centres: list) -> np.ndarray:
    """For each frame with a centre: the largest colour distance from the field in the
    3×3 window around it. ``(n,)`` float."""
    out = []
    for frame, centre in zip(frames, centres, strict=True):
        if centre is None:
            continue
        r, c = np.clip(np.round(centre).astype(int), 1, FRAME_SHAPE[0] - 2)
        window = frame[r - 1 : r + 2, c - 1 : c + 2].astype(np.float32)
        out.append(np.abs(window - FIELD).sum(axis=-1).max())
    return np.asarray(out)


def probe_r2(mu: np.ndarray, centres: list) -> tuple[float, float]:
    """R² of least squares from ``[mu, 1]`` to the (row, column) of the frames with the
    object: fitted on the first half of them, scored on the second half; nan for a
    coordinate that hardly moves there (the paddle's column)."""
    have = [i for i, c in enumerate(centres) if c is not None]
    x = np.c_[mu[have], np.ones(len(have))]
    y = np.array([centres[i] for i in have])
    n = len(have) // 2
    coef, *_ = np.linalg.lstsq(x[:n], y[:n], rcond=None)
    error = ((x[n:] @ coef - y[n:]) ** 2).mean(axis=0)
    spread = y[n:].var(axis=0)
    r2 = np.where(spread > 0.25, 1 - error / np.maximum(spread, 1e-9), np.nan)
    return float(r2[0]), float(r2[1])


def measure(vae, frames: np.ndarray, balls: list, paddles: list) -> dict:
    """What V keeps of ``frames``: for the ball and the agent's paddle, ``(contrast in the
    frame, contrast in V's picture, share kept, R² row, R² column)``; and ``spread`` (the
    std of ``mu`` over the frames, mean over z's dimensions) and ``sigma`` (V's own, mean)."""
    mu, logvar = encode_frames(vae, frames)
    with torch.no_grad():
        recon = np.concatenate(
            [decode_latent(vae, mu[i : i + 512]) for i in range(0, len(mu), 512)]
        )
    found = {}
    for name, centres in (("ball", balls), ("agent's paddle", paddles)):
        seen, rebuilt = contrast(frames, centres), contrast(recon, centres)
        found[name] = (seen, rebuilt, float((rebuilt >= 0.5 * seen).mean()), *probe_r2(mu, centres))
    found["spread"] = float(np.std(mu, axis=0).mean())
    found["sigma"] = float(np.exp(0.5 * logvar).mean())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--vae", help="a V checkpoint (default: the run's, trained if missing)")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=500, help="agent steps per episode at most")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    preset = get_preset(args.preset)
    if args.vae:
        vae = load_vae(args.vae, device=args.device)
    else:
        vae, _ = get_vae("pong", preset, seed=args.seed, device=args.device)
    frames, balls, paddles = play(args.episodes, args.steps, preset.pong.data.frame_skip)
    print(f"Pong, preset {preset.name}: {len(frames)} frames of random play, "
          f"{args.episodes} new episodes\n")  # fmt: skip
    print("| object | frames with it | contrast in the 64×64 frame (median) | "
          "in V's reconstruction (median) | kept (≥ half the contrast) | "
          "R² row from z | R² column from z |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    found = measure(vae, frames, balls, paddles)
    for name in ("ball", "agent's paddle"):
        seen, rebuilt, kept, row, column = found[name]
        print(f"| {name} | {seen.size} | {np.median(seen):.0f} | {np.median(rebuilt):.0f} | "
              f"{kept:.1%} | {row:.2f} | {column:.2f} |")  # fmt: skip
    # What C sees move: a weight of 0.1 on a z that moves by 0.001 moves y by nothing.
    spread, sigma = found["spread"], found["sigma"]
    print(f"\nHow much z moves over these frames: std of mu {spread:.4f} per dimension "
          f"(mean over dimensions; the prior's is 1), V's own sigma {sigma:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
