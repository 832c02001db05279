"""How fast a CMA-ES generation runs in the dream: batched against one episode at a time.

    python benchmarks/dream.py            # Doom-sized M (laptop: 256 hidden, z 64)
    python benchmarks/dream.py --hidden 512   # the paper's Doom M

Dream steps per second (episode-steps: one step of one dream) for
``dream_generation`` (all candidates × trials as one tensor batch, fp32 and bf16) and for
``dream_one_by_one`` (the same episodes one at a time, on a subset: it is slow), with the
ratio, measured side by side in one run. M is untrained (speed does not depend on it)
but its done head never fires, so every episode runs ``--steps`` steps. Target: ≥ 20×.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wmtutor.dream import dream_generation, dream_one_by_one
from wmtutor.mdnrnn import MDNRNN
from wmtutor.utils import get_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--popsize", type=int, default=64)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--single-episodes", type=int, default=8, help="for one-by-one")
    parser.add_argument("--device", help="cpu, cuda (default: wmtutor's choice)")
    args = parser.parse_args()
    device = get_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    m = MDNRNN(args.z_dim, 3, args.hidden).to(device).eval()
    with torch.no_grad():
        m.done_head.bias.fill_(-50.0)  # never done: every episode runs all its steps
    rng = np.random.default_rng(0)
    params = rng.normal(0, 0.1, (args.popsize, args.z_dim + args.hidden + 1))
    z0 = rng.normal(size=(args.trials, args.z_dim)).astype(np.float32)
    B = args.popsize * args.trials
    rows = []
    for precision in ("fp32", "bf16"):
        dream_generation(m, "doom", params, z0, args.trials, max_steps=3, precision=precision)
        sync()
        start = time.perf_counter()
        dream_generation(m, "doom", params, z0, args.trials, max_steps=args.steps,
                         precision=precision)  # fmt: skip
        sync()
        rows.append((f"batched, {B} dreams at once, {precision}",
                     B * args.steps / (time.perf_counter() - start)))  # fmt: skip
    n = args.single_episodes
    start = time.perf_counter()
    dream_one_by_one(m, "doom", params[:n], z0, 1, max_steps=args.steps, shared_noise=False)
    single = n * args.steps / (time.perf_counter() - start)
    print(f"Dream steps/s on {device}, M hidden {args.hidden}, z {args.z_dim}, "
          f"{args.steps} steps per dream\n")  # fmt: skip
    print("| how | dream steps/s | × one by one |\n|---|---:|---:|")
    print(f"| one episode at a time ({n} episodes) | {single:.0f} | 1.0 |")
    for name, speed in rows:
        print(f"| {name} | {speed:.0f} | {speed / single:.1f} |")


if __name__ == "__main__":
    main()
