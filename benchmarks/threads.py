"""Two trainings at once on a small machine: what torch's threads cost when jobs share cores.

    python benchmarks/threads.py                 # V's training step, batch 64
    python benchmarks/threads.py --seconds 20 --rounds 2

torch starts as many threads as the machine has cores. Alone, that is what a training
wants; but two jobs at once (two notebooks, a notebook beside ``wmtutor pipeline``, a
test run beside a training) each start that many, and every parallel region then waits
for a thread the other job has preempted. Measured here: V's training step (the same
child process as ``benchmarks/vae.py``, in the precision the laptop preset's ``auto``
picks on this CPU: bf16 where it has it in hardware, else fp32) alone, then two of them
at once with torch's default threads, then two at once with ``OMP_NUM_THREADS=1`` each.
Prints a Markdown table: frames/s of each job and of both together (medians of the
rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch
from vae import CHILD

from wmtutor.training import resolve_precision


def start(seconds: float, batch: int, threads: int | None) -> subprocess.Popen:
    """One V training child for ``seconds``; ``threads`` sets its OMP_NUM_THREADS (None:
    torch's default, the cores the process may use)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    args = ["train", "auto", str(batch), str(seconds), "32", "cpu"]
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def run(jobs: int, seconds: float, batch: int, threads: int | None) -> list[float]:
    """frames/s of each of ``jobs`` children run at the same time."""
    children = [start(seconds, batch, threads) for _ in range(jobs)]
    rates = []
    for child in children:
        out, _ = child.communicate(timeout=seconds * 20 + 300)
        if child.returncode != 0:
            raise SystemExit(f"a training child failed (exit {child.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1])["fps"])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    cases = (("one job, torch's threads", 1, None), ("two jobs, torch's threads each", 2, None),
             ("two jobs, OMP_NUM_THREADS=1 each", 2, 1))  # fmt: skip
    results = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):  # the cases alternate, so a noisy neighbour hurts each alike
        for name, jobs, threads in cases:
            results[name].append(run(jobs, args.seconds, args.batch, threads))
    precision = resolve_precision("auto", torch.device("cpu"))
    print(f"V's training step ({precision}, batch {args.batch}) on {cores} cores, "
          f"{args.seconds:g} s per job, median of {args.rounds} round(s)\n")  # fmt: skip
    print("| case | frames/s of each job | frames/s in all | × one job alone |")
    print("|---|---:|---:|---:|")
    alone = statistics.median(r[0] for r in results[cases[0][0]])
    for name, jobs, _ in cases:
        each = [statistics.median(r[i] for r in results[name]) for i in range(jobs)]
        print(f"| {name} | {' / '.join(f'{x:.0f}' for x in each)} | {sum(each):.0f} | "
              f"{sum(each) / alone:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
