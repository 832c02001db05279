"""Separate or joint? V and M trained as the paper does (V, then M on V's codes) against V,
M and the inverse model trained together (``wmtutor.joint``), on the same Doom rollouts.

    python benchmarks/joint.py --preset laptop --n-rollouts 200      # about 10 min, 2 cores
    python benchmarks/joint.py --preset laptop --n-rollouts 200 --vae-weight 0.1 --inverse-weight 5
    python benchmarks/joint.py --preset tiny --n-rollouts 4          # seconds (the tests)

Both see every training frame the same number of times (``--epochs`` passes for V and
for the joint run; M gets the preset's epochs on V's codes, as in the course). Measured on
the held-out rollouts (the last 5%, which no model trained on):

* **recon**: V's squared error per frame (from a sampled z, as V's held-out loss);
* **z NLL**: M's negative log-likelihood of the next z, per latent dimension, each M on
  its own V's codes (so the two are on different scales of z: read it with the others);
* **actions read back from z**: a linear softmax probe from ``(mu_t, mu_t+1)`` to the
  action a_t, fitted on the training rollouts' codes, scored on the held-out ones, beside
  the share of the most frequent action (what a probe reading nothing gets);
* the wall-clock of each way.

Written under ``$WMTUTOR_RUNS/benchmarks/joint_doom_<preset>_<n>/``: the rollouts and the
separate run are made once and reused (their minutes are kept in ``minutes.json``), a
joint run per choice of weights, batch and ``--seed`` (the seed of the training: every
seed learns from the same rollouts). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from wmtutor import mdnrnn as m
from wmtutor.beyond import heldout_z_nll, probe_actions
from wmtutor.datasets import rollout_files
from wmtutor.files import load_rollout
from wmtutor.joint import export_world_model, train_joint
from wmtutor.layout import runs_root
from wmtutor.presets import get_preset
from wmtutor.rollouts import gather
from wmtutor.training import split_files
from wmtutor.utils import get_device
from wmtutor.vae import encode_rollouts, evaluate, heldout_frames, load_vae, train_vae


def timed(folder: Path, make) -> float:
    """Minutes ``make()`` took, kept in ``folder/minutes.json`` so a rerun reuses them."""
    record = folder / "minutes.json"
    if record.exists():
        return json.loads(record.read_text())["minutes"]
    start = time.perf_counter()
    make()
    minutes = (time.perf_counter() - start) / 60
    record.write_text(json.dumps({"minutes": minutes}))
    return minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--n-rollouts", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1, help="passes of V / the joint run")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the training seed (the rollouts are the preset seed's, shared)",
    )
    parser.add_argument("--vae-weight", type=float, help="default: the preset's joint section")
    parser.add_argument("--inverse-weight", type=float, help="default: the preset's")
    parser.add_argument("--batch-size", type=int, help="windows per joint step (the preset's)")
    parser.add_argument("--grad-clip", type=float, help="the joint run's clipping (the preset's)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    preset = get_preset(args.preset)
    game = preset.doom
    device = get_device(args.device)
    root = runs_root() / "benchmarks" / f"joint_doom_{preset.name}_{args.n_rollouts}"
    data = root / "rollouts"
    d = game.data
    gather("doom", args.n_rollouts, data, policy=d.policy, max_steps=d.max_steps,
           frame_skip=d.frame_skip, min_length=d.min_length, seed=preset.seed,
           preset=preset.name, progress=False)  # fmt: skip
    train_files, val_files = split_files(rollout_files(data))
    val = heldout_frames(val_files, 1024)
    vae_config = dataclasses.replace(game.vae, epochs=args.epochs)
    rows = {}

    sep = root / f"separate_seed{args.seed}_epochs{args.epochs}"

    def separate() -> None:  # the paper's way: V, then M on V's codes
        train_vae(data, sep / "vae.pt", vae_config, seed=args.seed, device=device,
                  progress=False)  # fmt: skip
        encode_rollouts(sep / "vae.pt", data, sep / "latents", device=device, progress=False)
        m.train_mdnrnn(sep / "latents", sep / "mdnrnn.pt", game.mdnrnn, "doom", seed=args.seed,
                       device=device, progress=False)  # fmt: skip

    rows["separate (the paper's)"] = (sep, timed(sep, separate))

    given = {"epochs": args.epochs, "vae_weight": args.vae_weight,
             "inverse_weight": args.inverse_weight, "batch_size": args.batch_size,
             "grad_clip": args.grad_clip}  # fmt: skip
    config = dataclasses.replace(game.joint, **{k: v for k, v in given.items() if v is not None})
    sizes = dataclasses.replace(game, joint=config)
    joint = root / (f"joint_seed{args.seed}_epochs{args.epochs}_v{config.vae_weight:g}"
                    f"_inv{config.inverse_weight:g}_batch{config.batch_size}"
                    + (f"_clip{args.grad_clip:g}" if args.grad_clip else ""))  # fmt: skip

    def together() -> None:  # one loss
        train_joint(data, joint / "joint.pt", sizes, "doom", seed=args.seed, device=device,
                    progress=False)  # fmt: skip
        export_world_model(joint / "joint.pt", joint / "vae.pt", joint / "mdnrnn.pt")
        encode_rollouts(joint / "vae.pt", data, joint / "latents", device=device, progress=False)

    label = (f"joint (V ×{config.vae_weight:g}, inverse ×{config.inverse_weight:g}, "
             f"{config.batch_size}×{config.seq_len} frames a step, "
             f"clip {config.grad_clip:g})")  # fmt: skip
    rows[label] = (joint, timed(joint, together))

    frames = sum(len(load_rollout(p, ["rewards"])["rewards"]) for p in train_files)
    print(f"Doom, preset {preset.name}, seed {args.seed}: {len(train_files)} training rollouts "
          f"({frames} frames), {len(val_files)} held out; V / joint {args.epochs} epoch(s), "
          f"V's batch {game.vae.batch_size} frames, M {game.mdnrnn.epochs} epochs\n")  # fmt: skip
    print("| training | held-out recon | z NLL per dim | actions read back from z "
          "(chance) | minutes |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for label, (folder, minutes) in rows.items():
        recon = evaluate(load_vae(folder / "vae.pt", device=device), val, vae_config)["recon"]
        nll = heldout_z_nll(folder / "mdnrnn.pt", folder / "latents", game.mdnrnn, device)
        latent_train, latent_val = split_files(rollout_files(folder / "latents"))
        accuracy, chance = probe_actions(latent_train, latent_val)
        print(f"| {label} | {recon:.1f} | {nll:.3f} | {accuracy:.1%} ({chance:.1%}) | "
              f"{minutes:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
