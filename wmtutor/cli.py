"""The ``wmtutor`` command. Each stage of the course adds a subcommand here.

wmtutor presets            # the active preset and every size in it
wmtutor presets --all      # all three presets
wmtutor gather --env doom  # record the preset's random rollouts of a game (resumable)
wmtutor train-vae --env doom   # train V on them (resumable, a checkpoint per epoch)
wmtutor encode --env doom      # every rollout -> its latent mu, logvar (M's data)
wmtutor train-mdnrnn --env doom  # train M on the latents (resumable)
wmtutor train-controller --env carracing  # train C with CMA-ES in the real game (resumable)
wmtutor evaluate --env carracing          # N episodes of the trained agent, random play beside

Every command reads the same preset (``--preset`` or ``$WMTUTOR_PRESET``) and writes
under the same runs folder as the notebooks, so one reuses what the other made.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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


def _executor(scheduler: str | None):
    """A Dask executor for ``--scheduler tcp://host:8786``, else None (local processes)."""
    if not scheduler:
        return None, None
    from distributed import Client

    client = Client(scheduler)
    print(f"Dask: {scheduler}, {len(client.scheduler_info()['workers'])} workers", flush=True)
    return client, client.get_executor()


def _dream_config(args: argparse.Namespace, preset):
    """The preset's dream settings with --tau / --done-threshold applied, or None (real game)."""
    import dataclasses

    if not getattr(args, "in_dream", False):
        return None
    dream = preset.game(args.env).dream
    flags = {k: getattr(args, k, None) for k in ("tau", "done_threshold")}
    changes = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(dream, **changes)


def _agent(args: argparse.Namespace, preset) -> tuple[dict, object, Path]:
    """The agent spec, the dream settings (None: real game) and the controller folder that
    the flags name (``--round K``: the M and folder of iterative-training round K)."""
    from wmtutor.controller import controller_dir
    from wmtutor.iterative import round_dir, round_spec

    k = args.round or 0
    if k and not args.in_dream:
        raise ValueError(
            "--round needs --in-dream: rounds of iterative training train C in M's dream"
        )
    spec = round_spec(args.env, preset, k)
    if args.inputs:
        spec = {**spec, "inputs": args.inputs}
    dream = _dream_config(args, preset)
    folder = controller_dir(args.env, preset, spec["inputs"], dream.tau if dream else None)
    return spec, dream, round_dir(args.env, preset, k) / folder.name if k else folder


def cmd_train_controller(args: argparse.Namespace) -> None:
    import dataclasses

    from wmtutor.controller import train_controller

    preset = get_preset(args.preset)
    config = preset.game(args.env).controller
    names = ("popsize", "trials", "generations", "max_steps", "sigma0", "l2", "target",
             "backend", "timeout")  # fmt: skip
    changes = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    config = dataclasses.replace(config, **changes)
    spec, dream, folder = _agent(args, preset)
    out = args.out or folder
    where = f"in the dream, tau {dream.tau}" if dream else "in the real game"
    print(f"C for {args.env} ({spec['inputs']}, {where}) -> {out}\n  {config}", flush=True)
    client, executor = _executor(args.scheduler)
    try:
        log = train_controller(spec, out, config, seed=preset.seed, executor=executor,
                               workers=args.workers, restart=args.restart,
                               progress=not args.quiet, dream=dream)  # fmt: skip
    finally:
        if client:
            client.close()
    for row in log[-5:]:
        extra = (
            f", evaluated {row['eval_mean']:.1f} ± {row['eval_std']:.1f}"
            if "eval_mean" in row
            else ""
        )
        print(
            f"generation {row['generation']}: best {row['best']:.1f}, mean {row['mean']:.1f}, "
            f"worst {row['worst']:.1f} (cap {row['max_steps']}, {row['seconds']:.1f} s){extra}"
        )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from wmtutor.controller import load_controller_state
    from wmtutor.dream import score_controller

    preset = get_preset(args.preset)
    config = preset.game(args.env).controller
    spec, dream, folder = _agent(args, preset)
    folder = args.controller or folder
    state = load_controller_state(folder)
    params = state["best_params"] if args.params == "best" else state["mean_params"]
    max_steps = args.max_steps or config.max_steps
    client, executor = _executor(args.scheduler)
    try:
        result = score_controller(spec, params, args.episodes, max_steps, dream=dream,
                                 executor=executor, workers=args.workers)  # fmt: skip
    finally:
        if client:
            client.close()
    print(
        f"{args.env}, {args.episodes} episodes of up to {max_steps} steps "
        f"({args.params} parameters of {folder}, generation {state['generation']}):"
    )
    print(f"  agent:  {result['real_mean']:.1f} ± {result['real_std']:.1f}")
    print(f"  random: {result['random_mean']:.1f} ± {result['random_std']:.1f}"
          "  (white noise, same seeds)")  # fmt: skip
    if dream:
        print(f"  in its dream (tau {dream.tau}): "
              f"{result['dream_mean']:.1f} ± {result['dream_std']:.1f}")  # fmt: skip


def cmd_pipeline(args: argparse.Namespace) -> None:
    from wmtutor.pipeline import run_pipeline

    preset = get_preset(args.preset)
    record = run_pipeline(args.env, preset, args.tau, progress=not args.quiet)
    minutes = record["total_seconds"] / 60
    print(f"\n{args.env}, preset {preset.name}: every stage in {minutes:.1f} min")
    for name, seconds in record["stages"].items():
        print(f"  {name:<10} {seconds:8.1f} s")
    for k, r in enumerate(record["results"]):
        label = "C trained in the dream" if k == 0 else f"after {k} round(s) of iterative training"
        print(f"{label}, {r['episodes']} real episodes:")
        print(f"  real game:                {r['real_mean']:.1f} ± {r['real_std']:.1f}")
        print(f"  random play, same seeds:  {r['random_mean']:.1f} ± {r['random_std']:.1f}")
        print(f"  in its dream (tau {r['tau']:g}):  {r['dream_mean']:.1f} ± {r['dream_std']:.1f}")
    for path in record.get("gifs", []):
        print(f"GIF: {path}")


def cmd_tau_sweep(args: argparse.Namespace) -> None:
    from wmtutor.dream import sweep_table, tau_sweep

    preset = get_preset(args.preset)
    rows = tau_sweep(args.env, preset, progress=not args.quiet)
    d = preset.game(args.env).dream
    print(f"\n{args.env}, preset {preset.name}: C trained {d.sweep_generations} generations in "
          f"the dream at each tau, tested over {d.sweep_episodes} real episodes\n")  # fmt: skip
    print(sweep_table(rows))


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

    def agent_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", required=True, choices=list(GAMES), help="the game")
        p.add_argument("--inputs", choices=("z", "zh", "zch"),
                       help="what C sees: z (V only), zh (V and M), zch (also M's cell "
                       "state) (default: the preset's: zch for Doom, zh otherwise)")  # fmt: skip
        p.add_argument("--in-dream", action="store_true",
                       help="a controller trained in M's dream (folder controller_<inputs>"
                       "_dream<tau>)")  # fmt: skip
        p.add_argument("--tau", type=float, help="M's temperature in the dream (default: the "
                       "preset's, 1.15)")  # fmt: skip
        p.add_argument("--done-threshold", type=float, help="with --in-dream: a dream ends "
                       "when M's P(done) exceeds this (default: the preset's, 0.5)")  # fmt: skip
        p.add_argument("--round", type=int, default=0, help="with --in-dream: the M of "
                       "iterative-training round K, made if missing (folder runs/<env>/"
                       "<preset>/round<K>/; default 0: the preset's own M)")  # fmt: skip
        p.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
        p.add_argument("--scheduler", help="a Dask scheduler, tcp://host:8786 (default: local)")
        p.add_argument("--max-steps", type=int, help="episode cap (default: the preset's)")
        add_preset_argument(p)

    p = sub.add_parser(
        "train-controller",
        help="train C with CMA-ES in the real game, or in M's dream (resumable)",
        description="Train the linear controller with CMA-ES, every candidate playing the real "
        "game with V and M, or with --in-dream every candidate dreaming inside M (a whole "
        "generation as one batch). The whole state is saved after each generation; "
        "re-running resumes. Defaults come from the preset.",
    )
    agent_flags(p)
    p.add_argument("--out", help="folder (default: runs/<env>/<preset>/controller_<inputs>)")
    p.add_argument("--popsize", type=int, help="CMA-ES population")
    p.add_argument("--trials", type=int, help="episodes per candidate")
    p.add_argument("--generations", type=int, help="total generations")
    p.add_argument("--sigma0", type=float, help="initial step size")
    p.add_argument("--l2", type=float, help="fitness penalty l2 * |x|^2")
    p.add_argument("--target", type=float, help="stop when the evaluated mean reaches this")
    p.add_argument("--backend", choices=("wmtutor", "pycma"), help="CMA-ES implementation")
    p.add_argument("--timeout", type=float, help="seconds before an evaluation counts as hung")
    p.add_argument("--restart", action="store_true", help="start over, replacing the state")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_controller)

    p = sub.add_parser(
        "evaluate",
        help="play N episodes with the trained agent; random play beside it",
        description="Evaluate a trained controller (with its V and M) over N episodes and "
        "print mean ± std, with white-noise random play on the same seeds beside it.",
    )
    agent_flags(p)
    p.add_argument("--episodes", type=int, default=100, help="episodes (the paper's: 100)")
    p.add_argument("--controller", help="controller folder (default: the preset's)")
    p.add_argument("--params", choices=("best", "mean"), default="mean",
                   help="the search's mean (default) or the best candidate seen")  # fmt: skip
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "pipeline",
        help="every stage end to end: gather, V, encode, M, C in the dream, evaluate, GIFs",
        description="Run the whole of World Models for one game with the preset's sizes: "
        "gather random rollouts, train V, encode, train M, train C in M's dream, test it "
        "for N episodes in the real game (random play and the dream's own score beside it) "
        "and write a dream-vs-real GIF. Each stage resumes; stage times and scores go to "
        "runs/<env>/<preset>/pipeline.json.",
    )
    p.add_argument("--env", default="doom", choices=list(GAMES), help="the game (default: doom)")
    p.add_argument("--tau", type=float, help="M's temperature in the dream (default: the preset's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_preset_argument(p)
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser(
        "tau-sweep",
        help="train C in dreams of several temperatures; test each in the real game",
        description="The paper's temperature sweep at the preset's scale: for each tau of the "
        "preset, C is trained in M's dream at that tau, then tested in the real game and in "
        "its own dream. Each run is cached (runs/<env>/<preset>/tau_sweep/); prints a table.",
    )
    p.add_argument("--env", default="doom", choices=list(GAMES), help="the game (default: doom)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_preset_argument(p)
    p.set_defaults(func=cmd_tau_sweep)
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
