"""CarRacing with the same pixels, drawn faster.

Gymnasium's ``CarRacing-v3`` spends most of a step drawing, and most of the drawing in
Python: every step it rotates, scales and tests all ~700 polygons of the grass and the
road one vertex at a time (``pygame.math.Vector2`` each), to draw the few dozen that can
be on screen, and it loads a font file to print the score. ``FastCarRacing`` is the same
game (it *is* ``CarRacing``: physics, rewards, track generation, the car's drawing are
untouched) with three changes to how a frame is made, none to what it shows:

1. The polygons are kept as one ``(N, 4, 2)`` array and transformed at once, with the
   very arithmetic ``Vector2.rotate_rad`` does (the same ``sin``/``cos``, the same
   products in the same order, the same special case for right angles), and the same
   "is any corner near the screen" test; the polygons that pass are drawn, in the
   original order, by the same ``gfxdraw`` calls with the same coordinates, except those
   entirely off the canvas (Gymnasium's test keeps a margin of ~380 pixels, so about
   half of what it draws lands nowhere), and the background field, which is a plain
   fill of the canvas whenever it covers it.
2. The score's font is loaded once and each score's text is drawn once.
3. The 1000×800 canvas is reused instead of allocated every frame.

So the frames are the same bytes, not merely close: ``benchmarks/carracing_render.py``
compares both renderers frame by frame (20 tracks × 1000 steps, random and trained
actions) and measures steps per second side by side; ``tests/test_fastcar.py`` checks
the equality on a few hundred frames each run. The copy of ``_render`` below follows
Gymnasium's; if an installed Gymnasium changes the drawing code it was checked against
(a digest of its source), ``make`` falls back to the original and says so.

That stops at about 2x Gymnasium's steps per second: what is left is pygame's own C
(the visible polygons' fills and anti-aliased edges, and filling, flipping and shrinking
a 1000x800 canvas for a 96x96 frame), which the same bytes need. ``shrink=k`` goes past
it by drawing the observation on a canvas k times smaller on each side (the scene, the
zoom and the dashboard scaled): the same game, *not* the same bytes.
``benchmarks/carracing_shrink.py`` measures how far the frames move, in pixels and in
V's ``z``, and the speed (README, "A smaller canvas"). ``render()``'s picture is always
the full-size one.

    from wmtutor.fastcar import register
    register()                                   # the id "wmtutor/CarRacing-v3"
    env = gymnasium.make("wmtutor/CarRacing-v3", render_mode="rgb_array")
    small = gymnasium.make("wmtutor/CarRacing-v3", render_mode="rgb_array", shrink=2)
"""

from __future__ import annotations

import hashlib
import inspect
import math
import warnings

import gymnasium as gym
import numpy as np
import pygame
from gymnasium.envs.box2d import car_racing
from gymnasium.envs.box2d.car_racing import CarRacing
from pygame import gfxdraw

ID = "wmtutor/CarRacing-v3"
INK = 2.0  # pixels: how far outside its corners a gfxdraw polygon may colour

# The drawing code this module was checked against (gymnasium 1.x), by digest.
CHECKED = {
    "_render": "55de32c78669c2be",
    "_render_road": "ececdf992df950f9",
    "_draw_colored_polygon": "8ab3784d359ee557",
}


def source_digests() -> dict[str, str]:
    """A short digest of each of Gymnasium's CarRacing drawing methods, as installed."""
    return {
        name: hashlib.sha256(inspect.getsource(getattr(CarRacing, name)).encode()).hexdigest()[:16]
        for name in CHECKED
    }


def checked() -> bool:
    """Whether the installed Gymnasium draws CarRacing with the code FastCarRacing copies."""
    return source_digests() == CHECKED


def _grass() -> np.ndarray:
    """The grass patches, as ``_render_road`` lists them: ``(400, 4, 2)``."""
    d = car_racing.GRASS_DIM
    return np.array(
        [
            [(d * x + d, d * y), (d * x, d * y), (d * x, d * y + d), (d * x + d, d * y + d)]
            for x in range(-20, 20, 2)
            for y in range(-20, 20, 2)
        ],
        dtype=np.float64,
    )


def rotate(points: np.ndarray, angle: float, epsilon: float = 1e-6) -> np.ndarray:
    """``pygame.math.Vector2(p).rotate_rad(angle)`` for every point of ``(..., 2)``, to the
    last bit: the angle is brought into [0, 2π) with ``fmod``, right angles (within
    ``epsilon``, Vector2's default) are exact swaps, other angles use libm's sin and cos
    and the products in the order pygame's C code takes them."""
    angle = math.fmod(angle, 2 * math.pi)
    if angle < 0:
        angle += 2 * math.pi
    x, y = points[..., 0], points[..., 1]
    if math.fmod(angle + epsilon, math.pi / 2) < 2 * epsilon:
        quarter = int((angle + epsilon) / (math.pi / 2)) % 4
        x, y = [(x, y), (-y, x), (-x, -y), (y, -x)][quarter]
        return np.stack([x, y], axis=-1)
    s, c = math.sin(angle), math.cos(angle)
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


class FastCarRacing(CarRacing):
    """``CarRacing`` whose frames are drawn without the per-vertex Python loop (see the
    module docstring). Same constructor, same observations, same everything."""

    _fonts: dict[int, pygame.font.Font] = {}  # the score's font, by size, loaded once
    _grass_polys = _grass()

    def __init__(self, *args, shrink: int = 1, **kwargs):
        """Gymnasium's arguments, and ``shrink``: draw the 96x96 observations on a canvas
        ``shrink`` times smaller on each side than the 1000x800 window (the same scene,
        zoom and dashboard, scaled). 1 (default): the same bytes as Gymnasium. 4: a
        250x200 canvas, several times faster, *not* the same bytes (``benchmarks/
        carracing_render.py --shrink 4`` measures how far, in pixels and in V's z). The
        ``render()`` picture is always drawn at full size."""
        if not isinstance(shrink, int) or isinstance(shrink, bool) or not 1 <= shrink <= 8:
            raise ValueError(f"shrink={shrink!r}: expected an integer from 1 to 8")
        super().__init__(*args, **kwargs)
        self.shrink = shrink
        self._k = 1  # the canvas's shrink for the frame being drawn
        self._canvases: dict[int, pygame.Surface] = {}
        self._texts: dict[tuple[str, int], pygame.Surface] = {}
        self._road_of: tuple[list, int] | None = None  # the road_poly list read, its length
        self._road_polys = np.zeros((0, 4, 2))

    def _polygons(self) -> np.ndarray:
        """Every polygon in drawing order, grass then road: ``(400 + n_road, 4, 2)``. The
        road's corners are read once per track (``reset`` makes a new ``road_poly``)."""
        seen = self._road_of
        if seen is None or seen[0] is not self.road_poly or seen[1] != len(self.road_poly):
            road = np.array([poly for poly, _ in self.road_poly], dtype=np.float64)
            self._road_polys = np.concatenate([self._grass_polys, road.reshape(-1, 4, 2)])
            self._road_of = (self.road_poly, len(self.road_poly))
        return self._road_polys

    def _covers_canvas(self, field, zoom, translation, angle) -> bool:
        """Whether the (convex) field polygon contains the canvas and INK pixels more on
        every side: then filling it is filling the canvas, and its edges are off it."""
        corners = rotate(np.array(field, dtype=np.float64), angle) * zoom + translation
        w, h = (size + INK for size in self.surf.get_size())
        canvas = np.array([(-INK, -INK), (w, -INK), (w, h), (-INK, h)])
        edges = np.roll(corners, -1, axis=0) - corners  # (4, 2)
        to_points = canvas[:, None, :] - corners[None, :, :]  # (4 canvas, 4 edges, 2)
        cross = edges[None, :, 0] * to_points[..., 1] - edges[None, :, 1] * to_points[..., 0]
        return bool((cross > 0).all() or (cross < 0).all())

    def _render_road(self, zoom, translation, angle):
        field = [
            (car_racing.PLAYFIELD, car_racing.PLAYFIELD),
            (car_racing.PLAYFIELD, -car_racing.PLAYFIELD),
            (-car_racing.PLAYFIELD, -car_racing.PLAYFIELD),
            (-car_racing.PLAYFIELD, car_racing.PLAYFIELD),
        ]
        if self._covers_canvas(field, zoom, translation, angle):
            self.surf.fill(self.bg_color)  # what the field's polygon would paint
        else:  # the first second's zoom, or the edge of the playfield in view
            self.surf.fill((0, 0, 0))  # a new Surface's black, around the field
            self._draw_colored_polygon(
                self.surf, field, self.bg_color, zoom, translation, angle, clip=False
            )
        polys = rotate(self._polygons(), angle)
        xs = polys[..., 0] * zoom + translation[0]
        ys = polys[..., 1] * zoom + translation[1]
        width, height = self.surf.get_size()  # the window's 1000x800, or a smaller canvas
        m = car_racing.MAX_SHAPE_DIM / self._k
        near = (xs >= -m) & (xs <= width + m)
        near &= (ys >= -m) & (ys <= height + m)
        # Gymnasium's own test (any corner within MAX_SHAPE_DIM of the screen), then ours:
        # a polygon whose bounding box misses the canvas by more than INK pixels leaves
        # no pixel on it (gfxdraw's fill and anti-aliased edge stay within a pixel of the
        # corners), so it is not drawn at all.
        drawn = near.any(axis=1)
        drawn &= (xs.max(axis=1) >= -INK) & (xs.min(axis=1) <= width + INK)
        drawn &= (ys.max(axis=1) >= -INK) & (ys.min(axis=1) <= height + INK)
        n_grass = len(self._grass_polys)
        index = np.flatnonzero(drawn)
        corners = np.stack([xs[index], ys[index]], axis=-1).tolist()
        surf, road, grass = self.surf, self.road_poly, self.grass_color
        for i, poly in zip(index.tolist(), corners, strict=True):
            color = grass if i < n_grass else [int(c) for c in road[i - n_grass][1]]
            gfxdraw.aapolygon(surf, poly, color)
            gfxdraw.filled_polygon(surf, poly, color)

    def _render(self, mode: str):
        # Gymnasium's CarRacing._render, with the canvas reused and the score's text cached;
        # with shrink > 1 the observation's canvas is smaller and everything on it scaled.
        assert mode in self.metadata["render_modes"]
        pygame.font.init()
        if self.screen is None and mode == "human":
            pygame.display.init()
            self.screen = pygame.display.set_mode((car_racing.WINDOW_W, car_racing.WINDOW_H))
        if self.clock is None:
            self.clock = pygame.time.Clock()
        if "t" not in self.__dict__:
            return  # reset() not called yet

        k = self._k = self.shrink if mode == "state_pixels" else 1
        W, H = car_racing.WINDOW_W // k, car_racing.WINDOW_H // k  # k == 1: the window
        if k not in self._canvases:
            self._canvases[k] = pygame.Surface((W, H))
        self.surf = self._canvases[k]  # _render_road paints all of it black or the field first

        assert self.car is not None
        angle = -self.car.hull.angle
        # Animating first second zoom.
        scale = car_racing.SCALE
        zoom = 0.1 * scale * max(1 - self.t, 0) + car_racing.ZOOM * scale * min(self.t, 1)
        zoom /= k
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (W / 2 + trans[0], H / 4 + trans[1])

        self._render_road(zoom, trans, angle)
        self.car.draw(
            self.surf, zoom, trans, angle, mode not in ["state_pixels_list", "state_pixels"]
        )

        self.surf = pygame.transform.flip(self.surf, False, True)
        self._render_indicators(W, H)

        label, size = f"{self.reward:04.0f}", round(42 / k)
        text = self._texts.get((label, size))
        if text is None:
            if size not in FastCarRacing._fonts:
                FastCarRacing._fonts[size] = pygame.font.Font(pygame.font.get_default_font(), size)
            text = self._texts[label, size] = FastCarRacing._fonts[size].render(
                label, True, (255, 255, 255), (0, 0, 0)
            )
        text_rect = text.get_rect()
        text_rect.center = (60 // k, H - H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)

        if mode == "human":
            pygame.event.pump()
            self.clock.tick(self.metadata["render_fps"])
            assert self.screen is not None
            self.screen.fill(0)
            self.screen.blit(self.surf, (0, 0))
            pygame.display.flip()
        elif mode == "rgb_array":
            return self._create_image_array(self.surf, (car_racing.VIDEO_W, car_racing.VIDEO_H))
        elif mode == "state_pixels":
            return self._create_image_array(self.surf, (car_racing.STATE_W, car_racing.STATE_H))
        else:
            return self.isopen


def register() -> str:
    """Register ``wmtutor/CarRacing-v3`` (once) and return the id to ``gymnasium.make``:
    ``FastCarRacing`` where the installed Gymnasium draws with the code it was checked
    against, Gymnasium's own ``CarRacing`` otherwise (with a warning). Same limits as
    ``CarRacing-v3`` (1000 steps, reward threshold 900)."""
    if ID not in gym.registry:
        fast = checked()
        if not fast:
            warnings.warn(
                "this Gymnasium's CarRacing drawing code differs from the one wmtutor's fast "
                f"renderer was checked against ({source_digests()} vs {CHECKED}): using "
                "Gymnasium's own renderer (same game, slower)",
                stacklevel=2,
            )
        entry = "wmtutor.fastcar:FastCarRacing" if fast else car_racing.__name__ + ":CarRacing"
        gym.register(ID, entry_point=entry, max_episode_steps=1000, reward_threshold=900)
    return ID
