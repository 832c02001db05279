"""The whole of World Models, stage by stage, each made only if it is missing.

This is the one module that chains the stages. Every ``get_*`` returns an artifact of a
run (``wmtutor.layout.Run``: a game, a preset, a seed), making what it needs first:

    get_rollouts -> get_vae -> get_latents -> get_mdnrnn -> agent_spec
        -> get_controller               (C in the real game)
        -> get_dream_controller(round=k) (C in M's dream; round k >= 1 first records real
                                          episodes of round k-1's C and trains M on them)
        -> get_score                    (the real-game test, random play and the dream)
    get_initial_latents                 (where dreams start: first frames of the latents,
                                         or of a bundle)

Notebooks call these, so each notebook runs on its own; ``wmtutor pipeline --env doom``
runs them all (``run_pipeline``) and records the time of each stage and every score in
``pipeline.json``.

**What is on disk wins.** An artifact that exists is used as it is, or, if it was cut
short, finished with *its own* settings (its manifest or checkpoint records them), never
re-made with the preset's sizes: a user's ``wmtutor gather --n-rollouts 5`` stays 5
rollouts, a V trained with ``--epochs 1`` stays trained for one epoch. Derived data whose
input changed is remade visibly (latents when V changed, with a warning); a checkpoint
trained on other data than what is there now is refused, with the command that retrains
it (``wmtutor.training.TrainingRun``).

**A bundle's models are finished.** In a run imported with ``wmtutor bundle import``
(``wmtutor.bundle``), every checkpoint and controller that came in the bundle and is
unchanged (``bundled``) is used as it is: never trained on, and never refused because the
local rollouts or latents differ from those it was trained on. Nothing a bundled V, M or
C needs is gathered for it; dreams start from the bundle's first frames
(``get_initial_latents``). What is not in the bundle is made as usual, from its models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from wmtutor import presets
from wmtutor.bundle import bundled
from wmtutor.controller import (
    RealGame,
    evaluate_params,
    load_controller_state,
    random_returns,
    record_agent_rollouts,
    record_episode,
    train_controller,
    with_input_stats,
)
from wmtutor.datasets import rollout_files
from wmtutor.dream import InDream, check_dream, initial_latents
from wmtutor.files import read_manifest
from wmtutor.layout import (
    CONTROLLER_LOG,
    CONTROLLER_STATE,
    MANIFEST,
    RESULTS,
    VALIDATION,
    Run,
    log_path,
)
from wmtutor.mdnrnn import MDNRNN, load_mdnrnn, train_mdnrnn
from wmtutor.presets import Preset
from wmtutor.rollouts import gather, rollout_seed
from wmtutor.training import load_checkpoint, read_log
from wmtutor.utils import atomic_path, get_device
from wmtutor.vae import ConvVAE, encode_rollouts, load_vae, train_vae
from wmtutor.viz import dream_vs_real_gif, label_frames, save_gif

# Real-game episode seeds: training uses the run's seed; the rounds of iterative training
# are chosen on VALIDATION_SEED's episodes; the final test is TEST_SEED's, used once.
VALIDATION_SEED = 20_000
TEST_SEED = 10_000


def make_run(game: str, preset: Preset | str | None = None, seed: int | None = None) -> Run:
    """The run of ``game`` on ``preset`` (default ``$WMTUTOR_PRESET``) and ``seed``
    (default: the preset's); refuses to work beside a run in the old layout."""
    run = Run.of(game, preset, seed)
    run.check_layout()
    return run


RUN_TIME_FIELDS = ("num_workers", "frame_cache")  # how to run a stage, not what it makes


def _own_config(cls, saved: dict, default):
    """The settings an artifact was made with (its checkpoint's config; a setting newer
    than the checkpoint takes its default), else ``default``; how to run it (loader
    workers, the frame cache) is always ``default``'s."""
    fields = dataclasses.fields(cls)
    needed = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if not all(n in saved for n in needed):
        return default
    values = {f.name: saved[f.name] for f in fields if f.name in saved}
    values.update({f.name: getattr(default, f.name) for f in fields
                   if f.name in RUN_TIME_FIELDS})  # fmt: skip
    return cls(**values)


# ---------------------------------------------------------------------------------------
# V and M and their data


def get_rollouts(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
                 workers: int | None = None, progress: bool = True) -> dict:  # fmt: skip
    """The run's random rollouts: read from disk (finished if a gather was cut short),
    gathered with the preset's sizes if missing. Returns the manifest, with ``"dir"``."""
    run = make_run(game, preset, seed)
    folder = run.rollouts
    if (folder / MANIFEST).exists():  # finish it with its own settings
        m = read_manifest(folder)
        c = m["config"]
        n = int(m.get("target", m["n_rollouts"]))
        kwargs = dict(
            policy=c["policy"],
            max_steps=c["max_steps"],
            frame_skip=c["frame_skip"],
            min_length=c["min_length"],
            seed=c["seed"],
            preset=m.get("preset", ""),
        )
    else:
        data = run.sizes.data
        n = data.n_rollouts
        kwargs = dict(
            policy=data.policy,
            max_steps=data.max_steps,
            frame_skip=data.frame_skip,
            min_length=data.min_length,
            seed=run.seed,
            preset=run.preset,
        )
    manifest = gather(game, n, folder, workers=workers, progress=progress, **kwargs)
    return dict(manifest, dir=str(folder))


def get_vae(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
            device: str | torch.device | None = None,
            progress: bool = True) -> tuple[ConvVAE, list[dict]]:  # fmt: skip
    """The run's trained V and its log; trained first (with its data) if missing, finished
    with its own settings if it was cut short; a bundle's V as it is (no data needed)."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    if bundled(run, run.vae):
        return load_vae(run.vae, device=device), read_log(log_path(run.vae))
    rollouts = get_rollouts(game, preset, seed=run.seed, progress=progress)["dir"]
    config = run.sizes.vae
    if run.vae.exists():
        config = _own_config(presets.VAE, load_checkpoint(run.vae)["config"], config)
    log = train_vae(rollouts, run.vae, config, seed=run.seed, device=device, progress=progress)
    return load_vae(run.vae, device=device), log


def get_latents(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
                device: str | torch.device | None = None,
                progress: bool = True) -> dict:  # fmt: skip
    """The run's rollouts encoded by its V (M's data); made if missing, remade if V changed.
    Returns the manifest, with ``"dir"``. (A bundle's V: the run's own rollouts are gathered
    first, if missing, and encoded by it.)"""
    run = make_run(game, preset, seed)
    device = get_device(device)
    if bundled(run, run.vae):  # get_vae gathers nothing for it
        get_rollouts(game, preset, seed=run.seed, progress=progress)
    get_vae(game, preset, seed=run.seed, device=device, progress=progress)
    manifest = encode_rollouts(run.vae, run.rollouts, run.latents, device=device,
                               progress=progress)  # fmt: skip
    return dict(manifest, dir=str(run.latents))


def get_mdnrnn(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
               device: str | torch.device | None = None,
               progress: bool = True) -> tuple[MDNRNN, list[dict]]:  # fmt: skip
    """The run's trained M and its log; trained first (with V and the latents) if missing;
    a bundle's M as it is (no data needed)."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    if bundled(run, run.mdnrnn):
        return load_mdnrnn(run.mdnrnn, device=device), read_log(log_path(run.mdnrnn))
    latents = get_latents(game, preset, seed=run.seed, device=device, progress=progress)
    config = run.sizes.mdnrnn
    if run.mdnrnn.exists():
        config = _own_config(presets.MDNRNN, load_checkpoint(run.mdnrnn)["config"], config)
    log = train_mdnrnn(latents["dir"], run.mdnrnn, config, game, seed=run.seed, device=device,
                       progress=progress)  # fmt: skip
    return load_mdnrnn(run.mdnrnn, z_dim=latents["config"]["z_dim"], device=device), log


def agent_spec(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
               inputs: str | None = None, device: str | torch.device | None = None,
               progress: bool = True) -> dict:  # fmt: skip
    """What a process needs to build the run's agent (V and M trained first if missing):
    checkpoint paths, the latents folder, C's inputs (default: the preset's, ``zch`` for
    Doom as in the paper) and bias, the frame skip and the device."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    get_mdnrnn(game, preset, seed=run.seed, device=device, progress=progress)
    return _spec(run, inputs or run.sizes.controller.inputs, device)


def _spec(run: Run, inputs: str, device: torch.device, mdnrnn: Path | None = None) -> dict:
    """The agent spec of ``run`` (its V, and its M unless ``mdnrnn`` names a round's).
    ``latents`` is where dreams start (``dream.initial_latents``): the latents folder, or
    a bundle's first-frame file."""
    sizes = run.sizes
    starts = run.initial_latents if bundled(run, run.initial_latents) else run.latents
    return {"game": run.game, "vae": str(run.vae), "mdnrnn": str(mdnrnn or run.mdnrnn),
            "latents": str(starts), "inputs": inputs, "bias": sizes.controller.bias,
            "frame_skip": sizes.data.frame_skip, "device": str(device),
            **({"standardize": True} if sizes.controller.standardize else {}),
            **({"components": sizes.controller.components} if sizes.controller.components
               else {})}  # fmt: skip


def get_initial_latents(game: str, preset: Preset | str | None = None, *,
                        seed: int | None = None, device: str | torch.device | None = None,
                        progress: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Where the run's dreams start: ``mu`` and ``logvar`` ``(N, z_dim)`` of the first frame
    of every encoded rollout (``dream.initial_latents``). From the bundle the run came in,
    if it did (no data needed), else from its latents (made first if missing)."""
    run = make_run(game, preset, seed)
    if bundled(run, run.initial_latents):
        return initial_latents(run.initial_latents)
    latents = get_latents(game, preset, seed=run.seed, device=device, progress=progress)
    return initial_latents(latents["dir"])


def _bundled_controller(run: Run, folder: Path) -> tuple[np.ndarray, list[dict]] | None:
    """A controller that came in the run's bundle, as it is: ``(mean params, log)``."""
    if not bundled(run, folder / CONTROLLER_STATE):
        return None
    log = folder / CONTROLLER_LOG
    return (load_controller_state(folder)["mean_params"],
            json.loads(log.read_text()) if log.exists() else [])  # fmt: skip


def trained_agent(
    game: str,
    preset: Preset | str | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, dict, str]:
    """The run's trained agent as it is on disk, training nothing: ``(params, spec, what)``.

    The round ``wmtutor pipeline`` shipped if it ran, else C trained in the real game (the
    pipeline's full-length C, then notebook 06's), else round 0's C trained in the dream.
    Raises ``FileNotFoundError`` naming the command that trains one when there is none."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    dream, inputs = run.sizes.dream, run.sizes.controller.inputs
    shipped = None
    if run.pipeline.exists():
        record = json.loads(run.pipeline.read_text())
        mine = record.get("dreams", {}).get(f"{inputs}_tau{dream.tau:g}", {})
        shipped = mine.get("chosen_round")
    candidates = []
    if shipped is not None:
        what = f"C shipped by the pipeline (round {shipped}, trained in the dream)"
        candidates.append((run.dream_controller(shipped, dream.tau, inputs), shipped, what))
    candidates += [
        (run.controller(inputs, full=True), None, "C trained in the real game, full length"),
        (run.controller(inputs), None, "C trained in the real game"),
        (run.dream_controller(0, dream.tau, inputs), 0, "C trained in the dream"),
    ]
    for folder, k, what in candidates:
        mdnrnn = run.round_mdnrnn(k or 0, dream.tau, inputs)
        if all(p.exists() for p in (folder / CONTROLLER_STATE, run.vae, mdnrnn)):
            params = load_controller_state(folder)["mean_params"]
            spec = with_input_stats(_spec(run, inputs, device, mdnrnn), folder)
            return params, spec, f"{what}: {folder}"
    raise FileNotFoundError(
        f"no trained agent for {game} (preset {run.preset}, seed {run.seed}) under {run.folder}: "
        f"train one with `wmtutor pipeline --env {game}` or `wmtutor train-controller --env "
        f"{game}`, or watch random play (--policy random)"
    )


# ---------------------------------------------------------------------------------------
# C: in the real game, and in the dream with rounds of iterative training


def get_controller(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
                   inputs: str | None = None, device: str | torch.device | None = None,
                   workers: int | None = None, full: bool = False,
                   progress: bool = True) -> tuple[np.ndarray, list[dict], dict]:  # fmt: skip
    """C trained with CMA-ES in the real game (trained or finished if need be):
    ``(mean parameters, log, spec)``. Notebook 06's C (the game's ``controller``
    section), or with ``full`` the pipeline's (``real_controller_config``)."""
    run = make_run(game, preset, seed)
    spec = agent_spec(game, preset, seed=run.seed, inputs=inputs, device=device,
                      progress=progress)  # fmt: skip
    config, full = real_controller_config(run, full)
    folder = run.controller(spec["inputs"], full=full)
    spec = with_input_stats(spec, folder)
    done = _bundled_controller(run, folder)
    if done is not None:
        return *done, spec
    judge = RealGame(spec, run.seed, workers=workers, timeout=config.timeout,
                     length_bonus=config.length_bonus, shrink=config.shrink)  # fmt: skip
    log = train_controller(folder, config, judge, seed=run.seed, progress=progress)
    return load_controller_state(folder)["mean_params"], log, spec


def real_controller_config(run: Run, full: bool = True) -> tuple[presets.Controller, bool]:
    """The sizes of C trained in the real game, and whether they are the ``full`` section:
    with ``full``, the game's ``full`` section (the pipeline's C: longer, to the full
    length) where the preset has one; else ``controller`` (notebook 06's)."""
    sizes = run.sizes
    if full and sizes.full is not None:
        return sizes.full, True
    return sizes.controller, False


def _dream_config(run: Run, tau: float | None) -> presets.Dream:
    dream = run.sizes.dream
    return dream if tau is None else dataclasses.replace(dream, tau=tau)


def _round_mdnrnn(run: Run, previous: dict, params: np.ndarray, dream: presets.Dream, k: int,
                  progress: bool) -> dict:  # fmt: skip
    """Round k's M (made if missing): round k-1's C plays real episodes, V encodes them,
    and M trains ``round_epochs`` more epochs on all the data so far. Returns its spec."""
    folder = run.round(k, dream.tau, previous["inputs"])
    ckpt = folder / Path(run.mdnrnn).name
    if bundled(run, ckpt):
        return {**previous, "mdnrnn": str(ckpt)}
    if not (run.latents / MANIFEST).exists():  # a bundled run: its own data, encoded by V
        get_latents(run.game, run.settings, seed=run.seed, device=previous["device"],
                    progress=progress)  # fmt: skip
    sizes = run.sizes
    # Once M has begun, the round's data was complete: it stays as it was made, whatever
    # the settings now (another --round-episodes records nothing more).
    made = load_checkpoint(ckpt)["config"] if ckpt.exists() else None
    if made is None:
        record_agent_rollouts(previous, params, dream.round_episodes, folder / "rollouts",
                              sigma=dream.round_sigma, seed=run.seed + k,
                              max_steps=sizes.controller.max_steps, progress=progress)  # fmt: skip
        encode_rollouts(previous["vae"], folder / "rollouts", folder / "latents",
                        device=previous["device"], progress=progress)  # fmt: skip
    files = rollout_files(run.latents)
    for j in range(1, k + 1):
        files += rollout_files(run.round(j, dream.tau, previous["inputs"]) / "latents")
    # The same held-out split every time: files sorted by name, the last 5 % held out.
    files = sorted(files, key=lambda p: (p.name, str(p)))
    base = _own_config(presets.MDNRNN, load_checkpoint(run.mdnrnn)["config"], sizes.mdnrnn)
    config = dataclasses.replace(base, epochs=base.epochs + k * dream.round_epochs)
    config = _own_config(presets.MDNRNN, made, config) if made else config
    train_mdnrnn(files, ckpt, config, run.game, seed=run.seed + k, init_from=previous["mdnrnn"],
                 device=previous["device"], progress=progress)  # fmt: skip
    return {**previous, "mdnrnn": str(ckpt)}


def round_spec(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    k: int = 0,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """The agent spec of round k of iterative training in the dream at ``tau``: round 0 is
    the run's own V and M; round k's M has also learnt from real episodes of round k-1's
    dream-trained C. Everything up to round k's M is made if missing (each round once)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"round {k!r}: expected an integer >= 0")
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    check_dream(dream.tau, dream.done_threshold)
    spec = agent_spec(game, preset, seed=run.seed, device=device, progress=progress)
    for j in range(1, k + 1):
        made_from = run.dream_controller(j - 1, dream.tau, spec["inputs"])
        made = run.round_mdnrnn(j, dream.tau, spec["inputs"]).exists()
        if made and (made_from / CONTROLLER_STATE).exists():
            # Round j was made from round j-1's finished C: that C as it is, whatever
            # sizes it was trained with (`evaluate --round j` trains nothing).
            params = load_controller_state(made_from)["mean_params"]
        else:
            params, _ = _train_in_dream(run, spec, dream, j - 1, progress)
        spec = _round_mdnrnn(run, spec, params, dream, j, progress)
    return spec


def _train_in_dream(run: Run, spec: dict, dream: presets.Dream, k: int,
                    progress: bool) -> tuple[np.ndarray, list[dict]]:  # fmt: skip
    """Round k's C in the dream of ``spec``'s M (trained or finished if need be)."""
    folder = run.dream_controller(k, dream.tau, spec["inputs"])
    done = _bundled_controller(run, folder)
    if done is not None:
        return done
    judge = InDream.from_spec(spec, dream, run.seed)
    log = train_controller(folder, run.sizes.controller, judge, seed=run.seed, progress=progress)
    return load_controller_state(folder)["mean_params"], log


def get_dream_controller(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    *,
    round: int = 0,
    sweep: bool = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, list[dict], dict]:
    """C trained in M's dream at ``tau`` (default: the preset's): ``(params, log, spec)``.

    V, M (and the data) are made first if missing; training runs or resumes until the
    preset's generations are done (``sweep``: the temperature sweep's shorter runs, in
    round 0's dream). ``round`` k > 0: in the dream of M after k rounds of iterative
    training (``round_spec``).
    """
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    spec = round_spec(game, preset, dream.tau, 0 if sweep else round, seed=run.seed,
                      device=device, progress=progress)  # fmt: skip
    if not sweep:
        params, log = _train_in_dream(run, spec, dream, round, progress)
        return params, log, spec
    config = dataclasses.replace(
        run.sizes.controller, generations=dream.sweep_generations, eval_every=0
    )
    folder = run.sweep(dream.tau)
    done = _bundled_controller(run, folder)
    if done is not None:
        return *done, spec
    judge = InDream.from_spec(spec, dream, run.seed)
    log = train_controller(folder, config, judge, seed=run.seed, progress=progress)
    return load_controller_state(folder)["mean_params"], log, spec


# ---------------------------------------------------------------------------------------
# The test: the real game, random play beside it, and the dream


def score_controller(
    spec: dict,
    params: np.ndarray,
    episodes: int,
    max_steps: int,
    *,
    dream: presets.Dream | None = None,
    executor=None,
    workers: int | None = None,
    seed: int = TEST_SEED,
    progress: bool = True,
) -> dict:
    """The paper's test: ``episodes`` real-game episodes of the agent, white-noise random
    play on the same seeds beside it, and (with ``dream``) the same number of episodes in
    the dream it was trained in. Returns ``{real,random,dream}_{mean,std}``, the raw
    ``real`` returns and their ``real_median``."""
    real = evaluate_params(spec, params, episodes, max_steps, seed=seed, executor=executor,
                           workers=workers, progress=progress)  # fmt: skip
    seeds = [rollout_seed(seed, 0, j) for j in range(episodes)]
    random = random_returns(spec["game"], seeds, max_steps, progress=progress)
    out = {"episodes": episodes, "real_mean": float(real.mean()), "real_std": float(real.std()),
           "real_median": float(np.median(real)), "random_mean": float(random.mean()),
           "random_std": float(random.std()), "real": real.tolist()}  # fmt: skip
    if dream is not None:
        dreamed = InDream.from_spec(spec, dream, seed).test(params, episodes, max_steps)
        out.update(dream_mean=float(dreamed.mean()), dream_std=float(dreamed.std()), tau=dream.tau)
    return out


def get_score(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    *,
    round: int = 0,
    sweep: bool = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """The real-game test of the controller trained in the dream at ``tau`` (after
    ``round`` rounds of iterative training; trained first if missing):
    ``score_controller``'s dict, cached in the controller's ``results.json``.

    The preset's ``dream.real_episodes`` episodes (``sweep_episodes`` for the sweep's).
    """
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    params, log, spec = get_dream_controller(game, preset, dream.tau, round=round, sweep=sweep,
                                             seed=run.seed, device=device,
                                             progress=progress)  # fmt: skip
    sizes = run.sizes
    episodes = sizes.dream.sweep_episodes if sweep else sizes.dream.real_episodes
    folder = run.sweep(dream.tau) if sweep else run.dream_controller(round, dream.tau)
    max_steps = sizes.controller.max_steps
    return _cached(folder / RESULTS, params, log, episodes, round, lambda: score_controller(
        spec, params, episodes, max_steps, dream=dream, progress=progress))  # fmt: skip


def _cached(path: Path, params: np.ndarray, log: list, episodes: int, round: int,
            score: Callable[[], dict]) -> dict:  # fmt: skip
    """A score kept in ``path``, made by ``score()`` unless it is there for these very
    parameters (their digest), generations and number of episodes."""
    digest = hashlib.sha256(np.ascontiguousarray(params, dtype=np.float64).tobytes())
    key = {"generation": len(log), "episodes": episodes, "params": digest.hexdigest()[:16]}
    if path.exists():
        result = json.loads(path.read_text())
        if all(result.get(k) == v for k, v in key.items()):
            return result
    result = {**score(), **key, "round": round}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def get_validation(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    *,
    round: int = 0,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Round ``round``'s C on the preset's ``dream.validation_episodes`` real episodes of
    the validation seeds (never the test's): what chooses the round to ship. Cached in the
    controller's ``validation.json``; the same dict as ``score_controller`` (no dream)."""
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    params, log, spec = get_dream_controller(game, preset, dream.tau, round=round, seed=run.seed,
                                             device=device, progress=progress)  # fmt: skip
    episodes = run.sizes.dream.validation_episodes
    path = run.dream_controller(round, dream.tau) / VALIDATION
    max_steps = run.sizes.controller.max_steps
    return _cached(path, params, log, episodes, round, lambda: score_controller(
        spec, params, episodes, max_steps, seed=VALIDATION_SEED, progress=progress))  # fmt: skip


def choose_round(validations: list[dict]) -> int:
    """The round to ship: the best mean on the validation episodes (the earliest on a tie)."""
    return max(range(len(validations)), key=lambda k: (validations[k]["real_mean"], -k))


def another_round_pays(validations: list[dict], dream: presets.Dream) -> bool:
    """Whether to run one more round of iterative training after the preset's ``rounds``:
    while fewer than ``rounds + extra_rounds`` rounds are done and the newest round is the
    best so far on validation (strictly: it improved on every earlier round)."""
    done = len(validations) - 1
    if done < dream.rounds or done >= dream.rounds + dream.extra_rounds:
        return False
    best_before = max(v["real_mean"] for v in validations[:-1]) if done else -np.inf
    return validations[-1]["real_mean"] > best_before


def get_rounds(game: str, preset: Preset | str | None = None, tau: float | None = None, *,
               seed: int | None = None, device: str | torch.device | None = None,
               progress: bool = True) -> list[dict]:  # fmt: skip
    """Every round's validation (``get_validation``): rounds 0 to the preset's ``rounds``,
    then more while ``another_round_pays``. Each round is made if missing."""
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    common = dict(seed=run.seed, device=device, progress=progress)
    validations = [get_validation(game, preset, dream.tau, round=k, **common)
                   for k in range(dream.rounds + 1)]  # fmt: skip
    while another_round_pays(validations, dream):
        validations.append(get_validation(game, preset, dream.tau, round=len(validations),
                                          **common))  # fmt: skip
    return validations


def tau_sweep(game: str = "doom", preset: Preset | str | None = None, *,
              seed: int | None = None, device: str | torch.device | None = None,
              progress: bool = True) -> list[dict]:  # fmt: skip
    """The paper's temperature sweep: for each of the preset's ``dream.taus``, C trained in a
    dream at that temperature (``sweep_generations``), then tested in the real game
    (``sweep_episodes``) and in its own dream. One dict per tau; each run is cached."""
    run = make_run(game, preset, seed)
    rows = []
    for tau in run.sizes.dream.taus:
        result = get_score(game, preset, tau, sweep=True, seed=run.seed, device=device,
                           progress=progress)  # fmt: skip
        rows.append({k: v for k, v in result.items() if k != "real"})
    return rows


def sweep_table(rows: list[dict]) -> str:
    """The sweep as a markdown table (what the README and ``wmtutor tau-sweep`` print)."""
    lines = ["| tau | real game | in its dream | random play |", "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['tau']:g} | {r['real_mean']:.0f} ± {r['real_std']:.0f} | "
                     f"{r['dream_mean']:.0f} ± {r['dream_std']:.0f} | "
                     f"{r['random_mean']:.0f} ± {r['random_std']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def first_controller_in_each_dream(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    *,
    rounds: int,
    episodes: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> list[dict]:
    """Round 0's C, which learnt its dream and not the game, in the dream of every round's
    M from 0 to ``rounds`` (made if missing), on the same starts with the same noise:
    whether the rounds closed the loophole it used. One dict per round: ``round``,
    ``dream_mean``, ``dream_std`` (steps survived in ``episodes`` dreams, the preset's
    ``validation_episodes`` by default)."""
    run = make_run(game, preset, seed)
    dream = _dream_config(run, tau)
    params, _, _ = get_dream_controller(game, preset, dream.tau, round=0, seed=run.seed,
                                        device=device, progress=False)  # fmt: skip
    episodes = episodes or run.sizes.dream.validation_episodes
    out = []
    for k in range(rounds + 1):
        spec = round_spec(game, preset, dream.tau, k, seed=run.seed, device=device,
                          progress=False)  # fmt: skip
        survived = InDream.from_spec(spec, dream, run.seed).test(
            params, episodes, run.sizes.controller.max_steps
        )
        out.append({"round": k, "dream_mean": float(survived.mean()),
                    "dream_std": float(survived.std())})  # fmt: skip
    return out


def seed_records(game: str = "doom", preset: Preset | str | None = None) -> list[dict]:
    """The ``pipeline.json`` of every seed of ``game`` and ``preset`` that finished its
    pipeline (``runs/<game>/<preset>/seed*/``), in seed order."""
    folder = make_run(game, preset, 0).folder.parent
    records = []
    for path in sorted(folder.glob("seed*/pipeline.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a file being written, or not ours: not a finished run
        if "result" in record and "validation" in record:
            records.append(record)
    return sorted(records, key=lambda r: r["seed"])


def seeds_table(records: Sequence[dict], plain: Sequence[dict | None] | None = None) -> str:
    """Every seed's row as markdown: each round's validation score, the round shipped,
    its test (mean ± std and the median episode), random play on the same episodes and
    the minutes the stages took; then the mean of the test means. With ``plain`` (one
    test per record, or None where it is the shipped one), a column for the round a
    plain run (no extra rounds) would have shipped. What ``benchmarks/seeds.py`` prints."""
    if not records:
        return "(no seed has finished its pipeline yet: `wmtutor pipeline --env doom`)"
    rounds = max(len(r["validation"]) for r in records)
    head = " | ".join(f"round {k} (validation)" for k in range(rounds))
    extra = " plain run's test |" if plain is not None else ""
    lines = [f"| seed | {head} | shipped | test | median |{extra} random play | minutes |",
             "|---:|" + "---:|" * (rounds + 5 + (plain is not None))]  # fmt: skip
    for i, r in enumerate(records):
        val = [f"{v['real_mean']:.1f} ± {v['real_std']:.1f}" for v in r["validation"]]
        val += ["not run"] * (rounds - len(val))
        t = r["result"]
        test = f"{t['real_mean']:.1f} ± {t['real_std']:.1f}"
        cells = [str(r["seed"]), *val, str(r["chosen_round"]), test, f"{t['real_median']:.1f}"]
        if plain is not None:
            p = plain[i] or t
            cells.append(f"{p['real_mean']:.1f} (round {p['round']})")
        cells += [f"{t['random_mean']:.1f} ± {t['random_std']:.1f}",
                  f"{r['total_seconds'] / 60:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    means = [r["result"]["real_mean"] for r in records]
    summary = f"mean of the {len(means)} test means: {statistics.mean(means):.1f}"
    if len(means) > 1:
        summary += f" ± {statistics.stdev(means):.1f} across seeds"
    summary += f"; worst seed {min(means):.1f}, best {max(means):.1f}"
    return "\n".join(lines) + "\n\n" + summary


# ---------------------------------------------------------------------------------------
# Every stage, timed: `wmtutor pipeline`

SHARED_STAGES = ("gather", "vae", "encode", "mdnrnn")


def stage_names(rounds: int) -> list[str]:
    """The stages in order, with one ``round<k>`` stage per round of iterative training."""
    return [*SHARED_STAGES, "controller", *(f"round{k}" for k in range(1, rounds + 1)),
            "validate", "evaluate", "gifs"]  # fmt: skip


def _newer(picture: Path, source: Path) -> bool:
    """Whether ``picture`` was made after ``source`` (the C it shows) was last saved: a
    rerun keeps it instead of drawing it again."""
    if not (picture.exists() and source.exists()):
        return False
    return picture.stat().st_mtime >= source.stat().st_mtime


CLOCK_EVERY = 30.0  # seconds between two writes of a running stage's time so far


def _read_clock(clock: Path) -> dict[str, float]:
    """The clock's times; none (start from zero) if it is missing or not a clock."""
    try:
        times = json.loads(clock.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(times, dict):
        return {}
    return {k: float(v) for k, v in times.items() if isinstance(v, (int, float))}


def _write_clock(clock: Path, key: str, seconds: float | None) -> None:
    """Set (or, with None, remove) one stage's time so far. The clock never fails a
    stage: a write that fails is a warning."""
    times = _read_clock(clock)
    if seconds is None:
        times.pop(key, None)
    else:
        times[key] = round(seconds, 1)
    try:
        if not times:  # every stage finished: no clock
            clock.unlink(missing_ok=True)
            return
        with atomic_path(clock) as tmp:
            tmp.write_text(json.dumps(times, indent=1))
    except OSError as err:
        warnings.warn(f"the stage times could not be kept in {clock}: {err}", stacklevel=2)


def _timed(name: str, action: Callable[[], object], stages: dict, log: Callable[[str], None],
           clock: Path, key: str | None = None) -> None:  # fmt: skip
    """Run one stage, logging it; ``stages[name]`` keeps its seconds.

    A stage interrupted (Ctrl-C, a crash, even a kill) and run again counts the time of
    every call: while it runs, its time so far is written to ``clock`` (under ``key``,
    default ``name``) every ``CLOCK_EVERY`` seconds and when it stops, and the next call
    starts from there; a finished stage leaves the clock. A stage that had nothing left
    to do (resumed) keeps the time of the run that did the work.
    """
    key = key or name
    log(f"[{name}] ...")
    before = _read_clock(clock).get(key, 0.0)
    start = time.perf_counter()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(CLOCK_EVERY):
            _write_clock(clock, key, before + time.perf_counter() - start)

    ticker = threading.Thread(target=tick, name=f"clock {key}", daemon=True)
    ticker.start()
    finished = False
    try:
        action()
        finished = True
    finally:
        stop.set()
        ticker.join()
        seconds = before + time.perf_counter() - start
        if finished or seconds >= 1:  # a stage that failed at once leaves no clock
            _write_clock(clock, key, None if finished else seconds)
    if name not in stages or seconds > stages[name]:
        stages[name] = round(seconds, 1)
    log(f"[{name}] {seconds:.0f} s")


def run_pipeline(
    game: str = "doom",
    preset: Preset | str | None = None,
    tau: float | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every stage for ``game`` (trained in the dream at ``tau``); return the record.

    gather -> vae -> encode -> mdnrnn -> controller (in the dream) -> round1 ... (the
    preset's ``dream.rounds`` rounds of iterative training) -> validate (every round's C
    on the validation episodes) -> more rounds while ``another_round_pays`` (the preset's
    ``extra_rounds``, none by default) -> evaluate (the best of them, chosen on validation
    alone, on the test episodes: the only time they are played) -> gifs. Each stage
    resumes: a stage already done costs only the check. The record (``pipeline.json`` in
    the run's folder, rewritten after each stage) has ``stages`` (``{name: seconds}``: a
    stage's time, its interrupted calls added up; a check of a stage done keeps the time
    of the run that did the work), ``total_seconds``, ``validation`` (one per round),
    ``chosen_round``, ``result`` (the chosen round's test: real-game, random and dream
    scores, see ``score_controller``) and ``gifs``; ``dreams`` keeps the record of every
    other ``tau``.
    """
    if game in REAL_GAME_RECIPE:
        if tau is not None:
            raise ValueError(f"{game}'s pipeline trains C in the real game: no tau to choose")
        return run_real_pipeline(game, preset, seed=seed, device=device, progress=progress,
                                 log=log)  # fmt: skip
    run = make_run(game, preset, seed)
    device = get_device(device)
    dream = _dream_config(run, tau)
    check_dream(dream.tau, dream.done_threshold)
    rounds = dream.rounds
    path = run.pipeline
    saved = json.loads(path.read_text()) if path.exists() else {}
    key = f"{run.sizes.controller.inputs}_tau{dream.tau:g}"
    dreams = saved.get("dreams", {})
    record = {"game": game, "preset": run.preset, "seed": run.seed, "tau": dream.tau,
              "rounds": rounds, "device": str(device), "dreams": dreams}  # fmt: skip
    stages = {k: v for k, v in saved.get("stages", {}).items() if k in SHARED_STAGES}
    stages.update(dreams.get(key, {}).get("stages", {}))
    record["stages"] = stages
    common = dict(seed=run.seed, device=device, progress=progress)
    validations: list[dict] = []
    results: list[dict] = []

    def gifs() -> None:
        record["gifs"] = []
        for k in sorted({0, rounds}):
            params, _, spec = get_dream_controller(game, preset, dream.tau, round=k, **common)
            gif = run.dream_controller(k, dream.tau) / "dream_vs_real.gif"
            clip = min(600, run.sizes.controller.max_steps)  # the evaluation's cap if shorter
            if not _newer(gif, gif.parent / CONTROLLER_STATE):
                dream_vs_real_gif(spec, params, dream.tau, gif, seed=run.seed, max_steps=clip)
            record["gifs"].append(str(gif))

    from_bundle = bundled(run, run.mdnrnn)  # then no stage needs the data: none gathered
    actions = {
        "gather": lambda: (
            from_bundle or get_rollouts(game, preset, seed=run.seed, progress=progress)
        ),  # fmt: skip
        "vae": lambda: get_vae(game, preset, **common),
        "encode": lambda: from_bundle or get_latents(game, preset, **common),
        "mdnrnn": lambda: get_mdnrnn(game, preset, **common),
        "controller": lambda: get_dream_controller(game, preset, dream.tau, round=0, **common),
        **{
            f"round{k}": (
                lambda k=k: get_dream_controller(game, preset, dream.tau, round=k, **common)
            )
            for k in range(1, rounds + 1)
        },  # fmt: skip
        "validate": lambda: validations.extend(
            get_validation(game, preset, dream.tau, round=k, **common) for k in range(rounds + 1)
        ),
        "evaluate": lambda: results.append(
            get_score(game, preset, dream.tau, round=choose_round(validations), **common)
        ),
        "gifs": gifs,
    }

    def save() -> None:
        dreams[key] = {k: record[k] for k in ("stages", "validation", "chosen_round", "result",
                                              "gifs") if k in record}  # fmt: skip
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))

    def do(name: str, action: Callable[[], object]) -> None:
        _timed(name, action, stages, log, run.pipeline_clock,
               name if name in SHARED_STAGES else f"{key}/{name}")  # fmt: skip
        save()

    names = stage_names(rounds)
    for name in names[: names.index("evaluate")]:
        do(name, actions[name])
    # More rounds while validation says they pay (the preset's extra_rounds; none by default).
    while another_round_pays(validations, dream):
        k = len(validations)
        names.insert(names.index("evaluate"), f"round{k}")
        do(f"round{k}", lambda k=k: validations.append(
            get_validation(game, preset, dream.tau, round=k, **common)))  # fmt: skip
    rounds = record["rounds"] = len(validations) - 1
    for name in names[names.index("evaluate") :]:
        do(name, actions[name])
    record["stages"] = {k: stages[k] for k in names}
    record["total_seconds"] = round(sum(record["stages"].values()), 1)
    record["validation"] = [{k: v for k, v in r.items() if k != "real"} for r in validations]
    record["chosen_round"] = choose_round(validations)
    record["result"] = results[-1]
    save()
    return record


# ---------------------------------------------------------------------------------------
# The games whose C learns in the real game: CarRacing and Pong

# Full-length test episodes, in agent steps: CarRacing's own 1000 steps (the paper's
# test), and a whole game of Pong (to 21 points; ALE's own cap is 108,000 frames).
REAL_GAME_RECIPE = {"carracing": 1000, "pong": 27_000}
REAL_STAGES = (*SHARED_STAGES, "controller", "evaluate", "gif")


def get_real_score(game: str, preset: Preset | str | None = None, *, seed: int | None = None,
                   device: str | torch.device | None = None, full: bool = True,
                   progress: bool = True) -> dict:  # fmt: skip
    """The real-game C's test (trained first if missing; the pipeline's C, or notebook
    06's if ``full`` is False: ``real_controller_config``): the preset's
    ``dream.real_episodes`` episodes of the test seeds at the game's full length
    (``REAL_GAME_RECIPE``; the C's ``test_steps`` if set), random play on the same seeds
    beside it. Cached in the controller's ``results.json``."""
    run = make_run(game, preset, seed)
    params, log, spec = get_controller(game, preset, seed=run.seed, device=device,
                                       full=full, progress=progress)  # fmt: skip
    config, full = real_controller_config(run, full)
    episodes = run.sizes.dream.real_episodes
    path = run.controller(spec["inputs"], full=full) / RESULTS
    steps = config.test_steps or REAL_GAME_RECIPE[game]
    result = _cached(path, params, log, episodes, 0, lambda: score_controller(
        spec, params, episodes, steps, progress=progress))  # fmt: skip
    return {**result, "max_steps": steps}


def real_agent_gif(game: str, preset: Preset | str | None, path: str | os.PathLike, *,
                   seed: int | None = None, device: str | torch.device | None = None,
                   full: bool = True, progress: bool = True) -> Path:  # fmt: skip
    """A GIF of one episode (up to 600 steps) of the C trained in the real game (trained
    first if missing; ``full`` as ``get_real_score``), its return written on it. A
    picture, not a test: an episode of the validation seeds, on which the real-game recipe
    chooses nothing."""
    run = make_run(game, preset, seed)
    params, _, spec = get_controller(game, preset, seed=run.seed, device=device, full=full,
                                     progress=progress)  # fmt: skip
    config, _ = real_controller_config(run, full)
    steps = min(600, config.test_steps or REAL_GAME_RECIPE[game])
    episode = record_episode(spec, params, rollout_seed(VALIDATION_SEED, 0, 0), steps)
    before = np.concatenate([[0.0], np.cumsum(episode["rewards"])[:-1]])  # at each frame
    texts = [f"return {r:.0f}" for r in before[::2]]
    ended = "the clip ends" if len(episode["frames"]) >= steps else "the episode ends"
    texts[-1] = f"return {episode['return']:.0f}: {ended}"
    frames = label_frames(episode["frames"][::2], texts, 3)
    return save_gif(frames, path, fps=17 if game == "carracing" else 15)


def run_real_pipeline(
    game: str = "pong",
    preset: Preset | str | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """CarRacing's and Pong's recipe: gather -> vae -> encode -> mdnrnn -> controller
    (CMA-ES in the real game: the game's ``full`` section where the preset has one, in
    ``controller_<inputs>_full/``, else its ``controller`` section) -> evaluate (the final
    C over full-length test episodes, random play beside it: ``get_real_score``) -> gif
    (one test-length episode of the agent, the real frame beside what V sees). Each stage
    resumes. The record (``pipeline.json``) has ``recipe: "real"``, ``stages``,
    ``total_seconds``, ``result`` and ``gif``.

    Why the real game and not the dream: these games' rewards are not "one per step
    alive"; a dream that pays M's predicted reward (their ``dream.reward``) was measured
    on CarRacing, and C trained in it drove worse than random play in the real game,
    after one round of iterative training too (README, "Training C in the CarRacing
    dream")."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    path = run.pipeline
    saved = json.loads(path.read_text()) if path.exists() else {}
    stages = {k: v for k, v in saved.get("stages", {}).items() if k in REAL_STAGES}
    record = {"game": game, "preset": run.preset, "seed": run.seed, "recipe": "real",
              "device": str(device), "stages": stages}  # fmt: skip
    common = dict(seed=run.seed, device=device, progress=progress)
    results: list[dict] = []

    def gif() -> None:
        params, _, spec = get_controller(game, preset, full=True, **common)
        out = run.controller(spec["inputs"], full=real_controller_config(run)[1]) / "agent.gif"
        if not _newer(out, out.parent / CONTROLLER_STATE):
            real_agent_gif(game, preset, out, **common)
        record["gif"] = str(out)

    actions = {
        "gather": lambda: get_rollouts(game, preset, seed=run.seed, progress=progress),
        "vae": lambda: get_vae(game, preset, **common),
        "encode": lambda: get_latents(game, preset, **common),
        "mdnrnn": lambda: get_mdnrnn(game, preset, **common),
        "controller": lambda: get_controller(game, preset, full=True, **common),
        "evaluate": lambda: results.append(get_real_score(game, preset, **common)),
        "gif": gif,
    }

    def save() -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))

    for name in REAL_STAGES:
        _timed(name, actions[name], stages, log, run.pipeline_clock,
               name if name in SHARED_STAGES else f"real/{name}")  # fmt: skip
        save()
    record["stages"] = {k: stages[k] for k in REAL_STAGES}
    record["total_seconds"] = round(sum(record["stages"].values()), 1)
    record["result"] = results[-1]
    save()
    return record
