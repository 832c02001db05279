"""CarRacing drawn on a smaller canvas: how much faster, how different, and can V tell?

    python benchmarks/carracing_shrink.py --preset laptop        # the run's V, trained if missing
    python benchmarks/carracing_shrink.py --shrink 2 4 --tracks 4 --steps 300   # a quick look

``FastCarRacing(shrink=k)`` (``make_env("carracing", shrink=k)``) draws the 96×96
observation from a canvas ``k`` times smaller on each side than Gymnasium's 1000×800
(the same scene, zoom and dashboard, scaled), which is several times cheaper and *not*
the same bytes (``benchmarks/carracing_render.py`` checks the same-bytes renderer,
``shrink=1``). So this measures the difference where it matters, in the 64×64 frames the
course feeds V and in V's ``z``:

* both renderers are stepped side by side (same track, same actions: white noise, and a
  pure-pursuit driver on the road), every frame compared: mean |difference| per pixel
  (0-255), the share of pixels off by more than 8, the largest;
* V (the run's ``carracing`` V of ``--preset``, or ``--vae``) encodes both: how far ``mu``
  moves between the two pictures of one step, in units of V's own ``sigma``, beside how
  far it moves from one step to the next in the original; V's reconstruction error on
  each; and a linear probe (logistic regression on ``mu``, fitted on the first half of
  the tracks, scored on the rest) trying to tell the renderers apart: 50% is chance;
* speed: an episode of random play on each of ``--speed-tracks`` other tracks with each
  renderer in turn (these machines are noisy), time in ``step()`` only, one core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from carracing_render import pursuit  # noqa: E402  (this folder's script)

from wmtutor.envs import make_env  # noqa: E402
from wmtutor.pipeline import get_vae  # noqa: E402
from wmtutor.presets import get_preset  # noqa: E402
from wmtutor.vae import encode_frames, load_vae, to_input  # noqa: E402

TRACK_SEED = 700_000  # far from the seeds gathering and training use


def renderer(shrink: int):
    """0: Gymnasium's own CarRacing; k >= 1: FastCarRacing(shrink=k)."""
    return (
        make_env("carracing", renderer="gymnasium")
        if shrink == 0
        else make_env("carracing", shrink=shrink)
    )


def frames(shrink: int, tracks: list[int], steps: int, driver: str) -> np.ndarray:
    """The 64×64 frames of both renderers along the same episodes: ``(2, n, 64, 64, 3)``
    (Gymnasium's first) and the track index of each frame ``(n,)``."""
    envs = [renderer(0), renderer(shrink)]
    out, which = [[], []], []
    for i, seed in enumerate(tracks):
        obs = [env.reset(seed=seed)[0] for env in envs]
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            for k in range(2):
                out[k].append(obs[k])
            which.append(i)
            action = rng.uniform([-1, 0, 0], [1, 1, 1]) if driver == "random" else pursuit(envs[0])
            results = [env.step(action) for env in envs]
            obs = [r[0] for r in results]
            if results[0][1:4] != results[1][1:4]:
                raise SystemExit(f"track {seed}: the two games differ (rewards or ends)")
            if results[0][2] or results[0][3]:
                break
    for env in envs:
        env.close()
    return np.stack([np.stack(o) for o in out]), np.array(which)


def probe_accuracy(mu: np.ndarray, which: np.ndarray) -> float:
    """Logistic regression from ``mu`` ``(2, n, z_dim)`` to which renderer drew the frame,
    fitted on the frames of the first half of the tracks, accuracy on the rest."""
    fit = which < (which.max() + 1) // 2
    x = torch.tensor(np.concatenate([mu[0], mu[1]]), dtype=torch.float64)
    y = torch.cat([torch.zeros(len(which)), torch.ones(len(which))]).double()
    mask = torch.tensor(np.concatenate([fit, fit]))
    mean, std = x[mask].mean(0), x[mask].std(0) + 1e-9
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x[mask] @ w + b, y[mask])
        loss = loss + 1e-4 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        guess = (x[~mask] @ w + b) > 0
    return float((guess == y[~mask].bool()).double().mean())


def reconstruction_error(vae, frames: np.ndarray) -> float:
    """V's mean squared error per pixel (0-1 scale) rebuilding ``frames`` from ``mu``."""
    device = next(vae.parameters()).device
    errors = []
    with torch.no_grad():
        for i in range(0, len(frames), 512):
            x = to_input(frames[i : i + 512]).to(device)
            mu, _ = vae.encode(x)
            errors.append(((vae.decode(mu).float() - x.float()) ** 2).mean().item() * len(x))
    return sum(errors) / len(frames)


def speed(shrinks: list[int], tracks: list[int], steps: int) -> dict[int, float]:
    """Steps per second in ``step()`` of each renderer, random play, taking turns."""
    seconds, count = dict.fromkeys(shrinks, 0.0), dict.fromkeys(shrinks, 0)
    for seed in tracks:
        for k in shrinks:
            env = renderer(k)
            env.reset(seed=seed)
            rng = np.random.default_rng(seed)
            for _ in range(steps):
                action = rng.uniform([-1, 0, 0], [1, 1, 1])
                start = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                seconds[k] += time.perf_counter() - start
                count[k] += 1
                if terminated or truncated:
                    break
            env.close()
    return {k: count[k] / seconds[k] for k in shrinks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shrink", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--tracks", type=int, default=10, help="tracks per driver")
    parser.add_argument("--steps", type=int, default=1000, help="steps per track at most")
    parser.add_argument("--drivers", nargs="+", default=["random", "driver"])
    parser.add_argument("--speed-tracks", type=int, default=3)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--seed", type=int, default=None, help="the run whose V is used")
    parser.add_argument("--vae", help="a V checkpoint (default: the run's, trained if missing)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if any(not 1 <= k <= 8 for k in args.shrink):
        parser.error(f"--shrink {args.shrink}: each must be from 1 to 8")
    preset = get_preset(args.preset)
    if not args.tracks:
        vae = None  # the speed alone: no V needed
    elif args.vae:
        vae = load_vae(args.vae, device=args.device).eval()
    else:
        vae = get_vae("carracing", preset, seed=args.seed, device=args.device)[0].eval()
    tracks = [TRACK_SEED + i for i in range(args.tracks)]
    print(f"CarRacing, V of preset {preset.name}; {args.tracks} tracks x up to {args.steps} "
          "steps per driver, the course's 64x64 frames\n")  # fmt: skip
    print("| shrink (canvas) | driver | frames | mean abs difference (0-255) | pixels off by > 8 "
          "| largest | mu's shift / V's sigma | mu's step-to-step move / sigma | V's error, "
          "original | V's error, shrunk | probe tells them apart |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.shrink:
        canvas = f"{k} ({1000 // k}x{800 // k})"
        for driver in args.drivers if tracks else []:  # --tracks 0: the speed alone
            pair, which = frames(k, tracks, args.steps, driver)
            diff = np.abs(pair[0].astype(np.int16) - pair[1].astype(np.int16))
            mus, logvars = zip(*(encode_frames(vae, p) for p in pair), strict=True)
            mu = np.stack(mus)
            sigma = np.exp(0.5 * logvars[0])
            shift = float((np.abs(mu[1] - mu[0]) / sigma).mean())
            same_track = which[1:] == which[:-1]
            move = float((np.abs(np.diff(mu[0], axis=0)) / sigma[1:])[same_track].mean())
            errors = [reconstruction_error(vae, p) for p in pair]
            accuracy = probe_accuracy(mu, which) if args.tracks >= 2 else float("nan")
            print(f"| {canvas} | {driver} | {len(which)} | {diff.mean():.2f} | "
                  f"{(diff > 8).mean():.2%} | {diff.max()} | {shift:.3f} | {move:.3f} | "
                  f"{errors[0]:.5f} | {errors[1]:.5f} | {accuracy:.1%} |", flush=True)  # fmt: skip

    speed_tracks = [TRACK_SEED + 10_000 + i for i in range(args.speed_tracks)]
    rates = speed([0, 1, *args.shrink], speed_tracks, args.steps)
    print(f"\nspeed: random play, {len(speed_tracks)} other tracks, one episode each (up to "
          f"{args.steps} steps), renderers in turn, time in step() only, one core\n")  # fmt: skip
    print("| renderer | steps/s | vs Gymnasium's |")
    print("|---|---:|---:|")
    for k, rate in rates.items():
        if k <= 1:
            name = "Gymnasium's" if k == 0 else "wmtutor, same bytes (shrink 1)"
        else:
            name = f"wmtutor, shrink {k} ({1000 // k}x{800 // k})"
        print(f"| {name} | {rate:.0f} | {rate / rates[0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
