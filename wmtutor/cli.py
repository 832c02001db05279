"""The ``wmtutor`` command: one subcommand per stage, each a thin layer over the package.

wmtutor presets            # the active preset and every size in it
wmtutor gather --env doom  # record the preset's random rollouts of a game (resumable)
wmtutor train-vae --env doom     # train V on them (resumable, a checkpoint per epoch)
wmtutor encode --env doom        # every rollout -> its latent mu, logvar (M's data)
wmtutor train-mdnrnn --env doom  # train M on the latents (resumable)
wmtutor train-joint --env doom   # ... or V, M and an inverse model together (beyond the paper)
wmtutor beyond --env doom        # notebook 08: separate vs joint, CMA-ES vs PPO in the dream
wmtutor train-controller --env carracing  # C with CMA-ES in the real game (resumable)
wmtutor train-controller --env doom --in-dream  # ... or in M's dream
wmtutor evaluate --env carracing # N episodes of the trained agent, random play beside
wmtutor pipeline --env doom      # every stage end to end
wmtutor migrate --env doom       # move a run of wmtutor 0.1 into the layout with seeds
wmtutor bundle export --env doom # a run's trained models in one .zip (for a class)
wmtutor bundle import FILE_OR_URL  # ... unpacked into the same run: nothing is retrained

Every command reads the same preset (``--preset`` or ``$WMTUTOR_PRESET``), seed
(``--seed``, default the preset's) and device (``--device`` or ``$WMTUTOR_DEVICE``) and
writes under the same runs folder as the notebooks (``wmtutor.layout``).

The flags that change a size are made from the preset's dataclasses (``section_flags``):
``--epochs`` of ``train-vae`` is ``presets.VAE.epochs``, its help the comment beside the
field there. Every value is checked before anything runs or any folder is made (the
sections' ``RULES``, and the types below); a user's mistake prints one line, never a
traceback (``--debug`` or ``WMTUTOR_DEBUG=1`` shows it).

Each command imports the stages it runs when it runs (inside its function): ``wmtutor
presets`` and every ``--help`` answer at once, without loading torch or the games.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import re
import sys
import time
from pathlib import Path

from wmtutor import layout, presets
from wmtutor.presets import ENV_VAR, GAMES, PRESETS, SettingError, get_preset

# ---------------------------------------------------------------------------------------
# Flags: made from the preset sections, and checked types for the rest


def _count(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {low}, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _out_dir(text: str) -> str:
    """An output folder: it may not exist yet, but no part of it may be a file."""
    path = Path(text).expanduser()
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r}: {part} is a file, not a folder")
            break
    return str(path)


def _video_file(text: str) -> str:
    """A file to record into: ``.gif`` or ``.mp4``, in a folder that is not a file."""
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a file ending in .gif or .mp4")
    _out_dir(str(path.parent))
    return str(path)


def _bundle_out(text: str) -> str:
    """A bundle to write: a file ending in ``.zip``, in a folder that is not a file."""
    path = Path(text).expanduser()
    if path.suffix.lower() != ".zip":
        raise argparse.ArgumentTypeError(f"{text!r}: expected a file ending in .zip")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: a folder, expected a file ending in .zip")
    _out_dir(str(path.parent))
    return str(path)


def _bundle_source(text: str) -> str:
    """A bundle to read: an existing file, or an http(s):// or file:// URL."""
    from wmtutor.bundle import check_source  # torch: only when the command runs

    try:
        return check_source(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _existing(kind: str):
    def parse(text: str) -> str:
        path = Path(text).expanduser()
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text!r}: no such {kind}")
        if (kind == "folder") != path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r}: not a {kind}")
        return str(path)

    parse.__name__ = f"existing {kind}"
    return parse


def _field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field in the class's source: ``name: int  # comment``."""
    found = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def section_flags(parser: argparse.ArgumentParser, cls: type, only: tuple[str, ...] = (),
                  skip: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Add one flag per field of the preset section ``cls`` (``--field-name``; default None
    = the preset's), typed and described from the dataclass. ``only``/``skip`` pick fields."""
    comments = _field_comments(cls)
    group = parser.add_argument_group(f"{cls.__name__} settings (default: the preset's)")
    for f in dataclasses.fields(cls):
        if (only and f.name not in only) or f.name in skip:
            continue
        rule = cls.RULES.get(f.name)
        kwargs: dict = {"default": None, "dest": f"{cls.__name__}.{f.name}",
                        "help": comments.get(f.name, "")}  # fmt: skip
        if "bool" not in str(f.type) and not (rule is not None and rule.kind == "choice"):
            kwargs["metavar"] = f.name.upper()
        text = str(f.type)
        if "bool" in text:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            whole = text.startswith(("int", "tuple[int"))
            kwargs["type"] = int if whole else _finite if "float" in text else str
            if rule is not None and rule.kind == "choice":
                kwargs["choices"] = list(rule.choices)
            if text.startswith("tuple"):
                kwargs["nargs"] = "+"
        group.add_argument(_flag(f.name), **kwargs)


def with_flags(section, args: argparse.Namespace):
    """``section`` with the values the flags gave (the one override path). A value a
    setting cannot have is refused, naming the flag."""
    name = type(section).__name__
    changes = {}
    for f in dataclasses.fields(section):
        value = getattr(args, f"{name}.{f.name}", None)
        if value is not None:
            changes[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        return dataclasses.replace(section, **changes)
    except SettingError as err:
        raise ValueError(f"{_flag(err.field)} {err.value!r}: expected {err.expected}") from None


def settings(args: argparse.Namespace) -> presets.Preset:
    """The preset with the flags' changes to ``args.env``'s sections."""
    preset = get_preset(args.preset)
    game = getattr(args, "env", None)
    if game is None:
        return preset
    sizes = preset.game(game)
    sections = [f.name for f in dataclasses.fields(sizes) if getattr(sizes, f.name) is not None]
    changed = {name: with_flags(getattr(sizes, name), args) for name in sections}
    return dataclasses.replace(preset, **{game: dataclasses.replace(sizes, **changed)})


def run_of(args: argparse.Namespace) -> layout.Run:
    from wmtutor.pipeline import make_run

    return make_run(args.env, settings(args), args.seed)


def common_flags(p: argparse.ArgumentParser, env: bool = True, device: bool = True) -> None:
    """The flags every command shares."""
    if env:
        p.add_argument("--env", required=True, choices=GAMES, help="the game")
    p.add_argument("--preset", default=None,
                   help=f"tiny | laptop | paper (default: ${ENV_VAR} or laptop)")  # fmt: skip
    p.add_argument("--seed", type=_count(0), help="the run's seed (default: the preset's): "
                   "runs of different seeds live in different folders")  # fmt: skip
    if device:
        p.add_argument("--device", help="cpu, cuda or cuda:N (default: $WMTUTOR_DEVICE, "
                       "else cuda if there is a GPU)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show a traceback on an error")


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--preset`` flag alone (the toy/ scripts use it)."""
    parser.add_argument("--preset", default=None,
                        help=f"tiny | laptop | paper (default: ${ENV_VAR} or laptop)")  # fmt: skip


# ---------------------------------------------------------------------------------------
# The commands


def cmd_presets(args: argparse.Namespace) -> None:
    names = sorted(PRESETS) if args.all else [get_preset(args.preset).name]
    for name in names:
        print(PRESETS[name].describe())


def cmd_migrate(args: argparse.Namespace) -> None:
    run = layout.Run.of(args.env, args.preset)
    moves = layout.migrate(run)
    if not moves:
        print(f"nothing to migrate in {run.old_folder}")
    for old, new in moves:
        print(f"{old} -> {new}")


def cmd_gather(args: argparse.Namespace) -> None:
    from wmtutor.envs import GAMES as GAME_SPECS
    from wmtutor.rollouts import gather

    run = run_of(args)
    data = run.sizes.data
    out = Path(args.out) if args.out else run.rollouts
    print(f"{args.env} ({GAME_SPECS[args.env].gym_id}) -> {out}", flush=True)
    start = time.perf_counter()
    manifest = gather(args.env, data.n_rollouts, out, policy=data.policy,
                      max_steps=data.max_steps, frame_skip=data.frame_skip,
                      min_length=data.min_length, seed=run.seed, workers=args.workers,
                      preset=run.preset, progress=not args.quiet)  # fmt: skip
    seconds = time.perf_counter() - start
    lengths = [e["length"] for e in manifest["files"]]
    print(
        f"{manifest['n_rollouts']} rollouts, {manifest['frames']} frames "
        f"(length {min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.0f}), "
        f"{manifest['bytes'] / 2**20:.1f} MiB, {seconds:.1f} s"
    )


def cmd_train_vae(args: argparse.Namespace) -> None:
    from wmtutor.vae import train_vae

    run = run_of(args)
    config = run.sizes.vae
    rollouts = args.rollouts_dir or run.rollouts
    ckpt = Path(args.out) / layout.VAE if args.out else run.vae
    print(f"V for {args.env}: {rollouts} -> {ckpt}\n  {config}", flush=True)
    log = train_vae(rollouts, ckpt, config, seed=run.seed, restart=args.restart,
                    device=args.device, progress=not args.quiet)  # fmt: skip
    for row in (r for r in log if r["kind"] == "epoch"):
        speed = f", {row['frames_per_s']:.0f} frames/s" if "frames_per_s" in row else ""
        told = f", told {row['told']:.3f}" if "told" in row else ""  # positions' error (Pong)
        print(f"epoch {row['epoch']}: held-out loss {row['loss']:.1f} "
              f"(recon {row['recon']:.1f}, KL {row['kl']:.1f}{told}){speed}")  # fmt: skip


def cmd_train_joint(args: argparse.Namespace) -> None:
    from wmtutor.joint import export_world_model, train_joint

    run = run_of(args)
    rollouts = args.rollouts_dir or run.rollouts
    ckpt = Path(args.out) / layout.JOINT if args.out else run.joint
    print(f"V + M + inverse model for {args.env}: {rollouts} -> {ckpt}\n  {run.sizes.joint}",
          flush=True)  # fmt: skip
    log = train_joint(rollouts, ckpt, run.sizes, args.env, seed=run.seed, restart=args.restart,
                      device=args.device, progress=not args.quiet)  # fmt: skip
    for row in (r for r in log if r["kind"] == "epoch"):
        read = row["inverse_acc"]
        read = "continuous" if read != read else f"{read:.1%} read back"  # nan: CarRacing
        untrained = " (untrained)" if row["epoch"] == 0 else ""
        print(f"epoch {row['epoch']}{untrained}: held-out loss {row['loss']:.1f} "
              f"(V {row['vae']:.1f}, M {row['mdnrnn']:.3f}, inverse {row['inverse']:.3f}, "
              f"actions {read})")  # fmt: skip
    vae, mdnrnn = export_world_model(ckpt, ckpt.parent / layout.VAE, ckpt.parent / layout.MDNRNN)
    print(f"V and M as the course's checkpoints (load_vae, load_mdnrnn): {vae}, {mdnrnn}")


def cmd_beyond(args: argparse.Namespace) -> None:
    from wmtutor import beyond

    preset = settings(args)
    sizes = preset.game(args.env)
    print(f"notebook 08's experiment, {args.env}, preset {preset.name}, seeds "
          f"{list(sizes.beyond.seeds)}:\n  {sizes.beyond}\n  {sizes.ppo}", flush=True)  # fmt: skip
    out = beyond.compare(args.env, preset, device=args.device, progress=not args.quiet)
    print("\nThe world models, on held-out rollouts:\n")
    print(beyond.representation_table(out["representation"]))
    print("\nEach learner in each dream, then the real game (test episodes):\n")
    print(beyond.tests_table(out["tests"], out["random"]))
    print()
    print(beyond.summary_table(out["tests"]))


def cmd_encode(args: argparse.Namespace) -> None:
    from wmtutor.vae import encode_rollouts

    run = run_of(args)
    vae = args.vae or run.vae
    rollouts = args.rollouts_dir or run.rollouts
    out = args.out or run.latents
    start = time.perf_counter()
    manifest = encode_rollouts(vae, rollouts, out, device=args.device, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(
        f"{manifest['n_rollouts']} rollouts, {manifest['frames']} frames -> {out} "
        f"(z_dim {manifest['config']['z_dim']}, {seconds:.1f} s)"
    )


def cmd_train_mdnrnn(args: argparse.Namespace) -> None:
    from wmtutor.mdnrnn import train_mdnrnn

    run = run_of(args)
    config = run.sizes.mdnrnn
    latents = args.latents_dir or run.latents
    ckpt = Path(args.out) / layout.MDNRNN if args.out else run.mdnrnn
    print(f"M for {args.env}: {latents} -> {ckpt}\n  {config}", flush=True)
    log = train_mdnrnn(latents, ckpt, config, args.env, seed=run.seed, restart=args.restart,
                       device=args.device, progress=not args.quiet)  # fmt: skip
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
    from distributed import Client  # only with --scheduler: Dask is slow to import

    client = Client(scheduler)
    print(f"Dask: {scheduler}, {len(client.scheduler_info()['workers'])} workers", flush=True)
    return client, client.get_executor()


def _agent(args: argparse.Namespace) -> tuple[layout.Run, dict, object, Path]:
    """The run, the agent spec, the dream settings (None: real game) and the controller
    folder that the flags name (``--round K``: the M and folder of round K)."""
    from wmtutor import pipeline

    if args.round and not args.in_dream:
        raise ValueError("--round needs --in-dream: rounds of iterative training train C in "
                         "M's dream")  # fmt: skip
    if args.full and args.in_dream:
        raise ValueError("--full is C trained in the real game, not --in-dream")
    run = run_of(args)
    inputs = run.sizes.controller.inputs
    common = dict(seed=run.seed, device=args.device, progress=not args.quiet)
    if args.full and run.sizes.full is None:
        raise ValueError(f"--full: preset {run.preset!r} has no full section for {args.env} "
                         "(its pipeline trains notebook 06's C): leave --full out")  # fmt: skip
    if not args.in_dream:
        spec = pipeline.agent_spec(args.env, run.settings, inputs=inputs, **common)
        return run, spec, None, run.controller(inputs, full=args.full)
    dream = run.sizes.dream
    spec = pipeline.round_spec(args.env, run.settings, dream.tau, args.round, **common)
    return run, spec, dream, run.dream_controller(args.round, dream.tau, inputs)


def cmd_train_controller(args: argparse.Namespace) -> None:
    from wmtutor.controller import RealGame, train_controller, with_input_stats
    from wmtutor.dream import InDream

    run, spec, dream, folder = _agent(args)
    config = run.sizes.full if args.full else run.sizes.controller
    out = Path(args.out) if args.out else folder
    spec = spec if dream else with_input_stats(spec, out)
    where = f"in the dream, tau {dream.tau:g}" if dream else "in the real game"
    print(f"C for {args.env} ({spec['inputs']}, {where}) -> {out}\n  {config}", flush=True)
    client, executor = _executor(args.scheduler)
    try:
        if dream:
            judge = InDream.from_spec(spec, dream, run.seed)
        else:
            judge = RealGame(spec, run.seed, executor=executor, workers=args.workers,
                             timeout=config.timeout, length_bonus=config.length_bonus,
                             shrink=config.shrink)  # fmt: skip
        log = train_controller(out, config, judge, seed=run.seed, restart=args.restart,
                               progress=not args.quiet)  # fmt: skip
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
    from wmtutor.controller import load_controller_state, with_input_stats
    from wmtutor.pipeline import score_controller

    run, spec, dream, folder = _agent(args)
    folder = Path(args.controller) if args.controller else folder
    state = load_controller_state(folder)
    spec = spec if dream else with_input_stats(spec, folder)
    params = state["best_params"] if args.params == "best" else state["mean_params"]
    max_steps = (run.sizes.full if args.full else run.sizes.controller).max_steps
    client, executor = _executor(args.scheduler)
    try:
        result = score_controller(spec, params, args.episodes, max_steps, dream=dream,
                                  executor=executor, workers=args.workers,
                                  progress=not args.quiet)  # fmt: skip
    finally:
        if client:
            client.close()
    print(
        f"{args.env}, {args.episodes} episodes of up to {max_steps} steps "
        f"({args.params} parameters of {folder}, generation {state['generation']}):"
    )
    print(f"  agent:  {result['real_mean']:.1f} ± {result['real_std']:.1f} "
          f"(median {result['real_median']:.1f})")  # fmt: skip
    print(f"  random: {result['random_mean']:.1f} ± {result['random_std']:.1f}"
          "  (white noise, same seeds)")  # fmt: skip
    if dream:
        print(f"  in its dream (tau {dream.tau:g}): "
              f"{result['dream_mean']:.1f} ± {result['dream_std']:.1f}")  # fmt: skip


def cmd_pipeline(args: argparse.Namespace) -> None:
    from wmtutor.pipeline import run_pipeline

    run = run_of(args)
    record = run_pipeline(args.env, run.settings, seed=run.seed, device=args.device,
                          progress=not args.quiet)  # fmt: skip
    minutes = record["total_seconds"] / 60
    print(f"\n{args.env}, preset {run.preset}, seed {run.seed}: every stage in {minutes:.1f} min")
    for name, seconds in record["stages"].items():
        print(f"  {name:<10} {seconds:8.1f} s")
    if record.get("recipe") == "real":  # CarRacing, Pong: C trained in the real game
        r = record["result"]
        from wmtutor.pipeline import REAL_GAME_RECIPE

        full = " (the game's full length)" if r["max_steps"] >= REAL_GAME_RECIPE[args.env] else ""
        print(f"test of C (trained in the real game), {r['episodes']} episodes of up to "
              f"{r['max_steps']} steps{full}:")  # fmt: skip
        print(f"  real game:                {r['real_mean']:.1f} ± {r['real_std']:.1f} "
              f"(median {r['real_median']:.1f})")  # fmt: skip
        print(f"  random play, same seeds:  {r['random_mean']:.1f} ± {r['random_std']:.1f}")
        print(f"GIF: {record['gif']}")
        return
    print("validation (real episodes that choose the round to ship, not the test's):")
    for k, r in enumerate(record["validation"]):
        label = "C trained in the dream" if k == 0 else f"after {k} round(s) of iterative training"
        chosen = "  <- shipped" if k == record["chosen_round"] else ""
        print(f"  {label:<42} {r['real_mean']:7.1f} ± {r['real_std']:.1f}{chosen}")
    r, k = record["result"], record["chosen_round"]
    print(f"test of round {k}'s C, {r['episodes']} real episodes (used once):")
    print(f"  real game:                {r['real_mean']:.1f} ± {r['real_std']:.1f} "
          f"(median {r['real_median']:.1f})")  # fmt: skip
    print(f"  random play, same seeds:  {r['random_mean']:.1f} ± {r['random_std']:.1f}")
    print(f"  in its dream (tau {r['tau']:g}):  {r['dream_mean']:.1f} ± {r['dream_std']:.1f}")
    for path in record.get("gifs", []):
        print(f"GIF: {path}")


def cmd_play(args: argparse.Namespace) -> None:
    from wmtutor.play import play

    run = run_of(args)
    result = play(args.env, run.settings, policy=args.policy, seed=run.seed,
                  episode_seed=args.episode_seed, max_steps=args.max_steps,
                  window=False if args.no_window else None, record=args.record,
                  scale=args.scale, fps=args.fps, device=args.device)  # fmt: skip
    print(f"{args.env}: {result['what']}; {result['steps']} steps, return {result['return']:.1f}")
    if "record" in result:
        print(f"recorded: {result['record']}")


def cmd_tau_sweep(args: argparse.Namespace) -> None:
    from wmtutor.pipeline import sweep_table, tau_sweep

    run = run_of(args)
    rows = tau_sweep(args.env, run.settings, seed=run.seed, device=args.device,
                     progress=not args.quiet)  # fmt: skip
    d = run.sizes.dream
    print(f"\n{args.env}, preset {run.preset}: C trained {d.sweep_generations} generations in "
          f"the dream at each tau, tested over {d.sweep_episodes} real episodes\n")  # fmt: skip
    print(sweep_table(rows))


def cmd_bundle_export(args: argparse.Namespace) -> None:
    from wmtutor.bundle import export_bundle

    run = layout.Run.of(args.env, args.preset, args.seed)
    run.check_layout()
    out = Path(args.out or f"wmtutor-{run.game}-{run.preset}-seed{run.seed}.zip")
    start = time.perf_counter()
    manifest = export_bundle(run, out, tau_sweep=args.tau_sweep, force=args.force)
    seconds = time.perf_counter() - start
    if not args.quiet:
        for entry in manifest["files"]:
            print(f"  {entry['bytes'] / 2**20:8.2f} MiB  {entry['path']}")
    print(f"{run.folder} -> {out}: {len(manifest['files'])} files, "
          f"{manifest['bytes'] / 2**20:.1f} MiB unpacked, {out.stat().st_size / 2**20:.1f} MiB "
          f"packed, {seconds:.1f} s (no rollouts, latents or GIFs)")  # fmt: skip


def cmd_bundle_import(args: argparse.Namespace) -> None:
    from wmtutor.bundle import import_bundle

    start = time.perf_counter()
    run, manifest, written = import_bundle(args.source, force=args.force)
    seconds = time.perf_counter() - start
    kept = len(manifest["files"]) - len(written)
    print(
        f"{args.source} -> {run.folder}: {len(written)} files written"
        + (f", {kept} already there" if kept else "")
        + f" ({manifest['game']}, preset {manifest['preset']}, seed {manifest['seed']}, made "
        f"{manifest['created']} with wmtutor {manifest['wmtutor_version']}), {seconds:.1f} s"
    )
    print(f"Its models are used as they are: notebooks and commands with --env {run.game} "
          f"--preset {run.preset} --seed {run.seed} train none of them.")  # fmt: skip


# ---------------------------------------------------------------------------------------
# The parser


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wmtutor", description="World Models, step by step: the course's command line."
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    def command(name: str, func, help: str, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description or help)
        p.set_defaults(func=func)
        return p

    p = command("presets", cmd_presets, "show the active preset (or all) and its sizes")
    p.add_argument("--preset", default=None, help="tiny | laptop | paper")
    p.add_argument("--all", action="store_true", help="show every preset")
    p.add_argument("--debug", action="store_true", help="show a traceback on an error")

    p = command("migrate", cmd_migrate, "move a run made by wmtutor 0.1 into the layout with "
                "seeds (runs/<env>/<preset>/seed<seed>/); nothing is retrained")  # fmt: skip
    common_flags(p, device=False)

    p = command("gather", cmd_gather, "record random rollouts of a game (resumable)",
                "Play a game with a random policy and write one compressed .npz per episode, "
                "in parallel worker processes. Re-running the same command resumes: finished "
                "episodes are checked and kept. Defaults come from the preset.")  # fmt: skip
    common_flags(p, device=False)
    section_flags(p, presets.Data)
    p.add_argument("--workers", type=_count(1), help="processes (default: one per core)")
    p.add_argument("--out", type=_out_dir,
                   help="folder (default: runs/<env>/<preset>/seed<seed>/rollouts)")  # fmt: skip

    p = command("train-vae", cmd_train_vae, "train V (the VAE) on a game's rollouts "
                "(resumable)", "Train the convolutional VAE on the frames of the rollouts, "
                "streaming them from disk. A checkpoint is written after each epoch; "
                "re-running resumes after the last one.")  # fmt: skip
    common_flags(p)
    section_flags(p, presets.VAE)
    p.add_argument("--rollouts-dir", type=_existing("folder"),
                   help="rollout folder (default: the run's)")  # fmt: skip
    p.add_argument("--out", type=_out_dir,
                   help="folder for vae.pt and its log (default: the run's)")  # fmt: skip
    p.add_argument("--restart", action="store_true", help="train from scratch, replacing vae.pt")

    p = command("train-joint", cmd_train_joint, "train V, M and an inverse model together "
                "(beyond the paper, resumable)", "Train V, M and a model that reads the action "
                "back from (z_t, z_t+1) with one optimizer and one weighted loss, on windows "
                "of the rollouts' frames; then write the V and M as vae.pt and mdnrnn.pt "
                "beside joint.pt. A checkpoint is written after each epoch; re-running "
                "resumes.")  # fmt: skip
    common_flags(p)
    section_flags(p, presets.Joint)
    p.add_argument("--rollouts-dir", type=_existing("folder"),
                   help="rollout folder (default: the run's)")  # fmt: skip
    p.add_argument("--out", type=_out_dir,
                   help="folder for joint.pt, its log, vae.pt and mdnrnn.pt "
                   "(default: the run's joint/)")  # fmt: skip
    p.add_argument("--restart", action="store_true",
                   help="train from scratch, replacing joint.pt")  # fmt: skip

    p = command("beyond", cmd_beyond, "notebook 08: separate vs joint world models, CMA-ES "
                "vs PPO in each dream, tested in the real game", "Train both world models "
                "(V then M; V, M and an inverse model together) on the same rollouts, then "
                "CMA-ES and Stable-Baselines3's PPO in each dream on the same number of "
                "dream steps, and test every learner in the real game with random play "
                "beside it, for every seed of --seeds. Everything is cached under the runs' "
                "beyond/ folders: re-running resumes and prints the tables.")  # fmt: skip
    common_flags(p)
    section_flags(p, presets.Beyond)
    section_flags(p, presets.PPO)

    p = command("encode", cmd_encode, "encode every rollout into V's latent statistics",
                "Run V's encoder over every frame of every rollout and write one file per "
                "rollout with mu and logvar (T, z_dim) beside the actions, rewards and dones: "
                "M's training data. Re-running encodes only what is missing or broken."
                )  # fmt: skip
    common_flags(p)
    p.add_argument("--vae", type=_existing("file"),
                   help="V's checkpoint (default: the run's vae.pt)")  # fmt: skip
    p.add_argument("--rollouts-dir", type=_existing("folder"),
                   help="rollout folder (default: the run's)")  # fmt: skip
    p.add_argument("--out", type=_out_dir, help="output folder (default: the run's latents/)")

    p = command("train-mdnrnn", cmd_train_mdnrnn, "train M (the MDN-RNN) on a game's encoded "
                "rollouts (resumable)", "Train the MDN-RNN on windows of the encoded rollouts, "
                "sampling z from each frame's N(mu, sigma^2) afresh in every batch. A "
                "checkpoint is written after each epoch; re-running resumes.")  # fmt: skip
    common_flags(p)
    section_flags(p, presets.MDNRNN)
    p.add_argument("--latents-dir", type=_existing("folder"),
                   help="encoded rollouts (default: the run's latents/)")  # fmt: skip
    p.add_argument("--out", type=_out_dir,
                   help="folder for mdnrnn.pt and its log (default: the run's)")  # fmt: skip
    p.add_argument("--restart", action="store_true", help="train from scratch, replacing it")

    def agent_flags(p: argparse.ArgumentParser) -> None:
        common_flags(p)
        p.add_argument("--in-dream", action="store_true", help="C trained in M's dream "
                       "(folder dream_<inputs>_tau<tau>/round<K>/controller)")  # fmt: skip
        p.add_argument("--round", type=_count(0), default=0, help="with --in-dream: the M of "
                       "iterative-training round K, made if missing (default 0: the run's M)"
                       )  # fmt: skip
        p.add_argument("--full", action="store_true", help="the pipeline's C for the game "
                       "(the preset's full section: longer, to the full length; folder "
                       "controller_<inputs>_full)")  # fmt: skip
        section_flags(p, presets.Dream, only=("tau", "done_threshold", "precision", "reward",
                      "round_episodes", "round_epochs", "round_sigma"))  # fmt: skip
        p.add_argument("--workers", type=_count(1), help="local processes (default: per core)")
        p.add_argument("--scheduler", help="a Dask scheduler, tcp://host:8786 (default: local)")

    p = command("train-controller", cmd_train_controller, "train C with CMA-ES in the real "
                "game, or in M's dream (resumable)", "Train the linear controller with CMA-ES, "
                "every candidate playing the real game with V and M, or with --in-dream "
                "dreaming inside M (a whole generation as one batch). The state is saved "
                "after each generation; re-running resumes.")  # fmt: skip
    agent_flags(p)
    section_flags(p, presets.Controller)
    p.add_argument("--out", type=_out_dir, help="folder (default: the run's controller folder)")
    p.add_argument("--restart", action="store_true", help="start over, replacing the state")

    p = command("evaluate", cmd_evaluate, "play N episodes with the trained agent; random "
                "play beside it", "Test a trained controller (with its V and M) over N real "
                "episodes and print mean ± std and the median, with white-noise random play "
                "on the same seeds beside it (and, --in-dream, its dream's score).")  # fmt: skip
    agent_flags(p)
    section_flags(p, presets.Controller, only=("inputs", "max_steps"))
    p.add_argument("--episodes", type=_count(1), default=100, help="episodes (the paper's 100)")
    p.add_argument("--controller", type=_existing("folder"),
                   help="controller folder (default: the run's)")  # fmt: skip
    p.add_argument("--params", choices=("best", "mean"), default="mean",
                   help="the search's mean (default) or the best candidate seen")  # fmt: skip

    p = command("pipeline", cmd_pipeline, "every stage end to end: gather, V, encode, M, C "
                "in the dream, rounds, evaluate, GIFs", "Run the whole of World Models for "
                "one game: gather random rollouts, train V, encode, train M, train C in M's "
                "dream, the preset's rounds of iterative training, test every round in the "
                "real game (random play and the dream's own score beside it) and write "
                "dream-vs-real GIFs. CarRacing and Pong train C in the real game instead "
                "and test it over full-length episodes (C trained in their dreams, which pay "
                "M's predicted reward, did not transfer). Each stage resumes; stage times "
                "and scores go to the run's pipeline.json.")  # fmt: skip
    common_flags(p)
    section_flags(p, presets.Dream, skip=("taus", "sweep_generations", "sweep_episodes"))

    p = command("tau-sweep", cmd_tau_sweep, "train C in dreams of several temperatures; "
                "test each in the real game", "The paper's temperature sweep at the preset's "
                "scale: for each tau, C is trained in M's dream at that tau, then tested in "
                "the real game and in its own dream. Each run is cached; prints a table."
                )  # fmt: skip
    common_flags(p)
    section_flags(p, presets.Dream, only=("taus", "sweep_generations", "sweep_episodes"))

    p = command("play", cmd_play, "watch one episode: the trained agent, random play or you",
                "Play one episode and show it live in a window (where there is a display), "
                "and/or record it to a GIF or MP4. The agent is the run's as it is on disk "
                "(the round the pipeline shipped, else C trained in the real game, else in "
                "the dream): nothing is trained. --policy human plays with the arrow keys."
                )  # fmt: skip
    common_flags(p)
    p.add_argument("--policy", choices=("agent", "random", "human"), default="agent",
                   help="who plays (default: the trained agent)")  # fmt: skip
    p.add_argument("--record", type=_video_file, help="write the episode to FILE.gif or .mp4")
    p.add_argument("--no-window", action="store_true", help="no window, even with a display")
    p.add_argument("--episode-seed", type=_count(0), default=0, help="the episode's seed")
    p.add_argument("--max-steps", type=_count(1), help="cap (default: the preset's controller's)")
    p.add_argument("--scale", type=_count(1), default=2, help="window size, times the game's")
    p.add_argument("--fps", type=_count(1), default=30, help="frames per second at most")

    p = command("bundle", None, "share a run's trained models: export them to one .zip, "
                "import one", "Train once, share the models: `bundle export` packs a run's V, "
                "M and every controller (not the data) into one .zip with a manifest of "
                "checksums; `bundle import` checks one and unpacks it into the same run, whose "
                "models the notebooks and commands then use as they are.")  # fmt: skip
    actions = p.add_subparsers(dest="bundle_action", required=True, metavar="ACTION")
    q = actions.add_parser("export", help="pack a run's trained models into one .zip",
                           description="Pack the run's V (vae.pt), M (mdnrnn.pt), every "
                           "controller and each round's M, their logs and cached scores, and "
                           "where its dreams start (first-frame latents), with a manifest of "
                           "every file's size and SHA-256. Not the rollouts, latents or GIFs."
                           )  # fmt: skip
    q.set_defaults(func=cmd_bundle_export)
    common_flags(q, device=False)
    q.add_argument("--out", type=_bundle_out, help="the .zip to write (default: "
                   "wmtutor-<env>-<preset>-seed<seed>.zip here)")  # fmt: skip
    q.add_argument("--tau-sweep", action="store_true",
                   help="include the temperature sweep's controllers (tau_sweep/) too")  # fmt: skip
    q.add_argument("--force", action="store_true", help="replace the .zip if it exists")
    q = actions.add_parser("import", help="check a bundle and unpack it into its run",
                           description="Check a bundle (every member a plain file its manifest "
                           "lists, every SHA-256, every checkpoint weights-only) and unpack it "
                           "into runs/<env>/<preset>/seed<seed>/, the run it was exported from. "
                           "A file the run has already is never replaced without --force."
                           )  # fmt: skip
    q.set_defaults(func=cmd_bundle_import)
    q.add_argument("source", metavar="FILE_OR_URL", type=_bundle_source,
                   help="a bundle .zip, or an http://, https:// or file:// URL of one")  # fmt: skip
    q.add_argument("--force", action="store_true",
                   help="replace the run's own files where the bundle's go")  # fmt: skip
    q.add_argument("--debug", action="store_true", help="show a traceback on an error")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("WMTUTOR_DEBUG") == "1"
    name = " ".join(filter(None, (args.command, getattr(args, "bundle_action", None))))
    try:
        args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `wmtutor presets | head -1`: the reader left, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0) from None
    except KeyboardInterrupt:
        print(f"\nwmtutor {name}: interrupted; running it again resumes", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, ImportError, OSError, RuntimeError) as err:  # one clear line
        if debug:
            raise
        print(f"wmtutor {name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
