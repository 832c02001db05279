"""Every flag of every command, given a value it cannot have: one clear line, exit 2, no
traceback, and nothing made on disk. The table is generated from the parser itself, so a
new flag is covered the day it is added."""

import argparse
import os

import pytest

from wmtutor import presets
from wmtutor.cli import build_parser
from wmtutor.cli import main as cli_main

SKIP = {"--help", "--quiet", "--debug", "--all", "--restart", "--in-dream", "--scheduler",
        "--no-window", "--force", "--tau-sweep", "--full"}  # fmt: skip
BY_NAME = {"--preset": ["huge"], "--device": ["gpu0", "cuda:99"], "--env": ["quake"]}
PATHS = {"--out": "FILE/sub", "--rollouts-dir": "/nonexistent/r", "--latents-dir": "FILE",
         "--vae": "/nonexistent/vae.pt", "--controller": "/nonexistent/c",
         "--record": "FILE/clip.gif"}  # fmt: skip


def bad_values(action: argparse.Action) -> list[str]:
    """Values this flag cannot take: out of its type, its choices or its rule's range."""
    flag = action.option_strings[-1]
    if flag in BY_NAME:
        return BY_NAME[flag]
    if flag in PATHS:
        return [PATHS[flag]]
    if action.choices:
        return ["bogus"]
    values = []
    name = getattr(action.type, "__name__", "")
    if action.type is int or name.startswith("integer"):
        values += ["x", "1.5", "-1"]
    elif name == "_finite":
        values += ["nan", "inf", "x"]
    section, _, field = action.dest.partition(".")
    rule = getattr(presets, section).RULES.get(field) if field else None
    if rule is not None and rule.kind == "number" and rule.low is not None:
        values.append(str(rule.low - 1))
    if rule is not None and rule.kind == "number" and rule.high is not None:
        values.append(str(rule.high + 1))
    return values


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict:
    """``{"gather": parser, ..., "bundle export": parser}``: every (sub)command's parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                found[prefix + name] = p
                found.update(commands(p, f"{prefix}{name} "))
    return found


def cases() -> list[tuple[str, str, str]]:
    out = []
    for command, p in commands(build_parser()).items():
        for action in p._actions:
            if not action.option_strings or action.option_strings[-1] in SKIP:
                continue
            if isinstance(action, argparse.BooleanOptionalAction):
                continue  # --x / --no-x: there is no bad value
            values = bad_values(action)
            assert values, f"no bad value known for {command} {action.option_strings[-1]}"
            out += [(command, action.option_strings[-1], v) for v in values]
    return out


CASES = cases()


def test_the_table_covers_every_command():
    assert {c for c, _, _ in CASES} >= {"gather", "train-vae", "encode", "train-mdnrnn",
                                         "train-controller", "evaluate", "pipeline",
                                         "tau-sweep", "migrate", "presets",
                                         "bundle export"}  # fmt: skip
    assert len(CASES) > 150


@pytest.mark.parametrize("command, flag, value", CASES, ids=[f"{c} {f} {v}" for c, f, v in CASES])
def test_a_bad_value_is_one_line_and_makes_nothing(command, flag, value, tmp_path, monkeypatch,
                                                   capsys):  # fmt: skip
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("WMTUTOR_DEBUG", raising=False)
    (tmp_path / "FILE").write_text("a file, not a folder")
    value = value.replace("FILE", str(tmp_path / "FILE"))
    argv = [*command.split(), flag, value]
    if flag != "--env" and command not in ("presets",):
        argv += ["--env", "doom"]
    if flag != "--preset":
        argv += ["--preset", "tiny"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert flag in err or value in err, err
    assert not (tmp_path / "runs").exists(), "something was made before the refusal"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_folder_is_one_line(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o555)
    monkeypatch.setenv("WMTUTOR_RUNS", str(runs))
    with pytest.raises(SystemExit):
        cli_main(["gather", "--env", "pong", "--preset", "tiny", "--workers", "1", "--quiet"])
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    code = "from wmtutor.cli import main; main(['presets', '--all'])"
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.stdout.startswith("preset: ") and proc.stderr == ""


def test_broken_files_are_named_with_the_command_that_remakes_them(tmp_path, monkeypatch, capsys):
    import numpy as np

    from wmtutor.files import RolloutFileError, load_rollout
    from wmtutor.mdnrnn import train_mdnrnn

    latents = tmp_path / "latents"
    latents.mkdir()
    (latents / "rollout_00000.npz").write_bytes(b"PK cut short")
    with pytest.raises(RolloutFileError, match="rollout_00000.npz: cannot read.*wmtutor encode"):
        load_rollout(latents / "rollout_00000.npz")
    with pytest.raises(RolloutFileError, match="missing.npz: no such file.*wmtutor gather"):
        load_rollout(tmp_path / "missing.npz")
    raw = tmp_path / "rollouts"
    raw.mkdir()
    for i in range(2):
        np.savez(raw / f"rollout_{i:05d}.npz", frames=np.zeros((3, 64, 64, 3), np.uint8))
    with pytest.raises(RolloutFileError, match="has no mu.*pass a folder of latents"):
        train_mdnrnn(raw, tmp_path / "m.pt", presets.get_preset("tiny").doom.mdnrnn, "doom")
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "FILE"))  # the runs folder is a file
    (tmp_path / "FILE").write_text("not a folder")
    with pytest.raises(SystemExit):
        cli_main(["gather", "--env", "pong", "--preset", "tiny", "--workers", "1", "--quiet"])
    err = capsys.readouterr().err
    assert "FILE" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
