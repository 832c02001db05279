"""C: the linear controller, the agent V + M + C in the real game, and training it with CMA-ES.

The controller is one linear layer with a tanh, ``y = tanh(W [z, h] + b)``, and each
game's action adapter (``wmtutor.envs``) turns ``y`` into an action: for CarRacing
steer = y0, gas = (y1 + 1) / 2, brake = clip(y2, 0, 1) (288 inputs, 3 outputs, 867
parameters); for Doom one output split at ±1/3 into left / stay / right. ``inputs``
chooses what C sees, for the paper's ablations: ``"z"`` (V only), ``"zh"`` (V and M's
hidden state, the default), ``"zch"`` (also M's cell state, the paper's Doom controller).

The work is in *evaluating* C: every candidate of every CMA-ES generation plays several
episodes. ``run_episodes`` plays them all at once in one process (one batched V, M and C
call per step for every live game), and ``train_controller`` farms the candidates out to
any ``concurrent.futures.Executor``: local worker processes by default (each loads V and M
once), or a Dask cluster (``distributed.Client(...).get_executor()``). A worker that
crashes or hangs past the timeout loses nothing: its candidates are run again, with a
warning. The whole state is saved after every generation (plain npz and JSON), and
running again resumes exactly.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from wmtutor.cmaes import make_es
from wmtutor.envs import make_env
from wmtutor.presets import Controller as ControllerConfig
from wmtutor.presets import Dream as DreamConfig
from wmtutor.presets import Preset, get_preset
from wmtutor.rollouts import default_workers, rollout_seed
from wmtutor.utils import atomic_path, runs_dir

INPUTS = ("z", "zh", "zch")


# ---------------------------------------------------------------------------------------
# The controller


class Controller:
    """``y = tanh(W x + b)`` with x = z, [z, h] or [z, c, h]; parameters as one flat vector.

    Args:
        z_dim, hidden: sizes of V's z and M's hidden state.
        size: outputs (the game adapter's ``size``: 3 for CarRacing, 1 for Doom and Pong).
        inputs: ``"z"``, ``"zh"`` or ``"zch"``.
        bias: with a bias ``b`` (the paper's Doom controller has none).
    """

    def __init__(self, z_dim: int, hidden: int, size: int, inputs: str = "zh", bias=True):
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.z_dim, self.hidden, self.size, self.inputs, self.bias = (
            z_dim,
            hidden,
            size,
            inputs,
            bias,
        )
        self.in_features = z_dim + hidden * (len(inputs) - 1)
        self.W = np.zeros((size, self.in_features), np.float32)
        self.b = np.zeros(size, np.float32)

    @property
    def n_params(self) -> int:
        return self.W.size + (self.b.size if self.bias else 0)

    def get_params(self) -> np.ndarray:
        """All parameters as one float64 vector (what CMA-ES searches)."""
        parts = [self.W.ravel(), self.b] if self.bias else [self.W.ravel()]
        return np.concatenate(parts).astype(np.float64)

    def set_params(self, params: np.ndarray) -> None:
        """Load a flat vector in place (no new arrays: setting it a million times leaks nothing)."""
        params = np.asarray(params)
        if params.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {params.shape}")
        self.W[...] = params[: self.W.size].reshape(self.W.shape)
        if self.bias:
            self.b[...] = params[self.W.size :]

    def features(self, z: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The input x for a batch: ``(N, in_features)``."""
        parts = {"z": [z], "zh": [z, h], "zch": [z, c, h]}[self.inputs]
        return np.concatenate(parts, axis=-1)

    def __call__(self, z: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Outputs ``y`` in [-1, 1], ``(N, size)``, for ``z (N, z_dim)``, ``h, c (N, hidden)``."""
        return np.tanh(self.features(z, h, c) @ self.W.T + self.b)


# ---------------------------------------------------------------------------------------
# The agent in the real game: many episodes at once, one batched call per step


class Agent:
    """V + M + C for a batch of games: ``act(frames)`` for every live game in one call."""

    def __init__(self, vae, mdnrnn, controller: Controller, adapter):
        self.vae, self.mdnrnn, self.controller, self.adapter = vae, mdnrnn, controller, adapter

    def reset(self, n: int) -> None:
        h, c = self.mdnrnn.initial_state((n,))
        self.h, self.c = h[0], c[0]  # (n, hidden)

    @torch.no_grad()
    def act(self, frames: np.ndarray, rows: np.ndarray) -> tuple[list, np.ndarray]:
        """Actions for the games ``rows`` (indices into the batch), from their frames.

        Returns the game actions (one per row) and z ``(len(rows), z_dim)``; M's state of
        those rows advances by one step.
        """
        from wmtutor.envs import action_features
        from wmtutor.vae import to_input

        mu, _ = self.vae.encode(to_input(frames))
        z = mu.float()
        h, c = self.h[rows], self.c[rows]
        y = self.controller(z.numpy(), h.numpy(), c.numpy())
        actions = [self.adapter(y_i) for y_i in y]
        a = torch.from_numpy(action_features(np.asarray(actions), self.mdnrnn.action_dim))
        _, _, (h_new, c_new) = self.mdnrnn(z[:, None], a[:, None], (h[None], c[None]))
        self.h[rows], self.c[rows] = h_new[0], c_new[0]
        return actions, z.numpy()


def run_episodes(
    agent: Agent,
    envs: Sequence,
    seeds: Sequence[int],
    max_steps: int,
    record: bool = False,
) -> dict:
    """Play ``len(seeds)`` episodes at once (game i on ``envs[i]``), up to ``max_steps`` each.

    Returns ``returns`` ``(n,)`` and ``lengths`` ``(n,)``; with ``record=True`` also, for
    the first game, its ``frames``, ``z`` and ``actions`` per step (for GIFs).
    """
    n = len(seeds)
    agent.reset(n)
    frames = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=False)])
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    alive = np.ones(n, dtype=bool)
    recording = {"frames": [], "z": [], "actions": []}
    for _ in range(max_steps):
        rows = np.flatnonzero(alive)
        if len(rows) == 0:
            break
        actions, z = agent.act(frames[rows], rows)
        if record and alive[0]:
            recording["frames"].append(frames[0].copy())
            recording["z"].append(z[0])
            recording["actions"].append(actions[0])
        for i, action in zip(rows, actions, strict=True):
            frame, reward, terminated, truncated, _ = envs[i].step(action)
            frames[i] = frame
            returns[i] += reward
            lengths[i] += 1
            if terminated or truncated:
                alive[i] = False
    out = {"returns": returns, "lengths": lengths}
    if record:
        out.update({k: np.asarray(v) for k, v in recording.items()})
    return out


# What a worker needs to build the agent: plain data, so it pickles cheaply to any worker.
# {"game", "vae", "mdnrnn" (checkpoint paths), "inputs", "bias", "frame_skip", "latents"}
_WORKER: dict = {}


def _worker_agent(spec: dict, n_envs: int) -> tuple[Agent, list]:
    """The agent and ``n_envs`` games of this worker process, built once and reused."""
    from wmtutor.mdnrnn import load_mdnrnn
    from wmtutor.vae import load_vae

    key = json.dumps(spec, sort_keys=True)
    if _WORKER.get("key") != key:
        torch.set_num_threads(1)  # one process per core: no thread oversubscription
        vae, mdnrnn = load_vae(spec["vae"]), load_mdnrnn(spec["mdnrnn"])
        env = make_env(spec["game"], frame_skip=spec.get("frame_skip", 1))
        controller = Controller(vae.z_dim, mdnrnn.hidden, env.adapter.size, spec["inputs"],
                                spec.get("bias", True))  # fmt: skip
        _WORKER.clear()
        _WORKER.update(key=key, agent=Agent(vae, mdnrnn, controller, env.adapter), envs=[env])
    envs = _WORKER["envs"]
    while len(envs) < n_envs:
        envs.append(make_env(spec["game"], frame_skip=spec.get("frame_skip", 1)))
    return _WORKER["agent"], envs[:n_envs]


def evaluate_candidate(spec: dict, params: np.ndarray, seeds: list[int], max_steps: int):
    """Returns of one parameter vector over ``seeds`` episodes (runs in a worker)."""
    agent, envs = _worker_agent(spec, len(seeds))
    agent.controller.set_params(params)
    return run_episodes(agent, envs, seeds, max_steps)["returns"].tolist()


# ---------------------------------------------------------------------------------------
# Running many evaluations on an executor, surviving crashed and hung workers


class LocalPool:
    """Worker processes (spawned) behind ``submit``; ``restart()`` replaces them all.

    A ``ProcessPoolExecutor`` cannot stop one hung task or survive a dead worker, so the
    pool is rebuilt from scratch when that happens.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.executor = cf.ProcessPoolExecutor(self.workers, mp_context=context)

    def submit(self, fn, *args) -> cf.Future:
        return self.executor.submit(fn, *args)

    def restart(self) -> None:
        processes = list(getattr(self.executor, "_processes", {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        self._start()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class ExecutorPool:
    """Any ``concurrent.futures.Executor`` (e.g. Dask's) behind the same interface.

    Restarting does nothing: Dask re-runs the tasks of a dead worker by itself.
    """

    def __init__(self, executor: cf.Executor):
        self.executor = executor

    def submit(self, fn, *args) -> cf.Future:
        return self.executor.submit(fn, *args)

    def restart(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def run_tasks(pool, fn: Callable, tasks: list[tuple], timeout: float, retries: int = 3) -> list:
    """Run ``fn(*task)`` for every task on ``pool``; return the results in order.

    A task that raises (a crashed worker) or takes longer than ``timeout`` seconds is run
    again (up to ``retries`` times), with a warning; the others keep their results.
    """
    results: dict[int, object] = {}
    attempts = dict.fromkeys(range(len(tasks)), 0)
    errors: dict[int, str] = {}
    while len(results) < len(tasks):
        todo = [i for i in range(len(tasks)) if i not in results]
        futures = {pool.submit(fn, *tasks[i]): i for i in todo}
        deadline = time.monotonic() + timeout
        failed: list[int] = []
        pending = set(futures)
        while pending:
            done, pending = cf.wait(
                pending, timeout=max(0.0, deadline - time.monotonic()),
                return_when=cf.FIRST_COMPLETED,
            )  # fmt: skip
            for future in done:
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as err:  # noqa: BLE001 - a worker died or the task failed
                    failed.append(i)
                    errors[i] = f"{type(err).__name__}: {err}"
                    warnings.warn(f"evaluation {i} failed ({type(err).__name__}: {err}); "
                                  "running it again", stacklevel=2)  # fmt: skip
            if not done and pending:  # past the deadline: the rest are hung
                failed.extend(futures[f] for f in pending)
                message = f"{len(pending)} evaluation(s) took longer than {timeout:.0f} s"
                warnings.warn(f"{message}; restarting the workers, running them again",
                              stacklevel=2)  # fmt: skip
                break
        if failed:
            for i in failed:
                attempts[i] += 1
                if attempts[i] > retries:
                    raise RuntimeError(
                        f"evaluation {i} failed {attempts[i]} times, the last time with "
                        f"{errors.get(i, 'a timeout')}; giving up"
                    )
            pool.restart()
    return [results[i] for i in range(len(tasks))]


# ---------------------------------------------------------------------------------------
# Training with CMA-ES, resumable


def controller_dir(
    game: str, preset: Preset | str | None = None, inputs: str | None = None,
    tau: float | None = None,
) -> Path:  # fmt: skip
    """Where the preset's controller lives: ``runs/<game>/<preset>/controller_<inputs>``,
    or ``controller_<inputs>_dream<tau>`` for one trained in M's dream at temperature tau."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    inputs = inputs or preset.game(game).controller.inputs
    name = f"controller_{inputs}" + ("" if tau is None else f"_dream{tau:g}")
    return runs_dir(game, preset.name, name)


def _save_state(out_dir: Path, es, state: dict, log: list[dict]) -> None:
    arrays = {f"es_{k}": v for k, v in es.state_dict().items()}
    arrays.update({k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)})
    scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    with atomic_path(out_dir / "state.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, scalars=np.array(json.dumps(scalars)))
    with atomic_path(out_dir / "log.json") as tmp:
        tmp.write_text(json.dumps(log, indent=0))


def load_controller_state(out_dir: str | os.PathLike) -> dict:
    """The saved training state of a controller folder (arrays and scalars), no pickle."""
    path = Path(out_dir) / "state.npz"
    with np.load(path, allow_pickle=False) as data:
        state = {k: data[k] for k in data.files if k != "scalars"}
        state.update(json.loads(str(data["scalars"])))
    return state


class RealGame:
    """Fitness in the real game: each candidate's episodes run on a pool of workers."""

    where = "real"

    def __init__(self, spec: dict, pool, seed: int, timeout: float, evaluate: Callable,
                 n_tasks: int):  # fmt: skip
        self.spec, self.pool, self.seed = spec, pool, seed
        self.timeout, self.evaluate, self.n_tasks = timeout, evaluate, n_tasks

    def population(self, solutions: np.ndarray, generation: int, trials: int,
                   max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(P, trials)``: every candidate plays the same ``trials`` seeds."""
        seeds = [rollout_seed(self.seed, generation, j) for j in range(trials)]
        tasks = [(self.spec, x, seeds, max_steps) for x in solutions]
        return np.array(run_tasks(self.pool, self.evaluate, tasks, self.timeout))

    def mean(self, params: np.ndarray, generation: int, episodes: int,
             max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(episodes,)`` of one parameter vector, split into ``n_tasks`` tasks."""
        seeds = [rollout_seed(self.seed + 1, generation - 1, j) for j in range(episodes)]
        chunks = [c for c in (seeds[i :: self.n_tasks] for i in range(self.n_tasks)) if c]
        tasks = [(self.spec, params, c, max_steps) for c in chunks]
        return np.concatenate(run_tasks(self.pool, self.evaluate, tasks, self.timeout))

    def close(self) -> None:
        self.pool.shutdown()


def train_controller(
    spec: dict,
    out_dir: str | os.PathLike,
    config: ControllerConfig,
    *,
    seed: int = 0,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    restart: bool = False,
    progress: bool = True,
    evaluate: Callable = evaluate_candidate,
    dream: DreamConfig | None = None,
) -> list[dict]:
    """Train C with CMA-ES, in the real game or (``dream=``) in M's dream; return the log.

    ``spec`` says what the agent is (``{"game", "vae", "mdnrnn", "inputs", ...}``; see
    ``agent_spec``). In the real game, candidates are evaluated on ``executor`` if given
    (e.g. Dask's), else on ``workers`` local processes (default: one per core). With
    ``dream`` (a ``presets.Dream``) every candidate's episodes are dreamed by M in this
    process instead, a whole generation as one batch (``wmtutor.dream.InDream``).

    Each candidate plays ``config.trials`` episodes (the same seeds, or dream starts, for
    every candidate of a generation); its fitness is the mean return minus
    ``config.l2 * |x|^2``. Every ``eval_every`` generations the mean of the search
    distribution plays ``eval_episodes`` episodes (where the candidates play).

    Writes ``state.npz`` (ES state, best and mean parameters, generation, episode cap) and
    ``log.json`` into ``out_dir`` after every generation, atomically; running again
    resumes exactly (wmtutor CMA-ES; pycma's state cannot be saved without pickle).
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = make_env(spec["game"])
    size = env.adapter.size
    env.close()
    from wmtutor.mdnrnn import load_mdnrnn

    mdnrnn = load_mdnrnn(spec["mdnrnn"])
    controller = Controller(mdnrnn.z_dim, mdnrnn.hidden, size, spec["inputs"],
                            spec.get("bias", True))  # fmt: skip
    es = make_es(config.backend, np.zeros(controller.n_params), config.sigma0,
                 popsize=config.popsize, seed=seed)  # fmt: skip
    state = {"generation": 0, "max_steps": config.curriculum_start or config.max_steps,
             "best_mean_at_length": None, "best_eval": None,
             "best_params": np.zeros(controller.n_params),
             "mean_params": np.zeros(controller.n_params)}  # fmt: skip
    judge_name = (
        "in the real game"
        if dream is None
        else f"in the dream (tau {dream.tau:g}, done threshold {dream.done_threshold:g})"
    )
    state["judge"] = judge_name
    log: list[dict] = []
    if (out_dir / "state.npz").exists() and not restart:
        if config.backend != "wmtutor":
            raise ValueError(
                f"{out_dir} holds a run to resume, but only the wmtutor CMA-ES saves its state "
                "without pickle: use backend 'wmtutor', or --restart"
            )
        saved = load_controller_state(out_dir)
        if saved["es_mean"].shape != (controller.n_params,):
            raise ValueError(
                f"{out_dir} holds a controller with {saved['es_mean'].shape[0]} parameters, "
                f"this one has {controller.n_params}: another V, M or inputs? use --restart"
            )
        if saved.get("judge", judge_name) != judge_name:
            raise ValueError(
                f"{out_dir} holds a run trained {saved['judge']}, not {judge_name}: "
                "use another folder (--out), or --restart"
            )
        es.load_state_dict({k[3:]: v for k, v in saved.items() if k.startswith("es_")})
        state.update({k: v for k, v in saved.items() if not k.startswith("es_")}, judge=judge_name)
        log = json.loads((out_dir / "log.json").read_text())

    if dream is not None:
        from wmtutor.dream import InDream

        judge = InDream.from_spec(spec, dream, seed, mdnrnn=mdnrnn)
    else:
        pool = ExecutorPool(executor) if executor else LocalPool(workers or default_workers())
        judge = RealGame(spec, pool, seed, config.timeout, evaluate, max(1, config.popsize))
    bar = tqdm(total=config.generations, initial=state["generation"],
               desc=f"CMA-ES ({judge.where})", unit="gen",
               disable=not progress or state["generation"] >= config.generations)  # fmt: skip
    try:
        while state["generation"] < config.generations:
            g = state["generation"]
            start = time.perf_counter()
            solutions = es.ask()
            returns = judge.population(solutions, g, config.trials, state["max_steps"])
            fitness = returns.mean(axis=1) - config.l2 * np.square(solutions).sum(axis=1)
            es.tell(solutions, -fitness)
            row = {"generation": g + 1, "best": float(fitness.max()),
                   "mean": float(fitness.mean()), "worst": float(fitness.min()),
                   "max_steps": state["max_steps"], "where": judge.where,
                   "seconds": time.perf_counter() - start}  # fmt: skip
            state["best_params"] = es.best_x.copy()
            state["mean_params"] = np.asarray(es.mean).copy()
            # Curriculum: a longer episode cap once the population beats its best mean.
            best_mean = state["best_mean_at_length"]
            if state["max_steps"] < config.max_steps:
                if best_mean is not None and row["mean"] > best_mean:
                    state["max_steps"] = min(
                        config.max_steps, int(state["max_steps"] * config.curriculum_growth)
                    )
                    state["best_mean_at_length"] = None
                else:
                    state["best_mean_at_length"] = max(row["mean"], best_mean or -np.inf)
            if config.eval_every and (g + 1) % config.eval_every == 0:
                scores = judge.mean(state["mean_params"], g + 1, config.eval_episodes,
                                    config.max_steps)  # fmt: skip
                row.update(eval_mean=float(scores.mean()), eval_std=float(scores.std()))
                if state["best_eval"] is None or row["eval_mean"] > state["best_eval"]:
                    state["best_eval"] = row["eval_mean"]
            state["generation"] = g + 1
            log.append(row)
            _save_state(out_dir, es, state, log)
            bar.set_postfix(best=f"{row['best']:.0f}", mean=f"{row['mean']:.0f}", refresh=False)
            bar.update(1)
            if config.target is not None and row.get("eval_mean", -np.inf) >= config.target:
                break
    finally:
        bar.close()
        judge.close()
    return log


def agent_spec(
    game: str, preset: Preset | str | None = None, inputs: str | None = None, progress: bool = True
) -> dict:
    """What workers need to build the preset's agent for ``game`` (V and M trained if missing).

    ``inputs`` defaults to the preset's (``zch`` for Doom, as in the paper).
    """
    from wmtutor.mdnrnn import get_mdnrnn, mdnrnn_dir
    from wmtutor.vae import latents_dir, vae_dir

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    get_mdnrnn(game, preset, progress=progress)
    sizes = preset.game(game)
    return {
        "game": game,
        "vae": str(vae_dir(game, preset) / "vae.pt"),
        "mdnrnn": str(mdnrnn_dir(game, preset) / "mdnrnn.pt"),
        "latents": str(latents_dir(game, preset)),
        "inputs": inputs or sizes.controller.inputs,
        "bias": sizes.controller.bias,
        "frame_skip": sizes.data.frame_skip,
    }


def random_returns(game: str, seeds: Sequence[int], max_steps: int) -> np.ndarray:
    """The returns of white-noise random play (``action_space.sample()``), for comparison."""
    from wmtutor.rollouts import make_policy, play

    env = make_env(game, max_steps=max_steps)
    out = [
        float(play(env, make_policy("white", env, int(s)), int(s))["rewards"].sum()) for s in seeds
    ]
    env.close()
    return np.asarray(out)


def evaluate_params(
    spec: dict,
    params: np.ndarray,
    n_episodes: int,
    max_steps: int,
    *,
    seed: int = 10_000,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    timeout: float = 3600.0,
) -> np.ndarray:
    """Returns of ``n_episodes`` episodes of the agent with ``params`` (the paper uses 100).

    Episodes are split across the workers (or ``executor``), several at once per worker.
    Seeds start from ``seed``, away from the ones training used.
    """
    workers = workers or default_workers()
    pool = ExecutorPool(executor) if executor else LocalPool(workers)
    seeds = [rollout_seed(seed, 0, j) for j in range(n_episodes)]
    n_tasks = max(1, min(n_episodes, 4 * workers))
    chunks = [c for c in (seeds[i::n_tasks] for i in range(n_tasks)) if c]
    try:
        tasks = [(spec, np.asarray(params), c, max_steps) for c in chunks]
        return np.concatenate(run_tasks(pool, evaluate_candidate, tasks, timeout))
    finally:
        pool.shutdown()


def record_episode(spec: dict, params: np.ndarray, seed: int, max_steps: int) -> dict:
    """Play one episode here, keeping its frames, z, actions and return (for GIFs, widgets)."""
    agent, envs = _worker_agent(spec, 1)
    agent.controller.set_params(params)
    out = run_episodes(agent, envs, [seed], max_steps, record=True)
    return {**out, "return": float(out["returns"][0])}
