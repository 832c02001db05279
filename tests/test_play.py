"""Watching a game (wmtutor/play.py): recordings, the window, the widget's hook, errors."""

import numpy as np
import pytest
from PIL import Image

from wmtutor import envs, play


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WMTUTOR_PRESET", "tiny")


def test_random_play_is_recorded_to_a_gif_and_an_mp4_with_every_step(tmp_path):
    seen = []
    out = play.play("pong", policy="random", max_steps=12, window=False,
                    record=tmp_path / "pong.gif",
                    on_frame=lambda f, c: seen.append((f, c)))  # fmt: skip
    assert out["steps"] == 12 and len(seen) == 13  # the first frame, then one per step
    assert seen[0][0].shape == (210, 160, 3) and "random play" in seen[-1][1]
    with Image.open(out["record"]) as gif:
        assert gif.size == (160, 210) and 1 < gif.n_frames <= 13
    mp4 = play.play("doom", policy="random", max_steps=5, window=False,
                    record=tmp_path / "sub" / "doom.mp4")["record"]  # fmt: skip
    from moviepy import VideoFileClip

    with VideoFileClip(mp4) as clip:
        assert tuple(clip.size) == (160, 120)  # Doom recorded at half its 320×240
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary file left beside it


def test_the_same_seed_plays_the_same_episode():
    def episode(seed):
        frames = []
        play.play("pong", policy="random", max_steps=8, episode_seed=seed, window=False,
                  on_frame=lambda f, c: frames.append(f.copy()))  # fmt: skip
        return np.stack(frames)

    assert np.array_equal(episode(3), episode(3))
    assert not np.array_equal(episode(3), episode(4))


def test_the_window_and_the_keys_run_on_a_headless_display(monkeypatch):
    # SDL's dummy driver stands in for a desktop: the window code runs, nothing is shown.
    monkeypatch.setattr(play, "has_display", lambda: True)
    monkeypatch.setattr(envs, "SET_HEADLESS_DRIVER", False)
    out = play.play("doom", policy="human", max_steps=4, fps=1000)
    assert out["steps"] == 4 and out["what"] == "you"


def test_what_cannot_work_here_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(play, "has_display", lambda: False)
    with pytest.raises(RuntimeError, match="no display"):
        play.play("pong", policy="random", window=True)
    with pytest.raises(RuntimeError, match="human plays with the keys"):
        play.play("pong", policy="human", record=tmp_path / "x.gif")
    with pytest.raises(ValueError, match="nothing would show the game"):
        play.play("pong", policy="random")
    with pytest.raises(ValueError, match=r"x\.avi: expected a file ending in \.gif or \.mp4"):
        play.play("pong", policy="random", record=tmp_path / "x.avi")
    with pytest.raises(ValueError, match="policy 'robot'"):
        play.play("pong", policy="robot", record=tmp_path / "x.gif")
    with pytest.raises(FileNotFoundError, match="wmtutor pipeline --env doom"):
        play.play("doom", record=tmp_path / "x.gif")  # no trained agent: nothing trains
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("x.*"))
