"""The course's notebooks are committed clean, and toy/ scripts and the CLI run for real."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from wmtutor.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_shaped_like_a_lesson(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), (
        f"{path.name} carries outputs: run `make strip`"
    )
    first_md, first_code = nb["cells"][0], "".join(code[0]["source"])
    assert first_md["cell_type"] == "markdown" and "You will learn" in "".join(first_md["source"])
    assert "get_preset()" in first_code and ".describe(" in first_code  # shows its sizes
    last = "".join(nb["cells"][-1]["source"])
    assert "## Recap" in last and "## Exercises" in last and "<details>" in last


def run_script(script, tmp_path):
    env = dict(os.environ, WMTUTOR_PRESET="tiny", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(ROOT / "toy" / script), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )


def test_toy_mdn_script_writes_its_figure(tmp_path):
    out = run_script("mdn.py", tmp_path)
    assert "preset tiny" in out.stdout
    with Image.open(tmp_path / "mdn_toy.png") as im:
        assert im.size[0] > 500 and im.getextrema()[0] != (255, 255)  # not blank


def test_toy_cmaes_script_writes_gif_and_comparison(tmp_path):
    out = run_script("cma_es.py", tmp_path)
    assert "sphere  wmtutor" in out.stdout
    with Image.open(tmp_path / "cmaes_schaffer.gif") as gif:
        assert gif.n_frames == 12  # tiny preset: gif_generations
    assert (tmp_path / "cmaes_evals.png").stat().st_size > 1000


def test_cli_shows_presets_and_rejects_unknown_ones(capsys):
    cli_main(["presets", "--preset", "tiny"])
    assert "preset: tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["presets", "--preset", "huge"])
    assert exit_info.value.code == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
