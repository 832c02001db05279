"""`wmtutor pipeline` and the dream commands, end to end on the tiny preset (real games)."""

import json
from pathlib import Path

import numpy as np
import pytest

from wmtutor import pipeline
from wmtutor.cli import main as cli_main
from wmtutor.pipeline import TEST_SEED, VALIDATION_SEED, choose_round, stage_names
from wmtutor.presets import get_preset
from wmtutor.rollouts import rollout_seed
from wmtutor.viz import dreams_gif


def test_the_pipeline_runs_every_stage_then_resumes_without_redoing_them(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--quiet"])
    out = capsys.readouterr().out
    folder = tmp_path / "doom" / "tiny" / "seed0"
    record = json.loads((folder / "pipeline.json").read_text())
    assert list(record["stages"]) == stage_names(1) == [
        "gather", "vae", "encode", "mdnrnn", "controller", "round1", "validate", "evaluate",
        "gifs"]  # fmt: skip
    assert all(seconds >= 0 for seconds in record["stages"].values())
    assert [r["round"] for r in record["validation"]] == [0, 1] and record["seed"] == 0
    assert all(r["episodes"] == 2 for r in record["validation"])  # tiny: 2 validation episodes
    chosen = record["chosen_round"]
    assert record["validation"][chosen]["real_mean"] == max(
        r["real_mean"] for r in record["validation"]
    )
    result = record["result"]
    assert result["round"] == chosen and result["episodes"] == 4 and len(result["real"]) == 4
    assert 1 <= result["real_mean"] <= 20 and result["dream_mean"] >= 1  # tiny cap: 20 steps
    assert f"test of round {chosen}'s C, 4 real episodes" in out and "<- shipped" in out
    assert "in its dream (tau 1.15)" in out and "after 1 round(s) of iterative training" in out
    # round 1: the first C's real episodes recorded, encoded, and M trained on them too
    dream = folder / "dream_zch_tau1.15"
    round1 = dream / "round1"
    recorded = json.loads((round1 / "rollouts" / "manifest.json").read_text())["files"]
    assert len(recorded) == 3 and all(1 <= e["length"] <= 20 for e in recorded)
    assert len(list((round1 / "latents").glob("rollout_*.npz"))) == 3
    # watching the shipped agent trains nothing and records every step
    before = sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file())
    cli_main(["play", "--env", "doom", "--preset", "tiny", "--no-window", "--quiet",
              "--record", str(tmp_path / "watch.gif")])  # fmt: skip
    out = capsys.readouterr().out
    assert f"C shipped by the pipeline (round {chosen}" in out and "recorded:" in out
    assert (tmp_path / "watch.gif").exists()
    assert sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()) == before
    m_log = [json.loads(line) for line in open(round1 / "mdnrnn_log.jsonl")]
    assert max(r["epoch"] for r in m_log) == 3 + 1  # the preset's 3 epochs, then 1 more
    gifs = [dream / "round0" / "controller" / "dream_vs_real.gif",
            round1 / "controller" / "dream_vs_real.gif"]  # fmt: skip
    assert [str(g) for g in gifs] == record["gifs"] and all(g.stat().st_size > 1000 for g in gifs)

    state = dream / "round0" / "controller" / "state.npz"
    trained_at = state.stat().st_mtime_ns
    drawn_at = [g.stat().st_mtime_ns for g in gifs]
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--quiet"])
    assert state.stat().st_mtime_ns == trained_at  # resumed: nothing trained again
    assert [g.stat().st_mtime_ns for g in gifs] == drawn_at  # nor drawn again
    again = json.loads((folder / "pipeline.json").read_text())
    assert again["result"]["real"] == result["real"]

    # another temperature: its own controllers and rounds, both records kept
    cli_main(["pipeline", "--env", "doom", "--preset", "tiny", "--tau", "0.5", "--quiet"])
    assert (folder / "dream_zch_tau0.5" / "round1" / "controller" / "state.npz").exists()
    assert state.stat().st_mtime_ns == trained_at
    both = json.loads((folder / "pipeline.json").read_text())
    assert sorted(both["dreams"]) == ["zch_tau0.5", "zch_tau1.15"] and both["tau"] == 0.5
    assert len(list(folder.glob("dream_*"))) == 2  # no stray tau-1.15 run made for tau 0.5

    capsys.readouterr()
    cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--in-dream", "--episodes", "2",
              "--workers", "1", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert "round0/controller" in out and "in its dream (tau 1.15)" in out and "median" in out

    cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--in-dream", "--round", "1",
              "--episodes", "2", "--workers", "1", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out  # round 1's C, with round 1's M
    assert "round1/controller" in out
    with pytest.raises(SystemExit):  # a round is only in the dream
        cli_main(["evaluate", "--env", "doom", "--preset", "tiny", "--round", "1"])
    assert "--round needs --in-dream" in capsys.readouterr().err

    # every finished seed's row, and round 0's C in each round's dream (the defence's check)
    records = pipeline.seed_records("doom", "tiny")
    assert [r["seed"] for r in records] == [0] and records[0]["tau"] == 0.5
    table = pipeline.seeds_table(records).splitlines()
    assert table[2].startswith("| 0 | ") and "mean of the 1 test means" in table[-1]
    dreams = pipeline.first_controller_in_each_dream("doom", "tiny", rounds=1)
    assert [d["round"] for d in dreams] == [0, 1] and all(d["dream_mean"] >= 1 for d in dreams)
    assert state.stat().st_mtime_ns == trained_at  # read, not retrained
    spec0 = pipeline.round_spec("doom", "tiny", k=0)
    spec1 = pipeline.round_spec("doom", "tiny", k=1)
    assert spec1["mdnrnn"] != spec0["mdnrnn"]
    # Round 1 exists: round 0's C is read as it was trained, even by settings with
    # other CMA-ES sizes (`evaluate --round 1` after `train-controller --popsize ...`)
    import dataclasses

    from wmtutor.presets import get_preset

    tiny = get_preset("tiny")
    sizes = tiny.doom
    other = dataclasses.replace(sizes.controller, popsize=sizes.controller.popsize + 2)
    more = dataclasses.replace(sizes.dream, round_episodes=sizes.dream.round_episodes + 2,
                               round_epochs=sizes.dream.round_epochs + 1)  # fmt: skip
    other = dataclasses.replace(tiny, doom=dataclasses.replace(sizes, controller=other, dream=more))
    m1, rollouts = Path(spec1["mdnrnn"]), Path(spec1["mdnrnn"]).parent / "rollouts"
    made = (m1.read_bytes(), sorted(rollouts.iterdir()))
    assert pipeline.round_spec("doom", other, k=1) == spec1
    assert (
        m1.read_bytes(),
        sorted(rollouts.iterdir()),
    ) == made  # nothing recorded, nothing trained
    params0, _, _ = pipeline.get_dream_controller("doom", "tiny", round=0)
    gif, episodes = dreams_gif([("M0", spec0), ("M1", spec1)], params0, 1.15, tmp_path / "2.gif")
    assert gif.stat().st_size > 1000 and len(episodes) == 2
    for e in episodes:  # P(done) after every step; the last one ended the dream (or the cap)
        assert len(e["done_prob"]) == len(e["frames"]) == e["return"]
        assert all(0 <= p <= 1 for p in e["done_prob"])

    cli_main(["tau-sweep", "--env", "doom", "--preset", "tiny", "--quiet"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 5  # the header and one row per tau
    assert (folder / "tau_sweep" / "zch_tau0.1" / "results.json").exists()


def test_later_stages_use_what_the_user_made_and_never_remake_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    tiny = ["--env", "doom", "--preset", "tiny", "--quiet"]
    cli_main(["gather", *tiny, "--n-rollouts", "5", "--workers", "1"])
    cli_main(["train-vae", *tiny, "--epochs", "1", "--lr", "0.003"])
    folder = tmp_path / "doom" / "tiny" / "seed0"
    vae = (folder / "vae.pt").read_bytes()
    cli_main(["train-controller", *tiny, "--in-dream", "--generations", "1"])
    assert json.loads((folder / "rollouts" / "manifest.json").read_text())["n_rollouts"] == 5
    assert (folder / "vae.pt").read_bytes() == vae  # not trained on to the preset's 2 epochs
    latents = json.loads((folder / "latents" / "manifest.json").read_text())
    assert latents["n_rollouts"] == 5
    # V retrained by hand: M was trained on the old latents, so it is refused, not reused
    cli_main(["train-vae", *tiny, "--epochs", "1", "--lr", "0.002", "--restart"])
    cli_main(["encode", *tiny])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli_main(["train-mdnrnn", *tiny])
    assert "trained on other latents" in capsys.readouterr().err
    cli_main(["train-mdnrnn", *tiny, "--restart"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pipeline", "--tau", "inf"], "--tau"),
        (["pipeline", "--tau", "-1"], "--tau -1.0: expected a finite number in [0, 5]"),
        (["pipeline", "--rounds", "-1"], "--rounds -1: expected an integer >= 0"),
        (["train-controller", "--generations", "0"], "--generations 0"),
        (["train-controller", "--max-steps", "-1"], "--max-steps -1"),
        (["train-controller", "--workers", "0"], "--workers"),
        (["train-controller", "--timeout", "0"], "--timeout 0.0"),
        (["train-controller", "--l2", "nan"], "--l2"),
        (["train-controller", "--trials", "0"], "--trials 0"),
        (["train-controller", "--in-dream", "--done-threshold", "1"], "--done-threshold 1.0"),
        (["train-controller", "--in-dream", "--round", "-1"], "--round"),
        (["evaluate", "--episodes", "0"], "--episodes"),
        (["evaluate", "--max-steps", "0"], "--max-steps 0"),
        (["train-vae", "--epochs", "-1"], "--epochs -1"),
        (["train-vae", "--lr", "0"], "--lr 0.0"),
        (["train-mdnrnn", "--epochs", "0"], "--epochs 0"),
        (["train-mdnrnn", "--seq-len", "1"], "--seq-len 1"),
        (["gather", "--min-length", "-1"], "--min-length -1"),
        (["encode", "--seed", "x"], "--seed"),
    ],
)
def test_a_bad_flag_is_refused_in_one_line_before_anything_is_made(
    argv, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "runs"))
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*argv, "--env", "doom", "--preset", "tiny", "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "runs").exists()  # refused before any folder was made


def test_a_stage_interrupted_and_run_again_counts_every_call(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(pipeline, "CLOCK_EVERY", 0.05)
    clock, stages, said = tmp_path / "pipeline_clock.json", {}, []

    def interrupted():
        time.sleep(0.3)
        assert max(json.loads(clock.read_text()).values()) > 0.1  # written while it runs
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline._timed("controller", interrupted, stages, said.append, clock)
    first = json.loads(clock.read_text())["controller"]
    assert first >= 0.3 and stages == {}
    pipeline._timed("controller", lambda: time.sleep(0.2), stages, said.append, clock)
    assert stages["controller"] >= first + 0.2  # both calls
    assert not clock.exists()  # finished: off the clock
    pipeline._timed("controller", lambda: None, stages, said.append, clock)  # a check
    assert stages["controller"] >= first + 0.2  # keeps the time of the work
    # another tau's stage of the same name keeps its own time
    with pytest.raises(KeyboardInterrupt):
        pipeline._timed("controller", interrupted, {}, said.append, clock, "zh_tau1/controller")
    pipeline._timed("controller", lambda: None, {}, said.append, clock, "zh_tau2/controller")
    assert said[-1] == "[controller] 0 s"
    assert list(json.loads(clock.read_text())) == ["zh_tau1/controller"]


def test_the_clock_never_fails_a_stage(tmp_path):
    clock = tmp_path / "pipeline_clock.json"
    clock.write_text('{"vae": "soon", "mdnrnn": 12.5}')  # not all numbers: those are read
    assert pipeline._read_clock(clock) == {"mdnrnn": 12.5}
    clock.write_text("[1, 2]")
    assert pipeline._read_clock(clock) == {}
    clock.unlink()
    blocked = tmp_path / "a file" / "pipeline_clock.json"  # its folder is a file
    blocked.parent.write_text("")
    with pytest.warns(UserWarning, match="stage times could not be kept"):
        pipeline._write_clock(blocked, "vae", 3.0)
    stages = {}
    with pytest.raises(ValueError, match="bad"):  # a stage that fails at once: no clock
        pipeline._timed("vae", lambda: (_ for _ in ()).throw(ValueError("bad")), stages,
                        lambda _: None, clock)  # fmt: skip
    assert not clock.exists() and stages == {}


def test_a_checkpoint_keeps_its_own_settings_and_the_run_chooses_how_to_run(tmp_path):
    import dataclasses

    from wmtutor.presets import VAE

    preset = VAE(z_dim=8, epochs=5, batch_size=16, lr=1e-3, frame_cache="off", num_workers=2)
    old = {
        "z_dim": 8,
        "epochs": 2,
        "batch_size": 32,
        "lr": 3e-4,
        "kl_tolerance": 0.5,
        "precision": "fp32",
        "buffer_size": 64,
        "num_workers": 0,
        "architecture": "x",
    }
    own = pipeline._own_config(VAE, old, preset)  # made before foreground_weight, frame_cache
    assert (own.epochs, own.batch_size, own.lr, own.foreground_weight) == (2, 32, 3e-4, 1.0)
    assert (own.frame_cache, own.num_workers) == ("off", 2)  # how to run: this run's
    assert pipeline._own_config(VAE, {"z_dim": 8}, preset) is preset  # too old to read
    assert dataclasses.asdict(pipeline._own_config(VAE, dataclasses.asdict(preset), preset)) == (
        dataclasses.asdict(preset)
    )


def test_validation_and_test_episodes_never_meet_and_choose_the_best_round():
    test = {rollout_seed(TEST_SEED, 0, j) for j in range(1000)}
    validation = {rollout_seed(VALIDATION_SEED, 0, j) for j in range(1000)}
    training = {rollout_seed(s, g, j) for s in range(3) for g in range(200) for j in range(16)}
    assert not test & validation and not (test | validation) & training
    rows = [{"real_mean": 300.0}, {"real_mean": 800.0}, {"real_mean": 800.0}]
    assert choose_round(rows) == 1  # the best; on a tie, the earlier round


def test_more_rounds_run_only_while_the_newest_round_is_the_best_on_validation(monkeypatch):
    import dataclasses

    from wmtutor import pipeline
    from wmtutor.presets import get_preset

    tiny = get_preset("tiny")
    dream = dataclasses.replace(tiny.doom.dream, rounds=1, extra_rounds=3)
    preset = dataclasses.replace(tiny, doom=dataclasses.replace(tiny.doom, dream=dream))

    def rounds_run(means):
        asked = []

        def fake_validation(game, preset, tau, *, round, **kw):
            asked.append(round)
            return {"real_mean": means[round]}

        monkeypatch.setattr(pipeline, "get_validation", fake_validation)
        monkeypatch.setattr(pipeline, "make_run", lambda *a, **k: pipeline.Run.of("doom", preset))
        pipeline.get_rounds("doom", preset)
        return asked

    assert rounds_run([100, 500, 400, 900, 950]) == [0, 1, 2]  # round 2 did not pay: stop
    assert rounds_run([100, 500, 600, 900, 950]) == [0, 1, 2, 3, 4]  # at most rounds + 3
    assert rounds_run([600, 500, 900, 900]) == [0, 1]  # round 1 (the preset's) did not pay
    plain = dataclasses.replace(dream, extra_rounds=0)
    assert not pipeline.another_round_pays([{"real_mean": 1}, {"real_mean": 9}], plain)


def test_the_seeds_table_reports_every_seed_and_round_and_the_plain_runs_choice():
    def record(seed, means, chosen, test):
        validation = [{"round": k, "real_mean": m, "real_std": 1.0} for k, m in enumerate(means)]
        result = {"round": chosen, "real_mean": test, "real_std": 2.0, "real_median": test - 1,
                  "random_mean": 230.0, "random_std": 90.0}  # fmt: skip
        return {"seed": seed, "validation": validation, "chosen_round": chosen,
                "result": result, "total_seconds": 2700.0}  # fmt: skip

    records = [record(0, [170, 800, 300], 1, 832.0), record(1, [250, 400, 600], 2, 650.0),
               record(2, [200, 900], 1, 1000.0)]  # fmt: skip
    plain = [None, {"round": 1, "real_mean": 420.0}, None]
    lines = pipeline.seeds_table(records, plain).splitlines()
    assert lines[0].count("(validation)") == 3 and "plain run's test" in lines[0]
    assert lines[2] == ("| 0 | 170.0 ± 1.0 | 800.0 ± 1.0 | 300.0 ± 1.0 | 1 | 832.0 ± 2.0 | "
                        "831.0 | 832.0 (round 1) | 230.0 ± 90.0 | 45.0 |")  # fmt: skip
    assert "| 2 | 650.0 ± 2.0 | 649.0 | 420.0 (round 1) |" in lines[3]
    assert "| not run | 1 |" in lines[4]  # seed 2 stopped after round 1
    assert lines[-1].startswith("mean of the 3 test means: 827.3 ± 175.0 across seeds")
    assert "worst seed 650.0, best 1000.0" in lines[-1]
    assert pipeline.seeds_table([]).startswith("(no seed")


def test_pong_and_carracing_train_c_in_the_real_game_and_test_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    cli_main(["pipeline", "--env", "pong", "--preset", "tiny", "--quiet"])
    out = capsys.readouterr().out
    folder = tmp_path / "pong" / "tiny" / "seed0"
    record = json.loads((folder / "pipeline.json").read_text())
    assert record["recipe"] == "real" and list(record["stages"]) == list(pipeline.REAL_STAGES)
    result = record["result"]
    assert result["episodes"] == 2 and result["max_steps"] == 40 and len(result["real"]) == 2
    assert all(-21 <= r <= 21 for r in result["real"]) and -21 <= result["random_mean"] <= 21
    assert "test of C (trained in the real game), 2 episodes of up to 40 steps:" in out
    state = folder / "controller_zh" / "state.npz"
    assert state.exists() and not list(folder.glob("dream_*"))  # no dream was trained
    assert (folder / "controller_zh" / "agent.gif").stat().st_size > 1000
    trained_at = state.stat().st_mtime_ns
    cli_main(["pipeline", "--env", "pong", "--preset", "tiny", "--quiet"])  # resumes
    assert state.stat().st_mtime_ns == trained_at
    assert json.loads((folder / "pipeline.json").read_text())["result"]["real"] == result["real"]
    params, spec, what = pipeline.trained_agent("pong", "tiny")  # what `wmtutor play` shows
    assert what.startswith("C trained in the real game") and spec["game"] == "pong"
    assert spec["standardize"]  # Pong's C reads its inputs standardized (the preset's)
    components = get_preset("tiny").pong.controller.components  # ... and a few of their PCs
    assert components > 0 and spec["components"] == components
    assert np.asarray(spec["input_basis"]).shape == (components, len(spec["input_mean"]))
    # ... with the statistics it was trained with, saved beside it: a class's bundle (no
    # latents in it) plays the teacher's Pong C as it is.
    from wmtutor.bundle import export_bundle, import_bundle
    from wmtutor.controller import make_agent
    from wmtutor.layout import Run

    export_bundle(Run.of("pong", "tiny", 0), tmp_path / "pong.zip")
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    import_bundle(tmp_path / "pong.zip")
    assert not (tmp_path / "student" / "pong" / "tiny" / "seed0" / "latents").exists()
    _, student, _ = pipeline.trained_agent("pong", "tiny")
    assert student["input_mean"] == spec["input_mean"] and "student" in student["mdnrnn"]
    assert student["input_basis"] == spec["input_basis"]
    agent, _ = make_agent(student, 1)
    assert agent.controller.shift is not None and agent.controller.n_params == components + 1
    with pytest.raises(ValueError, match="no tau"):
        pipeline.run_pipeline("carracing", "tiny", tau=1.0)
    with pytest.raises(ValueError, match="--full: preset 'tiny' has no full section for pong"):
        cli_main(["train-controller", "--env", "pong", "--preset", "tiny", "--full", "--debug"])


def test_carracing_pipeline_trains_its_own_longer_c_and_leaves_notebook_06s(
    tmp_path, monkeypatch, capsys
):
    """CarRacing's pipeline trains the game's `full` section (to the full length) in a
    folder of its own, tests that C, and notebook 06's C (`controller`) is never touched."""
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path))
    folder = tmp_path / "carracing" / "tiny" / "seed0"
    from wmtutor.presets import get_preset

    sizes = get_preset("tiny").carracing
    full = sizes.full
    assert full is not None and full.max_steps != sizes.controller.max_steps
    cli_main(["pipeline", "--env", "carracing", "--preset", "tiny", "--quiet"])
    record = json.loads((folder / "pipeline.json").read_text())
    assert record["result"]["max_steps"] == full.test_steps and record["result"]["episodes"] == 2
    assert not (folder / "controller_zh").exists()  # notebook 06's C: not trained, not made
    log = json.loads((folder / "controller_zh_full" / "log.json").read_text())
    assert len(log) == full.generations and log[-1]["max_steps"] <= full.max_steps
    assert log[0]["max_steps"] == full.curriculum_start
    gif = folder / "controller_zh_full" / "agent.gif"
    assert gif.stat().st_size > 1000
    drawn_at = gif.stat().st_mtime_ns
    cli_main(["pipeline", "--env", "carracing", "--preset", "tiny", "--quiet"])  # all resumed
    assert gif.stat().st_mtime_ns == drawn_at  # the picture kept, not drawn again
    again = json.loads((folder / "pipeline.json").read_text())
    assert again["result"] == record["result"] and again["gif"] == str(gif)
    _, _, what = pipeline.trained_agent("carracing", "tiny")
    assert what.startswith("C trained in the real game, full length") and "_full" in what
    # `--full` names the same folder and sizes: nothing is left to train, it only resumes
    capsys.readouterr()
    cli_main(["train-controller", "--env", "carracing", "--preset", "tiny", "--full", "--quiet"])
    out = capsys.readouterr().out
    assert "controller_zh_full" in out and f"max_steps={full.max_steps}" in out
    assert len(json.loads((folder / "controller_zh_full" / "log.json").read_text())) == len(log)
    with pytest.raises(ValueError, match="--full is C trained in the real game"):
        cli_main(["train-controller", "--env", "carracing", "--preset", "tiny", "--full",
                  "--in-dream", "--debug"])  # fmt: skip
