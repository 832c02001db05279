"""Gathering rollouts to disk (wmtutor/rollouts.py): files, determinism, resume, the CLI."""

import json

import numpy as np
import pytest

import wmtutor.rollouts as rollouts
from wmtutor.cli import main as cli_main
from wmtutor.envs import make_env
from wmtutor.files import load_rollout, read_manifest
from wmtutor.pipeline import get_rollouts
from wmtutor.rollouts import gather, rollout_seed

PONG = dict(policy="held", max_steps=30, frame_skip=4)


def test_gathered_files_hold_what_the_manifest_says(tmp_path):
    manifest = gather("pong", 3, tmp_path, workers=2, progress=False, **PONG)
    assert manifest == read_manifest(tmp_path)
    assert manifest["config"]["game"] == "pong" and manifest["n_rollouts"] == 3
    space = make_env("pong").action_space
    total = 0
    for entry in manifest["files"]:
        data = load_rollout(tmp_path / entry["file"])
        T = entry["length"]
        assert data["frames"].shape == (T, 64, 64, 3) and data["frames"].dtype == np.uint8
        assert data["frames"].reshape(T, -1).std(axis=1).min() > 1.0  # no blank frames
        assert all(space.contains(a) for a in data["actions"])
        assert data["rewards"].shape == data["terminated"].shape == data["truncated"].shape
        assert data["terminated"][-1] or data["truncated"][-1]
        assert int(data["seed"]) == rollout_seed(0, entry["index"])
        total += T
    assert manifest["frames"] == total
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["manifest.json"] + [e["file"] for e in manifest["files"]]
    )  # no temp files left behind


def test_the_same_command_makes_the_same_data(tmp_path):
    a = gather("doom", 2, tmp_path / "a", workers=1, progress=False, max_steps=40)
    b = gather("doom", 2, tmp_path / "b", workers=2, progress=False, max_steps=40)
    for ea, eb in zip(a["files"], b["files"], strict=True):
        ra, rb = (
            load_rollout(tmp_path / "a" / ea["file"]),
            load_rollout(tmp_path / "b" / eb["file"]),
        )
        for key in ra:
            np.testing.assert_array_equal(ra[key], rb[key])
    c = gather("doom", 2, tmp_path / "c", workers=1, progress=False, max_steps=40, seed=1)
    assert [e["seed"] for e in c["files"]] != [e["seed"] for e in a["files"]]


def test_rerunning_gathers_only_what_is_missing(tmp_path, monkeypatch):
    gather("pong", 3, tmp_path, workers=1, progress=False, **PONG)
    (tmp_path / "rollout_00001.npz").unlink()
    kept = (tmp_path / "rollout_00000.npz").read_bytes()
    played = []
    real = rollouts.gather_one
    monkeypatch.setattr(rollouts, "gather_one", lambda c, i, d: played.append(i) or real(c, i, d))
    with pytest.warns(UserWarning, match="rollout_00001.npz is missing"):
        manifest = gather("pong", 5, tmp_path, workers=1, progress=False, **PONG)
    assert played == [1, 3, 4]
    assert manifest["n_rollouts"] == 5
    assert (tmp_path / "rollout_00000.npz").read_bytes() == kept
    played.clear()
    gather("pong", 5, tmp_path, workers=1, progress=False, **PONG)
    assert played == []
    # a listed file cut short (or changed) is caught by its size and checksum, and replaced
    whole = (tmp_path / "rollout_00001.npz").read_bytes()
    (tmp_path / "rollout_00001.npz").write_bytes(whole[:100])
    with pytest.warns(UserWarning, match="rollout_00001.npz is broken"):
        gather("pong", 5, tmp_path, workers=1, progress=False, **PONG)
    assert played == [1] and (tmp_path / "rollout_00001.npz").read_bytes() == whole
    # asking for fewer keeps them all: a gather never deletes what is there
    assert gather("pong", 2, tmp_path, workers=1, progress=False, **PONG)["n_rollouts"] == 5


def test_a_file_finished_after_the_last_manifest_write_is_kept_or_replaced(tmp_path):
    gather("pong", 2, tmp_path, workers=1, progress=False, **PONG)
    manifest = read_manifest(tmp_path)
    manifest["files"] = manifest["files"][:1]  # as if killed before the manifest caught up
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    bad = tmp_path / "rollout_00002.npz"
    bad.write_bytes((tmp_path / "rollout_00001.npz").read_bytes()[:500])  # cut short
    with pytest.warns(UserWarning, match="rollout_00002.npz"):
        manifest = gather("pong", 3, tmp_path, workers=1, progress=False, **PONG)
    assert [e["index"] for e in manifest["files"]] == [0, 1, 2]
    assert load_rollout(bad)["frames"].shape[1:] == (64, 64, 3)


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    gather("pong", 1, tmp_path, workers=1, progress=False, **PONG)
    with pytest.raises(ValueError, match="other settings.*policy: 'held' there, 'white' asked"):
        gather("pong", 1, tmp_path, workers=1, progress=False, **dict(PONG, policy="white"))
    with pytest.raises(ValueError, match="unknown policy"):
        gather("pong", 1, tmp_path / "x", policy="smart", progress=False)
    for bad in (dict(seed=-3), dict(frame_skip=0), dict(max_steps=0), dict(min_length=-1),
                dict(workers=0)):  # fmt: skip
        with pytest.raises(ValueError, match=f"{next(iter(bad))} -?[0-9]+: expected an integer"):
            gather("pong", 1, tmp_path / "x", progress=False, **bad)
    with pytest.raises(ValueError, match="n_rollouts"):
        gather("pong", 0, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_short_episodes_are_replaced_by_longer_ones(tmp_path):
    manifest = gather("doom", 3, tmp_path, policy="held", min_length=150, workers=1, progress=False)
    for entry in manifest["files"]:
        assert entry["length"] >= 150
    retried = [e for e in manifest["files"] if e["seed"] != rollout_seed(0, e["index"])]
    unretried = gather("doom", 3, tmp_path / "all", policy="held", workers=1, progress=False)
    short = [e for e in unretried["files"] if e["length"] < 150]
    assert len(retried) == len(short)  # exactly the short first attempts were played again


def test_get_rollouts_caches_under_the_runs_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    manifest = get_rollouts("pong", "tiny", workers=1, progress=False)
    folder = tmp_path / "pong" / "tiny" / "seed0" / "rollouts"
    assert manifest["dir"] == str(folder)
    assert manifest["n_rollouts"] == 3 and manifest["preset"] == "tiny"
    before = (folder / "rollout_00000.npz").stat().st_mtime_ns
    get_rollouts("pong", "tiny", workers=1, progress=False)
    assert (folder / "rollout_00000.npz").stat().st_mtime_ns == before
    other = get_rollouts("pong", "tiny", seed=1, workers=1, progress=False)  # its own folder
    assert other["dir"].endswith("seed1/rollouts") and other["config"]["seed"] == 1


def test_what_a_user_gathered_is_kept_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    cli_main(["gather", "--env", "pong", "--preset", "tiny", "--n-rollouts", "5", "--workers",
              "1", "--quiet"])  # fmt: skip
    assert get_rollouts("pong", "tiny", progress=False)["n_rollouts"] == 5  # not the preset's 3


def test_cli_gather(tmp_path, capsys):
    args = ["gather", "--env", "pong", "--preset", "tiny", "--out", str(tmp_path)]
    cli_main([*args, "--workers", "1", "--n-rollouts", "2", "--quiet"])
    assert "2 rollouts, 120 frames" in capsys.readouterr().out
    assert read_manifest(tmp_path)["config"]["frame_skip"] == 4  # the tiny preset's
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*args, "--policy", "white", "--quiet"])
    assert exit_info.value.code == 2 and "other settings" in capsys.readouterr().err
    for flag, value in (("--n-rollouts", "0"), ("--frame-skip", "0"), ("--max-steps", "0"),
                        ("--seed", "-3"), ("--workers", "0")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            cli_main([*args, flag, value, "--quiet"])
        assert exit_info.value.code == 2
        assert flag in capsys.readouterr().err
