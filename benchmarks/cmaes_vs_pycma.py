"""Our CMA-ES against pycma: median function evaluations to f < target, side by side.

    python benchmarks/cmaes_vs_pycma.py                  # 10-D, 11 seeds (the README table)
    python benchmarks/cmaes_vs_pycma.py --dim 20 --seeds 5

Both start at x = 0 with sigma0 = 0.5 and their default population size, on the same
seeds; each function's minimum (f = 0) is at x = 1. A run that misses the target within
the budget counts as the budget. Target: ours within 1.5x of pycma on every function.
Wall time is printed too (both measured in this one run), but evaluations are the
machine-independent figure.
"""

import argparse
import platform

from wmtutor.cmaes import evals_to_target
from wmtutor.toys import FUNCTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=10, help="problem dimension n")
    parser.add_argument("--seeds", type=int, default=11, help="independent runs per cell")
    parser.add_argument("--target", type=float, default=1e-8, help="f value to reach")
    parser.add_argument("--max-evals", type=int, default=100_000, help="budget per run")
    args = parser.parse_args()

    rows = evals_to_target(FUNCTIONS, args.dim, args.seeds, args.target, args.max_evals)
    cell = {(r["function"], r["backend"]): r for r in rows}
    print(
        f"n = {args.dim}, {args.seeds} seeds, target f < {args.target:g}, "
        f"Python {platform.python_version()} on {platform.machine()}\n"
    )
    print(
        "| function | ours: median evals | pycma: median evals | ratio | reached (ours / pycma)"
        " | ms per run (ours / pycma) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name in FUNCTIONS:
        ours, ref = cell[name, "wmtutor"], cell[name, "pycma"]
        ratio = ours["median_evals"] / ref["median_evals"]
        worst = max(worst, ratio)
        print(
            f"| {name} | {ours['median_evals']:.0f} | {ref['median_evals']:.0f} | {ratio:.2f} "
            f"| {ours['reached']}/{ours['runs']} / {ref['reached']}/{ref['runs']} "
            f"| {1000 * ours['seconds'] / ours['runs']:.0f} / "
            f"{1000 * ref['seconds'] / ref['runs']:.0f} |"
        )
    print(f"\nworst ratio {worst:.2f} (target <= 1.5): {'met' if worst <= 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
