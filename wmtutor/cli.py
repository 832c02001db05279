"""The ``wmtutor`` command. Each stage of the course adds a subcommand here.

wmtutor presets            # the active preset and every size in it
wmtutor presets --all      # all three presets
wmtutor gather --env doom  # record the preset's random rollouts of a game (resumable)
wmtutor train-vae --env doom   # train V on them (resumable, a checkpoint per epoch)
wmtutor encode --env doom      # every rollout -> its latent mu, logvar (M's data)
wmtutor train-mdnrnn --env doom  # train M on the latents (resumable)

Every command reads the same preset (``--preset`` or ``$WMTUTOR_PRESET``) and writes
under the same runs folder as the notebooks, so one reuses what the other made.
"""

from __future__ import annotations

import argparse
import sys
import time

from wmtutor.envs import GAMES
from wmtutor.presets import ENV_VAR, PRESETS, get_preset
from wmtutor.rollouts import POLICIES


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--preset`` flag every command and script shares."""
    parser.add_argument(
        "--preset", default=None, help=f"tiny | laptop | paper (default: ${ENV_VAR} or laptop)"
    )


def cmd_presets(args: argparse.Namespace) -> None:
    names = sorted(PRESETS) if args.all else [get_preset(args.preset).name]
    for name in names:
        print(PRESETS[name].describe())


def cmd_gather(args: argparse.Namespace) -> None:
    from wmtutor.rollouts import gather, rollouts_dir

    preset = get_preset(args.preset)
    data = preset.game(args.env).data
    out = args.out or rollouts_dir(args.env, preset)
    n_rollouts = data.n_rollouts if args.rollouts is None else args.rollouts
    print(f"{args.env} ({GAMES[args.env].gym_id}) -> {out}", flush=True)
    start = time.perf_counter()
    manifest = gather(
        args.env,
        n_rollouts,
        out,
        policy=args.policy or data.policy,
        max_steps=args.max_steps or data.max_steps,
        frame_skip=args.frame_skip or data.frame_skip,
        min_length=data.min_length if args.min_length is None else args.min_length,
        seed=preset.seed if args.seed is None else args.seed,
        workers=args.workers,
        preset=preset.name,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    lengths = [e["length"] for e in manifest["files"]]
    print(
        f"{manifest['n_rollouts']} rollouts, {manifest['frames']} frames "
        f"(length {min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.0f}), "
        f"{manifest['bytes'] / 2**20:.1f} MiB, {seconds:.1f} s"
    )


def cmd_train_vae(args: argparse.Namespace) -> None:
    import dataclasses

    from wmtutor.rollouts import rollouts_dir
    from wmtutor.vae import train_vae, vae_dir

    preset = get_preset(args.preset)
    config = preset.game(args.env).vae
    changes = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "precision", "z_dim")}
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    rollouts = args.rollouts_dir or rollouts_dir(args.env, preset)
    out = args.out or vae_dir(args.env, preset)
    print(f"V for {args.env}: {rollouts} -> {out}/vae.pt\n  {config}", flush=True)
    log = train_vae(
        rollouts,
        out,
        config,
        seed=preset.seed,
        restart=args.restart,
        device=args.device,
        progress=not args.quiet,
    )
    epochs = [r for r in log if r["kind"] == "epoch"]
    for row in epochs:
        speed = f", {row['frames_per_s']:.0f} frames/s" if "frames_per_s" in row else ""
        print(
            f"epoch {row['epoch']}: held-out loss {row['loss']:.1f} "
            f"(recon {row['recon']:.1f}, KL {row['kl']:.1f}){speed}"
        )


def cmd_encode(args: argparse.Namespace) -> None:
    from wmtutor.rollouts import rollouts_dir
    from wmtutor.vae import encode_rollouts, latents_dir, vae_dir

    preset = get_preset(args.preset)
    vae = args.vae or vae_dir(args.env, preset) / "vae.pt"
    rollouts = args.rollouts_dir or rollouts_dir(args.env, preset)
    out = args.out or latents_dir(args.env, preset)
    start = time.perf_counter()
    manifest = encode_rollouts(vae, rollouts, out, device=args.device, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(
        f"{manifest['n_rollouts']} rollouts, {manifest['frames']} frames -> {out} "
        f"(z_dim {manifest['config']['z_dim']}, {seconds:.1f} s)"
    )


def cmd_train_mdnrnn(args: argparse.Namespace) -> None:
    import dataclasses

    from wmtutor.mdnrnn import mdnrnn_dir, train_mdnrnn
    from wmtutor.vae import latents_dir

    preset = get_preset(args.preset)
    config = preset.game(args.env).mdnrnn
    changes = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "precision", "hidden")}
    changes["seq_len"] = args.seq_len
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    latents = args.latents_dir or latents_dir(args.env, preset)
    out = args.out or mdnrnn_dir(args.env, preset)
    print(f"M for {args.env}: {latents} -> {out}/mdnrnn.pt\n  {config}", flush=True)
    log = train_mdnrnn(
        latents,
        out,
        config,
        args.env,
        seed=preset.seed,
        restart=args.restart,
        device=args.device,
        progress=not args.quiet,
    )
    for row in (r for r in log if r["kind"] == "epoch"):
        speed = f", {row['steps_per_s']:.0f} steps/s" if "steps_per_s" in row else ""
        print(
            f"epoch {row['epoch']}: held-out loss {row['loss']:.3f} (z NLL {row['z_nll']:.3f}, "
            f"reward {row['reward_mse']:.3f}, done {row['done_bce']:.3f}){speed}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmtutor", description="World Models, step by step: the course's command line."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("presets", help="show the active preset (or all) and its sizes")
    add_preset_argument(p)
    p.add_argument("--all", action="store_true", help="show every preset")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser(
        "gather",
        help="record random rollouts of a game (resumable)",
        description="Play a game with a random policy and write one compressed .npz per "
        "episode, in parallel worker processes. Re-running the same command resumes: "
        "finished episodes are kept. Defaults come from the preset.",
    )
    p.add_argument("--env", required=True, choices=list(GAMES), help="the game")
    p.add_argument(
        "--policy",
        choices=list(POLICIES),
        help="white: a new random action each step; brownian: smooth random actions; "
        "held: a random action held 1-10 steps (default: the preset's for this game)",
    )
    p.add_argument("--rollouts", type=int, help="episodes to record (default: the preset's)")
    p.add_argument(
        "--workers", type=int, help="worker processes (default: one per core; 1: no workers)"
    )
    p.add_argument("--out", help="folder for the rollouts (default: runs/<env>/<preset>/rollouts)")
    p.add_argument(
        "--max-steps", type=int, help="episode cap in agent steps (default: the preset's)"
    )
    p.add_argument("--frame-skip", type=int, help="game frames per agent step (default: preset)")
    p.add_argument(
        "--min-length",
        type=int,
        help="replace episodes that end before this many steps (default: the preset's)",
    )
    p.add_argument("--seed", type=int, help="base seed; episode i gets its own derived seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_argument(p)
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser(
        "train-vae",
        help="train V (the VAE) on a game's rollouts (resumable)",
        description="Train the convolutional VAE on the frames of the rollouts, streaming "
        "them from disk. A checkpoint is written after each epoch; re-running resumes "
        "after the last one. Defaults come from the preset.",
    )
    p.add_argument("--env", required=True, choices=list(GAMES), help="the game")
    p.add_argument("--rollouts-dir", help="rollout folder (default: runs/<env>/<preset>/rollouts)")
    p.add_argument(
        "--out", help="folder for vae.pt and vae_log.jsonl (default: runs/<env>/<preset>)"
    )
    p.add_argument("--epochs", type=int, help="total epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="frames per batch (default: the preset's)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    p.add_argument("--z-dim", type=int, help="latent size (default: the preset's)")
    p.add_argument(
        "--precision", choices=("fp32", "bf16"), help="bf16: autocast (default: the preset's)"
    )
    p.add_argument("--restart", action="store_true", help="train from scratch, replacing vae.pt")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_argument(p)
    p.set_defaults(func=cmd_train_vae)

    p = sub.add_parser(
        "encode",
        help="encode every rollout into V's latent statistics (mu, logvar)",
        description="Run V's encoder over every frame of every rollout and write one file "
        "per rollout with mu and logvar (T, z_dim) beside the actions, rewards and dones: "
        "the MDN-RNN's training data. Re-running encodes only what is missing.",
    )
    p.add_argument("--env", required=True, choices=list(GAMES), help="the game")
    p.add_argument("--vae", help="checkpoint (default: runs/<env>/<preset>/vae.pt)")
    p.add_argument("--rollouts-dir", help="rollout folder (default: runs/<env>/<preset>/rollouts)")
    p.add_argument("--out", help="output folder (default: runs/<env>/<preset>/latents)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_argument(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "train-mdnrnn",
        help="train M (the MDN-RNN) on a game's encoded rollouts (resumable)",
        description="Train the MDN-RNN on windows of the encoded rollouts (wmtutor encode), "
        "sampling z from each frame's N(mu, sigma^2) afresh in every batch. A checkpoint is "
        "written after each epoch; re-running resumes. Defaults come from the preset.",
    )
    p.add_argument("--env", required=True, choices=list(GAMES), help="the game")
    p.add_argument("--latents-dir", help="encoded rollouts (default: runs/<env>/<preset>/latents)")
    p.add_argument("--out", help="folder for mdnrnn.pt and its log (default: runs/<env>/<preset>)")
    p.add_argument("--epochs", type=int, help="total epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="windows per batch (default: the preset's)")
    p.add_argument("--seq-len", type=int, help="steps per window (default: the preset's)")
    p.add_argument("--hidden", type=int, help="LSTM units (default: the preset's)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    p.add_argument(
        "--precision", choices=("fp32", "bf16"), help="bf16: autocast (default: the preset's)"
    )
    p.add_argument("--restart", action="store_true", help="train from scratch, replacing mdnrnn.pt")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_preset_argument(p)
    p.set_defaults(func=cmd_train_mdnrnn)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, ImportError, FileNotFoundError) as err:  # one clear line, no traceback
        print(f"wmtutor {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
