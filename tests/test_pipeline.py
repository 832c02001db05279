"""`wmtutor pipeline` and the dream commands, end to end on the tiny preset (real games)."""

import json

import pytest

from wmtutor.cli import main as cli_main
from wmtutor.pipeline import stage_names


def test_the_pipeline_runs_every_stage_then_resumes_without_redoing_them(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--quiet"])
    out = capsys.readouterr().out
    folder = tmp_path / "doom" / "tiny"
    record = json.loads((folder / "pipeline.json").read_text())
    assert (
        list(record["stages"])
        == stage_names(1)
        == ["gather", "vae", "encode", "mdnrnn", "controller", "round1", "evaluate", "gifs"]
    )
    assert all(seconds >= 0 for seconds in record["stages"].values())
    assert [r["round"] for r in record["results"]] == [0, 1]
    result = record["result"]
    assert result == record["results"][1] and result["episodes"] == 4 and len(result["real"]) == 4
    assert 1 <= result["real_mean"] <= 20 and result["dream_mean"] >= 1  # tiny cap: 20 steps
    assert "C trained in the dream, 4 real episodes" in out and "in its dream (tau 1.15)" in out
    assert "after 1 round(s) of iterative training" in out
    # round 1: the first C's real episodes recorded, encoded, and M trained on them too
    round1 = folder / "round1"
    recorded = json.loads((round1 / "rollouts" / "manifest.json").read_text())["files"]
    assert len(recorded) == 3 and all(1 <= e["length"] <= 20 for e in recorded)
    assert len(list((round1 / "latents").glob("rollout_*.npz"))) == 3
    m_log = [json.loads(line) for line in open(round1 / "mdnrnn_log.jsonl")]
    assert max(r["epoch"] for r in m_log) == 3 + 1  # the preset's 3 epochs, then 1 more
    gifs = [folder / "controller_zch_dream1.15" / "dream_vs_real.gif",
            round1 / "controller_zch_dream1.15" / "dream_vs_real.gif"]  # fmt: skip
    assert [str(g) for g in gifs] == record["gifs"] and all(g.stat().st_size > 1000 for g in gifs)

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

    cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--in-dream", "--round", "1",
              "--episodes", "2", "--workers", "1"])  # fmt: skip
    out = capsys.readouterr().out  # round 1's C, with round 1's M
    assert "round1/controller_zch_dream1.15" in out
    with pytest.raises(SystemExit):  # a round is only in the dream
        cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--round", "1"])
    assert "--round needs --in-dream" in capsys.readouterr().err

    cli_main(["tau-sweep", "--env", "doom", "--preset", "tiny", "--quiet"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 5  # the header and one row per tau
    assert (folder / "tau_sweep" / "dream0.1" / "results.json").exists()
