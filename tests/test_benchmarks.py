"""Benchmark scripts whose figures the README quotes, run with tiny flags: they must run,
print their tables, and fail when what they check is false."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)  # fmt: skip


def test_carracing_render_compares_frames_and_times_both():
    out = _run("carracing_render.py", "--tracks", "1", "--steps", "60", "--speed-tracks", "1",
               "--full-every", "20")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    # 3 drivers compared (61 frames each, none differing), then 2 timed
    assert [r.split(" | ")[1:3] for r in rows[1:4]] == [["61", "0"]] * 3
    assert rows[-2].startswith("| random | ") and rows[-1].startswith("| driver | ")
    assert all(float(r.split(" | ")[-1].rstrip("x |")) > 0 for r in rows[-2:])


def test_carracing_shrink_measures_the_difference_and_the_speed(tmp_path):
    out = _run("carracing_shrink.py", "--preset", "tiny", "--shrink", "2", "--tracks", "2",
               "--steps", "30", "--drivers", "random", "--speed-tracks", "1",
               env={"WMTUTOR_RUNS": str(tmp_path)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ")]
    compared = [r for r in rows if r[0] == "| 2 (500x400)"]
    assert len(compared) == 1 and compared[0][2] == "60"  # 2 tracks x 30 frames
    mean_diff, shift = float(compared[0][3]), float(compared[0][6])
    assert 0 < mean_diff < 5 and shift >= 0  # close, and not the same bytes (tiny V: ~0)
    assert 0 <= float(compared[0][-1].strip(" |%")) <= 100  # the probe's accuracy
    speeds = [r for r in rows if len(r) == 3 and r[2].endswith("x |")]  # 3 renderers timed
    assert len(speeds) == 3 and all(float(r[1]) > 0 for r in speeds), rows


def test_pong_ball_measures_the_ball_and_the_paddle(tmp_path):
    out = _run("pong_ball.py", "--preset", "tiny", "--episodes", "1", "--steps", "40",
               env={"WMTUTOR_RUNS": str(tmp_path)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in out.stdout.splitlines()
            if line.startswith("| ball") or line.startswith("| agent")}  # fmt: skip
    assert set(rows) == {"ball", "agent's paddle"}
    assert int(rows["agent's paddle"][1]) == 40  # the paddle is always on the field
    assert 0 < int(rows["ball"][1]) <= 40
    assert all(0.0 <= float(r[4].rstrip("%")) <= 100.0 for r in rows.values())  # kept
    r2_row = [float(r[5]) for r in rows.values()]  # the probe's held-out R² (nan: no spread)
    assert all(v <= 1.0 for v in r2_row if v == v), r2_row
    assert rows["agent's paddle"][6].strip(" |") == "nan"  # its column never moves
    moves = re.search(r"std of mu ([\d.]+) per dimension .* sigma ([\d.]+)", out.stdout)
    assert moves and float(moves[1]) > 0 and 0 < float(moves[2]) < 10, out.stdout


def test_pong_v_trains_and_measures_each_variant(tmp_path):
    names = ["untold", "no-sampling", "broadcast-decoder", "centred-input", "blurred-loss",
             "told-positions"]  # fmt: skip
    out = _run("pong_v.py", "--preset", "tiny", "--out", str(tmp_path / "v"), "--episodes",
               "1", "--steps", "40", "--variants", *names,
               env={"WMTUTOR_RUNS": str(tmp_path)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r[0][2:] for r in rows] == names
    finder = re.search(r"the ball found in (\d+) of (\d+) frames .*, ([\d.]+) px", out.stdout)
    assert finder and 0 < int(finder[1]) <= int(finder[2]), out.stdout
    assert float(finder[3]) < 1.0  # the colour finder agrees with the raw frames
    for r in rows:
        assert float(r[1]) > 0 and 0 <= float(r[2].rstrip("%")) <= 100  # recon, ball kept
        assert float(r[5]) > 0 and float(r[6]) > 0  # z's spread, V's sigma
    # each variant is the V it says: its own decoder; an encoder's input multiplied by 10;
    # a loss with the blurred errors or the positions added (before any step, the same V:
    # the same recon)
    state = torch.load(tmp_path / "v" / "broadcast-decoder" / "vae.pt", weights_only=True)
    assert "fc_decode.weight" not in state["model"] and "decoder.0.weight" in state["model"]
    spread = {r[0][2:]: float(r[5]) for r in rows}
    assert spread["centred-input"] > 3 * spread["untold"], spread
    first = {n: json.loads((tmp_path / "v" / n / "vae_log.jsonl").open().readline())
             for n in ("untold", "blurred-loss", "told-positions")}  # fmt: skip
    for n in ("blurred-loss", "told-positions"):  # a loss with a term added
        assert first[n]["recon"] == pytest.approx(first["untold"]["recon"])
        assert first[n]["loss"] > first["untold"]["loss"] + 1, first
    assert "told" in first["told-positions"] and "told" not in first["untold"]


def test_pong_inputs_probes_each_input_for_the_balls_place_and_velocity(tmp_path):
    out = _run("pong_inputs.py", "--preset", "tiny", "--files", "3",
               env={"WMTUTOR_RUNS": str(tmp_path)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    steps = re.search(r"(\d+) steps of 3 encoded rollouts", out.stdout)
    assert steps and int(steps[1]) > 10, out.stdout
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    pcs = "8 principal components of z_t, h_t (C's input)"  # tiny's Pong C reads 8
    assert [r[0][2:] for r in rows] == ["z_t", "z_t, z_t-1", "z_t, h_t", pcs, "h_t"]
    r2 = np.array([[float(x) for x in f"{r[1]} / {r[2].strip(' |')}".split(" / ")] for r in rows])
    assert r2.shape == (5, 4) and np.isfinite(r2).all() and (r2 <= 1).all(), r2


def test_pong_inputs_probe_scores_what_x_carries():
    path = ROOT / "benchmarks" / "pong_inputs.py"
    spec = importlib.util.spec_from_file_location("pong_inputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * [1, 1e-3, 1, 1, 1]  # a column that barely moves counts too
    y = np.c_[x[:, 0] - 2 * x[:, 1] * 1e3, rng.normal(size=400)]  # linear in x, and noise
    r2 = module.ridge_r2(x, y)
    assert r2[0] > 0.99 and abs(r2[1]) < 0.1, r2


def test_threads_times_one_job_then_two_with_each_thread_setting():
    out = _run("threads.py", "--seconds", "0.5", "--batch", "8")
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r[0][2:].split(",")[0] for r in rows] == ["one job", "two jobs", "two jobs"]
    for r, jobs in zip(rows, (1, 2, 2), strict=True):
        each = [float(x) for x in r[1].split(" / ")]
        assert len(each) == jobs and all(x > 0 for x in each)
        assert float(r[2]) == pytest.approx(sum(each), abs=1)  # "in all" adds the jobs up
    assert float(rows[0][3].strip(" |")) == 1.0


def test_joint_compares_separate_and_joint_training(tmp_path):
    out = _run("joint.py", "--preset", "tiny", "--n-rollouts", "4",
               env={"WMTUTOR_RUNS": str(tmp_path)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines()
            if line.startswith("| separate") or line.startswith("| joint")]  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        recon, nll = float(row[1]), float(row[2])
        accuracy, chance = (float(v.strip("%()")) for v in row[3].split())
        assert recon > 0 and np.isfinite(nll) and 0 <= accuracy <= 100 and 0 < chance <= 100


@pytest.mark.parametrize("hidden", ["0", "3"])
def test_pong_ram_trains_c_on_the_positions_and_the_tracker_follows_the_ball(hidden):
    out = _run("pong_ram.py", "--generations", "2", "--popsize", "4", "--trials", "1",
               "--steps", "40", "--test-games", "1", "--test-steps", "400",
               "--workers", "1", "--hidden", hidden)  # fmt: skip
    assert out.returncode == 0, out.stderr
    gens = [line for line in out.stdout.splitlines() if line.startswith("generation ")]
    assert len(gens) == 2
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in out.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| 1 whole")}  # fmt: skip
    rows = {k: v for k, v in rows.items() if not k.startswith("-")}
    points = {k.split()[0]: float(v[1].split(" ± ")[0]) for k, v in rows.items()}
    assert set(points) == {"C", "tracker", "random"}, rows
    assert all(-21 <= v <= 21 for v in points.values())
    # following the ball loses fewer points in 400 steps than white noise (a wrong sign
    # would chase the paddle away from it)
    assert points["tracker"] > points["random"], points
    assert ("C with 3 hidden units" in out.stdout) == (hidden == "3")
    n_params = len(re.search(r"mean parameters = \[(.*)\]", out.stdout)[1].split(","))
    assert n_params == (3 * (7 + 2) + 1 if hidden == "3" else 7 + 1)


def test_vae_loader_times_the_four_loaders_and_the_cache(tmp_path):
    from test_datasets import write_rollouts

    folder = write_rollouts(tmp_path / "r", [40, 30])
    out = _run("vae.py", "--loader", str(folder), "--batches", "16", "--seconds", "0.2",
               "--rounds", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "the frame cache: 70 frames, 1 MiB" in out.stdout
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == [
        "| a frame at a time, collated (before)",
        "| whole batches, no workers",
        "| whole batches, 2 loader workers",
        "| the frame cache, no workers",
    ]
    assert all(float(r[1]) > 0 for r in rows[1:]) and rows[1][2] == "1.00 |"


def test_controller_times_pongs_generation_in_blocks_and_one_per_task():
    out = _run("controller.py", "--only", "blocks", "--steps", "10", "--repeats", "1",
               "--device", "cpu", "--workers", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [r.split(" | ") for r in out.stdout.splitlines() if r.startswith("| ")]
    assert [r[0] for r in rows[1:]] == [
        "| blocks of 6 candidates, each in one batch (now)",  # 16 games at most in a block
        "| one candidate per task (before; Dask still)",
    ]
    assert all(float(r[1].rstrip(" |")) > 0 for r in rows[1:])
    assert float(re.search(r"one per task / blocks: ([\d.]+)", out.stdout)[1]) > 0
