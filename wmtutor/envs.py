"""The three games, seen as the paper sees them: 64×64×3 uint8 frames, through Gymnasium.

``make_env(name)`` gives a Gymnasium environment whose observation is a ``(64, 64, 3)``
uint8 frame, for

* ``"carracing"`` -- Gymnasium's ``CarRacing-v3`` (box2d): continuous steer, gas, brake.
* ``"doom"`` -- ViZDoom's ``VizdoomTakeCover-v1`` (the ``vizdoom`` package's own Gymnasium
  id): dodge fireballs by moving left or right.
* ``"pong"`` -- ``ALE/Pong-v5`` from ``ale-py`` (the ROM ships with it).

How each raw frame becomes 64×64 (the crop is per game, the resize is shared):

=========  ============  =================================================================
game       raw frame     crop, then resize to 64×64
=========  ============  =================================================================
carracing  96×96         keep the top 84 rows: the dashboard (speed, ABS, gyro) is dropped
doom       240×320       keep the top 5/6 (200 rows), the framing of the original code
                         (``frame[0:400]`` of 480); this ViZDoom config draws no status bar
pong       210×160       rows 34-193: the playing field between the two white walls (the
                         score above it is dropped)
=========  ============  =================================================================

**The resize filter** is Pillow's ``BILINEAR`` for every game (``RESIZE_FILTER``). When it
shrinks, Pillow widens the filter by the scale factor, so every source pixel counts
(antialiased); the original code's ``scipy.misc.imresize`` was also Pillow's bilinear.
A different filter (nearest, say) gives visibly different frames -- Pong's 2-pixel ball
flickers in and out -- and a VAE trained on one does not transfer to the other.

Rendering is always ``rgb_array``: nothing needs a display, a window or xvfb.

Each environment carries an ``adapter`` (an ``ActionAdapter``) that turns the controller's
outputs (numbers in [-1, 1]) into the game's actions, as the paper does, and turns
recorded actions into the features M reads.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

SET_HEADLESS_DRIVER = "SDL_VIDEODRIVER" not in os.environ  # wmtutor.play's window undoes it
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (CarRacing) never opens a window

FRAME_SHAPE = (64, 64, 3)
RESIZE_FILTER = Image.Resampling.BILINEAR
DOOM_MAX_STEPS = 2100  # the paper's cap for DoomTakeCover (about 60 s at 35 tics/s)


# ---------------------------------------------------------------------------------------
# Frames


def to_frame(raw: np.ndarray, crop: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Crop a raw ``(H, W, 3)`` uint8 frame and resize it to ``(64, 64, 3)`` uint8."""
    image = Image.fromarray(np.ascontiguousarray(crop(raw)))
    return np.asarray(image.resize(FRAME_SHAPE[:2][::-1], RESIZE_FILTER))


def crop_carracing(raw: np.ndarray) -> np.ndarray:
    """(96, 96, 3) -> (84, 96, 3): the road without the dashboard."""
    return raw[:84]


def crop_doom(raw: np.ndarray) -> np.ndarray:
    """(240, 320, 3) -> (200, 320, 3): the top 5/6, as the original code cropped 400 of 480."""
    return raw[: raw.shape[0] * 5 // 6]


def crop_pong(raw: np.ndarray) -> np.ndarray:
    """(210, 160, 3) -> (160, 160, 3): the field between the walls, without the score."""
    return raw[34:194]


def pong_positions(x: Any) -> tuple[Any, Any]:
    """Where Pong's objects are in torch frames ``x`` ``(B, 3, 64, 64)`` in [0, 1], found by
    their colours: the ball is grey-white, the agent's paddle (right) green, the court
    brown. Returns ``(targets, known)``, each ``(B, 4)``: the ball's row, column and
    presence and the agent paddle's row, rows and columns from -2 (top, left) to 2,
    presence ±1; ``known`` is 0 where an object is absent (its row means nothing).

    What V is told with ``VAE.told_weight`` (``wmtutor.vae``): the paper's encoder does not
    learn to see a ball of one or two pixels on its own (README, "Why V does not keep
    them"). The ball is found within 0.15 px of where the raw frame has it
    (``benchmarks/pong_v.py`` prints this)."""
    torch = _torch_of(x)
    if torch is None or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected float torch frames (B, 3, H, W) in [0, 1], got "
                         f"{type(x).__name__} {getattr(x, 'dtype', '')} "
                         f"{tuple(getattr(x, 'shape', ()))}")  # fmt: skip
    r, g, b = (x.float() * 255).unbind(dim=1)
    rows = torch.linspace(-2, 2, x.shape[-2], device=x.device)
    cols = torch.linspace(-2, 2, x.shape[-1], device=x.device)
    found = []
    for mask in ((b > 90) & (g - r > -50) & (g - r < 30), g - r > 40):  # ball, paddle
        w = mask.float()
        n = w.sum(dim=(1, 2))
        row = (w.sum(dim=2) * rows).sum(dim=1) / n.clamp(min=1)
        col = (w.sum(dim=1) * cols).sum(dim=1) / n.clamp(min=1)
        found.append((row, col, (n > 0).float()))
    (ball_row, ball_col, ball), (paddle_row, _, paddle) = found
    targets = torch.stack([ball_row, ball_col, ball * 2 - 1, paddle_row], dim=1)
    known = torch.stack([ball, ball, torch.ones_like(ball), paddle], dim=1)
    return targets, known


# ---------------------------------------------------------------------------------------
# Action adapters: controller outputs in [-1, 1] -> the game's actions


def _torch_of(x: Any):
    """The torch module if ``x`` is a torch tensor, else None (without importing torch:
    gathering workers import this module and must never load it)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None


def action_features(actions: Any, action_dim: int) -> Any:
    """Recorded actions ``(T,)`` int or ``(T, action_dim)`` float -> float32 ``(T, action_dim)``.

    Continuous actions (CarRacing) are used as they are; a discrete action becomes a
    one-hot vector over the game's ``action_dim`` actions. This is the ``a`` M reads.
    NumPy arrays give a NumPy array; torch tensors a tensor on their device.
    """
    torch = _torch_of(actions)
    if torch is not None:
        if actions.ndim == 2:
            if actions.shape[1] != action_dim:
                raise ValueError(f"actions have {actions.shape[1]} columns, expected {action_dim}")
            return actions.float()
        return torch.nn.functional.one_hot(actions.long().reshape(-1), action_dim).float()
    actions = np.asarray(actions)
    if actions.ndim == 2:
        if actions.shape[1] != action_dim:
            raise ValueError(f"actions have {actions.shape[1]} columns, expected {action_dim}")
        return actions.astype(np.float32)
    actions = actions.astype(np.int64).reshape(-1)
    if actions.size and (actions.min() < 0 or actions.max() >= action_dim):
        raise ValueError(f"actions must lie in 0..{action_dim - 1}, got {actions}")
    return np.eye(action_dim, dtype=np.float32)[actions]


class ActionAdapter:
    """Maps the controller's ``size`` outputs to a game action, and actions to M's features.

    ``adapter(y)`` takes ``y`` of shape ``(..., size)`` with values in [-1, 1] (a tanh) and
    returns the game's action (batched over the leading axes): a NumPy array for a NumPy
    ``y``, a tensor on ``y``'s device for a torch ``y`` (the dream never leaves the GPU).
    ``adapter.features(actions)`` turns recorded actions ``(T, ...)`` into float32
    ``(T, action_dim)``, the ``a`` in M's input ``[z, a]``.
    """

    size: int  # outputs the controller produces
    action_dim: int  # width of M's action input
    names: tuple[str, ...]  # what each output (or action) means, for plots

    def __call__(self, y: Any) -> Any:
        raise NotImplementedError

    def features(self, actions: Any) -> Any:
        return action_features(actions, self.action_dim)

    def describe(self, action: Any) -> str:
        """One action in words, e.g. ``steer -0.50, gas 0.75, brake 0.00`` or ``left (2)``."""
        raise NotImplementedError

    def _outputs(self, y: Any) -> tuple[Any, Any]:
        """``y`` as float32 (NumPy or torch) and the array module to compute with."""
        torch = _torch_of(y)
        y = y.float() if torch is not None else np.asarray(y, dtype=np.float32)
        if y.shape[-1:] != (self.size,):
            raise ValueError(
                f"this game needs {self.size} controller output(s), got shape {tuple(y.shape)}"
            )
        return y, torch or np


class CarRacingActions(ActionAdapter):
    """The paper's mapping: steer = y0, gas = (y1 + 1) / 2, brake = clip(y2, 0, 1)."""

    size = 3
    action_dim = 3
    names = ("steer", "gas", "brake")

    def __call__(self, y: Any) -> Any:
        y, xp = self._outputs(y)
        return xp.stack([y[..., 0], (y[..., 1] + 1) / 2, y[..., 2].clip(0, 1)], -1)

    def describe(self, action: Any) -> str:
        return ", ".join(f"{n} {v:+.2f}" for n, v in zip(self.names, action, strict=True))


class ThreeWayActions(ActionAdapter):
    """One output thresholded at ±1/3 (the paper's Doom controller): low / stay / high.

    ``low``, ``stay`` and ``high`` are indices into the game's ``Discrete(n)`` actions.
    M reads a recorded action as a one-hot vector over all ``n`` actions (random policies
    use every action the game has, not only these three).
    """

    size = 1

    def __init__(self, n: int, low: int, stay: int, high: int, names: tuple[str, ...]):
        self.action_dim = n
        self.low, self.stay, self.high = low, stay, high
        self.names = names

    def __call__(self, y: Any) -> Any:
        y, xp = self._outputs(y)
        y = y[..., 0]
        action = xp.where(y < -1 / 3, self.low, xp.where(y > 1 / 3, self.high, self.stay))
        return int(action) if xp is np and action.ndim == 0 else action

    def describe(self, action: Any) -> str:
        chosen = {self.low: self.names[0], self.stay: self.names[1], self.high: self.names[2]}
        return f"{chosen.get(int(action), 'other')} (action {int(action)})"


def doom_actions(env: gym.Env) -> ThreeWayActions:
    """Left / stay / right, read off the wrapper's button map (it is not documented)."""
    import vizdoom  # a game package: imported only when that game is made (_import_game_package)

    game = env.unwrapped
    buttons = list(game.game.get_available_buttons())
    pressed = [tuple(int(b) for b in combo) for combo in game.button_map]

    def index(button: Any | None) -> int:
        want = tuple(int(b == button) for b in buttons)
        return pressed.index(want)

    return ThreeWayActions(
        n=len(pressed),
        low=index(vizdoom.Button.MOVE_LEFT),
        stay=index(None),
        high=index(vizdoom.Button.MOVE_RIGHT),
        names=("left", "stay", "right"),
    )


def pong_actions(env: gym.Env) -> ThreeWayActions:
    """Down / stay / up: in Pong, ALE's RIGHT moves the paddle up and LEFT moves it down."""
    meanings = list(env.unwrapped.get_action_meanings())
    return ThreeWayActions(
        n=len(meanings),
        low=meanings.index("LEFT"),
        stay=meanings.index("NOOP"),
        high=meanings.index("RIGHT"),
        names=("down", "stay", "up"),
    )


# ---------------------------------------------------------------------------------------
# The games


@dataclass(frozen=True)
class GameSpec:
    """How to build one game and see it as 64×64 frames."""

    gym_id: str
    package: str  # the pip package that provides it
    module: str  # imported before gym.make (it registers the id)
    crop: Callable[[np.ndarray], np.ndarray]
    make_adapter: Callable[[gym.Env], ActionAdapter]
    action_dim: int  # width of M's action input (continuous size, or number of actions)
    controller_size: int  # outputs of C: the adapter's ``size``
    native_frame_skip: str | None  # gym.make keyword for the game's own frame skip
    default_max_steps: int | None  # our cap in agent steps; None keeps the game's own
    blurb: str
    # The objects' positions in frames, by colour, for V's ``told_weight`` (None: not known)
    positions: Callable[[Any], tuple[Any, Any]] | None = None


GAMES: dict[str, GameSpec] = {
    "carracing": GameSpec(
        gym_id="CarRacing-v3",
        package="gymnasium[box2d]",
        module="Box2D",
        crop=crop_carracing,
        make_adapter=lambda env: CarRacingActions(),
        action_dim=3,
        controller_size=CarRacingActions.size,
        native_frame_skip=None,
        default_max_steps=None,  # the game's own 1000 steps
        blurb="drive a random track from pixels; +1000/N per new tile, -0.1 per frame",
    ),
    "doom": GameSpec(
        gym_id="VizdoomTakeCover-v1",
        package="vizdoom",
        module="vizdoom.gymnasium_wrapper",
        crop=crop_doom,
        make_adapter=doom_actions,
        action_dim=3,
        controller_size=ThreeWayActions.size,
        native_frame_skip="frame_skip",
        default_max_steps=DOOM_MAX_STEPS,
        blurb="dodge fireballs; +1 per tic survived (the scenario's living_reward)",
    ),
    "pong": GameSpec(
        gym_id="ALE/Pong-v5",
        package="ale-py",
        module="ale_py",
        crop=crop_pong,
        make_adapter=pong_actions,
        action_dim=6,
        controller_size=ThreeWayActions.size,
        native_frame_skip="frameskip",
        default_max_steps=None,  # ALE's own limit (108,000 frames)
        blurb="return the ball; +1 per point won, -1 per point lost, 21 points a game",
        positions=pong_positions,
    ),
}


def _import_game_package(name: str) -> None:
    spec = GAMES[name]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as err:
        raise ImportError(
            f"the {name!r} game needs the {spec.package!r} package, which is not installed "
            f"({err}). Install it with: pip install '{spec.package}' "
            "(or reinstall wmtutor: pip install -e .)"
        ) from err
    if name == "pong":
        module.ALEInterface.setLoggerMode(module.LoggerMode.Error)  # no banner per process
        gym.register_envs(module)


class GameEnv(gym.Wrapper):
    """A game whose observations are 64×64×3 uint8 frames (see the module docstring).

    Attributes:
        name: carracing, doom or pong.
        adapter: the game's ``ActionAdapter``.
        raw_frame: the last full-size frame the game produced (for pictures).
        frame_skip: game frames per agent step.
        max_steps: episode cap in agent steps (None: the game's own).

    ``info["position"]`` gives the car's (x, y) on CarRacing (for coverage plots).
    """

    def __init__(self, name: str, env: gym.Env, frame_skip: int, max_steps: int | None):
        super().__init__(env)
        self.name = name
        self.game_spec = GAMES[name]
        self.adapter = self.game_spec.make_adapter(env)
        self.frame_skip = frame_skip
        self.max_steps = max_steps
        self.observation_space = gym.spaces.Box(0, 255, FRAME_SHAPE, np.uint8)
        self.raw_frame: np.ndarray | None = None

    def _frame(self, obs: Any) -> np.ndarray:
        raw = obs["screen"] if isinstance(obs, dict) else obs
        self.raw_frame = raw
        return to_frame(raw, self.game_spec.crop)

    def _info(self, info: dict) -> dict:
        if self.name == "carracing":
            car = self.env.unwrapped.car
            if car is not None:
                info = dict(info, position=np.array(car.hull.position, dtype=np.float32))
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        game = getattr(self.env.unwrapped, "game", None)  # ViZDoom's engine
        if game is not None and not game.is_running():  # the first reset starts it
            with _in_engine_dir():
                obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, info = self.env.reset(seed=seed, options=options)
        return self._frame(obs), self._info(info)

    def step(self, action: Any):
        # Games with their own frame skip (Doom, Pong) get it from gym.make; CarRacing
        # repeats the action here and sums the rewards.
        repeats = 1 if self.game_spec.native_frame_skip else self.frame_skip
        total = 0.0
        for _ in range(repeats):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return self._frame(obs), total, terminated, truncated, self._info(info)


def make_env(
    name: str,
    *,
    frame_skip: int = 1,
    max_steps: int | None = None,
    **options: Any,
) -> GameEnv:
    """Build a game whose observations are ``(64, 64, 3)`` uint8 frames.

    Args:
        name: ``"carracing"``, ``"doom"`` or ``"pong"``.
        frame_skip: game frames per agent step (the action is repeated, rewards summed).
        max_steps: episode cap in agent steps; ends the episode with ``truncated=True``.
            Default: 2100 for Doom (the paper's cap), the game's own limit otherwise.
        **options: passed to ``gymnasium.make`` (e.g. ``domain_randomize=True`` for
            CarRacing, ``repeat_action_probability=0.0`` for Pong). CarRacing also takes
            ``renderer``: ``"wmtutor"`` (default; ``wmtutor.fastcar``, the same frames
            byte for byte, drawn faster) or ``"gymnasium"`` (the original); and, with
            ``"wmtutor"``, ``shrink``: 2 or more draws the observations on a canvas that
            many times smaller on each side (faster again, *not* the same bytes:
            ``benchmarks/carracing_shrink.py`` measures the difference).

    Raises:
        ValueError: an unknown game, a bad frame_skip or max_steps, or a render mode
            other than ``rgb_array`` (nothing here opens a window).
        ImportError: the game's package is missing; the message says what to install.
    """
    if name not in GAMES:
        raise ValueError(f"unknown game {name!r}: expected one of {', '.join(GAMES)}")
    if not isinstance(frame_skip, (int, np.integer)) or frame_skip < 1:
        raise ValueError(f"frame_skip must be an integer >= 1, got {frame_skip!r}")
    if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
    render_mode = options.pop("render_mode", "rgb_array")
    if render_mode != "rgb_array":
        raise ValueError(
            f"render_mode={render_mode!r}: wmtutor renders headless, only 'rgb_array' is "
            "supported (no window, no display, no xvfb)"
        )
    if name != "carracing" and ("shrink" in options or "renderer" in options):
        raise ValueError(f"renderer and shrink are CarRacing's options, not {name}'s")
    spec = GAMES[name]
    _import_game_package(name)
    gym_id = spec.gym_id
    if name == "carracing":
        renderer = options.pop("renderer", "wmtutor")
        if renderer not in ("wmtutor", "gymnasium"):
            raise ValueError(f"renderer={renderer!r}: expected 'wmtutor' or 'gymnasium'")
        if renderer == "wmtutor":  # the same pixels, ~2.3x the steps per second
            from wmtutor.fastcar import register

            gym_id = register()
        shrink = options.pop("shrink", 1)
        if not (type(shrink) is int and shrink == 1):  # FastCarRacing checks the value
            fast = renderer == "wmtutor" and "FastCarRacing" in str(gym.spec(gym_id).entry_point)
            if not fast:
                raise ValueError(
                    f"shrink={shrink!r} needs wmtutor's renderer (renderer='wmtutor', on a "
                    f"Gymnasium whose drawing code it was checked against), not {renderer!r}"
                )
            options["shrink"] = shrink
    max_steps = spec.default_max_steps if max_steps is None else int(max_steps)
    kwargs = dict(options, render_mode="rgb_array")
    if spec.native_frame_skip:
        kwargs[spec.native_frame_skip] = int(frame_skip)
    if max_steps is not None:  # gym.make's TimeLimit counts inner steps
        kwargs["max_episode_steps"] = max_steps * (1 if spec.native_frame_skip else frame_skip)
    env = gym.make(gym_id, **kwargs)
    return GameEnv(name, env, frame_skip=int(frame_skip), max_steps=max_steps)


_CHDIR = threading.Lock()


@contextlib.contextmanager
def _in_engine_dir():
    """Start ViZDoom's engine in a cache folder: it makes ``_vizdoom/`` and, when it stops,
    ``_vizdoom.ini`` in its working directory, which would otherwise be the student's
    notebook folder. The engine keeps that folder; ours changes back at once."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wmtutor" / "vizdoom"
    cache.mkdir(parents=True, exist_ok=True)
    with _CHDIR:
        here = os.getcwd()
        os.chdir(cache)
        try:
            yield
        finally:
            os.chdir(here)
