"""The course in a real browser (``check_lab.py``): opt-in, with ``WMTUTOR_BROWSER=1``.

Skipped in a plain ``pytest tests`` (CI): it needs Playwright and a Chromium, and takes about
a minute. ``make browser`` installs Playwright and runs the check directly;
``WMTUTOR_BROWSER=1 pytest tests/browser`` runs it and its failure demonstrations here.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "check_lab.py"


def _load_check_lab():
    spec = importlib.util.spec_from_file_location("check_lab", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _skip_reason() -> str | None:
    if os.environ.get("WMTUTOR_BROWSER") != "1":
        return "real-browser check: set WMTUTOR_BROWSER=1 to run it (or `make browser`)"
    check_lab = _load_check_lab()
    try:
        check_lab.import_playwright()
        check_lab.find_chromium()
    except check_lab.MissingTool as e:
        return str(e)
    return None


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One WMTUTOR_RUNS for the module: the later runs reuse the first one's trained V."""
    return tmp_path_factory.mktemp("runs")


def check(*args: str, runs: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--runs", str(runs), "--out", str(out), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    print(result.stdout, result.stderr, sep="\n")
    return result


def test_notebook_04_runs_and_its_slider_redraws(runs, tmp_path):
    result = check("--notebook", "04", runs=runs, out=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "PASSED" in result.stdout
    for name in ("widget_before.png", "widget_after.png", "notebook_full.png", "report.json"):
        assert (tmp_path / name).is_file(), name


def test_it_fails_when_the_picture_does_not_change(runs, tmp_path):
    result = check("--notebook", "04", "--no-move", runs=runs, out=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "did not change" in result.stdout


def test_it_fails_with_the_error_when_a_cell_raises(runs, tmp_path):
    result = check("--notebook", "04", "--inject-error", runs=runs, out=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "RuntimeError: injected by check_lab.py --inject-error" in result.stdout
