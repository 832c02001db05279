"""Watching a game being played: the run's trained agent, random play, or you at the keys.

    wmtutor play --env doom                              # the trained agent, in a window
    wmtutor play --env pong --policy random --record pong.mp4
    wmtutor play --env carracing --policy human          # arrow keys (needs a display)

In a notebook, ``watch(game)`` shows the same game in an image widget that updates as it
plays. One loop (``frames``) plays one episode and yields each step's full-size frame,
as the game draws it; the sinks only show what it yields: a pygame window, a notebook
widget, a file (``record``: ``.gif`` through ``viz.save_gif``, ``.mp4`` through moviepy).
The agent is found as it is on disk (``pipeline.trained_agent``): watching trains nothing.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wmtutor import envs
from wmtutor.controller import make_agent
from wmtutor.envs import make_env
from wmtutor.pipeline import make_run, trained_agent
from wmtutor.presets import Preset
from wmtutor.utils import get_device
from wmtutor.viz import fixed_image, save_gif

POLICIES = ("agent", "random", "human")
WINDOW_KEYS = {
    "carracing": "left/right steer, up gas, down brake",
    "doom": "left/right move",
    "pong": "up/down move the paddle",
}


def has_display() -> bool:
    """Whether a window can open here: a desktop (X11, Wayland, macOS, Windows)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or sys.platform in ("darwin", "win32"))  # fmt: skip


def agent_policy(spec: dict, params: np.ndarray) -> Callable[[np.ndarray, object], object]:
    """``act(frame, env) -> action`` for one game: V encodes the 64×64 frame, C reads
    ``[z, h(, c)]``, M's state advances (``controller.make_agent``'s agent, batch of one)."""
    agent, _ = make_agent(spec, 0)  # its games stay unused: ``frames`` plays its own
    agent.set_params(params)
    agent.reset(1)
    row = np.zeros(1, dtype=int)
    return lambda frame, env: agent.act(np.array(frame[None]), row)[0][0]


def random_policy(frame: np.ndarray, env) -> object:
    """White noise: the game's own ``action_space.sample()``."""
    return env.action_space.sample()


def human_policy(game: str) -> Callable[[np.ndarray, object], object]:
    """Actions from the arrow keys held now (pygame; only with a window open)."""
    import pygame  # the window's package: only when a person plays

    def act(frame: np.ndarray, env) -> object:
        keys = pygame.key.get_pressed()
        if game == "carracing":
            steer = float(keys[pygame.K_RIGHT]) - float(keys[pygame.K_LEFT])
            return np.array([steer, float(keys[pygame.K_UP]), 0.8 * keys[pygame.K_DOWN]],
                            dtype=np.float32)  # fmt: skip
        adapter = env.adapter  # Doom and Pong: the three-way adapter's low / stay / high
        keys_of = {"doom": (pygame.K_LEFT, pygame.K_RIGHT), "pong": (pygame.K_UP, pygame.K_DOWN)}
        low, high = keys_of[game]
        return adapter.low if keys[low] else adapter.high if keys[high] else adapter.stay

    return act


def frames(
    game: str,
    act: Callable[[np.ndarray, object], object],
    *,
    seed: int = 0,
    max_steps: int | None = None,
    frame_skip: int = 1,
) -> Iterator[tuple[np.ndarray, float, int]]:
    """Play one episode; yield ``(frame, return so far, step)`` after every step, ``frame``
    the game's own full-size picture ``(H, W, 3)`` uint8. Closes the game at the end."""
    env = make_env(game, frame_skip=frame_skip, max_steps=max_steps)
    env.action_space.seed(seed)
    try:
        obs, _ = env.reset(seed=seed)
        total, step = 0.0, 0
        yield env.raw_frame, total, step
        while True:
            obs, reward, terminated, truncated, _ = env.step(act(obs, env))
            total, step = total + float(reward), step + 1
            yield env.raw_frame, total, step
            if terminated or truncated:
                return
    finally:
        env.close()


class Window:
    """A pygame window showing frames ``scale`` times their size, ``fps`` at most."""

    def __init__(self, title: str, scale: int, fps: float):
        import pygame  # the window's package: only when a window opens

        if os.environ.get("SDL_VIDEODRIVER") == "dummy" and envs.SET_HEADLESS_DRIVER:
            del os.environ["SDL_VIDEODRIVER"]  # wmtutor's own headless default, not the user's
            pygame.display.quit()  # a game may have started the display headless
        pygame.display.init()
        pygame.display.set_caption(title)
        self.pygame, self.scale, self.fps = pygame, scale, fps
        self.screen, self.clock, self.closed = None, pygame.time.Clock(), False

    def show(self, frame: np.ndarray, caption: str) -> None:
        pygame = self.pygame
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN
                                             and event.key == pygame.K_ESCAPE):  # fmt: skip
                self.closed = True
        h, w = frame.shape[:2]
        if self.screen is None:
            self.screen = pygame.display.set_mode((w * self.scale, h * self.scale))
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self.screen.blit(pygame.transform.scale(surface, self.screen.get_size()), (0, 0))
        pygame.display.set_caption(caption)
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        self.pygame.display.quit()


def write_video(video: list[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    """``.gif`` (Pillow) or ``.mp4`` (moviepy), written whole or not at all."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return save_gif(video, path, fps=fps)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--record {path}: expected a file ending in .gif or .mp4")
    from moviepy import ImageSequenceClip  # slow to import: only for an MP4

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        part = Path(tmp) / path.name  # moviepy picks the codec from the extension
        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in video]  # H.264: even
        ImageSequenceClip(even, fps=fps).write_videofile(str(part), logger=None)
        os.replace(part, path)
    return path


def play(game: str, preset: Preset | str | None = None, *, policy: str = "agent",
         seed: int | None = None, episode_seed: int = 0, max_steps: int | None = None,
         window: bool | None = None, record: str | os.PathLike | None = None,
         scale: int = 2, fps: float = 30.0, device: str | torch.device | None = None,
         on_frame: Callable[[np.ndarray, str], None] | None = None,
         agent: tuple[np.ndarray, dict] | None = None, what: str = "") -> dict:  # fmt: skip
    """Play one episode of ``game`` and show it: in a window (default where there is a
    display), through ``on_frame(frame, caption)`` (the notebook widget), and/or into the
    file ``record``. ``policy``: the run's trained ``agent``, ``random`` play or a
    ``human`` at the keys (needs the window); ``agent=(params, spec)`` plays that agent
    instead of the run's (``what`` names it in the caption). Returns ``{"return", "steps", "what"}``
    (and ``"record"``: the file written)."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}: expected one of {', '.join(POLICIES)}")
    device = get_device(device)  # a bad --device is refused before anything starts
    if window is None:
        window = has_display() and on_frame is None
    if window and not has_display():
        raise RuntimeError("no display here to open a window on: record the game instead "
                           "(--record FILE.gif or .mp4), or use watch() in a notebook")  # fmt: skip
    if policy == "human" and not window:
        raise RuntimeError("a human plays with the keys of a window, and there is none here "
                           "(no display): try --policy agent or random with --record")  # fmt: skip
    if not (window or record or on_frame):
        raise ValueError("nothing would show the game: give a window, --record or on_frame")
    if record is not None and Path(record).suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"--record {record}: expected a file ending in .gif or .mp4")
    run = make_run(game, preset, seed)
    what = what or {"random": "random play (white noise)", "human": "you"}.get(policy, "")
    act: Callable = random_policy
    if policy == "agent":
        if agent is None:
            params, spec, what = trained_agent(game, run.settings, seed=run.seed, device=device)
        else:
            params, spec = agent
            what = what or "the agent given"
        act = agent_policy(dict(spec, device=str(device)), params)
    elif policy == "human":
        act = human_policy(game)
    steps = max_steps or run.sizes.controller.max_steps
    shown = Window(f"wmtutor: {game}, {what}", scale, fps) if window else None
    video, total, step = [], 0.0, 0
    try:
        for frame, total, step in frames(game, act, seed=episode_seed, max_steps=steps,
                                         frame_skip=run.sizes.data.frame_skip):  # fmt: skip
            caption = f"{game}: {what} | step {step} | return {total:.0f}"
            if shown is not None:
                shown.show(frame, caption)
                if shown.closed:
                    break
            if on_frame is not None:
                on_frame(frame, caption)
            if record is not None:  # Doom's 320×240 at half size: 2,100 steps fit in memory
                video.append(frame[::2, ::2] if frame.shape[0] > 210 else frame)
    finally:
        if shown is not None:
            shown.close()
    out = {"return": total, "steps": step, "what": what}
    if record is not None:
        out["record"] = str(write_video(video, record, fps))
    return out


def watch(game: str, preset: Preset | str | None = None, *, scale: int = 2, fps: float = 30.0,
          **kwargs) -> dict:  # fmt: skip
    """``play`` in a notebook: an image widget (and a caption) that update as the game is
    played, live; the cell returns when the episode ends. Keyword arguments go to ``play``
    (``policy``, ``seed``, ``episode_seed``, ``max_steps``, ``record``...)."""
    import ipywidgets as widgets  # notebooks only: scripts and workers never load it
    from IPython.display import display  # notebooks only

    image, label = None, widgets.Label()
    box = widgets.VBox([label])
    display(box)
    last = [0.0]

    def on_frame(frame: np.ndarray, caption: str) -> None:
        now = time.perf_counter()
        if now - last[0] < 1 / fps:
            return  # a widget cannot show more; the game runs on
        last[0] = now
        nonlocal image
        if image is None:  # its size is the game's: drawn at it, never stretched to the cell
            image = fixed_image(widgets, frame.shape[1] * scale, frame.shape[0] * scale)
            box.children = (image, label)
        big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, format="png")
        image.value, label.value = buf.getvalue(), caption

    result = play(game, preset, window=False, on_frame=on_frame, scale=scale, fps=fps, **kwargs)
    label.value = (
        f"{game}: {result['what']} | {result['steps']} steps, return {result['return']:.0f}"
    )
    return result
