"""The whole of World Models in one command: ``wmtutor pipeline --env doom``.

    gather -> vae -> encode -> mdnrnn -> controller (in the dream)
           -> round1 ... (iterative training: real episodes of C -> M -> a new C)
           -> evaluate -> gifs

Each stage is the same call a notebook makes (``get_rollouts``, ``get_vae``, ...), and each
resumes: a stage already done costs only the check, a stage cut short goes on where it
stopped. The time of every stage and the final scores are written to
``runs/<game>/<preset>/pipeline.json`` (atomically, after each stage), so a run that was
interrupted and started again still reports the time each stage took when it did its work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from wmtutor.presets import Preset, get_preset
from wmtutor.utils import atomic_path, runs_dir

STAGES = ("gather", "vae", "encode", "mdnrnn", "controller", "evaluate", "gifs")


def pipeline_file(game: str, preset: Preset | str | None = None) -> Path:
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    return runs_dir(game, preset.name) / "pipeline.json"


def stage_names(rounds: int) -> list[str]:
    """The stages in order, with one ``round<k>`` stage per round of iterative training."""
    first, last = STAGES[:5], STAGES[5:]
    return [*first, *(f"round{k}" for k in range(1, rounds + 1)), *last]


def run_pipeline(
    game: str = "doom",
    preset: Preset | str | None = None,
    tau: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every stage for ``game`` (trained in the dream at ``tau``); return the record.

    After the first controller, the preset's ``dream.rounds`` rounds of iterative training
    (``wmtutor.iterative``) each record real episodes of the last controller, retrain M on
    them and train a new C in the new dream. The record has ``stages`` (``{name:
    seconds}``, the time of the run that did the work), ``total_seconds``, ``results``
    (one per round, real-game, random and dream scores, see
    ``wmtutor.dream.score_controller``), ``result`` (the last round's) and ``gifs``.
    """
    import numpy as np

    from wmtutor.dream import dream_dir, get_dream_controller, get_score
    from wmtutor.mdnrnn import get_mdnrnn
    from wmtutor.rollouts import get_rollouts
    from wmtutor.vae import get_latents, get_vae
    from wmtutor.viz import dream_vs_real_gif

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    sizes = preset.game(game)
    rounds = sizes.dream.rounds
    tau = sizes.dream.tau if tau is None else tau
    path = pipeline_file(game, preset)
    record = json.loads(path.read_text()) if path.exists() else {}
    if record.get("tau") != tau:  # another temperature: the stages after M are redone
        record = {"stages": {k: v for k, v in record.get("stages", {}).items()
                             if k in STAGES[:4]}}  # fmt: skip
    record.update(game=game, preset=preset.name, tau=tau, rounds=rounds)
    record.setdefault("stages", {})
    state: dict = {}

    def controller(k: int) -> None:
        params, _, spec = get_dream_controller(game, preset, tau, progress=progress, round=k)
        state.update(params=np.asarray(params), spec=spec)

    def evaluate() -> None:
        state["results"] = [get_score(game, preset, tau, progress=progress, round=k)
                            for k in range(rounds + 1)]  # fmt: skip

    def gifs() -> None:
        record["gifs"] = []
        for k in sorted({0, rounds}):
            params, _, spec = get_dream_controller(game, preset, tau, progress=False, round=k)
            gif = dream_dir(game, preset, tau, round=k) / "dream_vs_real.gif"
            dream_vs_real_gif(spec, params, tau, gif, seed=preset.seed)
            record["gifs"].append(str(gif))

    stages = {
        "gather": lambda: get_rollouts(game, preset, progress=progress),
        "vae": lambda: get_vae(game, preset, progress=progress),
        "encode": lambda: get_latents(game, preset, progress=progress),
        "mdnrnn": lambda: get_mdnrnn(game, preset, progress=progress),
        "controller": lambda: controller(0),
        **{f"round{k}": (lambda k=k: controller(k)) for k in range(1, rounds + 1)},
        "evaluate": evaluate,
        "gifs": gifs,
    }
    for name in stage_names(rounds):
        log(f"[{name}] ...")
        start = time.perf_counter()
        stages[name]()
        seconds = time.perf_counter() - start
        # A stage that had nothing left to do keeps the time of the run that did it.
        if name not in record["stages"] or seconds > record["stages"][name]:
            record["stages"][name] = round(seconds, 1)
        log(f"[{name}] {seconds:.0f} s")
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    record["stages"] = {k: record["stages"][k] for k in stage_names(rounds)}
    record["total_seconds"] = round(sum(record["stages"].values()), 1)
    record["results"] = state["results"]
    record["result"] = state["results"][-1]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record
