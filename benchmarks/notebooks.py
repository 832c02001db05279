"""How long each notebook takes, run top to bottom as a student runs it: the figures behind
every notebook's **Time** line and the README's course table.

    python benchmarks/notebooks.py --preset tiny                 # from an empty runs folder
    python benchmarks/notebooks.py --preset laptop --runs DIR    # with DIR's artifacts there

Each notebook is executed with nbclient (the kernel of this Python), in order, in one runs
folder (``--runs``, default a new temporary one, so the first notebook that needs rollouts
or a V makes them, as on a student's first day). Nothing is written into ``notebooks/``:
the executed copies are thrown away. Prints one row per notebook with its wall time, and
the time line as a notebook header would write it (``format_duration``). Run it on a quiet
machine: another job on the cores can double a notebook's time. ``--keep DIR`` saves the
executed copies (with their figures) there, to look at.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def format_duration(seconds: float) -> str:
    """The course's way of writing a time: ``5 s``, ``35 s``, ``1.5 min``, ``11 min``, ``2 h``."""
    if seconds < 57.5:
        return f"{max(5, 5 * round(seconds / 5)):.0f} s"
    minutes = seconds / 60
    if minutes < 10:
        return f"{round(minutes * 2) / 2:g} min"
    if minutes < 120:
        return f"{round(minutes):.0f} min"
    return f"{round(minutes / 60):.0f} h"


def run_notebook(path: Path, workdir: Path, timeout: int, keep: Path | None = None) -> float:
    """Execute one notebook in ``workdir`` and return its wall time in seconds; a failing cell
    raises with the notebook's name. ``keep``: a folder to save the executed copy in."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as error:  # nbclient's CellExecutionError names the cell and the error
        raise SystemExit(f"{path.name} failed: {error}") from None
    seconds = time.perf_counter() - start
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    return seconds


def recorded_training(runs: Path, preset: str) -> list[tuple[str, float]]:
    """What a first run adds to a notebook: the training time each artifact of seed 0 in
    ``runs`` recorded when it was made (V's and M's epochs, C's generations, the dream's
    rounds from ``pipeline.json``, the temperature sweep's runs)."""
    import json

    rows = []
    for game in ("carracing", "doom"):
        folder = runs / game / preset / "seed0"
        for name in ("vae", "mdnrnn"):
            log = folder / f"{name}_log.jsonl"
            if log.exists():
                rows_ = [json.loads(line) for line in log.read_text().splitlines()]
                rows.append((f"{game} {name}", sum(r.get("seconds", 0) for r in rows_
                                                   if r["kind"] == "epoch")))  # fmt: skip
        for log in sorted(folder.glob("controller_*/log.json")):
            seconds = sum(r["seconds"] for r in json.loads(log.read_text()))
            rows.append((f"{game} C in the real game", seconds))
        sweep = sorted(folder.glob("tau_sweep/*/log.json"))
        if sweep:
            total = sum(r["seconds"] for log in sweep for r in json.loads(log.read_text()))
            rows.append((f"{game} tau sweep training ({len(sweep)} taus)", total))
        if (folder / "pipeline.json").exists():
            stages = json.loads((folder / "pipeline.json").read_text()).get("stages", {})
            rows += [(f"{game} pipeline stage {k}", v) for k, v in stages.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", help="tiny | laptop | paper")
    parser.add_argument("--runs", help="runs folder to use (default: a new empty one)")
    parser.add_argument("--only", nargs="+", help="notebook numbers, e.g. 03 04")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    parser.add_argument("--keep", type=Path, help="save the executed notebooks in this folder")
    args = parser.parse_args()

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WMTUTOR_PRESET"] = args.preset
        os.environ["WMTUTOR_RUNS"] = args.runs or str(Path(tmp) / "runs")
        print(f"preset {args.preset}, runs folder {os.environ['WMTUTOR_RUNS']}, "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")  # fmt: skip
        print("| notebook | seconds | as written |\n|---|---:|---:|")
        total = 0.0
        for path in paths:
            seconds = run_notebook(path, Path(tmp), args.timeout, args.keep)
            total += seconds
            print(f"| {path.stem} | {seconds:.0f} | {format_duration(seconds)} |", flush=True)
        print(f"| **all** | {total:.0f} | {format_duration(total)} |")
        if args.runs:
            print(f"\ntraining recorded in {args.runs} (seed 0), what a first run adds:\n")
            print("| artifact | seconds | as written |\n|---|---:|---:|")
            for name, seconds in recorded_training(Path(args.runs), args.preset):
                print(f"| {name} | {seconds:.0f} | {format_duration(seconds)} |")


if __name__ == "__main__":
    main()
