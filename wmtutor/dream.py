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

import gymnasium as gym
import numpy as np
import torch

from wmtutor.envs import GAMES, action_features
from wmtutor.mdnrnn import MDNRNN, sample_next
from wmtutor.training import autocast


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
        self.single_action_space = env.action_space
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
    alive = torch.ones(B, dtype=torch.bool)
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
        z = sample_next(prediction, tau, noise=step_noise(seed, t, B, mdnrnn.z_dim))
        returns += alive.float()
        alive &= torch.sigmoid(prediction.done_logit) <= done_threshold
        if not alive.any():
            break
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
