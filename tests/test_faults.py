"""Faults a user meets: kill -9 in the middle of a stage, then the same command again.

Each test kills a real `wmtutor` command at a random moment (seeded), checks that no
process it started outlives it, runs it again and compares the result with a run that
was never interrupted.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wmtutor.files import load_rollout, read_manifest
from wmtutor.training import load_checkpoint

TINY = ["--preset", "tiny", "--quiet"]


def descendants(pid: int) -> set[int]:
    """Every living process started, directly or not, by ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie is dead already
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def wmtutor(args: list[str], env: dict, **kw) -> subprocess.Popen:
    code = "from wmtutor.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kw)


def kill_midway(args: list[str], env: dict, wait_for, seed: int) -> set[int]:
    """Start the command, wait until ``wait_for()`` holds, then a random extra moment, and
    kill -9 it; returns the processes it had started (all must be gone soon)."""
    proc = wmtutor(args, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not wait_for():
        assert proc.poll() is None, f"{args} ended before it could be killed"
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return children


def assert_all_gone(children: set[int], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(children), f"processes outlived their command: {alive(children)}"


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, WMTUTOR_RUNS=str(tmp_path / "runs"), WMTUTOR_PRESET="tiny")


def test_a_gather_killed_midway_leaves_no_worker_and_resumes_to_the_same_data(tmp_path, env):
    args = ["gather", "--env", "doom", *TINY, "--n-rollouts", "8", "--workers", "2",
            "--max-steps", "300"]  # fmt: skip
    folder = tmp_path / "runs" / "doom" / "tiny" / "seed0" / "rollouts"
    started = lambda: len(list(folder.glob("rollout_*.npz"))) >= 1  # noqa: E731
    children = kill_midway(args, env, started, seed=1)
    assert children, "gather should have started worker processes"
    assert_all_gone(children)
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *args],
                   env=env, check=True, capture_output=True)  # fmt: skip
    straight = dict(env, WMTUTOR_RUNS=str(tmp_path / "straight"))
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *args],
                   env=straight, check=True, capture_output=True)  # fmt: skip
    other = tmp_path / "straight" / "doom" / "tiny" / "seed0" / "rollouts"
    a, b = read_manifest(folder), read_manifest(other)
    assert [e["file"] for e in a["files"]] == [e["file"] for e in b["files"]]
    for entry in a["files"]:
        x, y = load_rollout(folder / entry["file"]), load_rollout(other / entry["file"])
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not list(folder.glob(".*.tmp"))  # a killed write's temp file was cleaned up


def test_a_vae_killed_midway_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, env):
    gather = ["gather", "--env", "pong", *TINY, "--n-rollouts", "4", "--workers", "1"]
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *gather],
                   env=env, check=True, capture_output=True)  # fmt: skip
    run = tmp_path / "runs" / "pong" / "tiny" / "seed0"
    args = ["train-vae", "--env", "pong", *TINY, "--epochs", "4", "--device", "cpu"]
    trained_one = lambda: (run / "vae.pt").exists()  # noqa: E731
    kill_midway(args, env, trained_one, seed=2)
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *args],
                   env=env, check=True, capture_output=True)  # fmt: skip
    straight = ["train-vae", "--env", "pong", *TINY, "--epochs", "4", "--device", "cpu",
                "--out", str(tmp_path / "straight")]  # fmt: skip
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *straight],
                   env=env, check=True, capture_output=True)  # fmt: skip
    a, b = load_checkpoint(run / "vae.pt"), load_checkpoint(tmp_path / "straight" / "vae.pt")
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])
    assert not list(run.glob(".*.tmp"))


def test_a_controller_killed_midway_leaves_no_worker_and_resumes_exactly(tmp_path, env):
    args = ["train-controller", "--env", "pong", *TINY, "--workers", "2", "--generations",
            "4", "--device", "cpu"]  # fmt: skip
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from wmtutor.cli import main; main()",
            *args[:-4],
            "--generations",
            "1",
            "--workers",
            "1",
        ],
        env=env,
        check=True,
        capture_output=True,
    )  # fmt: skip  (V and M made here)
    run = tmp_path / "runs" / "pong" / "tiny" / "seed0"
    state = run / "controller_zh" / "state.npz"
    first = state.stat().st_mtime_ns
    moved_on = lambda: state.stat().st_mtime_ns != first  # noqa: E731
    children = kill_midway(args, env, moved_on, seed=3)
    assert_all_gone(children)
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *args],
                   env=env, check=True, capture_output=True)  # fmt: skip
    straight = [*args, "--out", str(tmp_path / "straight")]
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *straight],
                   env=env, check=True, capture_output=True)  # fmt: skip
    with np.load(state) as a, np.load(tmp_path / "straight" / "state.npz") as b:
        np.testing.assert_array_equal(a["es_mean"], b["es_mean"])
        np.testing.assert_array_equal(a["best_params"], b["best_params"])


def cli(args: list[str], env: dict) -> None:
    subprocess.run([sys.executable, "-c", "from wmtutor.cli import main; main()", *args],
                   env=env, check=True, capture_output=True)  # fmt: skip


def test_an_mdnrnn_and_an_encode_killed_midway_resume_to_an_uninterrupted_result(tmp_path, env):
    cli(["gather", "--env", "pong", *TINY, "--n-rollouts", "24", "--workers", "1"], env)
    cli(["train-vae", "--env", "pong", *TINY, "--epochs", "1", "--device", "cpu"], env)
    run = tmp_path / "runs" / "pong" / "tiny" / "seed0"
    encode = ["encode", "--env", "pong", *TINY, "--device", "cpu"]
    some = lambda: len(list((run / "latents").glob("rollout_*.npz"))) >= 2  # noqa: E731
    kill_midway(encode, env, some, seed=4)
    cli(encode, env)
    cli([*encode, "--out", str(tmp_path / "straight_z")], env)
    for entry in read_manifest(run / "latents")["files"]:
        a = load_rollout(run / "latents" / entry["file"])
        b = load_rollout(tmp_path / "straight_z" / entry["file"])
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    m = ["train-mdnrnn", "--env", "pong", *TINY, "--epochs", "6", "--device", "cpu"]
    kill_midway(m, env, lambda: (run / "mdnrnn.pt").exists(), seed=5)
    cli(m, env)
    cli([*m, "--out", str(tmp_path / "straight_m")], env)
    a = load_checkpoint(run / "mdnrnn.pt")
    b = load_checkpoint(tmp_path / "straight_m" / "mdnrnn.pt")
    assert a["epoch"] == b["epoch"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])
    assert not list(run.glob(".*.tmp")) and not list((run / "latents").glob(".*.tmp"))
