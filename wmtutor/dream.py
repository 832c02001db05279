"""The dream: M as an environment, and a whole CMA-ES generation evaluated inside it at once.

* ``DreamEnv`` is a Gymnasium *vector* environment inside M: ``num_envs`` dreams step
  together. Each episode starts from the latent of a real frame (from the encoded
  rollouts, optionally with noise added for variety), M samples the next z at temperature
  ``tau``, and the episode ends when M's done head fires (probability > ``done_threshold``)
  or at the step cap (2100 for Doom). The reward is +1 per step survived (Doom) or M's
  predicted reward. The observation is what the controller reads: ``[z, h, c]``.
  ``render()`` decodes the first dream's z with V.
* ``dream_generation`` evaluates every candidate × every trial of a generation (the paper's
  64 × 16 = 1024 episodes) as one tensor batch per step, each candidate's controller
  applied to its own rows. ``dream_one_by_one`` is the same computation, one episode at a
  time: with the same noise they give the same returns (a unit test), and
  ``benchmarks/dream.py`` compares their speed.

Shapes: ``z`` ``(B, z_dim)``; M's state ``(1, B, hidden)`` each; parameters of P
candidates ``(P, n_params)`` laid out as ``wmtutor.controller.Controller`` lays them out.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from wmtutor.envs import GAMES, action_features
from wmtutor.mdnrnn import MDNRNN, sample_next
from wmtutor.presets import Dream as DreamConfig
from wmtutor.presets import Preset, get_preset
from wmtutor.training import autocast
from wmtutor.utils import atomic_path, runs_dir


def step_noise(seed: int, step: int, rows: int, z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling noise ``(u, eps)`` of one dream step, each ``(rows, z_dim)``: fixed by
    ``(seed, step)`` so that a batch and its rows one by one can share it."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    return torch.rand(rows, z_dim, generator=g), torch.randn(rows, z_dim, generator=g)


# ---------------------------------------------------------------------------------------
# The vector environment


class DreamEnv(gym.vector.VectorEnv):
    """``num_envs`` episodes inside M (see the module docstring).

    Args:
        mdnrnn: the trained M.
        game: whose action space and action features to use.
        initial_z: ``(N, z_dim)`` latents of real frames to start from (e.g. the ``mu``
            of the first frames of the rollouts).
        num_envs: dreams stepped together.
        tau: M's sampling temperature.
        max_steps: the step cap (2100 for Doom).
        reward: ``"survival"`` (+1 per step, Doom) or ``"predicted"`` (M's reward head).
        init_noise: standard deviation of Gaussian noise added to each starting z.
        done_threshold: M's done probability above which a dream ends.
        vae: V, only for ``render()``.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        mdnrnn: MDNRNN,
        game: str,
        initial_z: np.ndarray,
        num_envs: int = 1,
        tau: float = 1.0,
        max_steps: int = 2100,
        reward: str = "survival",
        init_noise: float = 0.0,
        done_threshold: float = 0.5,
        vae=None,
    ):
        if reward not in ("survival", "predicted"):
            raise ValueError(f"reward must be 'survival' or 'predicted', got {reward!r}")
        initial_z = np.asarray(initial_z, dtype=np.float32)
        if initial_z.ndim != 2 or initial_z.shape[1] != mdnrnn.z_dim:
            raise ValueError(f"initial_z must be (N, {mdnrnn.z_dim}), got {initial_z.shape}")
        self.mdnrnn, self.vae, self.game = mdnrnn.eval(), vae, game
        self.initial_z, self.num_envs, self.tau = torch.from_numpy(initial_z), num_envs, tau
        self.max_steps, self.reward_kind = max_steps, reward
        self.init_noise, self.done_threshold = init_noise, done_threshold
        self.render_mode = "rgb_array"
        from wmtutor.envs import make_env

        env = make_env(game)
        self.single_action_space, self.adapter = env.action_space, env.adapter
        env.close()
        size = mdnrnn.z_dim + 2 * mdnrnn.hidden
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self._rng = np.random.default_rng()
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def _start(self, rows: np.ndarray) -> None:
        pick = self._rng.integers(len(self.initial_z), size=len(rows))
        z = self.initial_z[pick].clone()
        if self.init_noise:
            z += self.init_noise * torch.from_numpy(
                self._rng.standard_normal(z.shape).astype(np.float32)
            )
        self.z[rows] = z
        self.h[:, rows] = 0
        self.c[:, rows] = 0
        self.steps[rows] = 0

    def _obs(self) -> np.ndarray:
        return torch.cat([self.z, self.h[0], self.c[0]], dim=1).numpy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        n = self.num_envs
        self.z = torch.zeros(n, self.mdnrnn.z_dim)
        self.h, self.c = self.mdnrnn.initial_state((n,))
        self.steps = np.zeros(n, dtype=int)
        self.done_prob = np.zeros(n, dtype=np.float32)
        self._start(np.arange(n))
        self._needs_reset[:] = False
        return self._obs(), {}

    @torch.no_grad()
    def step(self, actions):
        actions = np.asarray(actions)
        a = torch.from_numpy(action_features(actions, GAMES[self.game].action_dim))
        prediction, (self.h, self.c) = self.mdnrnn.step(self.z, a, (self.h, self.c))
        generator = torch.Generator().manual_seed(int(self._rng.integers(2**31)))
        self.z = sample_next(prediction, self.tau, generator)
        self.steps += 1
        done_prob = torch.sigmoid(prediction.done_logit).numpy()
        self.done_prob = done_prob  # (num_envs,): M's belief that this step ended the game
        terminated = done_prob > self.done_threshold
        truncated = (self.steps >= self.max_steps) & ~terminated
        if self.reward_kind == "survival":
            reward = np.ones(self.num_envs, dtype=np.float64)
        else:
            reward = prediction.reward.numpy().astype(np.float64)
        # Next-step autoreset: dreams that ended last step start again now (their action
        # was ignored), as Gymnasium's vector environments do by default.
        restarted = np.flatnonzero(self._needs_reset)
        if len(restarted):
            self._start(restarted)
            reward[restarted] = 0.0
            terminated[restarted] = truncated[restarted] = False
        self._needs_reset = terminated | truncated
        return self._obs(), reward, terminated, truncated, {}

    @torch.no_grad()
    def render(self) -> np.ndarray:
        """The first dream's current frame, decoded by V: ``(64, 64, 3)`` uint8."""
        if self.vae is None:
            raise ValueError("render() needs V: pass vae= to DreamEnv")
        from wmtutor.vae import decode_latent

        return decode_latent(self.vae, self.z[0])[0]


# ---------------------------------------------------------------------------------------
# A whole generation in one batch


def _controller_rows(params: torch.Tensor, z_dim: int, hidden: int, size: int, inputs: str):
    """Split flat parameters ``(P, n)`` into W ``(P, size, in)`` and b ``(P, size)``."""
    n_in = z_dim + hidden * (len(inputs) - 1)
    W = params[:, : size * n_in].reshape(-1, size, n_in)
    b = params[:, size * n_in : size * n_in + size]
    if b.shape[1] == 0:
        b = torch.zeros(len(params), size)
    return W, b


def _features(z, h, c, inputs: str) -> torch.Tensor:
    return torch.cat({"z": [z], "zh": [z, h], "zch": [z, c, h]}[inputs], dim=-1)


@torch.no_grad()
def dream_generation(
    mdnrnn: MDNRNN,
    game: str,
    params: np.ndarray,
    initial_z: np.ndarray,
    trials: int,
    *,
    tau: float = 1.0,
    max_steps: int = 2100,
    inputs: str = "zh",
    done_threshold: float = 0.5,
    seed: int = 0,
    precision: str = "fp32",
) -> np.ndarray:
    """Dream returns (steps survived) of every candidate's ``trials`` episodes: ``(P, trials)``.

    All ``P * trials`` episodes advance together, one batched M step per time step; row
    ``p * trials + j`` is candidate p's trial j, starting from ``initial_z[j]`` (the same
    starts for every candidate, so they are compared fairly). The sampling noise of each
    step comes from ``step_noise(seed, step)``.
    """
    from wmtutor.envs import make_env

    adapter = make_env(game).adapter
    P = len(params)
    B = P * trials
    W, b = _controller_rows(torch.as_tensor(params, dtype=torch.float32), mdnrnn.z_dim,
                            mdnrnn.hidden, adapter.size, inputs)  # fmt: skip
    W, b = W.repeat_interleave(trials, 0), b.repeat_interleave(trials, 0)
    z = torch.as_tensor(np.asarray(initial_z, np.float32)[:trials]).repeat(P, 1)
    h, c = mdnrnn.initial_state((B,))
    live = torch.arange(B)  # the rows still dreaming; the batch shrinks as dreams end
    returns = torch.zeros(B)
    device = torch.device("cpu")
    for t in range(max_steps):
        y = torch.tanh(torch.einsum("bi,boi->bo", _features(z, h[0], c[0], inputs), W) + b)
        actions = adapter(y.numpy())
        a = torch.from_numpy(action_features(np.asarray(actions), mdnrnn.action_dim))
        with autocast(precision, device):
            prediction, _, (h, c) = mdnrnn(z[:, None], a[:, None], (h, c))
        prediction = type(prediction)(*(x[:, 0].float() for x in prediction))
        h, c = h.float(), c.float()
        u, eps = step_noise(seed, t, B, mdnrnn.z_dim)
        z = sample_next(prediction, tau, noise=(u[live], eps[live]))
        returns[live] += 1
        keep = torch.sigmoid(prediction.done_logit) <= done_threshold
        if not keep.all():
            if not keep.any():
                break
            live, z, W, b = live[keep], z[keep], W[keep], b[keep]
            h, c = h[:, keep], c[:, keep]
    return returns.reshape(P, trials).numpy()


@torch.no_grad()
def dream_one_by_one(
    mdnrnn: MDNRNN,
    game: str,
    params: np.ndarray,
    initial_z: np.ndarray,
    trials: int,
    *,
    tau: float = 1.0,
    max_steps: int = 2100,
    inputs: str = "zh",
    done_threshold: float = 0.5,
    seed: int = 0,
    shared_noise: bool = True,
) -> np.ndarray:
    """``dream_generation`` one episode at a time (the slow way; for checks and benchmarks).

    With ``shared_noise`` episode row r uses row r of ``step_noise(seed, t, P * trials)``,
    the same noise as the batch; without it each step draws its own (faster).
    """
    from wmtutor.controller import Controller
    from wmtutor.envs import make_env

    adapter = make_env(game).adapter
    P = len(params)
    out = np.zeros((P, trials))
    controller = Controller(mdnrnn.z_dim, mdnrnn.hidden, adapter.size, inputs)
    generator = torch.Generator().manual_seed(seed)
    for p in range(P):
        controller.set_params(params[p])
        for j in range(trials):
            row = p * trials + j
            z = torch.as_tensor(np.asarray(initial_z, np.float32)[j : j + 1])
            state = mdnrnn.initial_state((1,))
            for t in range(max_steps):
                y = controller(z.numpy(), state[0][0].numpy(), state[1][0].numpy())
                action = adapter(y)
                a = torch.from_numpy(action_features(np.asarray(action), mdnrnn.action_dim))
                prediction, state = mdnrnn.step(z, a, state)
                if shared_noise:
                    u, eps = step_noise(seed, t, P * trials, mdnrnn.z_dim)
                    noise = (u[row : row + 1], eps[row : row + 1])
                    z = sample_next(prediction, tau, noise=noise)
                else:
                    z = sample_next(prediction, tau, generator)
                out[p, j] += 1
                if torch.sigmoid(prediction.done_logit).item() > done_threshold:
                    break
    return out


# ---------------------------------------------------------------------------------------
# Training C in the dream: the judge that train_controller asks for fitness


def initial_latents(latents_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``logvar`` ``(N, z_dim)`` of the first frame of every encoded rollout: where
    dreams start (a dream's z0 is drawn from N(mu, sigma^2) of one of them)."""
    from wmtutor.rollouts import read_manifest

    folder = Path(latents_dir)
    manifest = read_manifest(folder)
    mu, logvar = [], []
    for entry in manifest["files"]:
        with np.load(folder / entry["file"], allow_pickle=False) as data:
            mu.append(data["mu"][0])
            logvar.append(data["logvar"][0])
    if not mu:
        raise ValueError(f"{folder} holds no encoded rollouts to start dreams from")
    return np.stack(mu), np.stack(logvar)


class InDream:
    """Fitness in M's dream: ``train_controller(..., dream=...)`` asks this for returns.

    Each generation draws its own dream starts (``trials`` real first frames, z sampled
    from their N(mu, sigma^2)) and its own sampling noise, both fixed by ``(seed,
    generation)``, so resuming a run dreams exactly the same dreams. Every candidate of a
    generation gets the same starts and noise; the whole generation is one batch
    (``dream_generation``).
    """

    where = "dream"

    def __init__(self, mdnrnn: MDNRNN, game: str, initial: tuple[np.ndarray, np.ndarray],
                 config: DreamConfig, inputs: str, seed: int = 0):  # fmt: skip
        if config.tau < 0:
            raise ValueError(f"the dream's tau must be >= 0, got {config.tau}")
        if not 0 < config.done_threshold < 1:
            raise ValueError(f"done_threshold must be in (0, 1), got {config.done_threshold}")
        self.mdnrnn, self.game, self.config, self.inputs = mdnrnn.eval(), game, config, inputs
        self.mu, self.sigma = initial[0], np.exp(0.5 * initial[1])
        self.seed = seed

    @classmethod
    def from_spec(cls, spec: dict, config: DreamConfig, seed: int = 0, mdnrnn=None) -> InDream:
        """The judge for ``agent_spec(...)``'s M (loaded unless given) and latents."""
        from wmtutor.mdnrnn import load_mdnrnn

        mdnrnn = mdnrnn or load_mdnrnn(spec["mdnrnn"])
        return cls(mdnrnn, spec["game"], initial_latents(spec["latents"]), config,
                   spec["inputs"], seed=seed)  # fmt: skip

    def starts(self, stream: int, generation: int, n: int) -> tuple[np.ndarray, int]:
        """``n`` starting z ``(n, z_dim)`` and a noise seed, fixed by (stream, generation)."""
        from wmtutor.rollouts import rollout_seed

        rng = np.random.default_rng([self.seed, stream, generation])
        pick = rng.integers(len(self.mu), size=n)
        z0 = self.mu[pick] + self.sigma[pick] * rng.standard_normal((n, self.mu.shape[1]))
        return z0.astype(np.float32), rollout_seed(self.seed + stream, generation) % 2**31

    def dream(self, params: np.ndarray, z0: np.ndarray, noise_seed: int,
              max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(P, len(z0))``: every candidate ``params[p]`` dreams from every start."""
        return dream_generation(
            self.mdnrnn, self.game, params, z0, len(z0), tau=self.config.tau, max_steps=max_steps,
            inputs=self.inputs, done_threshold=self.config.done_threshold, seed=noise_seed,
            precision=self.config.precision,
        )  # fmt: skip

    def population(self, solutions: np.ndarray, generation: int, trials: int,
                   max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(P, trials)``: the generation's candidates, all from the same starts."""
        z0, noise_seed = self.starts(0, generation, trials)
        return self.dream(solutions, z0, noise_seed, max_steps)

    def mean(self, params: np.ndarray, generation: int, episodes: int,
             max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(episodes,)``: the search's mean, on starts of its own (stream 1)."""
        z0, noise_seed = self.starts(1, generation, episodes)
        return self.dream(np.asarray(params)[None], z0, noise_seed, max_steps)[0]

    def close(self) -> None:
        pass


def score_controller(
    spec: dict,
    params: np.ndarray,
    episodes: int,
    max_steps: int,
    *,
    dream: DreamConfig | None = None,
    executor=None,
    workers: int | None = None,
    seed: int = 10_000,
) -> dict[str, float]:
    """The paper's test: ``episodes`` real-game episodes of the agent, white-noise random
    play on the same seeds beside it, and (with ``dream``) the same number of episodes in
    the dream it was trained in. Returns ``{real,random,dream}_{mean,std}`` and the raw
    ``real`` returns."""
    from wmtutor.controller import evaluate_params, random_returns
    from wmtutor.rollouts import rollout_seed

    real = evaluate_params(spec, params, episodes, max_steps, seed=seed, executor=executor,
                           workers=workers)  # fmt: skip
    seeds = [rollout_seed(seed, 0, j) for j in range(episodes)]
    random = random_returns(spec["game"], seeds, max_steps)
    out = {"episodes": episodes, "real_mean": float(real.mean()), "real_std": float(real.std()),
           "random_mean": float(random.mean()), "random_std": float(random.std()),
           "real": real.tolist()}  # fmt: skip
    if dream is not None:
        judge = InDream.from_spec(spec, dream, seed)
        z0, noise_seed = judge.starts(2, 0, episodes)
        dreamed = judge.dream(np.asarray(params)[None], z0, noise_seed, max_steps)[0]
        out.update(dream_mean=float(dreamed.mean()), dream_std=float(dreamed.std()), tau=dream.tau)
    return out


def dream_dir(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    sweep: bool = False,
    round: int = 0,
) -> Path:
    """The folder of the preset's controller trained in the dream at ``tau`` (default: the
    preset's): ``runs/<game>/<preset>/controller_<inputs>_dream<tau>``; for the shorter
    runs of the temperature sweep ``runs/<game>/<preset>/tau_sweep/dream<tau>``; after
    ``round`` rounds of iterative training ``runs/<game>/<preset>/round<k>/controller_...``."""
    from wmtutor.controller import controller_dir
    from wmtutor.iterative import round_dir

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    tau = preset.game(game).dream.tau if tau is None else tau
    if sweep:
        return runs_dir(game, preset.name, "tau_sweep", f"dream{tau:g}")
    folder = controller_dir(game, preset, None, tau)
    return round_dir(game, preset, round) / folder.name if round else folder


def get_dream_controller(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    sweep: bool = False,
    progress: bool = True,
    round: int = 0,
) -> tuple[np.ndarray, list[dict], dict]:
    """The preset's controller trained in M's dream at ``tau``: ``(params, log, spec)``.

    V, M (and the data) are made first if missing; training runs or resumes until the
    preset's generations are done (``sweep``: the sweep's shorter runs), so notebooks call
    this freely. ``round`` k > 0: in the dream of M after k rounds of iterative training
    (``wmtutor.iterative``).
    """
    import dataclasses

    from wmtutor.controller import load_controller_state, train_controller
    from wmtutor.iterative import round_spec

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    sizes = preset.game(game)
    dream = sizes.dream if tau is None else dataclasses.replace(sizes.dream, tau=tau)
    config = sizes.controller
    if sweep:
        config = dataclasses.replace(config, generations=dream.sweep_generations, eval_every=0)
    spec = round_spec(game, preset, round, progress=progress)
    out = dream_dir(game, preset, dream.tau, sweep, round)
    log = train_controller(spec, out, config, seed=preset.seed, progress=progress, dream=dream)
    return load_controller_state(out)["mean_params"], log, spec


@torch.no_grad()
def dream_episode(
    env: DreamEnv,
    params: np.ndarray,
    inputs: str = "zch",
    seed: int = 0,
    max_steps: int | None = None,
    render: bool = True,
) -> dict[str, np.ndarray]:
    """The agent with controller ``params`` in its dream (``env.num_envs`` must be 1).

    Returns ``z`` ``(T, z_dim)``, ``actions`` ``(T,)``, with ``render`` also ``frames``
    ``(T, 64, 64, 3)`` decoded by V, and ``return`` (steps survived). This is the loop any
    Gymnasium learner writes: observation -> C -> action -> ``env.step``.
    """
    from wmtutor.controller import Controller

    if env.num_envs != 1:
        raise ValueError(f"dream_episode plays one dream: num_envs must be 1, got {env.num_envs}")
    m, adapter = env.mdnrnn, env.adapter
    controller = Controller(m.z_dim, m.hidden, adapter.size, inputs, bias=False)
    controller.bias = len(params) > controller.n_params  # the paper's Doom C has no bias
    controller.set_params(params)
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {"z": [], "actions": [], "frames": []}
    total = 0.0
    for _ in range(max_steps or env.max_steps):
        z, h, c = np.split(obs, [m.z_dim, m.z_dim + m.hidden], axis=1)
        action = adapter(controller(z, h, c)[0])
        out["z"].append(z[0])
        out["actions"].append(action)
        if render:
            out["frames"].append(env.render())
        obs, reward, terminated, truncated, _ = env.step(np.asarray([action]))
        total += float(reward[0])
        if terminated[0] or truncated[0]:
            break
    result = {k: np.asarray(v) for k, v in out.items() if v}
    result["return"] = total
    return result


def get_score(
    game: str,
    preset: Preset | str | None = None,
    tau: float | None = None,
    sweep: bool = False,
    progress: bool = True,
    round: int = 0,
) -> dict:
    """The real-game test of the controller trained in the dream at ``tau`` (after ``round``
    rounds of iterative training; trained first if missing): ``score_controller``'s dict,
    cached in the controller's ``results.json``.

    The preset's ``dream.real_episodes`` episodes (``sweep_episodes`` for the sweep's runs).
    """
    import dataclasses
    import json

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    sizes = preset.game(game)
    tau = sizes.dream.tau if tau is None else tau
    params, log, spec = get_dream_controller(game, preset, tau, sweep, progress, round)
    episodes = sizes.dream.sweep_episodes if sweep else sizes.dream.real_episodes
    path = dream_dir(game, preset, tau, sweep, round) / "results.json"
    if path.exists():
        result = json.loads(path.read_text())
        if result.get("generation") == len(log) and result.get("episodes") == episodes:
            return result
    dream = dataclasses.replace(sizes.dream, tau=tau)
    result = score_controller(spec, params, episodes, sizes.controller.max_steps, dream=dream)
    result.update(generation=len(log), round=round)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def tau_sweep(game: str = "doom", preset: Preset | str | None = None,
              progress: bool = True) -> list[dict]:  # fmt: skip
    """The paper's temperature sweep: for each of the preset's ``dream.taus``, C trained in a
    dream at that temperature (``sweep_generations``), then tested in the real game
    (``sweep_episodes``) and in its own dream. One dict per tau; each run is cached."""
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    rows = []
    for tau in preset.game(game).dream.taus:
        result = get_score(game, preset, tau, sweep=True, progress=progress)
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


def dream_step(env: DreamEnv, action: int) -> tuple[np.ndarray, bool, float]:
    """One step of the first dream of ``env`` with the given action, as a person plays it:
    returns the frame V decodes, whether the dream ended, and M's P(done).

    The "play in the dream" widget (``wmtutor.viz.dream_player``) is buttons around this.
    After an ending, the next call starts a new dream (Gymnasium's next-step autoreset).
    """
    actions = np.full(env.num_envs, int(action))
    _, _, terminated, truncated, _ = env.step(actions)
    return env.render(), bool(terminated[0] or truncated[0]), float(env.done_prob[0])
