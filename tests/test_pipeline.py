"""`wmtutor pipeline` and the dream commands, end to end on the tiny preset (real games)."""

import json

from wmtutor.cli import main as cli_main
from wmtutor.pipeline import STAGES


def test_the_pipeline_runs_every_stage_then_resumes_without_redoing_them(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--quiet"])
    out = capsys.readouterr().out
    folder = tmp_path / "doom" / "tiny"
    record = json.loads((folder / "pipeline.json").read_text())
    assert list(record["stages"]) == list(STAGES)
    assert all(seconds >= 0 for seconds in record["stages"].values())
    result = record["result"]
    assert result["episodes"] == 4 and len(result["real"]) == 4
    assert 1 <= result["real_mean"] <= 20 and result["dream_mean"] >= 1  # tiny cap: 20 steps
    assert "real game, 4 episodes" in out and "in the dream (tau 1.15)" in out
    gif = folder / "controller_zch_dream1.15" / "dream_vs_real.gif"
    assert [str(gif)] == record["gifs"] and gif.stat().st_size > 1000

    state = folder / "controller_zch_dream1.15" / "state.npz"
    trained_at = state.stat().st_mtime_ns
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--quiet"])
    assert state.stat().st_mtime_ns == trained_at  # resumed: nothing trained again
    again = json.loads((folder / "pipeline.json").read_text())
    assert again["result"]["real"] == result["real"]

    capsys.readouterr()
    cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--in-dream", "--episodes", "2",
              "--workers", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert "controller_zch_dream1.15" in out and "in its dream (tau 1.15)" in out

    cli_main(["tau-sweep", "--env", "doom", "--preset", "tiny", "--quiet"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 5  # the header and one row per tau
    assert (folder / "tau_sweep" / "dream0.1" / "results.json").exists()
