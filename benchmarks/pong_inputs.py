"""Does what Pong's C reads carry where the ball is going? Linear probes on C's inputs.

C reads ``[z_t, h_t]``: V's ``mu`` for the frame it sees and M's hidden state before the
step. To return the ball, C needs the ball's place *and* its velocity, which one frame
does not show. This fits linear (ridge) probes from each input to the ball's row and
column and to their change since the last frame (the velocity), on frames of the run's
encoded rollouts where the ball is in both frames, found by its colour
(``envs.pong_positions``): each input standardized (C reads its inputs in units of their
spread), fitted on the first half of the steps, scored (R²) on the second. Rows: ``z_t``
alone; ``z_t, z_t-1`` (what a C given last frame's z would read); ``z_t, h_t`` (all of
it); the first principal components of the standardized ``z_t, h_t`` that the preset's C
reads (``Controller.components``, from ``controller.input_stats`` as C gets them);
``h_t`` alone.

    python benchmarks/pong_inputs.py --preset laptop --seed 0   # the run's V and M (seconds)
    python benchmarks/pong_inputs.py ... --files 12               # the last 12 encoded rollouts

The run's V, latents and M are made first if missing (``wmtutor pipeline``'s stages).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wmtutor.controller import input_stats
from wmtutor.envs import action_features, make_env, pong_positions
from wmtutor.files import load_rollout
from wmtutor.pipeline import get_latents, get_mdnrnn, make_run
from wmtutor.utils import get_device
from wmtutor.vae import to_input


def ridge_r2(x: np.ndarray, y: np.ndarray, alpha: float = 1e-2) -> np.ndarray:
    """Held-out R² ``(y_dim,)`` of a ridge regression ``x (N, d) -> y (N, y_dim)`` fitted on
    the first half of the rows and scored on the second, each column of ``x`` standardized
    by the first half's mean and spread."""
    n = len(x) // 2
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-8)
    x = np.c_[x, np.ones(len(x))]
    w = np.linalg.solve(x[:n].T @ x[:n] + alpha * np.eye(x.shape[1]), x[:n].T @ y[:n])
    return 1 - (y[n:] - x[n:] @ w).var(0) / y[n:].var(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None, help="the run's preset (default: laptop)")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed")
    parser.add_argument("--files", type=int, default=12, help="the last N encoded rollouts")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: wmtutor's choice)")
    args = parser.parse_args()
    if args.files < 1:
        parser.error(f"--files must be at least 1, got {args.files}")
    device = get_device(args.device)
    run = make_run("pong", args.preset, args.seed)
    latents = get_latents("pong", args.preset, seed=run.seed, device=device, progress=False)
    mdnrnn, _ = get_mdnrnn("pong", args.preset, seed=run.seed, device=device, progress=False)
    entries = latents["files"][-args.files :]
    k = run.sizes.controller.components
    pcs = f"{k} principal components of z_t, h_t (C's input)"
    inputs = {"z_t": [], "z_t, z_t-1": [], "z_t, h_t": [], pcs: [], "h_t": []}
    if k:  # C's own statistics: the first rollouts, standardized, projected
        env = make_env("pong")
        stats = input_stats(latents["dir"], mdnrnn, env.adapter, "zh", components=k)
        env.close()
    else:
        del inputs[pcs]
    velocity, place = [], []
    for entry in entries:
        with np.load(f"{latents['dir']}/{entry['file']}", allow_pickle=False) as data:
            z = torch.as_tensor(data["mu"], dtype=torch.float32, device=device)
            a = torch.as_tensor(action_features(data["actions"], mdnrnn.action_dim), device=device)
        frames = load_rollout(run.rollouts / entry["file"], ["frames"])["frames"]
        with torch.no_grad():
            _, h, _ = mdnrnn(z[None], a[None].float())
        h = torch.cat([torch.zeros_like(h[0, :1]), h[0, :-1]]).cpu().numpy()  # before each step
        targets, known = pong_positions(to_input(frames))
        ball = (known[1:, 0] * known[:-1, 0]).bool().numpy()  # in this frame and the last
        targets, z = targets[:, :2].numpy(), z.cpu().numpy()
        velocity.append((targets[1:] - targets[:-1])[ball])
        place.append(targets[1:][ball])
        inputs["z_t"].append(z[1:][ball])
        inputs["z_t, z_t-1"].append(np.c_[z[1:], z[:-1]][ball])
        inputs["z_t, h_t"].append(np.c_[z[1:], h[1:]][ball])
        if k:
            x = (np.c_[z, h] - stats["input_mean"]) / (stats["input_std"] + 1e-6)
            inputs[pcs].append((x @ stats["input_basis"].T)[1:][ball])
        inputs["h_t"].append(h[1:][ball])
    velocity, place = np.concatenate(velocity), np.concatenate(place)
    print(
        f"Pong, preset {run.preset}, seed {run.seed}: {len(velocity)} steps of "
        f"{len(entries)} encoded rollouts with the ball in this frame and the last\n"
    )
    print("| C reads | R² ball velocity row / column | R² ball place row / column |")
    print("|---|---:|---:|")
    for name, parts in inputs.items():
        x = np.concatenate(parts)
        v, p = ridge_r2(x, velocity), ridge_r2(x, place)
        print(f"| {name} | {v[0]:.2f} / {v[1]:.2f} | {p[0]:.2f} / {p[1]:.2f} |")


if __name__ == "__main__":
    main()
