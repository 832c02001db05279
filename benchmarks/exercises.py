"""The figures behind the notebooks' exercise hints, measured with the code the hints name.

    python benchmarks/exercises.py mdn-one-gaussian   # 01, exercise 1 (K = 1), ~1 min
    python benchmarks/exercises.py cmaes-popsize      # 02, exercise 1 (lambda 6 vs 64), ~10 s
    python benchmarks/exercises.py coverage           # 03, exercise 2 (white vs brownian)
    python benchmarks/exercises.py vae-free-kl        # 04, exercise 1 (no KL allowance)
    python benchmarks/exercises.py mdnrnn-on-mu       # 05, exercise 1 (M fed mu, not z)

A hint says what the student will see; this script checks that it is what the code does,
over several seeds where a single run could mislead. Each prints a table. They run on the
laptop preset's sizes unless ``--preset`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from wmtutor.presets import get_preset


def mdn_one_gaussian(preset, seeds: list[int]) -> None:
    """01 ex 1: an MDN with K = 1 against the MSE net with one best constant sigma, and
    against the K-component MDN, held-out NLL per seed (lower is better)."""
    from wmtutor.mdn import mdn_nll
    from wmtutor.toys import MDNNet, MSENet, fit, inverse_problem
    from wmtutor.utils import seed_everything

    cfg = preset.mdn_toy
    print(f"held-out NLL, {cfg.steps} steps, hidden {cfg.hidden} ({preset.name} preset)")
    print("| seed | MSE net + best Gaussian | MDN, K = 1 | MDN, K = "
          f"{cfg.n_gaussians} |\n|---:|---:|---:|---:|")  # fmt: skip
    rows = []
    for seed in seeds:
        seed_everything(seed)
        x, y = inverse_problem(cfg.n_samples, cfg.noise, seed=seed)
        x_test, y_test = inverse_problem(2000, cfg.noise, seed=seed + 1)
        mse = MSENet(cfg.hidden)
        fit(mse, x, y, cfg.steps, cfg.lr)
        nets = {}
        for k in (1, cfg.n_gaussians):
            nets[k] = MDNNet(cfg.hidden, k)
            fit(nets[k], x, y, cfg.steps, cfg.lr)
        with torch.no_grad():
            residual = y_test - mse(x_test)
            gauss = -torch.distributions.Normal(mse(x_test), residual.std()).log_prob(y_test)
            row = [gauss.mean().item()] + [mdn_nll(*nets[k](x_test), y_test).item() for k in nets]
        rows.append(row)
        print(f"| {seed} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    means = [statistics.mean(col) for col in zip(*rows, strict=True)]
    print("| mean | " + " | ".join(f"{v:.2f}" for v in means) + " |")


def cmaes_popsize(preset, seeds: list[int]) -> None:
    """02 ex 1: how often CMA-ES ends the notebook's 60 generations on the shifted Schaffer
    function at its optimum (mean within 0.1), with lambda = 6, the preset's and 64."""
    from wmtutor.cmaes import make_es, minimize
    from wmtutor.toys import SCHAFFER_OPTIMUM, SCHAFFER_SIGMA0, SCHAFFER_X0, schaffer

    cfg = preset.cmaes_toy
    print(f"shifted Schaffer, x0 {SCHAFFER_X0.tolist()}, sigma0 {SCHAFFER_SIGMA0}, "
          f"60 generations, seeds {seeds[0]}..{seeds[-1]}")  # fmt: skip
    print("| backend | lambda | evaluations | mean at the optimum | seeds caught in a ring "
          "| median best f |\n|---|---:|---:|---:|---|---:|")  # fmt: skip
    for backend in ("wmtutor", "pycma"):
        for popsize in sorted({6, cfg.popsize, 64}):
            caught, best = [], []
            for seed in seeds:
                es = make_es(backend, SCHAFFER_X0, SCHAFFER_SIGMA0, popsize=popsize, seed=seed)
                result = minimize(es, schaffer, target=0.0, max_generations=60)
                best.append(result.best_f)
                if np.linalg.norm(es.mean - SCHAFFER_OPTIMUM) >= 0.1:
                    caught.append(seed)
            print(f"| {backend} | {popsize} | {60 * popsize} | {len(seeds) - len(caught)}/"
                  f"{len(seeds)} | {caught or '-'} | {statistics.median(best):.1e} |")  # fmt: skip


def coverage(preset, seeds: list[int]) -> None:
    """03 ex 2: 20 CarRacing episodes of white-noise and of brownian random play with the
    preset's episode length: track coverage and distance driven (mean ± std)."""
    from wmtutor.datasets import rollout_files
    from wmtutor.files import load_rollout
    from wmtutor.rollouts import distance_driven, gather, track_coverage

    data = preset.carracing.data
    print(f"CarRacing, 20 episodes of {data.max_steps} steps per policy, seed {seeds[0]}")
    print("| policy | track coverage | distance driven |\n|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for policy in ("white", "brownian"):
            folder = Path(tmp) / policy
            gather("carracing", 20, folder, policy=policy, max_steps=data.max_steps,
                   seed=seeds[0], progress=False)  # fmt: skip
            rollouts = [load_rollout(f) for f in rollout_files(folder)]
            cov = [100 * track_coverage(r) for r in rollouts]
            dist = [distance_driven(r) for r in rollouts]
            print(f"| {policy} | {np.mean(cov):.1f} ± {np.std(cov):.1f} % | "
                  f"{np.mean(dist):.0f} ± {np.std(dist):.0f} |")  # fmt: skip


def mdnrnn_on_mu(preset, seeds: list[int], latents: str | None, device: str | None) -> None:
    """05 ex 1: CarRacing's M trained on sampled z (the paper) and on mu alone, same data and
    epochs: held-out z NLL (always on sampled z) after training, per seed."""
    from wmtutor.mdnrnn import train_mdnrnn
    from wmtutor.pipeline import get_latents
    from wmtutor.utils import get_device

    device = get_device(device)
    folder = latents or get_latents("carracing", preset)["dir"]
    cfg = preset.carracing.mdnrnn
    print(f"CarRacing M, {cfg.epochs} epochs ({preset.name} preset), latents {folder}")
    print("| seed | trained on | held-out z NLL, first epoch | after training |"
          "\n|---:|---|---:|---:|")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for train_on in ("sample", "mu"):
                config = dataclasses.replace(cfg, train_on=train_on)
                ckpt = Path(tmp) / f"m_{seed}_{train_on}.pt"
                log = train_mdnrnn(folder, ckpt, config, "carracing", seed=seed, device=device,
                                   progress=False)  # fmt: skip
                held = [r["z_nll"] for r in log if r["kind"] == "epoch"]
                print(f"| {seed} | {train_on} | {held[1]:.3f} | {held[-1]:.3f} |")


def vae_free_kl(preset, seeds: list[int], rollouts: str | None, device: str | None) -> None:
    """04 ex 1: CarRacing's V with and without the KL allowance (``kl_tolerance`` 0.5 and 0),
    same data and epochs: held-out reconstruction error, KL, and the latent dimensions used
    (mean KL > 0.1 nats over held-out frames)."""
    from wmtutor.datasets import rollout_files
    from wmtutor.pipeline import get_rollouts
    from wmtutor.training import split_files
    from wmtutor.utils import get_device
    from wmtutor.vae import heldout_frames, kl_per_dimension, load_vae, to_input, train_vae

    device = get_device(device)
    folder = rollouts or get_rollouts("carracing", preset)["dir"]
    _, val_files = split_files(rollout_files(folder))
    frames = heldout_frames(val_files, 512)
    print(f"CarRacing V, {preset.name} preset sizes, data {folder}, {len(frames)} held-out frames")
    print("| seed | kl_tolerance | reconstruction (sum sq. error / frame) | KL (nats) "
          "| dims with KL > 0.1 |\n|---:|---:|---:|---:|---:|")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for tolerance in (preset.carracing.vae.kl_tolerance, 0.0):
                cfg = dataclasses.replace(preset.carracing.vae, kl_tolerance=tolerance)
                ckpt = Path(tmp) / f"vae_{seed}_{tolerance}.pt"
                train_vae(folder, ckpt, cfg, seed=seed, device=device, progress=False)
                vae = load_vae(ckpt, device=device)
                with torch.no_grad():
                    x = to_input(frames).to(device)
                    mu, logvar = vae.encode(x)
                    err = (vae.decode(mu) - x).square().flatten(1).sum(1).mean().item()
                    kl = kl_per_dimension(mu, logvar).cpu()
                print(f"| {seed} | {tolerance:g} | {err:.1f} | {kl.sum():.1f} | "
                      f"{int((kl > 0.1).sum())} of {vae.z_dim} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=["mdn-one-gaussian", "cmaes-popsize", "coverage",
                                          "vae-free-kl", "mdnrnn-on-mu"])  # fmt: skip
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--rollouts", help="vae-free-kl: a rollouts folder (default: the run's)")
    parser.add_argument("--latents", help="mdnrnn-on-mu: a latents folder (default: the run's)")
    parser.add_argument("--device", help="vae-free-kl: cpu, cuda (default: wmtutor's choice)")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    if args.which == "mdn-one-gaussian":
        mdn_one_gaussian(preset, args.seeds or [0, 1, 2])
    elif args.which == "cmaes-popsize":
        cmaes_popsize(preset, args.seeds or list(range(10)))
    elif args.which == "coverage":
        coverage(preset, args.seeds or [0])
    elif args.which == "mdnrnn-on-mu":
        mdnrnn_on_mu(preset, args.seeds or [0, 1], args.latents, args.device)
    else:
        vae_free_kl(preset, args.seeds or [0], args.rollouts, args.device)


if __name__ == "__main__":
    main()
