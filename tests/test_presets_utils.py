"""Presets (wmtutor/presets.py) and helpers (wmtutor/utils.py)."""

import os
import stat

import numpy as np
import pytest
import torch

from wmtutor.presets import PRESETS, get_preset
from wmtutor.utils import atomic_path, runs_dir, seed_everything


def test_preset_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("WMTUTOR_PRESET", raising=False)
    assert get_preset().name == "laptop"
    monkeypatch.setenv("WMTUTOR_PRESET", "tiny")
    assert get_preset().name == "tiny"
    assert get_preset("paper").name == "paper"
    monkeypatch.setenv("WMTUTOR_PRESET", "huge")
    with pytest.raises(ValueError, match=r"'huge' \(from \$WMTUTOR_PRESET\).*laptop, paper, tiny"):
        get_preset()


def test_presets_grow_from_tiny_to_paper():
    tiny, laptop, paper = PRESETS["tiny"], PRESETS["laptop"], PRESETS["paper"]
    assert tiny.mdn_toy.steps < laptop.mdn_toy.steps < paper.mdn_toy.steps
    assert tiny.cmaes_toy.n_seeds < laptop.cmaes_toy.n_seeds < paper.cmaes_toy.n_seeds
    assert paper.mdn_toy.n_gaussians == 5  # the paper's mixture size
    assert "mdn_toy: n_samples=400" in tiny.describe()


def test_seed_everything_repeats_runs():
    a = (seed_everything(3).random(), torch.rand(1).item(), np.random.rand())
    b = (seed_everything(3).random(), torch.rand(1).item(), np.random.rand())
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "artifact.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_runs_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "r"))
    path = runs_dir("toys", "tiny")
    assert path == tmp_path / "r" / "toys" / "tiny" and path.is_dir()


def test_every_game_has_data_sizes_and_paper_has_the_papers():
    for preset in PRESETS.values():
        for game in ("carracing", "doom", "pong"):
            data = preset.game(game).data
            assert data.n_rollouts >= 1 and data.max_steps >= 1 and data.frame_skip >= 1
    paper = PRESETS["paper"]
    assert paper.carracing.data.n_rollouts == paper.doom.data.n_rollouts == 10_000
    assert paper.doom.data.max_steps == 2100 and paper.doom.data.min_length == 100
    assert paper.doom.data.policy == "held"
    assert "    data: n_rollouts=3" in PRESETS["tiny"].describe()
    with pytest.raises(ValueError, match="unknown game 'quake'"):
        paper.game("quake")
