"""C: the linear controller, the agent V + M + C in the real game, and training it with CMA-ES.

The controller is one linear layer with a tanh, ``y = tanh(W [z, h] + b)``, and each
game's action adapter (``wmtutor.envs``) turns ``y`` into an action: for CarRacing
steer = y0, gas = (y1 + 1) / 2, brake = clip(y2, 0, 1) (288 inputs, 3 outputs, 867
parameters); for Doom one output split at ±1/3 into left / stay / right. ``inputs``
chooses what C sees, for the paper's ablations: ``"z"`` (V only), ``"zh"`` (V and M's
hidden state, the default), ``"zch"`` (also M's cell state, the paper's Doom controller).
In the real game C may read its inputs standardized (each in units of its spread over the
data) and, with ``components``, only their first principal components: still a linear
function of ``[z, h]``, with far fewer numbers for CMA-ES to search (README, "Pong").
``Controller`` is the only implementation: the real game uses one parameter vector, the
dream (``wmtutor.dream``) a different one per row of a batch, through the same methods.

The work is in *evaluating* C: every candidate of every CMA-ES generation plays several
episodes. ``run_episodes`` plays them all at once in one process (one batched V, M and C
call per step for every live game, each game with its own candidate's C if need be), and
``RealGame`` farms the candidates out to any ``concurrent.futures.Executor``: local
worker processes by default (each loads V and M once, and plays a block of candidates in
one batch), or a Dask cluster (``distributed.Client(...).get_executor()``, a candidate
per task). A worker that crashes or hangs past the timeout loses nothing: its candidates
are run again, with a warning. ``train_controller`` is the CMA-ES loop; it asks a
*judge* (``RealGame`` here, ``wmtutor.dream.InDream`` for the dream) for the returns of
each generation, and saves the whole state after every generation (plain npz and JSON):
running again resumes exactly.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from wmtutor.cmaes import make_es
from wmtutor.envs import GAMES, GameEnv, make_env
from wmtutor.files import digest, read_manifest, save_arrays, write_manifest
from wmtutor.layout import CONTROLLER_LOG, CONTROLLER_STATE, MANIFEST
from wmtutor.mdnrnn import load_mdnrnn
from wmtutor.presets import Controller as ControllerConfig
from wmtutor.rollouts import check_workers, make_policy, play, rollout_seed
from wmtutor.training import load_checkpoint
from wmtutor.utils import atomic_path, die_with_parent, get_device, remove_stale_tmp
from wmtutor.vae import load_vae, to_input

INPUTS = ("z", "zh", "zch")


# ---------------------------------------------------------------------------------------
# The controller


def features(inputs: str, z, h, c, device: torch.device | str) -> torch.Tensor:
    """What C reads, for a batch: ``[z]``, ``[z, h]`` or ``[z, c, h]`` (the paper's order),
    ``(N, in_features)`` float32 on ``device`` (``c`` is only read for ``zch``)."""
    parts = {"z": [z], "zh": [z, h], "zch": [z, c, h]}[inputs]
    return torch.cat([torch.as_tensor(p, device=device).float() for p in parts], -1)


class Controller:
    """``y = tanh(W x + b)`` with x = z, [z, h] or [z, c, h]; parameters as one flat vector.

    Args:
        z_dim, hidden: sizes of V's z and M's hidden state.
        size: outputs (the game adapter's ``size``: 3 for CarRacing, 1 for Doom and Pong).
        inputs: ``"z"``, ``"zh"`` or ``"zch"``.
        bias: with a bias ``b`` (the paper's Doom controller has none).
        device: where ``W`` and ``b`` live (M's device).
        components: 0 (W reads every input), or W reads this many principal components
            of the standardized inputs (``set_input_stats`` gives their directions).

    ``in_features`` is the size of ``x`` (``z_dim + hidden`` for ``zh``); ``n_inputs``
    what W reads: ``in_features``, or ``components``. The flat layout is
    ``[W.ravel(), b]`` (``W`` is ``(size, n_inputs)``). One
    controller: ``set_params`` then ``controller(z, h, c)``. A batch of controllers, one
    per row (a CMA-ES generation in the dream): ``W, b = controller.unflatten(params)``
    then ``Controller.apply(W, b, controller.features(z, h, c))``.
    """

    def __init__(
        self,
        z_dim: int,
        hidden: int,
        size: int,
        inputs: str = "zh",
        bias: bool = True,
        device: str | torch.device | None = None,
        components: int = 0,
    ):
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.z_dim, self.hidden, self.size, self.inputs = z_dim, hidden, size, inputs
        self.bias = bool(bias)
        self.in_features = z_dim + hidden * (len(inputs) - 1)
        if not (isinstance(components, int) and 0 <= components <= self.in_features):
            raise ValueError(f"components {components!r}: expected 0 (all inputs) to "
                             f"{self.in_features} (the size of {inputs!r})")  # fmt: skip
        self.components = components
        self.n_inputs = components or self.in_features
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.W = torch.zeros(size, self.n_inputs, device=self.device)
        self.b = torch.zeros(size, device=self.device)
        self.shift: torch.Tensor | None = None  # input standardization (set_input_stats)
        self.scale: torch.Tensor | None = None
        self.basis: torch.Tensor | None = None  # (components, in_features), or None

    @property
    def n_params(self) -> int:
        return self.W.numel() + (self.size if self.bias else 0)

    def get_params(self) -> np.ndarray:
        """All parameters as one float64 vector (what CMA-ES searches)."""
        parts = [self.W.ravel(), self.b] if self.bias else [self.W.ravel()]
        return torch.cat(parts).double().cpu().numpy()

    def set_params(self, params: np.ndarray | torch.Tensor) -> None:
        """Load a flat vector in place (no new tensors: setting it a million times leaks
        nothing)."""
        W, b = self.unflatten(torch.as_tensor(np.asarray(params))[None])
        self.W.copy_(W[0])
        self.b.copy_(b[0])

    def unflatten(self, params: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat parameters of P controllers ``(P, n_params)`` -> ``W``
        ``(P, size, n_inputs)`` and ``b (P, size)`` (zeros without a bias), float32 on this
        controller's device."""
        params = torch.as_tensor(params, dtype=torch.float32, device=self.device)
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(
                f"expected {self.n_params} parameters per controller, got shape "
                f"{tuple(params.shape)}"
            )
        n_w = self.W.numel()
        W = params[:, :n_w].reshape(-1, self.size, self.n_inputs)
        b = params[:, n_w:] if self.bias else params.new_zeros(len(params), self.size)
        return W, b

    def features(self, z, h, c) -> torch.Tensor:
        """What W reads for a batch, ``(N, n_inputs)`` (``c`` is only read for ``zch``):
        standardized if ``set_input_stats`` was called, then its principal components
        if this C reads ``components``."""
        x = features(self.inputs, z, h, c, self.device)
        if self.shift is not None:
            x = (x - self.shift) / self.scale
        if self.basis is not None:
            x = x @ self.basis.T
        elif self.components:
            raise RuntimeError("this C reads principal components: set_input_stats first")
        return x

    def set_input_stats(self, mean: np.ndarray, std: np.ndarray,
                        basis: np.ndarray | None = None) -> None:  # fmt: skip
        """Read ``(x - mean) / std`` from now on (``input_stats``): each input in units of
        its own spread over the data, so that inputs that barely move (Pong's z) still
        move C. ``(in_features,)`` each. A C with ``components`` reads that standardized
        x's coordinates on ``basis`` ``(components, in_features)``, the first principal
        directions; a C without them takes no basis."""
        if mean.shape != (self.in_features,) or std.shape != (self.in_features,):
            raise ValueError(
                f"input stats of shape {mean.shape} and {std.shape}: expected "
                f"({self.in_features},) each for this controller's inputs {self.inputs!r}"
            )
        want = (self.components, self.in_features) if self.components else None
        if (None if basis is None else basis.shape) != want:
            raise ValueError(
                f"a basis of shape {None if basis is None else basis.shape}: this C reads "
                + (f"{self.components} principal components, expected {want}" if want else
                   "its inputs as they are, expected none")
            )  # fmt: skip
        self.shift = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.scale = torch.as_tensor(std, dtype=torch.float32, device=self.device) + 1e-6
        if basis is not None:
            self.basis = torch.as_tensor(basis, dtype=torch.float32, device=self.device)

    @staticmethod
    def apply(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Row i's controller on row i's input: ``tanh(W[i] x[i] + b[i])``, ``(N, size)``."""
        return torch.tanh(torch.einsum("ni,noi->no", x, W) + b)

    def __call__(self, z, h, c) -> torch.Tensor:
        """Outputs ``y`` in [-1, 1], ``(N, size)``, for ``z (N, z_dim)``, ``h, c (N, hidden)``."""
        return torch.tanh(self.features(z, h, c) @ self.W.T + self.b)


# ---------------------------------------------------------------------------------------
# A non-linear C: PPO's actor (trained by wmtutor.ppo), with C's interface


class PolicyController(nn.Module):
    """PPO's actor as C: ``controller(z, h, c)`` -> ``y`` ``(N, 1)`` in {-1, 0, +1} (the
    most likely of the three choices), for the real-game ``Agent`` and its workers.

    The layers are SB3's ``MlpPolicy`` actor (its ``mlp_extractor.policy_net`` then
    ``action_net``), rebuilt here so that playing needs neither SB3 nor a pickle.
    """

    def __init__(self, z_dim: int, hidden: int, inputs: str, net: tuple[int, ...]):
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.inputs, self.net = inputs, tuple(net)
        sizes = [z_dim + hidden * (len(inputs) - 1), *net]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.policy_net = nn.Sequential(*layers)
        self.action_net = nn.Linear(sizes[-1], 3)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` logits of low / stay / high for features ``x`` ``(N, in_features)``."""
        return self.action_net(self.policy_net(x))

    @torch.no_grad()
    def __call__(self, z, h, c) -> torch.Tensor:
        x = features(self.inputs, z, h, c, self.action_net.weight.device)
        return (self.logits(x).argmax(-1, keepdim=True) - 1).float()


def actor_state(sb3_policy_state: dict) -> dict:
    """The actor's weights out of SB3's ``MlpPolicy`` state dict (``PolicyController``'s
    names)."""
    return {
        k.removeprefix("mlp_extractor."): v
        for k, v in sb3_policy_state.items()
        if k.startswith(("mlp_extractor.policy_net.", "action_net."))
    }


def load_policy(path: str | os.PathLike, device: torch.device | str | None = None
                ) -> PolicyController:  # fmt: skip
    """A trained PPO actor from ``ppo.pt`` (``wmtutor.ppo.train_ppo``; read on the CPU
    with ``weights_only=True``, then moved to ``device``)."""
    saved = load_checkpoint(path)
    try:
        p = saved["policy"]
        policy = PolicyController(p["z_dim"], p["hidden"], p["inputs"], tuple(p["net"]))
        policy.load_state_dict(actor_state(saved["sb3_policy"]))
    except (KeyError, RuntimeError, TypeError) as e:
        raise ValueError(f"{path} is not a PPO checkpoint of this course: {e}") from e
    return policy.to(device or "cpu").eval()


# ---------------------------------------------------------------------------------------
# The agent in the real game: many episodes at once, one batched call per step


class Agent:
    """V + M + C for a batch of games: ``act(frames, rows)`` for every live game in one call.

    Everything stays on V's device (a GPU, or the CPU); only the frames come in and the
    game actions go out.
    """

    def __init__(self, vae, mdnrnn, controller: Controller, adapter):
        self.vae, self.mdnrnn, self.controller, self.adapter = vae, mdnrnn, controller, adapter
        self.device = next(vae.parameters()).device
        self.per_game: tuple[torch.Tensor, torch.Tensor] | None = None  # (W, b), a C per game

    def set_params(self, params: np.ndarray) -> None:
        """C's parameters: ``(n_params,)``, one C for every game, or ``(n_games, n_params)``,
        game i played by row i's C (a block of CMA-ES candidates in one batch)."""
        params = np.asarray(params)
        if params.ndim == 1:
            self.controller.set_params(params)
            self.per_game = None
        else:
            rows = torch.as_tensor(params, dtype=torch.float32, device=self.controller.device)
            self.per_game = self.controller.unflatten(rows)

    def reset(self, n: int) -> None:
        h, c = self.mdnrnn.initial_state((n,), self.device)
        self.h, self.c = h[0], c[0]  # (n, hidden)

    @torch.no_grad()
    def act(self, frames: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions for the games ``rows`` (indices into the batch), from their frames.

        Returns the game actions (one per row) and z ``(len(rows), z_dim)``; M's state of
        those rows advances by one step.
        """
        mu, _ = self.vae.encode(to_input(frames).to(self.device))
        z = mu.float()
        rows = torch.as_tensor(rows, device=self.device)
        h, c = self.h[rows], self.c[rows]
        if self.per_game is None:
            y = self.controller(z, h, c)
        else:
            W, b = self.per_game
            y = Controller.apply(W[rows], b[rows], self.controller.features(z, h, c))
        actions = self.adapter(y)
        a = self.adapter.features(actions)
        _, _, (h_new, c_new) = self.mdnrnn(z[:, None], a[:, None], (h[None], c[None]))
        self.h[rows], self.c[rows] = h_new[0], c_new[0]
        return actions.cpu().numpy(), z.cpu().numpy()


def run_episodes(
    agent: Agent,
    envs: Sequence,
    seeds: Sequence[int],
    max_steps: int,
    record: bool = False,
) -> dict:
    """Play ``len(seeds)`` episodes at once (game i on ``envs[i]``), up to ``max_steps`` each.

    Returns ``returns`` ``(n,)`` and ``lengths`` ``(n,)``; with ``record=True`` also, for
    the first game, its ``frames``, ``z``, ``actions`` and ``rewards`` per step (for GIFs;
    ``rewards[t]`` is what the action taken on ``frames[t]`` earned).
    """
    n = len(seeds)
    agent.reset(n)
    frames = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=False)])
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    alive = np.ones(n, dtype=bool)
    recording = {"frames": [], "z": [], "actions": [], "rewards": []}
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
            if record and i == 0:
                recording["rewards"].append(float(reward))
            returns[i] += reward
            lengths[i] += 1
            if terminated or truncated:
                alive[i] = False
    out = {"returns": returns, "lengths": lengths}
    if record:
        out.update({k: np.asarray(v) for k, v in recording.items()})
    return out


def input_stats(
    latents: str | os.PathLike,
    mdnrnn,
    adapter,
    inputs: str,
    n_rollouts: int = 10,
    components: int = 0,
) -> dict[str, np.ndarray]:
    """What C standardizes its inputs with, from the first ``n_rollouts`` encoded rollouts
    in ``latents`` (z is their ``mu``, h and c M's state before each step, fed the recorded
    actions: what C reads when it plays): ``input_mean`` and ``input_std``, each
    ``(in_features,)``, and with ``components`` also ``input_basis``
    ``(components, in_features)``: the first principal directions of the standardized
    inputs, each divided by its spread (C reads coordinates of unit spread on them)."""
    folder = Path(latents)
    files = read_manifest(folder)["files"][:n_rollouts] if folder.is_dir() else []
    if not files:
        raise ValueError(
            f"{folder}: no encoded rollouts to standardize C's inputs with (a folder of "
            "`wmtutor encode`'s files is needed)"
        )
    device = next(mdnrnn.parameters()).device
    xs = []
    for entry in files:
        with np.load(folder / entry["file"], allow_pickle=False) as data:
            z = torch.as_tensor(data["mu"], dtype=torch.float32, device=device)
            a = adapter.features(torch.as_tensor(data["actions"], device=device)).float()
        state, hs, cs = mdnrnn.initial_state((1,), device), [], []
        for t in range(len(z)):
            hs.append(state[0][0, 0])
            cs.append(state[1][0, 0])
            _, state = mdnrnn.step(z[t], a[t], state)
        xs.append(features(inputs, z, torch.stack(hs), torch.stack(cs), device))
    x = torch.cat(xs).double()
    mean, std = x.mean(0), x.std(0)
    stats = {"input_mean": mean, "input_std": std}
    if components:
        if components > min(x.shape):
            raise ValueError(
                f"components {components}: more than the {min(x.shape)} that "
                f"{len(x)} steps of {x.shape[1]} inputs have (fewer, or more rollouts)"
            )
        centred = (x - mean) / (std.float() + 1e-6).double()  # as Controller.features reads
        centred = centred - centred.mean(0)
        _, s, vt = torch.linalg.svd(centred, full_matrices=False)
        vt = vt * torch.where(vt.sum(1, keepdim=True) < 0, -1.0, 1.0)  # one sign, reproducible
        spread = s[:components] / (len(x) - 1) ** 0.5
        stats["input_basis"] = vt[:components] / spread[:, None].clamp(min=1e-6)
    return {k: v.float().cpu().numpy() for k, v in stats.items()}


# C's input statistics, in a spec and in state.npz (the basis only where C reads components)
STATS = ("input_mean", "input_std", "input_basis")


def with_input_stats(spec: dict, folder: str | os.PathLike | None = None) -> dict:
    """``spec`` with the statistics its C standardizes its inputs with (``input_mean``,
    ``input_std``: lists of ``in_features`` numbers, and where it reads ``components``,
    ``input_basis``: that many such lists), where it has ``standardize``.

    They are part of what a trained C is, so they come from the controller's own
    ``state.npz`` in ``folder`` when it was trained with them (a bundled C plays without
    the data); otherwise they are computed once here from the spec's latents
    (``input_stats``) and every worker reads them from the spec. A spec without
    ``standardize``, or with its stats already, is returned as it is."""
    names = _stat_names(spec)
    if not spec.get("standardize") or all(k in spec for k in names):
        return spec
    if folder is not None and (Path(folder) / CONTROLLER_STATE).exists():
        state = load_controller_state(folder)
        if all(k in state for k in names):
            return {**spec, **{k: state[k].tolist() for k in names}}
    env = _game({**spec, "shrink": 1})  # for its action adapter only
    try:
        mdnrnn = load_mdnrnn(spec["mdnrnn"], device=get_device(spec.get("device")))
        stats = input_stats(spec["latents"], mdnrnn, env.adapter, spec["inputs"],
                            components=spec.get("components", 0))  # fmt: skip
    finally:
        env.close()
    return {**spec, **{k: v.tolist() for k, v in stats.items()}}


def _stat_names(spec: dict) -> tuple[str, ...]:
    """The statistics a standardized C of ``spec`` reads (``STATS``, the basis only with
    ``components``)."""
    if spec.get("components") and not spec.get("standardize"):
        raise ValueError(f"components {spec['components']}: C reads principal components of "
                         "its standardized inputs, so it needs standardize")  # fmt: skip
    return STATS if spec.get("components") else STATS[:2]


# What a process needs to build the agent: plain data, so it pickles cheaply to any worker.
# {"game", "vae", "mdnrnn" (checkpoint paths), "inputs", "bias", "frame_skip", "latents",
#  "device", "standardize", "components", "input_mean", "input_std", "input_basis"};
#  ``wmtutor.pipeline.agent_spec`` makes one, ``with_input_stats`` adds the stats.
_WORKER: dict = {}


def close_games() -> None:
    """Close this process's cached games (``make_agent``'s): a ViZDoom engine is a process of
    its own that outlives ours unless its game is closed. Runs at exit too."""
    for env in _WORKER.pop("envs", []):
        env.close()


atexit.register(close_games)


def make_agent(spec: dict, n_envs: int) -> tuple[Agent, list]:
    """The agent and ``n_envs`` games of this process, built once and reused."""
    key = json.dumps(spec, sort_keys=True)
    if _WORKER.get("key") != key:
        close_games()
        device = get_device(spec.get("device"))
        vae = load_vae(spec["vae"], device=device)
        mdnrnn = load_mdnrnn(spec["mdnrnn"], device=device)
        env = _game(spec)
        if spec.get("policy"):  # a PPO actor (wmtutor.ppo) in C's place
            controller = load_policy(spec["policy"], device)
        else:
            controller = controller_for(spec, mdnrnn)
            if spec.get("standardize"):  # the spec's stats (with_input_stats), else the data's
                names = _stat_names(spec)
                stats = (
                    {k: spec[k] for k in names}
                    if all(k in spec for k in names)
                    else input_stats(spec["latents"], mdnrnn, env.adapter, spec["inputs"],
                                     components=spec.get("components", 0))
                )  # fmt: skip
                controller.set_input_stats(*(np.asarray(stats[k], dtype=np.float32)
                                             for k in names))  # fmt: skip
        _WORKER.clear()
        _WORKER.update(key=key, agent=Agent(vae, mdnrnn, controller, env.adapter), envs=[env])
    envs = _WORKER["envs"]
    while len(envs) < n_envs:
        envs.append(_game(spec))
    return _WORKER["agent"], envs[:n_envs]


def _game(spec: dict) -> GameEnv:
    """A game for ``spec``'s agent: its frame skip, and CarRacing's ``shrink`` if any."""
    shrink = spec.get("shrink", 1)
    options = {"shrink": shrink} if shrink != 1 else {}
    return make_env(spec["game"], frame_skip=spec.get("frame_skip", 1), **options)


def evaluate_candidate(spec: dict, params: np.ndarray | None, seeds: list[int],
                       max_steps: int, length_bonus: float = 0.0):  # fmt: skip
    """Returns of one parameter vector over ``seeds`` episodes (runs in a worker), a list
    ``(len(seeds),)``; ``params`` None for a spec whose ``policy`` is a trained PPO actor.
    ``params`` ``(K, n_params)``, a block of K candidates, plays all their K × len(seeds)
    games in one batch (one V, M and C call per step for all of them: V's convolutions
    cost far less per frame in a batch) and returns K lists, each candidate's.

    ``length_bonus`` adds ``length_bonus * steps / (max_steps + 1)`` to each return, the
    share of the cap the episode lasted: a tie-break (less than ``length_bonus``) for a
    game where every early candidate scores the same (Pong: all 21 points lost)."""
    block = params is not None and np.ndim(params) == 2
    per_game = np.repeat(np.asarray(params), len(seeds), axis=0) if block else params
    games = list(seeds) * (len(params) if block else 1)  # game i: candidate i // len(seeds)
    agent, envs = make_agent(spec, len(games))
    _set_params(agent, spec, per_game)
    played = run_episodes(agent, envs, games, max_steps)
    returns = played["returns"] + length_bonus * played["lengths"] / (max_steps + 1)
    return returns.reshape(len(params), len(seeds)).tolist() if block else returns.tolist()


def check_params(spec: dict, params: np.ndarray | None) -> None:
    """C's parameters for a linear C; None where the spec's ``policy`` is a PPO actor."""
    if spec.get("policy") and params is not None:
        raise ValueError("this spec plays a PPO actor (its 'policy'): pass params=None")
    if not spec.get("policy") and params is None:
        raise ValueError("params is None, but the spec has no PPO 'policy' to play")


def _set_params(agent: Agent, spec: dict, params: np.ndarray | None) -> None:
    check_params(spec, params)
    if params is not None:
        agent.set_params(params)


# ---------------------------------------------------------------------------------------
# Running many evaluations on an executor, surviving crashed and hung workers


def _worker_start(n_threads: int) -> None:
    """A local worker's initializer: one torch thread, and it dies with its parent."""
    die_with_parent()
    torch.set_num_threads(n_threads)  # one process per core: no thread oversubscription


def _ready(module: str) -> int:
    """Import ``module`` (the task function's) in a worker; the pool waits for this before
    any task's clock starts, so a timeout never counts a worker's start-up."""
    import importlib  # the module is only known at run time

    importlib.import_module(module)
    time.sleep(0.2)  # hold this worker, so that the next warm-up call goes to another
    return os.getpid()


class LocalPool:
    """Worker processes (spawned) behind ``submit``; ``restart()`` replaces them all.

    A ``ProcessPoolExecutor`` cannot stop one hung task or survive a dead worker, so the
    pool is rebuilt from scratch when that happens. Workers die with this process, even
    if it is killed (``wmtutor.utils.die_with_parent``).
    """

    def __init__(self, workers: int):
        self.workers = check_workers(workers)
        self._warm: set[str] = set()
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.executor = cf.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_worker_start, initargs=(1,)
        )
        self._warm = set()

    def prepare(self, fn: Callable) -> None:
        """Start every worker and import ``fn``'s module in it (before tasks are timed)."""
        if fn.__module__ in self._warm:
            return
        futures = [self.executor.submit(_ready, fn.__module__) for _ in range(self.workers)]
        cf.wait(futures)
        for f in futures:
            f.result()
        self._warm.add(fn.__module__)

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

    def prepare(self, fn: Callable) -> None:
        pass

    def submit(self, fn, *args) -> cf.Future:
        return self.executor.submit(fn, *args)

    def restart(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def make_pool(executor: cf.Executor | LocalPool | None, workers: int | None
              ) -> LocalPool | ExecutorPool:  # fmt: skip
    """``executor`` (e.g. Dask's) if given, else ``workers`` local processes (default: one
    per core). A ``LocalPool`` passed as ``executor`` is used as it is (its owner shuts it
    down), so that several evaluations share its started workers."""
    if isinstance(executor, LocalPool):
        return executor
    return ExecutorPool(executor) if executor else LocalPool(check_workers(workers))


def run_tasks(
    pool,
    fn: Callable,
    tasks: list[tuple],
    timeout: float,
    retries: int = 3,
    on_result: Callable[[int, object], None] | None = None,
) -> list:
    """Run ``fn(*task)`` for every task on ``pool``; return the results in order.

    A task that raises (a crashed worker) or takes longer than ``timeout`` seconds is run
    again (up to ``retries`` times), with a warning; the others keep their results. The
    clock starts once the workers are up (``pool.prepare``). ``on_result(i, result)`` is
    called as each task finishes (a progress bar).
    """
    if not timeout > 0:
        raise ValueError(f"timeout {timeout!r}: expected a number of seconds > 0")
    results: dict[int, object] = {}
    attempts = dict.fromkeys(range(len(tasks)), 0)
    errors: dict[int, str] = {}
    while len(results) < len(tasks):
        pool.prepare(fn)
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
                    if on_result:
                        on_result(i, results[i])
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
                        f"{errors.get(i, f'a timeout ({timeout:g} s)')}; giving up (a longer "
                        "--timeout helps if the episodes are just slow)"
                    )
            pool.restart()
    return [results[i] for i in range(len(tasks))]


# ---------------------------------------------------------------------------------------
# Judges: who says how good a generation's candidates are


class Judge(Protocol):
    """What ``train_controller`` asks for returns: ``RealGame`` or ``dream.InDream``."""

    where: str  # "real" or "dream", in the log
    description: str  # e.g. "in the real game", recorded in the state
    n_params: int  # the size of C's parameter vector
    made_from: dict  # digests of the checkpoints it judges with, recorded in the state

    def population(self, solutions: np.ndarray, generation: int, trials: int,
                   max_steps: int) -> np.ndarray: ...  # fmt: skip

    def mean(self, params: np.ndarray, generation: int, episodes: int,
             max_steps: int) -> np.ndarray: ...  # fmt: skip

    def close(self) -> None: ...


def controller_for(spec: dict, mdnrnn=None, device: torch.device | None = None) -> Controller:
    """The (zero) controller of ``spec``'s agent: its sizes, inputs, bias and components
    (without its input statistics)."""
    mdnrnn = mdnrnn or load_mdnrnn(spec["mdnrnn"], device=device)
    size = GAMES[spec["game"]].controller_size
    return Controller(mdnrnn.z_dim, mdnrnn.hidden, size, spec["inputs"], spec.get("bias", True),
                      next(mdnrnn.parameters()).device, spec.get("components", 0))  # fmt: skip


MAX_BLOCK_GAMES = 16  # games one local worker plays at once for a block of candidates


class RealGame:
    """Fitness in the real game: each candidate's episodes run on a pool of workers.

    Args:
        spec: the agent (``wmtutor.pipeline.agent_spec``).
        seed: the run's seed; generation g's episodes get seeds derived from it.
        executor: e.g. Dask's (``Client(...).get_executor()``); else ``workers`` local
            processes (default: one per core).
        timeout: seconds before a candidate's evaluation counts as hung.
        evaluate: the function a worker runs (tests pass a stand-in for the game).
        n_tasks: how many tasks the evaluation of the mean is split into.
        length_bonus: the candidates' tie-break for how long they lasted
            (``evaluate_candidate``); the mean's evaluation is the plain return.
        shrink: CarRacing drawn on a canvas this many times smaller on each side, for
            the candidates and the mean's evaluation (``make_env``'s ``shrink``; not the
            same bytes: a test elsewhere plays ``spec`` as it is).
    """

    where = "real"
    description = "in the real game"

    def __init__(self, spec: dict, seed: int = 0, *, executor: cf.Executor | None = None,
                 workers: int | None = None, timeout: float = 600.0,
                 evaluate: Callable = evaluate_candidate, n_tasks: int | None = None,
                 length_bonus: float = 0.0, shrink: int = 1):  # fmt: skip
        if not timeout > 0:
            raise ValueError(f"timeout {timeout!r}: expected a number of seconds > 0")
        if not length_bonus >= 0:
            raise ValueError(f"length_bonus {length_bonus!r}: expected a number >= 0")
        if shrink != 1 and spec["game"] != "carracing":
            raise ValueError(f"shrink={shrink!r}: only CarRacing can be drawn smaller")
        spec = with_input_stats({**spec, "shrink": shrink} if shrink != 1 else spec)
        self.spec, self.seed, self.timeout, self.evaluate = spec, seed, timeout, evaluate
        self.length_bonus = float(length_bonus)
        self.n_params = controller_for(spec, device=torch.device("cpu")).n_params
        self.made_from = {"vae": digest(spec["vae"]), "mdnrnn": digest(spec["mdnrnn"])}
        self.pool = make_pool(executor, workers)
        self.n_tasks = n_tasks or max(1, getattr(self.pool, "workers", 4) * 4)

    def population(self, solutions: np.ndarray, generation: int, trials: int,
                   max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(P, trials)`` (with the length bonus): every candidate plays the same
        ``trials`` seeds. On local workers the candidates go in blocks, one or more per
        worker, each played in one batch (``evaluate_candidate``); on another executor
        (Dask: no worker count) one candidate per task, as many tasks as it can take."""
        seeds = [rollout_seed(self.seed, generation, j) for j in range(trials)]
        blocks = np.array_split(np.asarray(solutions), self.n_blocks(len(solutions), trials))
        tasks = [(self.spec, x, seeds, max_steps, self.length_bonus) for x in blocks]
        timeout = self.timeout * max(len(x) for x in blocks)  # ``timeout`` is per candidate
        return np.concatenate(run_tasks(self.pool, self.evaluate, tasks, timeout))

    def n_blocks(self, population: int, trials: int) -> int:
        """How many blocks a population is split into: one per local worker, more where a
        block would hold over ``MAX_BLOCK_GAMES`` games (each a game engine in the worker,
        a process of its own for ViZDoom); each candidate alone on other executors."""
        workers = getattr(self.pool, "workers", None)
        if workers is None:
            return population
        return min(population, max(workers, -(-population * trials // MAX_BLOCK_GAMES)))

    def mean(self, params: np.ndarray, generation: int, episodes: int,
             max_steps: int) -> np.ndarray:  # fmt: skip
        """Returns ``(episodes,)`` of one parameter vector, split into ``n_tasks`` tasks."""
        seeds = [rollout_seed(self.seed + 1, generation - 1, j) for j in range(episodes)]
        chunks = [c for c in (seeds[i :: self.n_tasks] for i in range(self.n_tasks)) if c]
        tasks = [(self.spec, params, c, max_steps) for c in chunks]
        return np.concatenate(run_tasks(self.pool, self.evaluate, tasks, self.timeout))

    def close(self) -> None:
        self.pool.shutdown()


# ---------------------------------------------------------------------------------------
# Training with CMA-ES, resumable


def _save_state(out_dir: Path, es, state: dict, log: list[dict]) -> None:
    arrays = {f"es_{k}": v for k, v in es.state_dict().items()}
    arrays.update({k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)})
    scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    with atomic_path(out_dir / CONTROLLER_STATE) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, scalars=np.array(json.dumps(scalars)))
    with atomic_path(out_dir / CONTROLLER_LOG) as tmp:
        tmp.write_text(json.dumps(log, indent=0))


def load_controller_state(out_dir: str | os.PathLike) -> dict:
    """The saved training state of a controller folder (arrays and scalars), no pickle.

    Raises:
        FileNotFoundError: there is no trained controller there (the message says how to
            train one).
        ValueError: the file is cut short or not a controller state (named).
    """
    path = Path(out_dir) / CONTROLLER_STATE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: no controller trained there yet (`wmtutor train-controller`)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files if k != "scalars"}
            state.update(json.loads(str(data["scalars"])))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path}: not a readable controller state ({type(err).__name__}: {err}); delete "
            "it, or pass --restart to train the controller again"
        ) from None
    return state


def train_controller(
    out_dir: str | os.PathLike,
    config: ControllerConfig,
    judge: Judge,
    *,
    seed: int = 0,
    restart: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Train C with CMA-ES, asking ``judge`` for the returns of each generation; return
    the log.

    ``judge`` is ``RealGame(spec, ...)`` (every candidate plays the real game with V and M,
    on worker processes or Dask) or ``wmtutor.dream.InDream(...)`` (every candidate
    dreams inside M, a whole generation as one batch). It is closed at the end.

    Each candidate plays ``config.trials`` episodes (the same seeds, or dream starts, for
    every candidate of a generation); its fitness is the mean return (in the real game
    with ``config.length_bonus``'s tie-break, given to the judge) minus
    ``config.l2 * |x|^2``. Every ``eval_every`` generations the mean of the search
    distribution plays ``eval_episodes`` episodes (where the candidates play).

    Writes ``state.npz`` (ES state, best and mean parameters, generation, episode cap,
    where it was trained, a standardized C's input statistics from the judge's spec) and
    ``log.json`` into ``out_dir`` after every generation, atomically; running again
    resumes exactly (wmtutor CMA-ES; pycma's state cannot be saved without pickle). A
    folder trained by another judge, or with other input statistics, is refused.
    """
    out_dir = Path(out_dir)
    n_params = judge.n_params
    es = make_es(config.backend, np.zeros(n_params), config.sigma0, popsize=config.popsize,
                 seed=seed)  # fmt: skip
    state = {"generation": 0, "max_steps": config.curriculum_start or config.max_steps,
             "best_mean_at_length": None, "best_eval": None,
             "best_params": np.zeros(n_params), "mean_params": np.zeros(n_params),
             "judge": judge.description, "made_from": judge.made_from}  # fmt: skip
    # A standardized C's input statistics are saved with it (``with_input_stats``).
    spec = getattr(judge, "spec", {})
    stats = {k: np.asarray(spec[k], dtype=np.float32) for k in STATS if k in spec}
    state.update(stats)
    log: list[dict] = []
    try:
        if (out_dir / CONTROLLER_STATE).exists() and not restart:
            if config.backend != "wmtutor":
                raise ValueError(
                    f"{out_dir} holds a run to resume, but only the wmtutor CMA-ES saves its "
                    "state without pickle: use backend 'wmtutor', or --restart"
                )
            saved = load_controller_state(out_dir)
            if saved["es_mean"].shape != (n_params,):
                raise ValueError(
                    f"{out_dir} holds a controller with {saved['es_mean'].shape[0]} parameters, "
                    f"this one has {n_params}: another V, M, inputs or components? Train it "
                    "anew with --restart, in another folder (--out), or remove that folder"
                )
            if saved.get("judge", judge.description) != judge.description:
                raise ValueError(
                    f"{out_dir} holds a run trained {saved['judge']}, not {judge.description}: "
                    "use another folder (--out), or --restart"
                )
            was = saved.get("made_from", judge.made_from)
            changed = [
                k for k in judge.made_from if was.get(k, judge.made_from[k]) != judge.made_from[k]
            ]
            if changed:
                raise ValueError(
                    f"{out_dir} was trained with another {' and '.join(changed)} than the one "
                    "there now: pass --restart to train C anew for it, or use another folder "
                    "(--out)"
                )
            if any(k in saved and not np.array_equal(saved[k], stats[k]) for k in stats):
                raise ValueError(
                    f"{out_dir} was trained with other input statistics (standardize) than "
                    "this agent's: build its spec with `with_input_stats(spec, folder)`, or "
                    "pass --restart"
                )
            es.load_state_dict({k[3:]: v for k, v in saved.items() if k.startswith("es_")})
            state.update({k: v for k, v in saved.items() if not k.startswith("es_")},
                         judge=judge.description, made_from=judge.made_from)  # fmt: skip
            log = json.loads((out_dir / CONTROLLER_LOG).read_text())
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out_dir)
        _train(out_dir, config, judge, es, state, log, progress)
    finally:
        judge.close()
    return log


def _train(out_dir: Path, config: ControllerConfig, judge: Judge, es, state: dict,
           log: list[dict], progress: bool) -> None:  # fmt: skip
    """The CMA-ES loop of ``train_controller``: ask, judge, tell, save."""
    bar = tqdm(total=config.generations, initial=min(state["generation"], config.generations),
               desc=f"CMA-ES ({judge.where})", unit="gen",
               disable=not progress or state["generation"] >= config.generations)  # fmt: skip
    with bar:
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
            if getattr(judge, "returns_are_steps", False):  # a survival dream's return
                row["dream_steps"] = int(returns.sum())
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


# ---------------------------------------------------------------------------------------
# Playing the real game: tests, random play, recordings


def random_returns(
    game: str, seeds: Sequence[int], max_steps: int, progress: bool = False
) -> np.ndarray:
    """The returns of white-noise random play (``action_space.sample()``), for comparison."""
    env = make_env(game, max_steps=max_steps)
    out = [
        float(play(env, make_policy("white", env, int(s)), int(s))["rewards"].sum())
        for s in tqdm(seeds, "random play", unit="ep", disable=not progress, leave=False)
    ]
    env.close()
    return np.asarray(out)


def evaluate_params(
    spec: dict,
    params: np.ndarray | None,
    n_episodes: int,
    max_steps: int,
    *,
    seed: int = 10_000,
    executor: cf.Executor | LocalPool | None = None,
    workers: int | None = None,
    timeout: float = 3600.0,
    progress: bool = False,
) -> np.ndarray:
    """Returns of ``n_episodes`` episodes of the agent with ``params`` (the paper uses 100;
    ``params`` None where the spec's ``policy`` names a PPO actor).

    Episodes are split across the workers (or ``executor``), several at once per worker.
    Seeds come from ``seed``, away from the ones training used.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"episodes {n_episodes!r}: expected an integer >= 1")
    check_params(spec, params)
    pool = make_pool(executor, workers)
    seeds = [rollout_seed(seed, 0, j) for j in range(n_episodes)]
    n_tasks = max(1, min(n_episodes, 4 * getattr(pool, "workers", 4)))
    chunks = [c for c in (seeds[i::n_tasks] for i in range(n_tasks)) if c]
    bar = tqdm(total=n_episodes, desc="real episodes", unit="ep", disable=not progress,
               leave=False)  # fmt: skip
    try:
        params = None if params is None else np.asarray(params)
        tasks = [(spec, params, c, max_steps) for c in chunks]
        done = run_tasks(pool, evaluate_candidate, tasks, timeout,
                         on_result=lambda i, r: bar.update(len(r)))  # fmt: skip
        return np.concatenate(done)
    finally:
        bar.close()
        if pool is not executor:
            pool.shutdown()


def record_episode(spec: dict, params: np.ndarray, seed: int, max_steps: int) -> dict:
    """Play one episode here, keeping its frames, z, actions and return (for GIFs, widgets)."""
    agent, envs = make_agent(spec, 1)
    _set_params(agent, spec, params)
    out = run_episodes(agent, envs, [seed], max_steps, record=True)
    return {**out, "return": float(out["returns"][0])}


def _record_task(spec: dict, params: list[np.ndarray], seeds: list[int], out_dir: str,
                 max_steps: int) -> list[dict]:  # fmt: skip
    """In a worker: play one real episode per (params, seed) and save each as a rollout."""
    entries = []
    for x, seed in zip(params, seeds, strict=True):
        episode = record_episode(spec, x, seed, max_steps)
        T = len(episode["actions"])
        terminated, truncated = np.zeros(T, bool), np.zeros(T, bool)
        (terminated if T < max_steps else truncated)[-1] = True
        name = f"rollout_{seed:010d}.npz"
        written = save_arrays(
            Path(out_dir) / name, frames=episode["frames"], actions=np.asarray(episode["actions"]),
            rewards=np.ones(T, np.float32), terminated=terminated, truncated=truncated,
            seed=np.int64(seed), frame_skip=np.int64(spec.get("frame_skip", 1)),
        )  # fmt: skip
        entries.append({"index": int(seed), "file": name, "length": T, "return": float(T),
                        "seed": int(seed), **written})  # fmt: skip
    return entries


def record_agent_rollouts(
    spec: dict,
    params: np.ndarray,
    n_episodes: int,
    out_dir: str | os.PathLike,
    *,
    sigma: float = 0.1,
    seed: int = 0,
    max_steps: int = 2100,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Record ``n_episodes`` real episodes of the agent, parameters ``params`` plus N(0,
    sigma²) noise per episode, as rollouts (the format of ``wmtutor.files``) in
    ``out_dir``; return the manifest. Resumes: episodes already in the manifest are kept.

    The rewards are Doom's (+1 per step survived), the game iterative training is for.
    """
    out_dir = Path(out_dir)
    done = {}
    if (out_dir / MANIFEST).exists():
        done = {e["index"]: e for e in json.loads((out_dir / MANIFEST).read_text())["files"]}
        done = {i: e for i, e in done.items() if (out_dir / e["file"]).exists()}
    rng = np.random.default_rng([seed, 7])
    noise = rng.standard_normal((n_episodes, len(params)))
    seeds = [rollout_seed(seed + 7, i) for i in range(n_episodes)]
    todo = [i for i in range(n_episodes) if seeds[i] not in done]
    workers = check_workers(workers)
    chunks = [todo[j :: 4 * workers] for j in range(4 * workers)]
    tasks = [(spec, [params + sigma * noise[i] for i in c], [seeds[i] for i in c], str(out_dir),
              max_steps) for c in chunks if c]  # fmt: skip
    config = {"game": spec["game"], "policy": "agent", "sigma": sigma, "seed": seed,
              "max_steps": max_steps, "frame_skip": spec.get("frame_skip", 1)}  # fmt: skip
    if tasks:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out_dir)
        pool = LocalPool(workers)
        bar = tqdm(total=n_episodes, initial=n_episodes - len(todo), desc="record C's episodes",
                   unit="ep", disable=not progress)  # fmt: skip
        try:

            def finished(_i: int, entries: list[dict]) -> None:
                done.update({e["index"]: e for e in entries})
                bar.update(len(entries))

            run_tasks(pool, _record_task, tasks, timeout=3600, on_result=finished)
        finally:
            bar.close()
            pool.shutdown()
    files = [done[s] for s in seeds]
    return write_manifest(out_dir, {"config": config, "preset": "", "files": files})
