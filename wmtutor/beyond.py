"""Beyond the paper (notebook 08): two questions the paper leaves open, measured.

1. **Separate or joint?** The paper trains V, then M on V's codes. ``wmtutor.joint``
   trains V, M and an inverse model (a_t from z_t, z_t+1) under one loss, so that z is
   pushed to keep what the actions change. Both world models learn from the same random
   rollouts on about the same budget of minutes (V one pass and M its epochs; the joint
   model its ``joint.epochs`` passes), and are compared on held-out frames: V's
   reconstruction, M's z NLL, and how much of the action a linear probe reads back from z.
2. **CMA-ES or PPO in the dream?** In each world model's dream, the paper's CMA-ES
   (``wmtutor.controller``) and Stable-Baselines3's PPO (``wmtutor.ppo``) get the same
   number of dream steps, the same inputs ([z, c, h]) and the same three choices. Each
   is then tested in the real game, with random play on the same episodes beside it.

Every artifact is cached in the run's ``beyond/`` folder (``layout.Run.beyond``) and made
when missing, so the notebook, ``wmtutor beyond`` and a rerun share them. Each seed has its
own rollouts, models and learners; the test episodes are the course's test seeds, played
once per learner and used for nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wmtutor import mdnrnn as m
from wmtutor.controller import (
    LocalPool,
    evaluate_params,
    load_controller_state,
    random_returns,
    record_episode,
    train_controller,
)
from wmtutor.datasets import SequenceDataset, rollout_files
from wmtutor.dream import DreamEnv, InDream, initial_latents
from wmtutor.files import digest, load_rollout
from wmtutor.joint import export_world_model, train_joint
from wmtutor.layout import CONTROLLER_LOG, JOINT, MDNRNN, RESULTS, VAE, Run
from wmtutor.pipeline import TEST_SEED, make_run
from wmtutor.ppo import PPO_CHECKPOINT, train_ppo
from wmtutor.presets import Preset
from wmtutor.rollouts import default_workers, gather, rollout_seed
from wmtutor.training import split_files
from wmtutor.utils import atomic_path, get_device
from wmtutor.vae import (
    encode_rollouts,
    evaluate,
    heldout_frames,
    load_vae,
    to_frames,
    to_input,
    train_vae,
)

WORLD_MODELS = ("separate", "joint")
LEARNERS = ("cmaes", "ppo")
MINUTES = "minutes.json"
REPRESENTATION = "representation.json"
RANDOM = "random.json"
GIF_SEED = 30_000  # the seed of the episode shown in the PPO agent's GIF (not a test seed)


def _write_json(path: Path, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _check(game: str, world_model: str | None = None, learner: str | None = None) -> None:
    if game not in ("doom", "pong"):
        raise ValueError(f"notebook 08's experiment plays doom or pong, got {game!r}")
    if world_model is not None and world_model not in WORLD_MODELS:
        raise ValueError(f"world model {world_model!r}: expected one of {WORLD_MODELS}")
    if learner is not None and learner not in LEARNERS:
        raise ValueError(f"learner {learner!r}: expected one of {LEARNERS}")


# ---------------------------------------------------------------------------------------
# The data and the two world models


def get_data(game: str = "doom", preset: Preset | str | None = None, *, seed: int | None = None,
             progress: bool = True) -> Path:  # fmt: skip
    """The experiment's random rollouts (``beyond.n_rollouts`` of them, gathered if
    missing, with the run's seed): ``beyond/rollouts``."""
    _check(game)
    run = make_run(game, preset, seed)
    d, out = run.sizes.data, run.beyond / "rollouts"
    gather(game, run.sizes.beyond.n_rollouts, out, policy=d.policy, max_steps=d.max_steps,
           frame_skip=d.frame_skip, min_length=d.min_length, seed=run.seed,
           preset=run.preset, progress=progress)  # fmt: skip
    return out


def _timed(folder: Path, make: Callable[[], None]) -> float:
    """Run ``make()`` (each stage skips what is done) and return the minutes the world model
    took to train, kept in ``minutes.json`` by the run that trained it."""
    start = time.perf_counter()
    make()
    record = folder / MINUTES
    if not record.exists():
        _write_json(record, {"minutes": (time.perf_counter() - start) / 60})
    return json.loads(record.read_text())["minutes"]


def get_world_model(world_model: str, game: str = "doom", preset: Preset | str | None = None,
                    *, seed: int | None = None, device: str | torch.device | None = None,
                    progress: bool = True) -> dict:  # fmt: skip
    """One world model of the experiment, trained if missing: ``{"folder", "minutes"}``;
    the folder holds ``vae.pt``, ``mdnrnn.pt`` and ``latents/`` (every rollout encoded by
    that V), whichever way they were trained.

    ``"separate"``: V (its preset's epochs), then M on V's codes (its preset's epochs), as
    the paper. ``"joint"``: ``wmtutor.joint.train_joint`` with the preset's ``joint``
    section, then V and M exported from it.
    """
    _check(game, world_model)
    run = make_run(game, preset, seed)
    device = get_device(device)
    data = get_data(game, preset, seed=run.seed, progress=progress)
    folder, sizes = run.beyond / world_model, run.sizes

    def separate() -> None:
        train_vae(data, folder / VAE, sizes.vae, seed=run.seed, device=device,
                  progress=progress)  # fmt: skip
        encode_rollouts(folder / VAE, data, folder / "latents", device=device, progress=progress)
        m.train_mdnrnn(folder / "latents", folder / MDNRNN, sizes.mdnrnn, game, seed=run.seed,
                       device=device, progress=progress)  # fmt: skip

    def joint() -> None:
        train_joint(data, folder / JOINT, sizes, game, seed=run.seed, device=device,
                    progress=progress)  # fmt: skip
        export_world_model(folder / JOINT, folder / VAE, folder / MDNRNN)
        encode_rollouts(folder / VAE, data, folder / "latents", device=device, progress=progress)

    minutes = _timed(folder, separate if world_model == "separate" else joint)
    return {"folder": folder, "minutes": minutes}


def probe_actions(train: Sequence[Path], val: Sequence[Path], steps: int = 300
                  ) -> tuple[float, float]:  # fmt: skip
    """How much of the action z keeps: a linear softmax probe from ``[mu_t, mu_t+1]`` to
    a_t, fitted on the ``train`` latent files, scored on ``val``. Returns (held-out
    accuracy, the share of the most frequent held-out action: what a probe reading nothing
    gets)."""

    def pairs(files: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for path in files:
            d = load_rollout(path, ["mu", "actions"])
            xs.append(np.c_[d["mu"][:-1], d["mu"][1:]])
            ys.append(d["actions"][:-1])
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)).long()

    x, y = pairs(train)
    xv, yv = pairs(val)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xv = (x - mean) / std, (xv - mean) / std
    with torch.random.fork_rng(devices=[]):  # a fixed start, leaving the caller's RNG alone
        torch.manual_seed(0)
        probe = torch.nn.Linear(x.shape[1], int(max(y.max(), yv.max())) + 1)
    opt = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe(x), y).backward()
        opt.step()
    with torch.no_grad():
        accuracy = (probe(xv).argmax(1) == yv).float().mean().item()
    return accuracy, float(np.bincount(yv.numpy()).max() / len(yv))


def heldout_z_nll(mdnrnn_path: Path, latents: Path, config, device: torch.device) -> float:
    """M's negative log-likelihood of the next z, per latent dimension, on the held-out
    files of ``latents`` (the split every stage uses)."""
    model = m.load_mdnrnn(mdnrnn_path, device=device)
    _, val = split_files(rollout_files(latents))
    loader = DataLoader(SequenceDataset(val, config.seq_len, m.KEYS, shuffle=False),
                        batch_size=config.batch_size)  # fmt: skip
    return m.evaluate(model, loader, config, device)["z_nll"]


@torch.no_grad()
def random_in_dream(spec: dict, tau: float, done_threshold: float, max_steps: int,
                    n: int = 256, seed: int = 0) -> np.ndarray:  # fmt: skip
    """How long random play survives in a world model's dream: the first episode of ``n``
    dreams ``(n,)``, each step one of C's three choices drawn uniformly (beside random
    play's real score, it shows how deadly the dream is)."""
    mdnrnn = m.load_mdnrnn(spec["mdnrnn"], device=spec.get("device"))
    mu, logvar = initial_latents(spec["latents"])
    env = DreamEnv(mdnrnn, spec["game"], mu, num_envs=n, tau=tau, max_steps=max_steps,
                   done_threshold=done_threshold, initial_logvar=logvar)  # fmt: skip
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    lengths = np.zeros(n, dtype=int)
    alive = np.ones(n, dtype=bool)
    for _ in range(max_steps):
        y = torch.from_numpy(rng.integers(-1, 2, size=(n, 1)).astype(np.float32))
        _, _, terminated, truncated, _ = env.step(env.adapter(y.to(env.device)))
        lengths += alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return lengths


def get_representation(world_model: str, game: str = "doom",
                       preset: Preset | str | None = None, *, seed: int | None = None,
                       device: str | torch.device | None = None,
                       progress: bool = True) -> dict:  # fmt: skip
    """How good a world model is, on the held-out rollouts (the last 5%): ``recon`` (V's
    squared error per frame), ``z_nll`` (M's, per dimension, on its own V's codes: the two
    world models' z differ, so read it beside the others), ``probe`` and ``chance``
    (``probe_actions``), ``done_recall`` and ``done_precision`` (how often M's done head
    fires at a real death, and how often a firing is one: ``done_precision_recall``),
    ``random_in_dream`` (the mean steps random play survives in its dream) and
    ``minutes`` of training. Cached in ``representation.json``
    for the checkpoints it measured."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    wm = get_world_model(world_model, game, preset, seed=run.seed, device=device,
                         progress=progress)  # fmt: skip
    folder = wm["folder"]
    key = {"vae": digest(folder / VAE), "mdnrnn": digest(folder / MDNRNN), "version": 2}
    path = folder / REPRESENTATION
    if path.exists() and json.loads(path.read_text()).get("key") == key:
        return json.loads(path.read_text())
    _, val_files = split_files(rollout_files(run.beyond / "rollouts"))
    frames = heldout_frames(val_files, 1024)
    recon = evaluate(load_vae(folder / VAE, device=device), frames, run.sizes.vae)["recon"]
    train_latents, val_latents = split_files(rollout_files(folder / "latents"))
    probe, chance = probe_actions(train_latents, val_latents)
    done = m.done_precision_recall(m.load_mdnrnn(folder / MDNRNN, device=device), val_latents)
    dream = run.sizes.dream
    spec = world_model_spec(world_model, game, preset, seed=run.seed, device=device,
                            progress=progress)  # fmt: skip
    lengths = random_in_dream(spec, dream.tau, dream.done_threshold,
                              run.sizes.controller.max_steps, seed=run.seed)  # fmt: skip
    result = {"world_model": world_model, "seed": run.seed, "recon": recon,
              "z_nll": heldout_z_nll(folder / MDNRNN, folder / "latents", run.sizes.mdnrnn,
                                     device),
              "probe": probe, "chance": chance, "done_recall": done["recall"],
              "done_precision": done["precision"], "random_in_dream": float(lengths.mean()),
              "minutes": wm["minutes"], "key": key}  # fmt: skip
    _write_json(path, result)
    return result


# ---------------------------------------------------------------------------------------
# The two learners in each dream


def world_model_spec(world_model: str, game: str = "doom", preset: Preset | str | None = None,
                     *, seed: int | None = None, device: str | torch.device | None = None,
                     progress: bool = True) -> dict:  # fmt: skip
    """The agent spec (``wmtutor.controller.make_agent``) of a world model of the
    experiment, trained first if missing: its V, M and dream starts, C's inputs."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    folder = get_world_model(world_model, game, preset, seed=run.seed, device=device,
                             progress=progress)["folder"]  # fmt: skip
    sizes = run.sizes
    return {"game": game, "vae": str(folder / VAE), "mdnrnn": str(folder / MDNRNN),
            "latents": str(folder / "latents"), "inputs": sizes.controller.inputs,
            "bias": sizes.controller.bias, "frame_skip": sizes.data.frame_skip,
            "device": str(device)}  # fmt: skip


def _cmaes(run: Run, spec: dict, folder: Path, budget: int, progress: bool) -> list[dict]:
    """CMA-ES in the dream, one generation at a time until ``budget`` dream steps are spent
    (resumable: each call of ``train_controller`` continues the saved search)."""
    config = dataclasses.replace(run.sizes.controller, eval_every=0, eval_episodes=0)
    log = json.loads((folder / CONTROLLER_LOG).read_text()) if (folder / CONTROLLER_LOG
                                                                ).exists() else []  # fmt: skip
    spent = sum(row["dream_steps"] for row in log)
    with tqdm(total=budget, initial=min(spent, budget), desc="CMA-ES (dream)", unit="step",
              unit_scale=True, disable=not progress or spent >= budget) as bar:  # fmt: skip
        while spent < budget:
            judge = InDream.from_spec(spec, run.sizes.dream, run.seed)
            config = dataclasses.replace(config, generations=len(log) + 1)
            log = train_controller(folder, config, judge, seed=run.seed, progress=False)
            bar.update(log[-1]["dream_steps"])
            spent += log[-1]["dream_steps"]
    return log


def get_learner(
    world_model: str,
    learner: str,
    game: str = "doom",
    preset: Preset | str | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """A learner trained in a world model's dream, trained if missing: ``{"spec", "params",
    "log"}`` where ``spec`` and ``params`` play it in the real game
    (``wmtutor.controller.evaluate_params``) and ``log`` is its learning curve, one row per
    CMA-ES generation or PPO rollout, each with ``dream_steps`` and ``seconds`` (so far)
    and ``mean`` (the dreams' mean return).

    CMA-ES runs generations of the preset's controller sizes until ``beyond.dream_steps``
    dream steps; PPO then gets as many as CMA-ES spent (rounded up to a whole rollout).
    CMA-ES's C is the mean of its search distribution; PPO's actor plays its most likely
    action.
    """
    _check(game, world_model, learner)
    run = make_run(game, preset, seed)
    device = get_device(device)
    spec = world_model_spec(world_model, game, preset, seed=run.seed, device=device,
                            progress=progress)  # fmt: skip
    folder = run.beyond / world_model / learner
    cmaes_log = _cmaes(run, spec, run.beyond / world_model / "cmaes",
                       run.sizes.beyond.dream_steps, progress)  # fmt: skip
    if learner == "cmaes":
        rows, total, seconds = [], 0, 0.0
        for row in cmaes_log:
            total, seconds = total + row["dream_steps"], seconds + row["seconds"]
            rows.append({**row, "dream_steps": total, "seconds": seconds})
        params = load_controller_state(folder)["mean_params"]
        return {"spec": spec, "params": params, "log": rows}
    budget = sum(row["dream_steps"] for row in cmaes_log)
    mdnrnn = m.load_mdnrnn(spec["mdnrnn"], device=device)
    mu, logvar = initial_latents(spec["latents"])
    dream = run.sizes.dream
    env = DreamEnv(mdnrnn, game, mu, num_envs=run.sizes.ppo.n_envs, tau=dream.tau,
                   max_steps=run.sizes.controller.max_steps,
                   done_threshold=dream.done_threshold, initial_logvar=logvar)  # fmt: skip
    log = train_ppo(folder, env, run.sizes.ppo, budget, inputs=spec["inputs"], seed=run.seed,
                    made_from={"mdnrnn": digest(spec["mdnrnn"])}, progress=progress)  # fmt: skip
    return {"spec": {**spec, "policy": str(folder / PPO_CHECKPOINT)}, "params": None, "log": log}


# ---------------------------------------------------------------------------------------
# The real game


def test_seeds(episodes: int) -> list[int]:
    """The course's test episodes (``pipeline.TEST_SEED``): the same for every learner."""
    return [rollout_seed(TEST_SEED, 0, j) for j in range(episodes)]


def get_random(game: str = "doom", preset: Preset | str | None = None, *,
               seed: int | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Random play (white noise, as ``score_controller``'s) on the test episodes: ``{"mean",
    "std", "returns"}``, cached in ``beyond/random.json``."""
    run = make_run(game, preset, seed)
    episodes = run.sizes.beyond.real_episodes
    path = run.beyond / RANDOM
    if path.exists() and json.loads(path.read_text())["episodes"] == episodes:
        return json.loads(path.read_text())
    returns = random_returns(game, test_seeds(episodes), run.sizes.controller.max_steps,
                             progress=progress)  # fmt: skip
    result = {"episodes": episodes, "mean": float(returns.mean()), "std": float(returns.std()),
              "returns": returns.tolist()}  # fmt: skip
    _write_json(path, result)
    return result


def _learner_digest(trained: dict) -> str:
    if trained["params"] is None:
        return digest(trained["spec"]["policy"])
    params = np.ascontiguousarray(trained["params"], dtype=np.float64)
    return hashlib.sha256(params.tobytes()).hexdigest()[:16]


def get_test(
    world_model: str,
    learner: str,
    game: str = "doom",
    preset: Preset | str | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    executor=None,
    progress: bool = True,
) -> dict:
    """The real-game test of one learner (trained first if missing): ``beyond.real_episodes``
    episodes on the test seeds, ``{"mean", "std", "median", "returns", "dream_steps",
    "minutes"}`` (``minutes``: the learner's training time), cached in its
    ``results.json`` for the learner it measured. ``executor``: as ``evaluate_params``'s
    (a ``LocalPool`` is shared, not shut down)."""
    run = make_run(game, preset, seed)
    trained = get_learner(world_model, learner, game, preset, seed=run.seed, device=device,
                          progress=progress)  # fmt: skip
    episodes = run.sizes.beyond.real_episodes
    key = {"digest": _learner_digest(trained), "episodes": episodes}
    path = run.beyond / world_model / learner / RESULTS
    if path.exists():
        saved = json.loads(path.read_text())
        if all(saved.get(k) == v for k, v in key.items()):
            return saved
    real = evaluate_params(trained["spec"], trained["params"], episodes,
                           run.sizes.controller.max_steps, seed=TEST_SEED, executor=executor,
                           progress=progress)  # fmt: skip
    last = trained["log"][-1]
    result = {**key, "world_model": world_model, "learner": learner, "seed": run.seed,
              "mean": float(real.mean()), "std": float(real.std()),
              "median": float(np.median(real)), "returns": real.tolist(),
              "dream_steps": int(last["dream_steps"]), "minutes": last["seconds"] / 60,
              "dream_mean": next((r["mean"] for r in reversed(trained["log"])
                                  if r["mean"] is not None), None)}  # fmt: skip
    _write_json(path, result)
    return result


def compare(game: str = "doom", preset: Preset | str | None = None, *,
            seeds: Sequence[int] | None = None, device: str | torch.device | None = None,
            progress: bool = True) -> dict:  # fmt: skip
    """The whole experiment, for every seed (default: the preset's ``beyond.seeds``):
    ``{"representation": [one row per seed and world model], "tests": [one row per seed,
    world model and learner], "random": [one row per seed]}``. Everything is cached."""
    _check(game)
    run = make_run(game, preset)
    out: dict[str, list] = {"representation": [], "tests": [], "random": []}
    pool = None  # real-game workers, started once for all the tests that play
    try:
        for s in seeds if seeds is not None else run.sizes.beyond.seeds:
            for wm in WORLD_MODELS:
                out["representation"].append(get_representation(
                    wm, game, preset, seed=s, device=device, progress=progress))  # fmt: skip
                for learner in LEARNERS:
                    if pool is None and not _tested(wm, learner, game, preset, s):
                        pool = LocalPool(default_workers())
                    out["tests"].append(get_test(wm, learner, game, preset, seed=s,
                                                 device=device, executor=pool,
                                                 progress=progress))  # fmt: skip
            out["random"].append({"seed": s, **get_random(game, preset, seed=s,
                                                          progress=progress)})  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def _tested(world_model: str, learner: str, game: str, preset, seed: int) -> bool:
    """Whether a test result is on disk (it may still be stale: ``get_test`` checks)."""
    return (make_run(game, preset, seed).beyond / world_model / learner / RESULTS).exists()


def learning_curves(game: str = "doom", preset: Preset | str | None = None, *,
                    seed: int | None = None, device: str | torch.device | None = None,
                    progress: bool = True) -> dict[tuple[str, str], list[dict]]:  # fmt: skip
    """Every learner's log of one seed, keyed ``(world_model, learner)``."""
    return {(wm, learner): get_learner(wm, learner, game, preset, seed=seed, device=device,
                                       progress=progress)["log"]
            for wm in WORLD_MODELS for learner in LEARNERS}  # fmt: skip


def real_episode(
    world_model: str,
    learner: str,
    game: str = "doom",
    preset: Preset | str | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """One real episode of a learner (on ``GIF_SEED``, not a test episode), with its
    frames and actions, for a GIF: ``record_episode``'s dict."""
    run = make_run(game, preset, seed)
    trained = get_learner(world_model, learner, game, preset, seed=run.seed, device=device,
                          progress=progress)  # fmt: skip
    return record_episode(trained["spec"], trained["params"], GIF_SEED,
                          run.sizes.controller.max_steps)  # fmt: skip


@torch.no_grad()
def reconstructions(game: str = "doom", preset: Preset | str | None = None, *,
                    seed: int | None = None, n: int = 8, device: str | torch.device | None = None,
                    progress: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
    """The same ``n`` held-out frames, as they were and as each world model's V draws
    them (from ``mu``): ``{"real": (n, 64, 64, 3), "separate": ..., "joint": ...}`` uint8."""
    run = make_run(game, preset, seed)
    device = get_device(device)
    out = {}
    for wm in WORLD_MODELS:
        folder = get_world_model(wm, game, preset, seed=run.seed, device=device,
                                 progress=progress)["folder"]  # fmt: skip
        if "real" not in out:
            _, val_files = split_files(rollout_files(run.beyond / "rollouts"))
            out["real"] = heldout_frames(val_files, n).numpy()
        vae = load_vae(folder / VAE, device=device)
        mu, _ = vae.encode(to_input(out["real"]).to(device))
        out[wm] = to_frames(vae.decode(mu).float().cpu())
    return out


# ---------------------------------------------------------------------------------------
# Tables


def _share(x: float) -> str:
    return "none" if x != x else f"{x:.0%}"  # nan: nothing to count


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def _pm(values: Sequence[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def representation_table(rows: Sequence[dict]) -> str:
    """Markdown: one line per seed and world model."""
    lines = ["| seed | world model | held-out recon | z NLL per dim | actions read back "
             "(chance) | deaths foreseen (precision) | random play in its dream | minutes |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['seed']} | {r['world_model']} | {r['recon']:.1f} | "
                     f"{r['z_nll']:.3f} | {r['probe']:.1%} ({r['chance']:.1%}) | "
                     f"{_share(r['done_recall'])} ({_share(r['done_precision'])}) | "
                     f"{r['random_in_dream']:.0f} steps | {r['minutes']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def tests_table(tests: Sequence[dict], random: Sequence[dict]) -> str:
    """Markdown: one line per seed, world model and learner, random play beside it."""
    by_seed = {r["seed"]: r for r in random}
    lines = ["| seed | world model | learner | real game (test) | median | random play | "
             "dream steps | minutes | last dream mean |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for t in tests:
        rnd = by_seed.get(t["seed"])
        rnd = f"{rnd['mean']:.1f} ± {rnd['std']:.1f}" if rnd else ""
        lines.append(
            f"| {t['seed']} | {t['world_model']} | {t['learner']} | "
            f"{t['mean']:.1f} ± {t['std']:.1f} | {t['median']:.1f} | {rnd} | "
            f"{t['dream_steps']:,} | {t['minutes']:.1f} | {_number(t['dream_mean'])} |"
        )
    return "\n".join(lines)


def summary_table(tests: Sequence[dict]) -> str:
    """Markdown: each (world model, learner) over the seeds: the mean of the seeds' test
    means ± their spread, and every seed's mean."""
    lines = ["| world model | learner | mean over seeds | each seed |", "|---|---|---:|---|"]
    for wm in WORLD_MODELS:
        for learner in LEARNERS:
            means = [t["mean"] for t in tests if (t["world_model"], t["learner"]) == (wm, learner)]
            if means:
                each = ", ".join(f"{x:.1f}" for x in means)
                lines.append(f"| {wm} | {learner} | {_pm(means)} | {each} |")
    return "\n".join(lines)
