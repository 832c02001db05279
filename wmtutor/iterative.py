"""Iterative training: teach M what the dream-trained controller found out (paper, section 5).

A controller trained in M's dream exploits whatever M got wrong (on the laptop preset it
runs to a wall where M never dreams a fireball). One *round* fixes the dream where the
controller went:

1. the dream-trained C plays ``round_episodes`` real episodes (each with its parameters
   perturbed by ``round_sigma``, for variety), recorded as rollouts;
2. V encodes them;
3. M trains ``round_epochs`` more epochs on the random rollouts *and* these;
4. a new C is trained from scratch in the new dream.

Everything of round k lives in ``runs/<game>/<preset>/round<k>/`` (``rollouts/``,
``latents/``, ``mdnrnn.pt``, ``controller_<inputs>_dream<tau>/``) and resumes like the
rest of the pipeline. Round 0 is the preset's own V, M and dream-trained C.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from wmtutor.presets import Preset, get_preset
from wmtutor.utils import atomic_path, runs_dir


def round_dir(game: str, preset: Preset | str | None = None, k: int = 1) -> Path:
    """``runs/<game>/<preset>/round<k>``: everything of iterative-training round k >= 1."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    return runs_dir(game, preset.name, f"round{k}")


def _record_task(spec: dict, params: list[np.ndarray], seeds: list[int], out_dir: str,
                 max_steps: int) -> list[dict]:  # fmt: skip
    """In a worker: play one real episode per (params, seed) and save each as a rollout."""
    from wmtutor.controller import record_episode

    entries = []
    for x, seed in zip(params, seeds, strict=True):
        episode = record_episode(spec, x, seed, max_steps)
        T = len(episode["actions"])
        terminated, truncated = np.zeros(T, bool), np.zeros(T, bool)
        (terminated if T < max_steps else truncated)[-1] = True
        name = f"rollout_{seed:010d}.npz"
        with atomic_path(Path(out_dir) / name) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, frames=episode["frames"], actions=np.asarray(episode["actions"]),
                rewards=np.ones(T, np.float32), terminated=terminated, truncated=truncated,
                seed=np.int64(seed), frame_skip=np.int64(spec.get("frame_skip", 1)),
            )  # fmt: skip
        entries.append({"index": int(seed), "file": name, "length": T, "return": float(T),
                        "seed": int(seed)})  # fmt: skip
    return entries


def record_agent_rollouts(
    spec: dict,
    params: np.ndarray,
    n_episodes: int,
    out_dir: str | Path,
    *,
    sigma: float = 0.1,
    seed: int = 0,
    max_steps: int = 2100,
    workers: int | None = None,
) -> dict:
    """Record ``n_episodes`` real episodes of the agent, parameters ``params`` plus N(0,
    sigma²) noise per episode, as rollouts (the format of ``wmtutor.rollouts``) in
    ``out_dir``; return the manifest. Resumes: episodes already in the manifest are kept."""
    from wmtutor.controller import LocalPool, run_tasks
    from wmtutor.rollouts import MANIFEST, default_workers, rollout_seed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    if (out_dir / MANIFEST).exists():
        done = {e["index"]: e for e in json.loads((out_dir / MANIFEST).read_text())["files"]}
    rng = np.random.default_rng([seed, 7])
    noise = rng.standard_normal((n_episodes, len(params)))
    seeds = [rollout_seed(seed + 7, i) for i in range(n_episodes)]
    todo = [i for i in range(n_episodes) if seeds[i] not in done]
    workers = workers or default_workers()
    chunks = [todo[j :: 4 * workers] for j in range(4 * workers)]
    tasks = [(spec, [params + sigma * noise[i] for i in c], [seeds[i] for i in c], str(out_dir),
              max_steps) for c in chunks if c]  # fmt: skip
    if tasks:
        pool = LocalPool(workers)
        try:
            for entries in run_tasks(pool, _record_task, tasks, timeout=3600):
                done.update({e["index"]: e for e in entries})
        finally:
            pool.shutdown()
    files = [done[s] for s in seeds]
    manifest = {
        "config": {"game": spec["game"], "policy": "agent", "sigma": sigma, "seed": seed,
                   "max_steps": max_steps, "frame_skip": spec.get("frame_skip", 1)},
        "preset": "", "n_rollouts": len(files), "frames": sum(e["length"] for e in files),
        "files": files,
    }  # fmt: skip
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def round_spec(game: str, preset: Preset | str | None = None, k: int = 1,
               progress: bool = True) -> dict:  # fmt: skip
    """The agent spec after k rounds of iterative training (k = 0: the preset's own), made
    if missing: round k's M has seen the real episodes of round k-1's dream-trained C."""
    import dataclasses

    from wmtutor.controller import agent_spec
    from wmtutor.datasets import rollout_files
    from wmtutor.dream import get_dream_controller
    from wmtutor.mdnrnn import train_mdnrnn
    from wmtutor.vae import encode_rollouts

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    if k == 0:
        return agent_spec(game, preset, progress=progress)
    sizes, folder = preset.game(game), round_dir(game, preset, k)
    previous = round_spec(game, preset, k - 1, progress)
    params, _, _ = get_dream_controller(game, preset, round=k - 1, progress=progress)
    record_agent_rollouts(previous, params, sizes.dream.round_episodes, folder / "rollouts",
                          sigma=sizes.dream.round_sigma, seed=preset.seed + k,
                          max_steps=sizes.controller.max_steps)  # fmt: skip
    encode_rollouts(previous["vae"], folder / "rollouts", folder / "latents", progress=progress)
    if not (folder / "mdnrnn.pt").exists():  # start from the previous round's M
        shutil.copy(previous["mdnrnn"], folder / "mdnrnn.pt")
        log = Path(previous["mdnrnn"]).with_name("mdnrnn_log.jsonl")
        if log.exists():
            shutil.copy(log, folder / "mdnrnn_log.jsonl")
    files = rollout_files(previous["latents"])
    for j in range(1, k + 1):
        files += rollout_files(round_dir(game, preset, j) / "latents")
    # The same held-out split every time: files sorted by name, the last 5 % held out.
    files = sorted(files, key=lambda p: (p.name, str(p)))
    config = dataclasses.replace(
        sizes.mdnrnn, epochs=sizes.mdnrnn.epochs + k * sizes.dream.round_epochs
    )
    train_mdnrnn(files, folder, config, game, seed=preset.seed + k, progress=progress)
    return {**previous, "mdnrnn": str(folder / "mdnrnn.pt")}
