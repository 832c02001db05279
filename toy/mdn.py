"""The MDN toy as a script: fit an MSE network and a mixture density network to the
inverse problem and save the figure that notebook 01 builds step by step.

    python toy/mdn.py                    # laptop preset, writes assets/mdn_toy.png
    python toy/mdn.py --preset tiny --out /tmp/assets
"""

import argparse
from pathlib import Path

import torch

from wmtutor.cli import add_preset_argument
from wmtutor.presets import get_preset
from wmtutor.toys import MDNNet, MSENet, fit, inverse_problem
from wmtutor.utils import seed_everything
from wmtutor.viz import mdn_toy_figure, save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_preset_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("assets"), help="output folder")
    args = parser.parse_args()

    P = get_preset(args.preset)
    cfg = P.mdn_toy
    seed_everything(P.seed)
    x, y = inverse_problem(cfg.n_samples, cfg.noise, seed=P.seed)
    mse = MSENet(cfg.hidden)
    mse_losses = fit(mse, x, y, cfg.steps, cfg.lr)
    mdn = MDNNet(cfg.hidden, cfg.n_gaussians)
    mdn_losses = fit(mdn, x, y, cfg.steps, cfg.lr)

    xs = torch.linspace(x.min().item(), x.max().item(), 1000).unsqueeze(-1)
    with torch.no_grad():
        fig = mdn_toy_figure(x, y, xs, mse(xs), mdn.sample(xs, seed=P.seed), *mdn(xs)[:2])
    path = save_figure(fig, args.out / "mdn_toy.png")
    print(
        f"preset {P.name}: MSE loss {mse_losses[0]:.4f} -> {mse_losses[-1]:.4f}, "
        f"MDN NLL {mdn_losses[0]:.4f} -> {mdn_losses[-1]:.4f}; wrote {path}"
    )


if __name__ == "__main__":
    main()
