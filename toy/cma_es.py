"""The CMA-ES toy as a script: animate our CMA-ES beside pycma on the shifted Schaffer
function, and compare evaluations to target on standard functions.

    python toy/cma_es.py                 # laptop preset, writes assets/cmaes_schaffer.gif
                                         # and assets/cmaes_evals.png
    python toy/cma_es.py --preset tiny --out /tmp/assets
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from wmtutor.cli import add_preset_argument
from wmtutor.cmaes import evals_to_target, make_es, minimize
from wmtutor.presets import get_preset
from wmtutor.toys import FUNCTIONS, SCHAFFER_OPTIMUM, SCHAFFER_SIGMA0, SCHAFFER_X0, schaffer
from wmtutor.viz import cmaes_frames, plot_evals_to_target, save_figure, save_gif


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_preset_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("assets"), help="output folder")
    args = parser.parse_args()
    P = get_preset(args.preset)
    cfg = P.cmaes_toy

    runs = {}
    for backend in ("wmtutor", "pycma"):
        es = make_es(backend, SCHAFFER_X0, SCHAFFER_SIGMA0, popsize=cfg.popsize, seed=P.seed)
        runs[backend] = minimize(
            es, schaffer, target=0.0, max_generations=cfg.gif_generations, record=True
        ).history
    gif = save_gif(cmaes_frames(runs, schaffer, SCHAFFER_OPTIMUM), args.out / "cmaes_schaffer.gif")

    rows = evals_to_target(FUNCTIONS, cfg.dim, cfg.n_seeds, cfg.target, cfg.max_evals)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    plot_evals_to_target(ax, rows)
    png = save_figure(fig, args.out / "cmaes_evals.png")
    for r in rows:
        print(
            f"{r['function']:>10} {r['backend']:>8}: median {r['median_evals']:.0f} evaluations"
            f" ({r['reached']}/{r['runs']} reached {cfg.target:g})"
        )
    print(f"wrote {gif} and {png}")


if __name__ == "__main__":
    main()
