"""The games (wmtutor/envs.py): 64×64 frames, action adapters, caps, clear errors."""

import os
import sys

import numpy as np
import pytest

from wmtutor.envs import GAMES, CarRacingActions, ThreeWayActions, make_env
from wmtutor.rollouts import make_policy, play, track_coverage


@pytest.fixture(scope="module", params=list(GAMES))
def env(request):
    env = make_env(request.param, max_steps=40, frame_skip=4 if request.param == "pong" else 1)
    yield env
    env.close()


def test_frames_are_64x64_uint8_and_not_blank(env):
    frame, _ = env.reset(seed=0)
    policy = make_policy("white", env, seed=0)
    for _ in range(10):
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert env.observation_space.contains(frame)
        assert frame.std() > 1.0, "a constant frame: the known blank-frame bug"
        action = policy(frame)
        assert env.action_space.contains(action)
        frame, *_ = env.step(action)
    assert env.raw_frame.ndim == 3 and env.raw_frame.shape[0] > 64


def test_same_seed_same_rollout_other_seed_other_rollout(env):
    a = play(env, make_policy("held", env, seed=5), seed=5)
    b = play(env, make_policy("held", env, seed=5), seed=5)
    c = play(env, make_policy("held", env, seed=6), seed=6)
    for key in ("frames", "actions", "rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{env.name}: {key} differs")
    assert len(c["frames"]) != len(a["frames"]) or not np.array_equal(c["frames"], a["frames"])


def test_step_cap_counts_agent_steps(env):
    rollout = play(env, make_policy("white", env, seed=1), seed=1)
    assert len(rollout["rewards"]) <= 40
    if not rollout["terminated"][-1]:
        assert len(rollout["rewards"]) == 40 and rollout["truncated"][-1]


def test_carracing_frame_skip_repeats_the_action():
    env = make_env("carracing", frame_skip=3, max_steps=10)
    rollout = play(env, make_policy("brownian", env, seed=0), seed=0)
    assert len(rollout["rewards"]) == 10 and rollout["truncated"][-1]
    # 30 game frames at -0.1 each (plus tiles): the frame skip really advanced 3 frames
    assert track_coverage(rollout) == pytest.approx(
        env.unwrapped.tile_visited_count / len(env.unwrapped.track), abs=1e-4
    )
    env.close()


def test_doom_pays_one_per_step_and_is_capped_at_2100_by_default():
    env = make_env("doom")
    assert env.max_steps == 2100
    env.close()
    env = make_env("doom", max_steps=25)
    rollout = play(env, make_policy("held", env, seed=0), seed=0)
    assert np.all(rollout["rewards"] == 1.0)
    assert len(rollout["rewards"]) == 25 and rollout["truncated"][-1]
    env.close()


def test_doom_leaves_no_engine_files_where_the_student_works(tmp_path, monkeypatch):
    # ViZDoom's engine writes _vizdoom/ and _vizdoom.ini into its working directory: a
    # notebook's folder. They go to the cache instead, and our working directory stays.
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    env = make_env("doom", max_steps=3)
    env.reset(seed=0)
    env.reset(seed=1)
    env.step(env.action_space.sample())
    env.close()
    assert list(work.iterdir()) == []
    assert (cache / "wmtutor" / "vizdoom" / "_vizdoom.ini").exists()
    assert os.getcwd() == str(work)


def test_doom_and_pong_adapters_press_the_right_buttons():
    import vizdoom

    env = make_env("doom")
    adapter = env.adapter
    buttons = list(env.unwrapped.game.get_available_buttons())
    left = env.unwrapped.button_map[adapter(np.array([-0.9]))]
    assert left[buttons.index(vizdoom.Button.MOVE_LEFT)] == 1 and left.sum() == 1
    right = env.unwrapped.button_map[adapter(np.array([0.9]))]
    assert right[buttons.index(vizdoom.Button.MOVE_RIGHT)] == 1 and right.sum() == 1
    assert env.unwrapped.button_map[adapter(np.array([0.0]))].sum() == 0
    env.close()
    env = make_env("pong")
    meanings = env.unwrapped.get_action_meanings()
    assert [meanings[env.adapter(np.array([y]))] for y in (-0.5, 0.0, 0.5)] == [
        "LEFT",
        "NOOP",
        "RIGHT",
    ]
    env.close()


def test_action_adapters_map_controller_outputs_as_the_paper():
    car = CarRacingActions()
    np.testing.assert_allclose(car(np.array([-1.0, -1.0, -0.5])), [-1.0, 0.0, 0.0])
    np.testing.assert_allclose(car(np.array([0.5, 1.0, 0.25])), [0.5, 1.0, 0.25])
    assert car(np.zeros((7, 3))).shape == (7, 3)  # batched
    three = ThreeWayActions(n=3, low=2, stay=0, high=1, names=("left", "stay", "right"))
    y = np.array([[-0.34], [-0.33], [0.0], [0.33], [0.34]])
    np.testing.assert_array_equal(three(y), [2, 0, 0, 0, 1])
    assert three(np.array([0.9])) == 1 and isinstance(three(np.array([0.9])), int)
    np.testing.assert_array_equal(three.features(np.array([0, 2])), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="1 controller output"):
        three(np.zeros(3))
    with pytest.raises(ValueError, match="0..2"):
        three.features(np.array([3]))


def test_bad_requests_get_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown game 'quake'.*carracing, doom, pong"):
        make_env("quake")
    with pytest.raises(ValueError, match="headless.*rgb_array"):
        make_env("pong", render_mode="human")
    with pytest.raises(ValueError, match="frame_skip"):
        make_env("pong", frame_skip=0)
    monkeypatch.setitem(sys.modules, "vizdoom.gymnasium_wrapper", None)  # as if not installed
    with pytest.raises(ImportError, match="needs the 'vizdoom' package.*pip install"):
        make_env("doom")


def test_policies_differ_as_described():
    env = make_env("carracing", max_steps=200)
    white = play(env, make_policy("white", env, seed=2), seed=2)
    brownian = play(env, make_policy("brownian", env, seed=2), seed=2)
    step = {name: np.abs(np.diff(r["actions"], axis=0)).mean() for name, r in
            (("white", white), ("brownian", brownian))}  # fmt: skip
    assert step["brownian"] < step["white"] / 5  # smooth: small changes step to step
    for rollout in (white, brownian):
        assert 0.0 <= track_coverage(rollout) <= 1.0
    # the coverage formula agrees with the game's own count of visited tiles
    assert track_coverage(brownian) == pytest.approx(
        env.unwrapped.tile_visited_count / len(env.unwrapped.track), abs=1e-4
    )
    env.close()
    held = make_policy("held", env, seed=3)
    draws = iter(range(10**6))
    held.space.sample = lambda: next(draws)  # every draw distinct: runs = hold lengths
    actions = np.array([held(None) for _ in range(500)])
    runs = np.diff(np.flatnonzero(np.diff(actions, prepend=-1, append=-1)))
    assert runs[:-1].min() >= 1 and runs[:-1].max() <= 10  # held for 1-10 steps
    assert 4 < runs[:-1].mean() < 7  # uniform on 1..10: mean 5.5
    env.close()


def test_every_games_action_dim_matches_its_adapter():
    for name, spec in GAMES.items():
        env = make_env(name)
        assert env.adapter.action_dim == spec.action_dim
        actions = [env.action_space.sample() for _ in range(5)]
        assert env.adapter.features(np.asarray(actions)).shape == (5, spec.action_dim)
        env.close()
