"""What the course says about itself agrees: each notebook's **Time** line and the README's
course table give the same time per preset (both come from ``benchmarks/notebooks.py``)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PRESETS = ("tiny", "laptop", "paper")
DURATION = re.compile(r"\d+(?:\.\d+)? (?:s|min|h|hours|days|weeks)\b|hours|days|weeks")


def header_times(path: Path) -> dict[str, str]:
    """``{preset: first duration}`` from the notebook's **Time** line(s), e.g. "`tiny` ≈ 20 s"."""
    nb = json.loads(path.read_text())
    text = "".join(nb["cells"][0]["source"])
    found = {}
    for preset in PRESETS:
        m = re.search(rf"`{preset}`(?: \(default\))? ≈ ([^·]+)", text)
        if m:
            d = DURATION.search(m.group(1))
            found[preset] = d.group(0) if d else m.group(1).strip()
    return found


def readme_times() -> dict[str, dict[str, str]]:
    """``{"03": {preset: first duration}}`` from the README's course table."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"\d\d", cells[0]):
            rows[cells[0]] = {}
            for preset, cell in zip(PRESETS, cells[3:], strict=True):
                d = DURATION.search(cell)
                rows[cells[0]][preset] = d.group(0) if d else cell
    return rows


def test_every_notebook_is_in_the_readme_table():
    assert sorted(readme_times()) == [p.name[:2] for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_header_and_the_readme_give_the_same_times(path):
    header = header_times(path)
    assert set(header) == set(PRESETS), f"{path.name}: no time for {set(PRESETS) - set(header)}"
    assert header == readme_times()[path.name[:2]], f"{path.name} and README.md disagree"


def test_the_checker_reads_a_disagreement():
    # The parser must see a changed figure, or the test above could never fail.
    assert DURATION.search("≈ 3.5 min (plus").group(0) == "3.5 min"
    assert DURATION.search("hours: use `wmtutor gather`").group(0) == "hours"
