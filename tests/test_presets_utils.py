"""Presets (wmtutor/presets.py), helpers (wmtutor/utils.py) and the run layout (layout.py)."""

import dataclasses
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from wmtutor import layout
from wmtutor.presets import PRESETS, SettingError, get_preset
from wmtutor.utils import atomic_path, get_device, remove_stale_tmp, seed_everything


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


def test_the_runs_root_honours_the_environment_and_naming_a_path_creates_nothing(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "r"))
    assert layout.runs_root() == tmp_path / "r"
    assert layout.pictures_dir("toys", "tiny") == tmp_path / "r" / "toys" / "tiny"
    run = layout.Run.of("doom", "tiny", seed=3)
    assert run.folder == tmp_path / "r" / "doom" / "tiny" / "seed3"
    assert run.dream_controller(1, 0.5) == run.folder / "dream_zch_tau0.5" / "round1" / "controller"
    assert run.round_mdnrnn(0) == run.mdnrnn and run.round_mdnrnn(2).parent.name == "round2"
    assert run.controller("zh").name == "controller_zh" and run.sweep(1.15).name == "zch_tau1.15"
    assert not (tmp_path / "r").exists()  # naming is not making
    assert layout.Run.of("doom", "tiny").seed == get_preset("tiny").seed
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="expected an integer >= 0"):
            layout.Run.of("doom", "tiny", seed=bad)
    with pytest.raises(ValueError, match="round -1"):
        run.round(-1)
    with pytest.raises(ValueError, match="unknown game 'quake'"):
        layout.Run.of("quake", "tiny")


def test_a_run_of_the_old_layout_is_refused_until_migrated(tmp_path):
    old = tmp_path / "doom" / "tiny"
    for path in ("rollouts/manifest.json", "vae.pt", "vae_log.jsonl", "mdnrnn.pt",
                 "controller_zch_dream1.15/state.npz", "controller_zh/state.npz",
                 "round1/mdnrnn.pt", "round1/latents/manifest.json",
                 "round1/controller_zch_dream1.15/state.npz", "tau_sweep/dream0.1/state.npz",
                 "pipeline.json"):  # fmt: skip
        (old / path).parent.mkdir(parents=True, exist_ok=True)
        (old / path).write_text(path)
    run = layout.Run.of("doom", "tiny", root=tmp_path)
    with pytest.raises(ValueError, match="wmtutor migrate --env doom --preset tiny"):
        run.check_layout()
    layout.Run.of("doom", "tiny", seed=1, root=tmp_path).check_layout()  # another seed: fine
    moves = layout.migrate(run)
    assert len(moves) == 10
    assert (run.rollouts / "manifest.json").read_text() == "rollouts/manifest.json"
    assert (run.dream_controller(0, 1.15) / "state.npz").exists()
    assert (run.dream_controller(1, 1.15) / "state.npz").exists()
    assert (run.round(1, 1.15) / "mdnrnn.pt").exists() and (
        run.controller("zh") / "state.npz"
    ).exists()
    assert (run.sweep(0.1) / "state.npz").exists()
    run.check_layout()  # nothing old is left
    assert layout.migrate(run) == []


def test_settings_are_checked_when_made(monkeypatch):
    vae = get_preset("tiny").doom.vae
    for field, bad, expected in (("epochs", 0, "an integer >= 1"), ("epochs", 1.5, "integer"),
                                 ("lr", float("nan"), "a finite number > 0"),
                                 ("precision", "fp16", "one of fp32, bf16, auto")):  # fmt: skip
        with pytest.raises(SettingError, match=f"VAE.{field} = .*{expected}"):
            dataclasses.replace(vae, **{field: bad})
    dream = get_preset("tiny").doom.dream
    for field, bad in (("tau", float("inf")), ("tau", -0.1), ("done_threshold", 1.0),
                       ("taus", (0.5, 9.0)), ("rounds", -1)):  # fmt: skip
        with pytest.raises(SettingError, match=field):
            dataclasses.replace(dream, **{field: bad})
    for preset in PRESETS.values():  # every shipped preset passes its own rules
        assert preset.doom.dream.tau >= 0


def test_one_device_decision(monkeypatch):
    monkeypatch.delenv("WMTUTOR_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WMTUTOR_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device"):
        get_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            get_device("cuda")
    monkeypatch.setenv("WMTUTOR_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"\$WMTUTOR_DEVICE 'tpu'"):
        get_device()


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    # An AVX2 CPU emulates bf16 (V trained 35x slower than in fp32 on one): "auto", the
    # laptop preset's, must pick fp32 there, bf16 on AVX512-BF16 / AMX or a bf16 GPU.
    from wmtutor import training

    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    for avx512_bf16, amx, native in ((False, False, False), (True, False, True),
                                     (False, True, True)):  # fmt: skip
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert training.bf16_is_native(cpu) is native
        assert training.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
        assert training.resolve_precision("fp32", cpu) == "fp32"
        assert training.resolve_precision("bf16", cpu) == "bf16"  # asked for: kept
    for supported in (False, True):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda v=supported: v)
        assert training.resolve_precision("auto", cuda) == ("bf16" if supported else "fp32")
    with pytest.raises(ValueError, match="'fp32', 'bf16' or 'auto', got 'fp16'"):
        training.resolve_precision("fp16", cpu)

    # bf16 by name where it is emulated: kept, with one warning (not one per batch).
    monkeypatch.setattr(training, "_WARNED", set())
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with pytest.warns(UserWarning, match="without bf16 in hardware"):
        with training.autocast("bf16", cpu):
            assert torch.is_autocast_enabled("cpu")
    with training.autocast("auto", cpu):
        assert not torch.is_autocast_enabled("cpu")  # auto on this CPU: fp32
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with training.autocast("bf16", cpu):  # warned already
            pass
    # Every preset that uses bf16 on a CPU lets the hardware decide.
    for preset in PRESETS.values():
        for game in ("carracing", "doom", "pong"):
            sizes = preset.game(game)
            for section in (sizes.vae, sizes.mdnrnn, sizes.dream, sizes.joint):
                assert section.precision in ("fp32", "auto"), (preset.name, game, section)


def test_the_temp_files_of_a_killed_writer_are_removed_and_a_live_writers_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".vae.pt.{int(dead.stdout)}.abc123.tmp"
    live = tmp_path / f".vae.pt.{os.getpid()}.def456.tmp"
    old_style = tmp_path / ".vae.pt.xyz789.tmp"  # made before temp names carried a pid
    for path in (stale, live, old_style):
        path.write_bytes(b"half a checkpoint")
    (tmp_path / "vae.pt").write_bytes(b"whole")
    assert sorted(remove_stale_tmp(tmp_path)) == sorted([stale, old_style])
    assert live.exists() and (tmp_path / "vae.pt").exists()


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


def test_v_is_told_the_positions_only_in_a_game_that_can_find_them():
    """told_weight > 0 needs the game's colour finder (Pong's); the paper's V is never told."""
    from wmtutor.envs import GAMES

    told = {(p.name, g) for p in PRESETS.values() for g in GAMES if p.game(g).vae.told_weight}
    assert told == {("tiny", "pong"), ("laptop", "pong")}  # tiny runs the laptop path
    assert all(GAMES[g].positions is not None for _, g in told)


def test_describe_prints_the_sections_asked_for_and_refuses_unknown_ones():
    P = get_preset("laptop")
    text = P.describe("doom.vae", "mdn_toy")
    assert "doom.vae: z_dim=64" in text and "mdn_toy: n_samples=" in text
    assert "carracing" not in text and "cmaes_toy" not in text
    assert len(P.describe().splitlines()) > len(text.splitlines())
    with pytest.raises(ValueError, match="doom.nope"):
        P.describe("doom.nope")


def test_pictures_made_on_another_preset_than_laptop_say_so(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from wmtutor import viz

    frames = [np.zeros((64, 200, 3), np.uint8)] * 2
    try:
        assert "tiny preset" in viz.stamp_pictures("tiny")
        fig = plt.figure()
        assert any("tiny preset" in t.get_text() for t in fig.texts)
        plt.close(fig)
        with Image.open(viz.save_gif(frames, tmp_path / "tiny.gif")) as gif:
            assert gif.size == (200, 64 + viz.STAMP_BAND)  # a band on top names the preset
        assert viz.stamp_pictures("laptop") == ""
        fig = plt.figure()
        assert fig.texts == []
        plt.close(fig)
        with Image.open(viz.save_gif(frames, tmp_path / "laptop.gif")) as gif:
            assert gif.size == (200, 64)
    finally:
        viz.stamp_pictures("laptop")


def test_the_full_controller_cannot_describe_another_agent():
    # The agent's spec (what C reads) comes from the controller section; a full section
    # that differed there would be trained and tested as something it does not say.
    game = PRESETS["laptop"].pong
    assert game.full is not None
    for field, value, also in (("standardize", False, {"components": 0}), ("inputs", "z", {}),
                               ("bias", False, {}), ("components", 7, {})):  # fmt: skip
        with pytest.raises(SettingError, match=f"{field} = {value!r}"):
            dataclasses.replace(game, full=dataclasses.replace(game.full, **{field: value}, **also))
    dataclasses.replace(game, full=dataclasses.replace(game.full, generations=3))  # fine


def test_frames_are_labelled_with_one_text_or_one_each():
    from wmtutor import viz

    frames = np.zeros((3, 20, 40, 3), np.uint8)
    same = viz.label_frames(frames, "return 0", scale=2)
    each = viz.label_frames(frames, ["return 0", "return 0", "return -1: the clip ends"], 2)
    assert same.shape == each.shape == (3, 40, 80, 3)
    assert np.array_equal(same[0], each[0]) and not np.array_equal(same[2], each[2])
    with pytest.raises(ValueError, match="2 texts for 3 frames"):
        viz.label_frames(frames, ["a", "b"])
