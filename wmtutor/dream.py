"""The dream: M as an environment, and a whole CMA-ES generation evaluated inside it at once.

* ``DreamEnv`` is a Gymnasium *vector* environment inside M: ``num_envs`` dreams step
  together. Each episode starts from the latent of a real frame (from the encoded
  rollouts, optionally with noise added for variety), M samples the next z at temperature
  ``tau``, and the episode ends when M's done head fires (probability > ``done_threshold``)
  or at the step cap (2100 for Doom). The reward is +1 per step survived (Doom) or M's
  predicted reward (CarRacing, Pong: the game's ``dream.reward``). The observation is
  what the controller reads: ``[z, h, c]``.
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
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from wmtutor.controller import Controller
from wmtutor.envs import GAMES, make_env
from wmtutor.files import digest, read_manifest
from wmtutor.mdnrnn import MDNRNN, load_mdnrnn, sample_next
from wmtutor.presets import Dream as DreamConfig
from wmtutor.rollouts import rollout_seed
from wmtutor.training import autocast
from wmtutor.vae import decode_latent


def step_noise(
    seed: int, step: int, rows: int, z_dim: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling noise ``(u, eps)`` of one dream step, each ``(rows, z_dim)`` on
    ``device``: fixed by ``(seed, step)`` so that a batch and its rows one by one can
    share it (on one device; a GPU's generator draws other numbers than the CPU's)."""
    g = torch.Generator(device).manual_seed(int(seed) * 1_000_003 + int(step))
    return (
        torch.rand(rows, z_dim, generator=g, device=device),
        torch.randn(rows, z_dim, generator=g, device=device),
    )


# ---------------------------------------------------------------------------------------
# The vector environment


class DreamEnv(gym.vector.VectorEnv):
    """``num_envs`` episodes inside M (see the module docstring), on M's device.

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
        initial_logvar: ``(N, z_dim)`` V's log-variance of those frames: a start is then
            drawn from ``N(mu, sigma^2)``, as ``InDream``'s starts are (instead of
            ``init_noise``).
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
        initial_logvar: np.ndarray | None = None,
    ):
        check_reward(reward)
        check_dream(tau, done_threshold)
        initial_z = np.asarray(initial_z, dtype=np.float32)
        if initial_z.ndim != 2 or initial_z.shape[1] != mdnrnn.z_dim:
            raise ValueError(f"initial_z must be (N, {mdnrnn.z_dim}), got {initial_z.shape}")
        self.mdnrnn, self.vae, self.game = mdnrnn.eval(), vae, game
        self.device = next(mdnrnn.parameters()).device
        self.initial_z = torch.from_numpy(initial_z).to(self.device)
        self.initial_std = None
        if initial_logvar is not None:
            logvar = np.asarray(initial_logvar, dtype=np.float32)
            if logvar.shape != initial_z.shape:
                raise ValueError(f"initial_logvar must be {initial_z.shape}, got {logvar.shape}")
            self.initial_std = torch.from_numpy(np.exp(0.5 * logvar)).to(self.device)
        self.num_envs, self.tau = num_envs, tau
        self.max_steps, self.reward_kind = max_steps, reward
        self.init_noise, self.done_threshold = init_noise, done_threshold
        self.render_mode = "rgb_array"
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
        pick = torch.from_numpy(pick).to(self.device)
        z = self.initial_z[pick].clone()
        if self.initial_std is not None:
            noise = self._rng.standard_normal(z.shape).astype(np.float32)
            z += self.initial_std[pick] * torch.from_numpy(noise).to(self.device)
        elif self.init_noise:
            noise = self._rng.standard_normal(z.shape).astype(np.float32)
            z += self.init_noise * torch.from_numpy(noise).to(self.device)
        rows = torch.from_numpy(np.asarray(rows)).to(self.device)
        self.z[rows] = z
        self.h[:, rows] = 0
        self.c[:, rows] = 0
        self.steps[rows.cpu().numpy()] = 0

    def _obs(self) -> np.ndarray:
        return torch.cat([self.z, self.h[0], self.c[0]], dim=1).cpu().numpy()

    def observation(self) -> np.ndarray:
        """The current observations ``(num_envs, z_dim + 2 * hidden)``: ``[z, h, c]``."""
        return self._obs()

    def restart(self, rows: np.ndarray) -> None:
        """Start the dreams ``rows`` again now (a same-step reset, as Stable-Baselines3's
        vector environments do) instead of at their next step."""
        rows = np.asarray(rows, dtype=int)
        self._start(rows)
        self._needs_reset[rows] = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        n = self.num_envs
        self.z = torch.zeros(n, self.mdnrnn.z_dim, device=self.device)
        self.h, self.c = self.mdnrnn.initial_state((n,), self.device)
        self.steps = np.zeros(n, dtype=int)
        self.done_prob = np.zeros(n, dtype=np.float32)
        self._start(np.arange(n))
        self._needs_reset[:] = False
        return self._obs(), {}

    @torch.no_grad()
    def step(self, actions):
        actions = torch.as_tensor(np.asarray(actions), device=self.device)
        a = self.adapter.features(actions)
        prediction, (self.h, self.c) = self.mdnrnn.step(self.z, a, (self.h, self.c))
        generator = torch.Generator(self.device).manual_seed(int(self._rng.integers(2**31)))
        self.z = sample_next(prediction, self.tau, generator)
        self.steps += 1
        done_prob = torch.sigmoid(prediction.done_logit).cpu().numpy()
        self.done_prob = done_prob  # (num_envs,): M's belief that this step ended the game
        terminated = done_prob > self.done_threshold
        truncated = (self.steps >= self.max_steps) & ~terminated
        if self.reward_kind == "survival":
            reward = np.ones(self.num_envs, dtype=np.float64)
        else:
            reward = prediction.reward.cpu().numpy().astype(np.float64)
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
        return decode_latent(self.vae, self.z[0])[0]


def check_reward(reward: str) -> None:
    """Refuse a dream reward other than ``presets.Dream``'s choices."""
    rule = DreamConfig.RULES["reward"]
    if not rule.ok(reward):
        raise ValueError(f"reward must be {rule.expected}, got {reward!r}")


def check_dream(tau: float, done_threshold: float) -> None:
    """Refuse a temperature or a done threshold that ``presets.Dream.RULES`` does not allow
    (tau in [0, 5]: hotter, M's samples are noise; the threshold in (0, 1))."""
    tau_rule, threshold_rule = DreamConfig.RULES["tau"], DreamConfig.RULES["done_threshold"]
    if not tau_rule.ok(tau):
        raise ValueError(f"the dream's tau {tau!r}: expected a number in "
                         f"[{tau_rule.low:g}, {tau_rule.high:g}]")  # fmt: skip
    if not threshold_rule.ok(done_threshold):
        raise ValueError(f"done_threshold {done_threshold!r}: expected a number in "
                         f"({threshold_rule.low:g}, {threshold_rule.high:g})")  # fmt: skip


# ---------------------------------------------------------------------------------------
# A whole generation in one batch


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
    bias: bool | None = None,
    done_threshold: float = 0.5,
    seed: int = 0,
    precision: str = "fp32",
    reward: str = "survival",
) -> np.ndarray:
    """Dream returns of every candidate's ``trials`` episodes: ``(P, trials)``, the steps
    survived (``reward`` "survival", Doom's) or the sum of M's predicted rewards
    ("predicted": CarRacing's tiles, Pong's points).

    All ``P * trials`` episodes advance together, one batched M step per time step on M's
    device; row ``p * trials + j`` is candidate p's trial j, starting from
    ``initial_z[j]`` (the same starts for every candidate, so they are compared fairly).
    Each row applies its own candidate's controller (``Controller.apply``) and the
    game's action adapter, in torch: nothing leaves the device until the returns. The
    sampling noise of each step comes from ``step_noise(seed, step)``. ``bias`` None:
    read off the length of the parameter vectors.
    """
    check_reward(reward)
    device = next(mdnrnn.parameters()).device
    adapter = make_env(game).adapter
    controller = _controller(mdnrnn, adapter.size, inputs, bias, params.shape[1], device)
    P = len(params)
    B = P * trials
    W, b = controller.unflatten(params)
    W, b = W.repeat_interleave(trials, 0), b.repeat_interleave(trials, 0)
    z = torch.as_tensor(np.asarray(initial_z, np.float32)[:trials], device=device).repeat(P, 1)
    h, c = mdnrnn.initial_state((B,), device)
    live = torch.arange(B, device=device)  # the rows still dreaming; the batch shrinks
    returns = torch.zeros(B, device=device)
    for t in range(max_steps):
        y = Controller.apply(W, b, controller.features(z, h[0], c[0]))
        a = adapter.features(adapter(y))
        with autocast(precision, device):
            prediction, _, (h, c) = mdnrnn(z[:, None], a[:, None], (h, c))
        prediction = type(prediction)(*(x[:, 0].float() for x in prediction))
        h, c = h.float(), c.float()
        u, eps = step_noise(seed, t, B, mdnrnn.z_dim, device)
        z = sample_next(prediction, tau, noise=(u[live], eps[live]))
        returns[live] += 1 if reward == "survival" else prediction.reward
        keep = torch.sigmoid(prediction.done_logit) <= done_threshold
        if not keep.all():
            if not keep.any():
                break
            live, z, W, b = live[keep], z[keep], W[keep], b[keep]
            h, c = h[:, keep], c[:, keep]
    return returns.reshape(P, trials).cpu().numpy()


def _controller(mdnrnn: MDNRNN, size: int, inputs: str, bias: bool | None, n_params: int,
                device: torch.device) -> Controller:  # fmt: skip
    """The controller whose parameter vectors are ``n_params`` long (bias None: guessed)."""
    if bias is None:
        bias = n_params != Controller(mdnrnn.z_dim, mdnrnn.hidden, size, inputs, False).n_params
    return Controller(mdnrnn.z_dim, mdnrnn.hidden, size, inputs, bias, device)


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
    bias: bool | None = None,
    done_threshold: float = 0.5,
    seed: int = 0,
    shared_noise: bool = True,
    reward: str = "survival",
) -> np.ndarray:
    """``dream_generation`` one episode at a time (the slow way; for checks and benchmarks).

    With ``shared_noise`` episode row r uses row r of ``step_noise(seed, t, P * trials)``,
    the same noise as the batch; without it each step draws its own (faster).
    """
    device = next(mdnrnn.parameters()).device
    adapter = make_env(game).adapter
    controller = _controller(mdnrnn, adapter.size, inputs, bias, params.shape[1], device)
    P = len(params)
    out = np.zeros((P, trials))
    generator = torch.Generator(device).manual_seed(seed)
    for p in range(P):
        controller.set_params(params[p])
        for j in range(trials):
            row = p * trials + j
            z = torch.as_tensor(np.asarray(initial_z, np.float32)[j : j + 1], device=device)
            state = mdnrnn.initial_state((1,), device)
            for t in range(max_steps):
                a = adapter.features(adapter(controller(z, state[0][0], state[1][0])))
                prediction, state = mdnrnn.step(z, a, state)
                if shared_noise:
                    u, eps = step_noise(seed, t, P * trials, mdnrnn.z_dim, device)
                    noise = (u[row : row + 1], eps[row : row + 1])
                    z = sample_next(prediction, tau, noise=noise)
                else:
                    z = sample_next(prediction, tau, generator)
                out[p, j] += 1 if reward == "survival" else prediction.reward.item()
                if torch.sigmoid(prediction.done_logit).item() > done_threshold:
                    break
    return out


# ---------------------------------------------------------------------------------------
# Training C in the dream: the judge that train_controller asks for fitness


def initial_latents(latents: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``logvar`` ``(N, z_dim)`` of the first frame of every encoded rollout: where
    dreams start (a dream's z0 is drawn from N(mu, sigma^2) of one of them).

    ``latents`` is a folder of encoded rollouts, or a ``.npz`` file that holds these two
    arrays already (a bundle's ``initial_latents.npz``: dreams without any data).
    """
    folder = Path(latents)
    if folder.suffix == ".npz" and not folder.is_dir():
        return _initial_latents_file(folder)
    manifest = read_manifest(folder)
    mu, logvar = [], []
    for entry in manifest["files"]:
        with np.load(folder / entry["file"], allow_pickle=False) as data:
            mu.append(data["mu"][0])
            logvar.append(data["logvar"][0])
    if not mu:
        raise ValueError(f"{folder} holds no encoded rollouts to start dreams from")
    return np.stack(mu), np.stack(logvar)


def _initial_latents_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``mu`` and ``logvar`` a first-frame file holds, checked (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, logvar = data["mu"], data["logvar"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a file of dream starts, mu and logvar "
                         f"({type(err).__name__}: {err})") from None  # fmt: skip
    if mu.ndim != 2 or mu.shape != logvar.shape or not len(mu):
        raise ValueError(f"{path}: mu {mu.shape} and logvar {logvar.shape}, expected two "
                         "(N, z_dim) arrays with N >= 1")  # fmt: skip
    return mu.astype(np.float32), logvar.astype(np.float32)


class InDream:
    """Fitness in M's dream: ``train_controller(..., judge=InDream(...))``.

    Each generation draws its own dream starts (``trials`` real first frames, z sampled
    from their N(mu, sigma^2)) and its own sampling noise, both fixed by ``(seed,
    generation)``, so resuming a run dreams exactly the same dreams. Every candidate of a
    generation gets the same starts and noise; the whole generation is one batch
    (``dream_generation``) on M's device.
    """

    where = "dream"

    def __init__(self, mdnrnn: MDNRNN, game: str, initial: tuple[np.ndarray, np.ndarray],
                 config: DreamConfig, inputs: str, bias: bool = True, seed: int = 0):  # fmt: skip
        check_dream(config.tau, config.done_threshold)
        self.mdnrnn, self.game, self.config = mdnrnn.eval(), game, config
        self.inputs, self.bias = inputs, bias
        self.mu, self.sigma = initial[0], np.exp(0.5 * initial[1])
        self.seed = seed
        # Survival is Doom's and was the only dream once: its description is unchanged.
        pays = "" if config.reward == "survival" else f", reward {config.reward}"
        self.description = (
            f"in the dream (tau {config.tau:g}, done threshold {config.done_threshold:g}{pays})"
        )
        self.returns_are_steps = config.reward == "survival"
        size = GAMES[game].controller_size
        self.n_params = Controller(mdnrnn.z_dim, mdnrnn.hidden, size, inputs, bias).n_params

    made_from: dict = {}  # from_spec records which M

    @classmethod
    def from_spec(cls, spec: dict, config: DreamConfig, seed: int = 0, mdnrnn=None,
                  device: torch.device | None = None) -> InDream:  # fmt: skip
        """The judge for an agent spec's M (loaded onto ``device`` unless given) and latents."""
        if spec.get("standardize"):
            raise ValueError(
                f"{spec['game']}: C's standardized inputs (the controller section's "
                "standardize) are for the real game only; the dream reads them raw"
            )
        mdnrnn = mdnrnn or load_mdnrnn(spec["mdnrnn"], device=device or spec.get("device"))
        judge = cls(mdnrnn, spec["game"], initial_latents(spec["latents"]), config,
                    spec["inputs"], spec.get("bias", True), seed=seed)  # fmt: skip
        judge.made_from = {"mdnrnn": digest(spec["mdnrnn"])}
        return judge

    def starts(self, stream: int, generation: int, n: int) -> tuple[np.ndarray, int]:
        """``n`` starting z ``(n, z_dim)`` and a noise seed, fixed by (stream, generation)."""
        rng = np.random.default_rng([self.seed, stream, generation])
        pick = rng.integers(len(self.mu), size=n)
        z0 = self.mu[pick] + self.sigma[pick] * rng.standard_normal((n, self.mu.shape[1]))
        return z0.astype(np.float32), rollout_seed(self.seed + stream, generation) % 2**31

    def dream(self, params: np.ndarray, z0: np.ndarray, noise_seed: int,
              max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(P, len(z0))``: every candidate ``params[p]`` dreams from every start."""
        return dream_generation(
            self.mdnrnn, self.game, np.asarray(params), z0, len(z0), tau=self.config.tau,
            max_steps=max_steps, inputs=self.inputs, bias=self.bias,
            done_threshold=self.config.done_threshold, seed=noise_seed,
            precision=self.config.precision, reward=self.config.reward,
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

    def test(self, params: np.ndarray, episodes: int, max_steps: int) -> np.ndarray:
        """Returns ``(episodes,)`` of a trained C in its dream, on starts no generation used
        (stream 2): its own score beside the real game's."""
        z0, noise_seed = self.starts(2, 0, episodes)
        return self.dream(np.asarray(params)[None], z0, noise_seed, max_steps)[0]

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------
# Playing in the dream: one episode, one step


@torch.no_grad()
def dream_episode(
    env: DreamEnv,
    params: np.ndarray,
    inputs: str = "zch",
    seed: int = 0,
    max_steps: int | None = None,
    render: bool = True,
    bias: bool | None = None,
) -> dict[str, np.ndarray]:
    """The agent with controller ``params`` in its dream (``env.num_envs`` must be 1).

    Returns ``z`` ``(T, z_dim)``, ``actions`` ``(T,)``, ``done_prob`` ``(T,)`` (M's
    P(done) after each step), with ``render`` also ``frames`` ``(T, 64, 64, 3)`` decoded by
    V, and ``return`` (steps survived). This is the loop any Gymnasium learner writes:
    observation -> C -> action -> ``env.step``.
    """
    if env.num_envs != 1:
        raise ValueError(f"dream_episode plays one dream: num_envs must be 1, got {env.num_envs}")
    m, adapter = env.mdnrnn, env.adapter
    params = np.asarray(params)
    controller = _controller(m, adapter.size, inputs, bias, len(params), env.device)
    controller.set_params(params)
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {"z": [], "actions": [], "frames": [], "done_prob": []}
    total = 0.0
    for _ in range(max_steps or env.max_steps):
        z, h, c = np.split(obs, [m.z_dim, m.z_dim + m.hidden], axis=1)
        action = adapter(controller(z, h, c)[0].cpu().numpy())
        out["z"].append(z[0])
        out["actions"].append(action)
        if render:
            out["frames"].append(env.render())
        obs, reward, terminated, truncated, _ = env.step(np.asarray([action]))
        out["done_prob"].append(float(env.done_prob[0]))
        total += float(reward[0])
        if terminated[0] or truncated[0]:
            break
    result = {k: np.asarray(v) for k, v in out.items() if v}
    result["return"] = total
    return result


def dream_step(env: DreamEnv, action: int) -> tuple[np.ndarray, bool, float]:
    """One step of the first dream of ``env`` with the given action, as a person plays it:
    returns the frame V decodes, whether the dream ended, and M's P(done).

    The "play in the dream" widget (``wmtutor.viz.dream_player``) is buttons around this.
    After an ending, the next call starts a new dream (Gymnasium's next-step autoreset).
    """
    actions = np.full(env.num_envs, int(action))
    _, _, terminated, truncated, _ = env.step(actions)
    return env.render(), bool(terminated[0] or truncated[0]), float(env.done_prob[0])
