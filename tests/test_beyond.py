"""Notebook 08's experiment (wmtutor/beyond.py) end to end on the tiny preset, real Doom."""

import json
import math

import numpy as np
import pytest

from wmtutor import beyond
from wmtutor.layout import Run
from wmtutor.presets import get_preset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("WMTUTOR_RUNS", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def result(runs):
    return beyond.compare("doom", "tiny", seeds=[0], progress=False)


def test_both_world_models_and_both_learners_are_measured(result):
    sizes = get_preset("tiny").doom
    reps = result["representation"]
    assert [r["world_model"] for r in reps] == ["separate", "joint"]
    for r in reps:
        assert r["recon"] > 0 and math.isfinite(r["z_nll"]) and 0 <= r["probe"] <= 1
        assert 0 < r["chance"] <= 1 and 1 <= r["random_in_dream"] <= sizes.controller.max_steps
        assert math.isnan(r["done_recall"]) or 0 <= r["done_recall"] <= 1
    tests = result["tests"]
    assert [(t["world_model"], t["learner"]) for t in tests] == [
        (wm, learner) for wm in beyond.WORLD_MODELS for learner in beyond.LEARNERS
    ]
    for t in tests:
        assert len(t["returns"]) == sizes.beyond.real_episodes
        assert all(0 < x <= sizes.controller.max_steps for x in t["returns"])
    chunk = sizes.ppo.n_envs * sizes.ppo.n_steps
    for wm in beyond.WORLD_MODELS:
        cma, ppo = (t for t in tests if t["world_model"] == wm)
        # the same budget: CMA-ES's whole generations, PPO's as many in whole rollouts
        assert cma["dream_steps"] >= sizes.beyond.dream_steps
        assert cma["dream_steps"] <= ppo["dream_steps"] < cma["dream_steps"] + chunk
    assert len(result["random"]) == 1 and len(result["random"][0]["returns"]) == 2
    table = beyond.tests_table(tests, result["random"])
    assert table.count("\n") == 1 + len(tests)
    assert "separate | ppo" in beyond.summary_table(tests)


def test_a_second_call_trains_and_plays_nothing(result, runs):
    folder = Run.of("doom", "tiny", 0).beyond
    files = [
        folder / "separate" / "ppo" / "ppo.pt",
        folder / "joint" / "cmaes" / "state.npz",
        folder / "joint" / "vae.pt",
        folder / "separate" / "cmaes" / "results.json",
    ]
    stamps = [p.stat().st_mtime_ns for p in files]
    again = beyond.compare("doom", "tiny", seeds=[0], progress=False)
    assert again["tests"] == result["tests"]
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_learning_curves_count_dream_steps_and_seconds(result):
    curves = beyond.learning_curves("doom", "tiny", seed=0, progress=False)
    assert set(curves) == {(w, lr) for w in beyond.WORLD_MODELS for lr in beyond.LEARNERS}
    for log in curves.values():
        steps = [r["dream_steps"] for r in log]
        seconds = [r["seconds"] for r in log]
        assert steps == sorted(steps) and steps[0] > 0
        assert seconds == sorted(seconds)


def test_the_ppo_agent_plays_a_real_episode_for_its_gif(result):
    episode = beyond.real_episode("separate", "ppo", "doom", "tiny", seed=0)
    assert episode["frames"].shape[1:] == (64, 64, 3)
    assert len(episode["frames"]) == len(episode["actions"]) == episode["return"]


def test_the_probe_reads_an_action_that_z_holds(tmp_path):
    from wmtutor.files import save_arrays

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        actions = rng.integers(3, size=200)
        mu = rng.normal(size=(200, 4)).astype(np.float32)
        mu[:, 0] = np.r_[0, np.cumsum(actions[:-1] - 1)]  # z_t+1 - z_t = the action's move
        paths.append(tmp_path / f"r{i}.npz")
        save_arrays(paths[-1], mu=mu, actions=actions)
    accuracy, chance = beyond.probe_actions(paths[:3], paths[3:])
    assert chance < 0.5 and accuracy > chance + 0.3  # far above guessing
    shuffled = []
    for i, p in enumerate(paths):
        d = np.load(p)
        shuffled.append(tmp_path / f"s{i}.npz")
        save_arrays(shuffled[-1], mu=d["mu"], actions=rng.permutation(d["actions"]))
    accuracy, chance = beyond.probe_actions(shuffled[:3], shuffled[3:])
    assert accuracy < chance + 0.1  # nothing to read: no better than guessing


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="doom or pong"):
        beyond.get_data("carracing", "tiny")
    with pytest.raises(ValueError, match="world model 'both'"):
        beyond.get_world_model("both", "doom", "tiny")
    with pytest.raises(ValueError, match="learner 'sgd'"):
        beyond.get_learner("joint", "sgd", "doom", "tiny")


def test_the_command_prints_the_tables(result, runs, capsys):
    from wmtutor.cli import main

    main(["beyond", "--env", "doom", "--preset", "tiny", "--seeds", "0", "--quiet"])
    out = capsys.readouterr().out
    assert "| 0 | joint | ppo |" in out and "mean over seeds" in out
    saved = json.loads((Run.of("doom", "tiny", 0).beyond / "random.json").read_text())
    assert f"{saved['mean']:.1f}" in out
    with pytest.raises(SystemExit):  # a value a setting cannot have: one line, no traceback
        main(["beyond", "--env", "doom", "--preset", "tiny", "--dream-steps", "0"])
    assert "--dream-steps 0" in capsys.readouterr().err
