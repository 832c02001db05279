"""Bundles (wmtutor/bundle.py): a teacher's tiny Doom run exported, imported into an empty
runs folder and used there without training anything; every bad bundle refused in one
line, with nothing written."""

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from wmtutor import bundle, pipeline
from wmtutor.cli import main as cli_main
from wmtutor.controller import load_controller_state
from wmtutor.dream import InDream, initial_latents
from wmtutor.layout import Run
from wmtutor.mdnrnn import load_mdnrnn
from wmtutor.training import read_log
from wmtutor.vae import load_vae

TINY = ["--env", "doom", "--preset", "tiny"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Run, Path]:
    """A trained tiny Doom run (V, M, C in the real game, C in the dream in rounds 0 and 1,
    round 0 scored) and its bundle, exported with the command."""
    root = tmp_path_factory.mktemp("teacher")
    out = tmp_path_factory.mktemp("bundle") / "doom.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMTUTOR_RUNS", str(root))
        pipeline.get_controller("doom", "tiny", workers=1, progress=False)
        pipeline.get_dream_controller("doom", "tiny", round=1, progress=False)
        pipeline.get_score("doom", "tiny", round=0, progress=False)
        cli_main(["bundle", "export", *TINY, "--out", str(out), "--quiet"])
    return Run.of("doom", "tiny", root=root), out


def files_of(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` and its mtime."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def weights(model: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------
# What goes in


def test_a_bundle_holds_the_models_and_where_dreams_start_but_no_data(teacher):
    run, out = teacher
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("bundle.json"))
        names = set(zf.namelist())
    paths = {e["path"] for e in manifest["files"]}
    assert names == paths | {"bundle.json"}
    round0, round1 = "dream_zch_tau1.15/round0", "dream_zch_tau1.15/round1"
    assert {"vae.pt", "vae_log.jsonl", "mdnrnn.pt", "mdnrnn_log.jsonl", "initial_latents.npz",
            "controller_zch/state.npz", "controller_zch/log.json",
            f"{round0}/controller/state.npz", f"{round0}/controller/results.json",
            f"{round1}/controller/state.npz", f"{round1}/mdnrnn.pt"} <= paths  # fmt: skip
    assert not any(p.split("/")[-2:-1] in (["rollouts"], ["latents"]) for p in paths)
    assert not any("rollouts/" in p or "latents/" in p or p.endswith(".gif") for p in paths)
    for entry in manifest["files"]:
        if entry["path"] != "initial_latents.npz":
            data = (run.folder / entry["path"]).read_bytes()
            assert entry["bytes"] == len(data) and entry["sha256"] == bundle.sha256_bytes(data)
    assert (manifest["game"], manifest["preset"], manifest["seed"]) == ("doom", "tiny", 0)
    assert manifest["settings"]["vae"]["z_dim"] == run.sizes.vae.z_dim
    assert manifest["checkpoints"]["vae.pt"]["made_from"]["rollouts"]
    assert manifest["wmtutor_version"] and manifest["created"].endswith("+00:00")
    with zipfile.ZipFile(out) as zf, zf.open("initial_latents.npz") as f, np.load(f) as starts:
        mu, logvar = initial_latents(run.latents)
        assert np.array_equal(starts["mu"], mu) and np.array_equal(starts["logvar"], logvar)


def test_export_refuses_a_run_with_nothing_trained_and_an_existing_file(
    teacher, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "empty"))
    with pytest.raises(SystemExit):
        cli_main(["bundle", "export", *TINY, "--out", str(tmp_path / "b.zip")])
    err = capsys.readouterr().err
    assert "no vae.pt and mdnrnn.pt in" in err and "wmtutor pipeline --env doom" in err
    assert not (tmp_path / "b.zip").exists() and not (tmp_path / "empty").exists()
    run, out = teacher
    monkeypatch.setenv("WMTUTOR_RUNS", str(run.root))
    with pytest.raises(SystemExit):
        cli_main(["bundle", "export", *TINY, "--out", str(out)])
    assert "exists already" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# What comes out: the models as they are, nothing trained


def test_an_imported_run_gives_the_teachers_models_and_trains_nothing(
    teacher, tmp_path, monkeypatch, capsys
):
    run, out = teacher
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    cli_main(["bundle", "import", str(out)])
    assert "files written" in capsys.readouterr().out
    student = Run.of("doom", "tiny", root=tmp_path / "student")
    assert student.bundle.exists() and not student.rollouts.exists()

    def trains(*args, **kwargs):
        raise AssertionError("a stage trained, gathered or played although the bundle had it")

    for name in ("train_vae", "train_mdnrnn", "train_controller", "gather", "encode_rollouts",
                 "record_agent_rollouts", "score_controller"):  # fmt: skip
        monkeypatch.setattr(pipeline, name, trains)
    before = files_of(student.folder)
    common = dict(progress=False)

    vae, vae_log = pipeline.get_vae("doom", "tiny", **common)
    assert same_weights(weights(vae), weights(load_vae(run.vae, device="cpu")))
    assert vae_log == read_log(run.folder / "vae_log.jsonl")
    mdnrnn, mdnrnn_log = pipeline.get_mdnrnn("doom", "tiny", **common)
    assert same_weights(weights(mdnrnn), weights(load_mdnrnn(run.mdnrnn, device="cpu")))
    assert mdnrnn_log == read_log(run.folder / "mdnrnn_log.jsonl")
    params, log, _ = pipeline.get_controller("doom", "tiny", **common)
    assert np.array_equal(params, load_controller_state(run.controller())["mean_params"])
    for k in (0, 1):
        params, log, spec = pipeline.get_dream_controller("doom", "tiny", round=k, **common)
        teachers = load_controller_state(run.dream_controller(k))["mean_params"]
        assert np.array_equal(params, teachers) and len(log) == run.sizes.controller.generations
    assert spec["mdnrnn"] == str(student.round_mdnrnn(1)) and spec["latents"].endswith(".npz")
    result = pipeline.get_score("doom", "tiny", round=0, **common)
    assert result == json.loads((run.dream_controller(0) / "results.json").read_text())
    mu, logvar = pipeline.get_initial_latents("doom", "tiny", **common)
    assert np.array_equal(mu, initial_latents(run.latents)[0])
    assert files_of(student.folder) == before  # nothing written, no log line appended
    assert not student.rollouts.exists() and not student.latents.exists()

    # The dream itself starts from the bundle's first frames: no data needed.
    returns = InDream.from_spec(spec, student.sizes.dream).test(params, 2, 5)
    assert returns.shape == (2,) and (returns >= 1).all()


def test_a_controller_not_in_the_bundle_trains_in_its_dream_and_local_data_changes_nothing(
    teacher, tmp_path, monkeypatch
):
    run, out = teacher
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    cli_main(["bundle", "import", out.as_uri()])  # a file:// URL
    student = Run.of("doom", "tiny", root=tmp_path / "student")
    vae = student.vae.stat().st_mtime_ns
    params, log, _ = pipeline.get_dream_controller("doom", "tiny", 0.5, sweep=True, progress=False)
    assert len(log) == student.sizes.dream.sweep_generations
    assert (student.sweep(0.5) / "state.npz").exists() and len(params) > 0
    assert not student.rollouts.exists() and student.vae.stat().st_mtime_ns == vae

    # The student's own data (4 rollouts, not the teacher's 3), for pictures: the bundle's
    # V and M are still used as they are, not refused for being trained on other data.
    cli_main(["gather", *TINY, "--n-rollouts", "4", "--workers", "1", "--quiet"])
    latents = pipeline.get_latents("doom", "tiny", progress=False)
    assert latents["n_rollouts"] == 4
    models = {p: p.read_bytes() for p in (student.vae, student.mdnrnn)}
    vae_model, _ = pipeline.get_vae("doom", "tiny", progress=False)
    pipeline.get_mdnrnn("doom", "tiny", progress=False)
    assert {p: p.read_bytes() for p in models} == models
    assert same_weights(weights(vae_model), weights(load_vae(run.vae, device="cpu")))
    student.bundle.unlink()  # without the bundle: M was trained on other latents, refused
    with pytest.raises(ValueError, match="trained on other"):
        pipeline.get_mdnrnn("doom", "tiny", progress=False)


def test_import_never_replaces_the_runs_own_files_without_force(
    teacher, tmp_path, monkeypatch, capsys
):
    run, out = teacher
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    cli_main(["bundle", "import", str(out)])
    cli_main(["bundle", "import", str(out)])  # the same files again: nothing to do
    assert "0 files written, " in capsys.readouterr().out.splitlines()[-2]
    student = Run.of("doom", "tiny", root=tmp_path / "student")
    own = b"the student's own V"
    student.vae.write_bytes(own)
    assert not bundle.bundled(student, student.vae)  # changed: the pipeline trains it as usual
    assert bundle.bundled(student, student.mdnrnn)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bundle", "import", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "has its own vae.pt, not the bundle's" in err and "--force" in err
    assert student.vae.read_bytes() == own
    cli_main(["bundle", "import", str(out), "--force"])
    assert "1 files written" in capsys.readouterr().out
    assert student.vae.read_bytes() == run.vae.read_bytes() and bundle.bundled(student, student.vae)
    assert not list(student.folder.parent.glob(".*import*"))  # the temporary folder is gone


# ---------------------------------------------------------------------------------------
# Bad bundles: each refused in one line, nothing written


class Mkdir:
    """Pickled, it runs ``os.mkdir(path)`` when unpickled: what weights_only must refuse."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def rebuild(out: Path, dest: Path, change) -> None:
    """A copy of bundle ``out`` in ``dest`` after ``change(members, manifest)``: members is
    ``{name: bytes or ZipInfo-and-bytes}``; the manifest's entries of changed members are
    made to agree with them unless ``change`` returns False."""
    with zipfile.ZipFile(out) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != "bundle.json"}
        manifest = json.loads(zf.read("bundle.json"))
    if change(members, manifest) is not False:
        entries = []
        for name, data in members.items():
            data = data[1] if isinstance(data, tuple) else data
            entries.append({"path": name, "bytes": len(data), "sha256": bundle.sha256_bytes(data)})
        manifest["files"] = entries
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("bundle.json", json.dumps(manifest))
        for name, data in members.items():
            if isinstance(data, tuple):
                zf.writestr(*data)
            else:
                zf.writestr(name, data)


def tampered(members, manifest):
    data = bytearray(members["vae.pt"])
    data[len(data) // 2] ^= 0xFF
    members["vae.pt"] = bytes(data)
    return False  # the manifest keeps the teacher's SHA-256


def pickled(tmp_path: Path):
    def change(members, manifest):
        state = torch.load(io.BytesIO(members["vae.pt"]), weights_only=True)
        buffer = io.BytesIO()
        torch.save({**state, "extra": Mkdir(str(tmp_path / "pwned"))}, buffer)
        members["vae.pt"] = buffer.getvalue()

    return change


def link(members, manifest):
    info = zipfile.ZipInfo("vae_log.jsonl")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    members["vae_log.jsonl"] = (info, b"/etc/passwd")


def flip_in_archive(out: Path, dest: Path) -> None:
    """Flip one byte in the middle of vae.pt's packed data, in the archive itself."""
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("vae.pt")
    raw[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    dest.write_bytes(bytes(raw))


BAD = {
    "a flipped byte": (lambda t: tampered, "vae.pt has SHA-256"),
    "a byte flipped in the archive": ("raw", "vae.pt is damaged"),
    "a member with ../": (lambda t: lambda m, _: m.update({"../evil.json": b"{}"}),
                          "'../evil.json', a path out of the run's folder"),
    "an absolute path": (lambda t: lambda m, _: m.update({"/tmp/evil.json": b"{}"}),
                         "'/tmp/evil.json', an absolute path"),
    "a link": (lambda t: link, "'vae_log.jsonl' is a link, not a plain file"),
    "a file not in the manifest": (
        lambda t: lambda m, _: (m.update({"controller_zh/log.json": b"[]"}), False)[1],
        "'controller_zh/log.json', which its manifest does not list"),
    "a missing file": (lambda t: lambda m, _: (m.pop("mdnrnn.pt"), False)[1],
                       "lists mdnrnn.pt, which it does not hold"),
    "a pickled checkpoint": (pickled, "vae.pt: not a weights-only checkpoint (UnpicklingError"),
    "a rollouts file": (lambda t: lambda m, _: m.update({"rollouts/manifest.json": b"{}"}),
                        "not a file of a run's layout"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_bundle_is_refused_in_one_line_and_nothing_is_written(
    case, teacher, tmp_path, monkeypatch, capsys
):
    _, out = teacher
    make, message = BAD[case]
    bad = tmp_path / "bad.zip"
    if make == "raw":
        flip_in_archive(out, bad)
    else:
        rebuild(out, bad, make(tmp_path))
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bundle", "import", str(bad)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert err.startswith(f"wmtutor bundle import: error: {bad}"), err
    assert not (tmp_path / "student").exists(), "something was written before the refusal"
    assert not (tmp_path / "pwned").exists(), "the bundle ran code"


@pytest.mark.parametrize(
    "source, message",
    [
        ("MISSING.zip", "no such file; expected a bundle file (.zip) or a URL"),
        ("ftp://example.org/b.zip", "expected a bundle file (.zip), or an http://"),
        ("file:///nonexistent/b.zip", "cannot fetch it"),
        ("NOTZIP", "not a wmtutor bundle (not a zip archive"),
        ("EMPTYZIP", "no bundle.json in it; not a wmtutor bundle"),
    ],
)
def test_a_source_that_is_no_bundle_is_one_line(source, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "NOTZIP").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "EMPTYZIP", "w") as zf:
        zf.writestr("vae.pt", b"")
    if source.isupper() or source.startswith("MISSING"):
        source = str(tmp_path / source)
    monkeypatch.setenv("WMTUTOR_RUNS", str(tmp_path / "student"))
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bundle", "import", source])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "student").exists()
