"""wmtutor.fastcar: CarRacing drawn faster must be the same game, frame for frame."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pygame
import pytest

from wmtutor import fastcar
from wmtutor.envs import make_env


def _pair(randomize: bool = False) -> list[gym.Env]:
    kw = dict(render_mode="rgb_array", domain_randomize=randomize)
    return [gym.make("CarRacing-v3", **kw), gym.make(fastcar.register(), **kw)]


def _differing_frames(envs: list[gym.Env], seed: int, steps: int, drive: bool) -> int:
    """Step both with the same actions; count the observations that are not identical."""
    obs = [e.reset(seed=seed)[0] for e in envs]
    differ = int(not np.array_equal(*obs))
    rng = np.random.default_rng(seed)
    for t in range(steps):
        # white noise, or gas with a slow weave (the car stays on and off the road)
        action = (
            np.array([math.sin(t / 15), 0.6, 0.0]) if drive else rng.uniform([-1, 0, 0], [1, 1, 1])
        )
        (o0, r0, te0, tr0, _), (o1, r1, te1, tr1, _) = [e.step(action) for e in envs]
        assert (r0, te0, tr0) == (r1, te1, tr1), f"step {t}: rewards or ends differ"
        differ += int(not np.array_equal(o0, o1))
        if t % 40 == 0:
            differ += int(not np.array_equal(envs[0].render(), envs[1].render()))
        if te0 or tr0:
            break
    return differ


def test_rotate_is_pygames_to_the_last_bit():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 2)) * 300
    quarter = math.pi / 2
    angles = [
        *rng.uniform(-20, 20, 40),
        *(k * quarter + e for k in range(-4, 5) for e in (0, 3e-7)),
    ]
    for angle in angles:
        want = np.array([tuple(pygame.math.Vector2(tuple(p)).rotate_rad(angle)) for p in points])
        assert np.array_equal(fastcar.rotate(points, angle), want), angle


def test_installed_gymnasium_is_the_one_checked():
    # If this fails, Gymnasium's CarRacing drawing code changed: re-run
    # benchmarks/carracing_render.py, and update fastcar.CHECKED if it still matches.
    assert fastcar.checked(), fastcar.source_digests()


@pytest.mark.parametrize("drive,randomize", [(False, False), (True, False), (True, True)])
def test_same_frames_as_gymnasium(drive, randomize):
    envs = _pair(randomize)
    # 120 steps: the first second's zoom-out (50 steps) and then the usual close view
    assert _differing_frames(envs, seed=7, steps=120, drive=drive) == 0


def test_the_comparison_can_fail(monkeypatch):
    # Skipping polygons that are on screen must show: the check above is not vacuous.
    monkeypatch.setattr(fastcar, "INK", -150.0)
    assert _differing_frames(_pair(), seed=7, steps=60, drive=True) > 30


def test_make_env_uses_it_and_can_use_the_original():
    fast = make_env("carracing")
    assert isinstance(fast.unwrapped, fastcar.FastCarRacing)
    original = make_env("carracing", renderer="gymnasium")
    assert type(original.unwrapped).__name__ == "CarRacing"
    a, b = fast.reset(seed=3)[0], original.reset(seed=3)[0]
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)
    for env in (fast, original):
        env.close()
    with pytest.raises(ValueError, match="renderer='fancy'"):
        make_env("carracing", renderer="fancy")


def test_other_drawing_code_falls_back_to_the_original(monkeypatch):
    monkeypatch.setattr(fastcar, "CHECKED", {k: "0" * 16 for k in fastcar.CHECKED})
    monkeypatch.delitem(gym.registry, fastcar.ID, raising=False)
    with pytest.warns(UserWarning, match="Gymnasium's own renderer"):
        env_id = fastcar.register()
    env = gym.make(env_id, render_mode="rgb_array")
    assert not isinstance(env.unwrapped, fastcar.FastCarRacing)
    env.close()
    monkeypatch.delitem(gym.registry, fastcar.ID)  # the next register() is the real one


def test_a_new_track_after_reset_is_drawn_not_the_old_one():
    envs = _pair()
    for seed in (11, 12, 11):  # the same env objects, track after track
        assert _differing_frames(envs, seed=seed, steps=55, drive=True) == 0


def test_a_shrunk_canvas_is_close_to_the_original_but_not_the_same_bytes():
    # shrink=2 draws the observation at 500x400: a different picture of the same game.
    kw = dict(render_mode="rgb_array")
    envs = [gym.make("CarRacing-v3", **kw), gym.make(fastcar.register(), shrink=2, **kw)]
    obs = [e.reset(seed=7)[0] for e in envs]
    diffs, pictures_equal = [], True
    for t in range(80):  # the zoom-out, then the close view; gas with a weave
        results = [e.step(np.array([math.sin(t / 15), 0.6, 0.0])) for e in envs]
        assert results[0][1:4] == results[1][1:4], f"step {t}: rewards or ends differ"
        obs = [r[0] for r in results]
        assert obs[1].shape == obs[0].shape == (96, 96, 3)
        diffs.append(np.abs(obs[0].astype(int) - obs[1]).mean())
        if t % 20 == 0:  # render()'s 600x400 picture is still drawn at full size
            pictures_equal &= np.array_equal(envs[0].render(), envs[1].render())
    assert pictures_equal
    assert 0 < np.mean(diffs) < 2.0, np.mean(diffs)  # of 255; the same bytes would be 0
    for env in envs:
        env.close()


def test_bad_shrink_values_are_refused_by_name():
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match=f"shrink={bad!r}"):
            make_env("carracing", shrink=bad)
    with pytest.raises(ValueError, match="needs wmtutor's renderer"):
        make_env("carracing", renderer="gymnasium", shrink=2)
    env = make_env("carracing", shrink=4)
    assert env.unwrapped.shrink == 4 and env.reset(seed=1)[0].shape == (64, 64, 3)
    env.close()
