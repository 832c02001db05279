"""Under nbval, a cell that shows a figure must really draw one.

A notebook run with ``MPLBACKEND=Agg`` (or a broken plot) passes every assert and shows a
student nothing. Each cell that calls ``plt.show()`` must leave a PNG in its outputs, and
each that displays a GIF (``viz.show_gif``) a GIF; otherwise its test fails.
"""

import pytest

WANTS = {"plt.show()": "image/png", "viz.show_gif(": "image/gif"}


def _images(outputs) -> set[str]:
    kinds = set()
    for out in outputs or []:
        kinds |= {k for k in out.get("data", {}) if k.startswith("image/")}
    return kinds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or cell.get("cell_type") != "code":
            continue
        wanted = {kind for call, kind in WANTS.items() if call in cell.source}
        if not wanted:
            continue
        run = item.runtest

        def runtest(item=item, run=run, wanted=wanted) -> None:
            run()
            missing = wanted - _images(getattr(item, "test_outputs", None))
            if missing:
                raise AssertionError(
                    f"cell {item.name} should show a figure but produced no "
                    f"{', '.join(sorted(missing))} (is MPLBACKEND=Agg set?)"
                )

        item.runtest = runtest
