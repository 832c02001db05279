"""PPO in the dream: Stable-Baselines3's PPO on M's features, beside CMA-ES.

The course does not write its own PPO: a gradient-based learner has many details that
matter (advantage estimation, clipping, value loss, entropy bonus, minibatching), and a
well-kept library gets them right. Three small pieces connect it to the world model:

* ``DreamVecEnv``: Stable-Baselines3's ``VecEnv`` over ``wmtutor.dream.DreamEnv``. Its
  observation is what C reads (``Controller.features``: z, or [z, h], or [z, c, h]); its
  actions are C's three choices (``Discrete(3)``: low, stay, high, i.e. C's outputs -1, 0
  and +1 through the game's ``ThreeWayActions``), so both learners play the same game
  with the same inputs; an ending dream restarts in the same step, as SB3 expects.
* ``train_ppo``: PPO for a number of dream steps, in chunks of one rollout each, saved after
  every chunk (``ppo.pt``: tensors and plain data only, read with ``weights_only=True``,
  never SB3's pickled zip), so a run resumes; a learning curve against dream steps and
  seconds in ``log.json``.
* the trained actor is ``wmtutor.controller.PolicyController``, a plain torch module with
  C's interface (``controller(z, h, c) -> y``), so the real-game ``Agent`` and its workers
  play it exactly as they play C (deterministic: the most likely action).

Shapes: observations ``(num_envs, in_features)``; actions ``(num_envs,)`` in {0, 1, 2}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from wmtutor.controller import Controller
from wmtutor.dream import DreamEnv
from wmtutor.envs import ThreeWayActions
from wmtutor.presets import PPO as PPOConfig
from wmtutor.training import load_checkpoint, save_checkpoint
from wmtutor.utils import atomic_path

PPO_CHECKPOINT = "ppo.pt"
PPO_LOG = "log.json"


# ---------------------------------------------------------------------------------------
# The dream as a Stable-Baselines3 vector environment


def _vec_env_base():
    from stable_baselines3.common.vec_env import VecEnv  # imported on use: a heavy package

    return VecEnv


def make_dream_vec_env(dream: DreamEnv, inputs: str = "zch"):
    """``DreamVecEnv(dream, inputs)``: the class is made on first use (SB3 is imported
    only then)."""

    class DreamVecEnv(_vec_env_base()):
        """SB3's ``VecEnv`` over a ``DreamEnv`` (see the module docstring).

        ``finished`` collects ``(return, length)`` of every dream that ended, in order.
        """

        render_mode = None

        def __init__(self, dream: DreamEnv, inputs: str):
            if not isinstance(dream.adapter, ThreeWayActions):
                raise ValueError(
                    f"PPO here plays games whose C has three choices (doom, pong); "
                    f"{dream.game!r} has continuous actions"
                )
            self.dream, self.m = dream, dream.mdnrnn
            self.controller = Controller(self.m.z_dim, self.m.hidden, 1, inputs, False,
                                         dream.device)  # fmt: skip
            size = self.controller.in_features
            space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
            super().__init__(dream.num_envs, space, gym.spaces.Discrete(3))
            self._seed: int | None = None
            self.returns = np.zeros(self.num_envs)
            self.lengths = np.zeros(self.num_envs, dtype=int)
            self.finished: list[tuple[float, int]] = []
            self.steps = 0  # dream steps taken, over all dreams

        def _features(self, obs: np.ndarray) -> np.ndarray:
            m = self.m
            z, h, c = np.split(obs, [m.z_dim, m.z_dim + m.hidden], axis=1)
            return self.controller.features(z, h, c).cpu().numpy()

        def seed(self, seed: int | None = None):
            self._seed = seed
            return [seed] * self.num_envs

        def reset(self) -> np.ndarray:
            obs, _ = self.dream.reset(seed=self._seed)
            self._seed = None
            self.returns[:], self.lengths[:] = 0, 0
            return self._features(obs)

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions).reshape(-1)

        def step_wait(self):
            y = (self._actions - 1.0).astype(np.float32)[:, None]  # C's -1, 0, +1
            obs, reward, terminated, truncated, _ = self.dream.step(self.dream.adapter(y))
            self.steps += self.num_envs
            self.returns += reward
            self.lengths += 1
            done = terminated | truncated
            infos: list[dict] = [{} for _ in range(self.num_envs)]
            rows = np.flatnonzero(done)
            if len(rows):
                last = self._features(obs)
                for i in rows:
                    infos[i] = {
                        "terminal_observation": last[i],
                        "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                        "episode": {"r": float(self.returns[i]), "l": int(self.lengths[i])},
                    }
                    self.finished.append((float(self.returns[i]), int(self.lengths[i])))
                self.returns[rows], self.lengths[rows] = 0, 0
                self.dream.restart(rows)  # same-step reset (SB3's convention)
                obs = self.dream.observation()
            return self._features(obs), reward.astype(np.float32), done, infos

        def close(self) -> None:
            pass

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name)] * len(self._indices(indices))

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(self, method_name)(*args, **kwargs)] * len(self._indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._indices(indices))

        def _indices(self, indices) -> list[int]:
            if indices is None:
                return list(range(self.num_envs))
            return [indices] if isinstance(indices, int) else list(indices)

    return DreamVecEnv(dream, inputs)


# ---------------------------------------------------------------------------------------
# Training


def _must_match(config: PPOConfig, dream: DreamEnv, inputs: str) -> dict:
    settings = {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(config).items()}  # fmt: skip
    return {**settings, "inputs": inputs, "z_dim": dream.mdnrnn.z_dim,
            "hidden": dream.mdnrnn.hidden, "tau": dream.tau,
            "done_threshold": dream.done_threshold, "max_steps": dream.max_steps}  # fmt: skip


def train_ppo(
    out_dir: str | os.PathLike,
    dream: DreamEnv,
    config: PPOConfig,
    total_steps: int,
    *,
    inputs: str = "zch",
    seed: int = 0,
    made_from: dict | None = None,
    restart: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Train PPO in ``dream`` (``config.n_envs`` dreams at once) for ``total_steps`` dream
    steps; returns the log, one row per rollout of ``n_envs * n_steps`` steps:
    ``dream_steps`` (so far), ``seconds`` (so far), ``mean`` and ``episodes`` (the dreams
    that ended during that rollout: their mean return, None if none ended).

    Saves ``ppo.pt`` and ``log.json`` in ``out_dir`` after every rollout (atomically); a
    second call resumes from there (the dreams themselves start afresh) and stops at once
    when ``total_steps`` are done. A folder trained with other sizes or another M
    (``made_from``) is refused unless ``restart``.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    if dream.num_envs != config.n_envs:
        raise ValueError(f"the dream has {dream.num_envs} envs, config.n_envs is {config.n_envs}")
    out_dir = Path(out_dir)
    path = out_dir / PPO_CHECKPOINT
    match = {**_must_match(config, dream, inputs), **(made_from or {})}
    saved = None
    if path.exists() and not restart:
        saved = load_checkpoint(path)
        differ = sorted(k for k in match if saved["must_match"].get(k) != match[k])
        if differ:
            raise ValueError(
                f"{path} was trained with another {', '.join(differ)}: pass restart=True "
                "(--restart) to train anew, or use another folder"
            )
    env = make_dream_vec_env(dream, inputs)
    model = PPO(
        "MlpPolicy", env, learning_rate=config.lr, n_steps=config.n_steps,
        batch_size=config.batch_size, n_epochs=config.epochs, gamma=config.gamma,
        gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef,
        policy_kwargs={"net_arch": list(config.net)}, seed=seed, device=dream.device,
        verbose=0,
    )  # fmt: skip
    # A logger that writes nothing: without one, every learn() call makes an empty
    # /tmp/SB3-<date> folder (SB3's default log folder); our log is log.json.
    model.set_logger(Logger(folder=None, output_formats=[]))
    log: list[dict] = []
    if saved is not None:
        model.policy.load_state_dict(saved["sb3_policy"])
        model.policy.optimizer.load_state_dict(saved["optimizer"])
        model.num_timesteps = int(saved["dream_steps"])
        log = json.loads((out_dir / PPO_LOG).read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    chunk = config.n_envs * config.n_steps
    bar = tqdm(total=total_steps, initial=min(model.num_timesteps, total_steps),
               desc="PPO (dream)", unit="step", unit_scale=True,
               disable=not progress or model.num_timesteps >= total_steps)  # fmt: skip
    seconds = log[-1]["seconds"] if log else 0.0
    with bar:
        while model.num_timesteps < total_steps:
            start, before = time.perf_counter(), len(env.finished)
            model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
            seconds += time.perf_counter() - start
            ended = [r for r, _ in env.finished[before:]]
            log.append({"dream_steps": int(model.num_timesteps), "seconds": seconds,
                        "mean": float(np.mean(ended)) if ended else None,
                        "episodes": len(ended)})  # fmt: skip
            _save(out_dir, model, config, dream, inputs, match, log)
            bar.update(chunk)
            if ended:
                bar.set_postfix(mean=f"{np.mean(ended):.0f}", refresh=False)
    return log


def _save(out_dir: Path, model, config: PPOConfig, dream: DreamEnv, inputs: str, match: dict,
          log: list[dict]) -> None:  # fmt: skip
    state = {
        "policy": {"z_dim": dream.mdnrnn.z_dim, "hidden": dream.mdnrnn.hidden, "inputs": inputs,
                   "net": list(config.net)},
        "sb3_policy": {k: v.detach().cpu() for k, v in model.policy.state_dict().items()},
        "optimizer": model.policy.optimizer.state_dict(),
        "dream_steps": int(model.num_timesteps),
        "must_match": match,
    }  # fmt: skip
    save_checkpoint(out_dir / PPO_CHECKPOINT, **state)
    with atomic_path(out_dir / PPO_LOG) as tmp:
        tmp.write_text(json.dumps(log))
