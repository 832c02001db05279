"""Notebook 01's toy nets: Adam steps per second on 1 and on 2 torch threads, side by side.

    python benchmarks/toys.py            # the laptop preset's MDN, 300 steps, 3 rounds

Run it on a quiet machine and on a busy one (another job on the cores): these nets are
tiny, so a second thread mostly waits for the first, and when the cores are busy it waits
much longer. ``wmtutor.toys.fit`` uses one thread because of what this prints.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wmtutor.presets import get_preset
from wmtutor.toys import MDNNet, inverse_problem


def steps_per_s(threads: int, steps: int, cfg) -> float:
    x, y = inverse_problem(cfg.n_samples, cfg.noise, seed=0)
    model = MDNNet(cfg.hidden, cfg.n_gaussians)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="laptop")
    args = parser.parse_args()
    cfg = get_preset(args.preset).mdn_toy
    results = {1: [], 2: []}
    for _ in range(args.rounds):
        for threads in results:
            results[threads].append(steps_per_s(threads, args.steps, cfg))
    print(f"MDN toy ({args.preset}: {cfg.n_samples} points, hidden {cfg.hidden}), "
          f"median of {args.rounds} rounds of {args.steps} steps\n")  # fmt: skip
    print("| torch threads | Adam steps/s |\n|---:|---:|")
    for threads, rates in results.items():
        print(f"| {threads} | {statistics.median(rates):.0f} |")
    ratio = statistics.median(results[1]) / statistics.median(results[2])
    print(f"\n1 thread / 2 threads: {ratio:.1f}x")


if __name__ == "__main__":
    main()
