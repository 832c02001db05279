"""Run a course notebook in a real browser and check that its widget answers.

    python tests/browser/check_lab.py [--notebook 04|07|all] [--out DIR] [--runs DIR]

What it does, on a throw-away copy of ``notebooks/`` (nothing is ever saved into the
checkout's notebooks or ``runs/``):

1. starts JupyterLab from this Python's environment, headless, on a free port with a random
   token, with its own config, settings, workspaces, data and runtime folders (no "Jupyter
   news" prompt, no tabs or sessions from an earlier run), ``WMTUTOR_PRESET=tiny`` and
   ``WMTUTOR_RUNS`` in a temporary folder (or ``--runs``);
2. opens the notebook in headless Chromium (Playwright for Python driving the system's
   Chromium: ``$CHROMIUM`` or the usual Debian paths), waits for an idle kernel, runs all
   cells from the Run menu and waits until every code cell has run (or the kernel went idle
   with cells left: a cell raised);
3. fails if any cell raised (with the error), else finds the notebook's widget, screenshots
   its picture, acts like a student (04: drags the first latent slider; 07: presses the
   dream player's "right" button), waits for the redraw, screenshots again and fails unless
   more than ``--min-changed`` of the pixels changed;
4. saves the screenshots (the picture before/after, a diff, the whole notebook grown to its
   content's height), the executed notebook and ``report.json`` under ``--out`` (default
   ``runs/browser/`` in the temporary runs folder) and prints a short report with timings.

Exit status: 0 passed, 1 a check failed, 2 the browser tools are missing.
``--no-move`` (skip the student's action) and ``--inject-error`` (a cell that raises, added
to the copy) show that the check can fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM_PATHS = (
    "/usr/lib/chromium/chromium",  # Debian: the real binary (/usr/bin/chromium is a wrapper)
    "/usr/lib/chromium-browser/chromium-browser",
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
)
INSTALL_HINT = (
    "install Debian's Chromium (`sudo apt-get install -y chromium fonts-liberation`) "
    "or point $CHROMIUM at a Chromium/Chrome binary"
)
# notebook prefix -> what a student does with its widget
WIDGETS = {
    "04": {"call": "latent_explorer(", "action": "slider"},
    "07": {"call": "dream_player(", "action": "button", "button": "right"},
}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CheckFailed(Exception):
    """A check did not hold: the message says which and why."""


class MissingTool(Exception):
    """Playwright or Chromium is not there: the message says what to install."""


# ---------------------------------------------------------------------------------------
# finding the tools


def find_chromium() -> str:
    """The Chromium binary to drive: ``$CHROMIUM`` if set, else the first usual path."""
    env = os.environ.get("CHROMIUM")
    if env:
        path = shutil.which(env) or env
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise MissingTool(f"$CHROMIUM={env!r} is not an executable file")
        return path
    for path in CHROMIUM_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise MissingTool(f"no Chromium found (looked in {', '.join(CHROMIUM_PATHS)}): {INSTALL_HINT}")


def import_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise MissingTool(
            f"Playwright for Python is missing ({e}): `pip install -e '.[browser]'` "
            "(or `make browser`); its own browser download (`playwright install`) is not needed"
        ) from None
    return sync_playwright


def resolve_notebooks(spec: str) -> list[Path]:
    prefixes = sorted(WIDGETS) if spec == "all" else [s.strip() for s in spec.split(",")]
    paths = []
    for prefix in prefixes:
        found = sorted(NOTEBOOKS.glob(f"{prefix}*.ipynb"))
        if len(found) != 1:
            raise SystemExit(f"--notebook {prefix!r}: expected one notebook, found {found}")
        paths.append(found[0])
    return paths


# ---------------------------------------------------------------------------------------
# JupyterLab, isolated


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a copy of the notebooks, with its own Jupyter folders."""

    def __init__(self, work: Path, runs: Path, notebooks: list[Path], inject_error: bool):
        self.work, self.runs = work, runs
        self.root = work / "notebooks"
        self.root.mkdir(parents=True)
        for path in notebooks:
            shutil.copy2(path, self.root / path.name)
            if inject_error:
                _inject_error(self.root / path.name)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "lab.log"
        self.proc: subprocess.Popen | None = None
        self.runtime = work / "jupyter" / "runtime"
        self.left_behind: list[str] = []

    def env(self) -> dict:
        jup = self.work / "jupyter"
        dirs = {
            "JUPYTER_CONFIG_DIR": jup / "config",
            "JUPYTER_DATA_DIR": jup / "data",
            "JUPYTER_RUNTIME_DIR": self.runtime,
            "JUPYTERLAB_SETTINGS_DIR": jup / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": jup / "lab-workspaces",
            "IPYTHONDIR": jup / "ipython",
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # "Would you like to receive official Jupyter news?" is asked while fetchNews is "none"
        news = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "JUPYTER_PATH")}
        env.update({k: str(v) for k, v in dirs.items()})
        env.update(WMTUTOR_PRESET="tiny", WMTUTOR_RUNS=str(self.runs), PYTHONUNBUFFERED="1")
        # the kernelspec `python3` of this environment runs this environment's Python
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self, timeout: float = 120.0) -> float:
        t0 = time.monotonic()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.port_retries=0",
            "--LabApp.check_for_updates_class="
            "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise CheckFailed(f"JupyterLab exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise CheckFailed(f"JupyterLab did not answer in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def api(self, method: str, path: str):
        req = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def sessions(self, name: str | None = None) -> list[dict]:
        return [s for s in self.api("GET", "/api/sessions") if name is None or s["path"] == name]

    def close_sessions(self, name: str | None = None) -> None:
        """Shut the kernels down cleanly (their games close at exit)."""
        for s in self.sessions(name):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.close_sessions()
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        self.left_behind = _kill_left_behind(f"JUPYTER_RUNTIME_DIR={self.runtime}")
        self.proc = None


def _inject_error(path: Path) -> None:
    """Add a code cell that raises, before the widget's cell (or at the end)."""
    nb = json.loads(path.read_text())
    call = WIDGETS.get(path.name[:2], {}).get("call", "\0")
    at = next(
        (i for i, c in enumerate(nb["cells"]) if call in "".join(c["source"])), len(nb["cells"])
    )
    source = 'raise RuntimeError("injected by check_lab.py --inject-error")'
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": [source],
    }
    if nb.get("nbformat_minor", 0) >= 5:
        cell["id"] = "injected-error"
    nb["cells"].insert(at, cell)
    path.write_text(json.dumps(nb, indent=1))


def _kill_left_behind(marker: str) -> list[str]:
    """Kill what the server started and left running (a kernel's ViZDoom game ignores
    SIGTERM and can outlive its kernel): the processes whose environment holds ``marker``,
    this run's own JUPYTER_RUNTIME_DIR, so only ours."""
    killed, needle = [], marker.encode() + b"\0"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle not in (proc / "environ").read_bytes() + b"\0":
                continue
            name = (proc / "comm").read_text().strip()
            os.kill(int(proc.name), signal.SIGKILL)
            killed.append(f"{name} (pid {proc.name})")
        except OSError:
            pass
    return killed


# ---------------------------------------------------------------------------------------
# the browser side

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"

PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell .jp-InputPrompt'))
    .map(p => p.textContent.trim())"""  # textContent: off-screen cells are not drawn

GROW_JS = """() => {  // [content height, visible height]; outer adds a scroll-past-end
    const outer = document.querySelector(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
    const inner = outer && outer.querySelector('.jp-WindowedPanel-inner');
    return inner ? [inner.scrollHeight + 16, outer.clientHeight] : [0, 0];
}"""

WATCH_SRC_JS = """(img) => {
    window.__wmChanges = [];
    new MutationObserver(() => window.__wmChanges.push(performance.now()))
        .observe(img, {attributes: true, attributeFilter: ['src']});
}"""

LAYOUT_JS = """(root) => {  // widget pictures drawn at another size or shape, cut labels
    const notes = [], cells = Array.from(root.querySelectorAll('.jp-Cell'));
    const cell = (e) => cells.indexOf(e.closest('.jp-Cell'));
    root.querySelectorAll('img.widget-image').forEach(img => {
        const r = img.getBoundingClientRect();
        if (!img.naturalWidth || !r.width) return;
        const stretch = (r.height / r.width) / (img.naturalHeight / img.naturalWidth);
        notes.push({what: 'widget picture', cell: cell(img),
                    natural: [img.naturalWidth, img.naturalHeight],
                    shown: [Math.round(r.width), Math.round(r.height)],
                    scale: Math.round(100 * r.width / img.naturalWidth) / 100,
                    object_fit: getComputedStyle(img).objectFit,
                    vertical_stretch: Math.round(stretch * 1000) / 1000});
    });
    root.querySelectorAll('button.jupyter-button, .widget-label, .widget-readout').forEach(b => {
        if (b.scrollWidth > b.clientWidth + 1)
            notes.push({what: 'cut label', cell: cell(b), text: b.textContent.trim(),
                        needs: b.scrollWidth, has: b.clientWidth});
    });
    return notes;
}"""

DECODED_JS = """() => Promise.all(Array.from(document.querySelectorAll('img.widget-image'))
    .map(img => img.decode().catch(() => null)))"""

FIGURES_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')).filter(
    img => !img.classList.contains('widget-image') && img.naturalWidth).map(img => ({
    natural: [img.naturalWidth, img.naturalHeight],
    shown: [Math.round(img.getBoundingClientRect().width),
            Math.round(img.getBoundingClientRect().height)]}))"""


def wait_kernel_idle(lab: Lab, name: str, timeout: float = 120.0) -> float:
    """Until the notebook has a session whose kernel says idle ("No Kernel" at first)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        states = [s["kernel"]["execution_state"] for s in lab.sessions(name) if s.get("kernel")]
        if states and all(s == "idle" for s in states):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise CheckFailed(f"{name}: the kernel was not idle after {timeout:.0f} s")


def menu(page, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items, by their labels."""
    page.get_by_role("menuitem", name=top, exact=True).click()
    label = page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(f"^{re.escape(item)}$"))
    page.locator(".lm-Menu .lm-Menu-item").filter(has=label).first.click()


def run_all(page, lab: Lab, name: str, timeout: float, quiet_s: float = 4.0) -> float:
    """Run > Run All Cells, then wait until every code cell shows ``[n]:``, or none ``[*]``
    and the kernel has been idle ``quiet_s`` (cells left unrun: one raised)."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(
        position={"x": 5, "y": 5}
    )
    t0 = time.monotonic()
    menu(page, "Run", "Run All Cells")
    started, idle_since, last = False, None, time.monotonic()
    while time.monotonic() - t0 < timeout:
        prompts = page.evaluate(PROMPTS_JS)
        running = any("*" in p for p in prompts)
        started |= running or any(re.search(r"\[\d+\]", p) for p in prompts)
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return time.monotonic() - t0
        states = {s["kernel"]["execution_state"] for s in lab.sessions(name) if s.get("kernel")}
        if started and not running and states == {"idle"}:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet_s:
                return time.monotonic() - t0
        else:
            idle_since = None
        if time.monotonic() - last > 30:
            done = sum(bool(re.fullmatch(r"\[\d+\]:", p)) for p in prompts)
            print(f"  ... {time.monotonic() - t0:.0f} s: {done}/{len(prompts)} cells run")
            last = time.monotonic()
        time.sleep(0.5)
    raise CheckFailed(f"{name}: Run All did not finish in {timeout:.0f} s")


def save_and_read(page, lab: Lab, name: str) -> dict:
    """File > Save Notebook, then the saved copy (the temporary one) as JSON."""
    path = lab.root / name
    before = path.stat().st_mtime_ns
    menu(page, "File", "Save Notebook")
    t0 = time.monotonic()
    while path.stat().st_mtime_ns == before and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    time.sleep(0.5)  # let the write finish
    return json.loads(path.read_text())


def cell_problems(nb: dict) -> tuple[list[str], list[str]]:
    """(errors, notes): cells that raised or never ran; stderr outputs (not failures)."""
    errors, notes = [], []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        first = "".join(cell["source"]).strip().splitlines()[:1]
        where = f"cell {i} ({first[0][:60] if first else 'empty'})"
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                tb = ANSI.sub("", "\n".join(out.get("traceback", []))).strip().splitlines()
                errors.append(
                    f"{where} raised {out['ename']}: {out['evalue']}\n    " + "\n    ".join(tb[-6:])
                )
            elif out["output_type"] == "stream" and out.get("name") == "stderr":
                text = ANSI.sub("", "".join(out.get("text", ""))).strip().splitlines()
                notes.append(f"{where} wrote to stderr: {text[0][:120] if text else ''}")
        if cell.get("execution_count") is None and not errors:
            errors.append(f"{where} never ran")
    return errors, notes


def widget_cell(page, nb: dict, call: str):
    """The output area of the (first) cell whose source calls ``call``."""
    index = next((i for i, c in enumerate(nb["cells"]) if call in "".join(c["source"])), None)
    if index is None:
        raise CheckFailed(f"no cell calls {call!r}")
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    return cell.locator(".jp-OutputArea"), index


def picture(page, path: Path, img) -> tuple[Path, str]:
    img.scroll_into_view_if_needed()
    img.screenshot(path=str(path))
    return path, img.get_attribute("src") or ""


def compare(a: Path, b: Path, out: Path, tol: int = 0) -> dict:
    """How much of picture ``b`` differs from ``a`` (screenshots are lossless PNGs: the same
    picture gives 0); the diff is saved to ``out``, brighter where it differs more."""
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(a).convert("RGB")).astype(int)
    y = np.asarray(Image.open(b).convert("RGB")).astype(int)
    if x.shape != y.shape:
        return {"changed": 1.0, "visible": 1.0, "max_level": 255, "sizes": [x.shape, y.shape]}
    diff = np.abs(x - y).max(axis=2)
    Image.fromarray(np.clip(diff * 8, 0, 255).astype(np.uint8)).save(out)
    return {
        "changed": round(float((diff > tol).mean()), 4),
        "visible": round(float((diff > 16).mean()), 4),
        "max_level": int(diff.max()),
    }


def wait_redraws(
    page, t_action: float, t_done: float, quiet_ms: float = 800, timeout_ms: float = 15000
) -> dict:
    """Picture redraw times (page clock, ms) after an action that began at ``t_action``:
    until no new picture came for ``quiet_ms``, or none at all in ``timeout_ms`` (a busy
    machine can take seconds for the first)."""
    while True:
        now, changes = page.evaluate("() => [performance.now(), window.__wmChanges]")
        changes = [t for t in changes if t >= t_action]
        if changes and now - changes[-1] > quiet_ms:
            break
        if now - t_action > timeout_ms:
            break
        time.sleep(0.05)
    page.evaluate(DECODED_JS)  # the last picture drawn before the screenshot
    return {
        "redraws": len(changes),
        "first_redraw_s": round((changes[0] - t_action) / 1000, 3) if changes else None,
        "settled_after_release_s": round(max(0.0, changes[-1] - t_done) / 1000, 3)
        if changes
        else None,
    }


def settle(page, quiet_ms: float = 1000, timeout_ms: float = 10000) -> None:
    """Until the watched picture has not changed for ``quiet_ms``."""
    t0 = page.evaluate("performance.now()")
    while True:
        now, changes = page.evaluate("() => [performance.now(), window.__wmChanges]")
        if now - (changes[-1] if changes else t0) > quiet_ms or now - t0 > timeout_ms:
            break
        time.sleep(0.1)
    page.evaluate(DECODED_JS)


def act_on_slider(page, widget) -> dict:
    slider = widget.locator(".widget-slider").first
    handle, track = slider.locator(".noUi-handle").first, slider.locator(".noUi-target").first
    label = slider.locator(".widget-label").first.text_content()
    readout = slider.locator(".widget-readout").first
    before = readout.text_content()
    handle.scroll_into_view_if_needed()
    hb, tb = handle.bounding_box(), track.bounding_box()
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    # a third of the track, towards the side with more room (z0 is near 0 on [-3, 3])
    dx = tb["width"] / 3 * (1 if x0 < tb["x"] + tb["width"] / 2 else -1)
    t_action = page.evaluate("performance.now()")
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x0 + dx, y, steps=12)
    page.mouse.up()
    t_done = page.evaluate("performance.now()")
    timing = wait_redraws(page, t_action, t_done)
    return {
        "did": f"dragged slider {label} from {before} to {readout.text_content()}",
        "drag_s": round((t_done - t_action) / 1000, 3),
        **timing,
    }


def act_on_button(page, widget, name: str) -> dict:
    button = widget.get_by_role("button", name=name, exact=True).first
    button.scroll_into_view_if_needed()
    t_action = page.evaluate("performance.now()")
    button.click()
    t_done = page.evaluate("performance.now()")
    timing = wait_redraws(page, t_action, t_done)
    status = widget.locator(".widget-label").last.text_content()
    return {"did": f"pressed {name!r} (status now: {status!r})", **timing}


def grow_and_screenshot(page, path: Path, width: int, max_height: int = 30000) -> int:
    """The whole notebook in one picture: grow the viewport to the content's height
    (repeatedly: cells get their real height once drawn)."""
    height = page.viewport_size["height"]
    for _ in range(8):
        scroll, client = page.evaluate(GROW_JS)
        if scroll <= client + 2 or height >= max_height:
            break
        height = min(max_height, height + scroll - client)
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(700)
    page.evaluate(
        "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-WindowedPanel-outer')?.scrollTo(0, 0)"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    return height


def check_notebook(browser, lab: Lab, source: Path, out: Path, args) -> dict:
    name, key = source.name, source.name[:2]
    spec = WIDGETS.get(key)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"notebook": name, "passed": False, "errors": [], "notes": []}
    context = browser.new_context(viewport={"width": args.width, "height": args.height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    js_errors: list[str] = []
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    try:
        lab.close_sessions(name)  # a session left on the notebook would be reused
        t0 = time.monotonic()
        page.goto(f"{lab.base}/lab/tree/{name}?token={lab.token}&reset")
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
        report["open_s"] = round(time.monotonic() - t0, 1)
        report["kernel_idle_s"] = round(wait_kernel_idle(lab, name), 1)
        print(
            f"{name}: opened in {report['open_s']} s, kernel idle after "
            f"{report['kernel_idle_s']} s more; Run All ..."
        )
        report["run_all_s"] = round(run_all(page, lab, name, args.timeout), 1)
        print(f"{name}: Run All finished in {report['run_all_s']} s")
        nb = save_and_read(page, lab, name)
        (out / name).write_text(json.dumps(nb, indent=1))
        errors, notes = cell_problems(nb)
        report["notes"] += notes
        if errors:
            report["errors"] += errors
            raise CheckFailed("a cell raised or never ran")
        if spec is None:
            report["passed"] = True
            return report
        area, index = widget_cell(page, nb, spec["call"])
        widget = area.locator(".widget-box").filter(has=page.locator("img.widget-image")).first
        img = widget.locator("img.widget-image").first
        img.wait_for()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle()
        )
        report["layout"] = page.locator(NOTEBOOK).evaluate(LAYOUT_JS)
        img.evaluate(WATCH_SRC_JS)
        settle(page)  # the first picture may still be on its way: start from a quiet one
        page.evaluate("() => { window.__wmChanges = []; }")
        before, src0 = picture(page, out / "widget_before.png", img)
        if args.no_move:
            page.wait_for_timeout(1500)
            report["action"] = {"did": "nothing (--no-move)"}
        elif spec["action"] == "slider":
            report["action"] = act_on_slider(page, widget)
        else:
            report["action"] = act_on_button(page, widget, spec["button"])
        after, src1 = picture(page, out / "widget_after.png", img)
        diff = compare(before, after, out / "widget_diff.png", args.pixel_tol)
        report["diff"], frac = diff, diff["changed"]
        report["changed_fraction"] = frac
        print(
            f"{name}: {report['action']['did']}; {100 * frac:.1f}% of the picture's pixels "
            f"changed ({100 * diff['visible']:.1f}% by more than 16 of 255 levels, at most "
            f"{diff['max_level']})"
        )
        if frac > args.min_changed and diff["visible"] <= args.min_changed:
            report["notes"].append(
                f"the picture changed, but hardly visibly (at most {diff['max_level']} of 255 "
                "levels): on tiny, V is barely trained"
            )
        if frac <= args.min_changed:
            report["errors"].append(
                f"the widget's picture (cell {index}) did not change: {100 * frac:.1f}% of its "
                f"pixels differ, more than {100 * args.min_changed:.0f}% needed"
                + ("" if src0 != src1 else " (its image data was never replaced)")
            )
            raise CheckFailed("the picture did not change")
        report["passed"] = True
        return report
    except CheckFailed:
        return report
    except Exception as e:  # a Playwright timeout, a missing element: the check fails
        report["errors"].append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return report
    finally:
        try:
            report["figures"] = page.evaluate(FIGURES_JS)
            report["full_height"] = grow_and_screenshot(page, out / "notebook_full.png", args.width)
        except Exception as e:  # noqa: BLE001 - the screenshot is evidence, not a check
            report["notes"].append(f"no full screenshot: {e}")
        report["js_errors"] = js_errors
        context.close()
        try:
            lab.close_sessions(name)
        except Exception as e:  # noqa: BLE001
            report["notes"].append(f"could not close the session: {e}")
        (out / "report.json").write_text(json.dumps(report, indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebook", default="04", help="04, 07, 04,07 or all (default 04)")
    p.add_argument(
        "--out",
        type=Path,
        help="screenshots and report (default: runs/browser/ in the temporary runs folder)",
    )
    p.add_argument(
        "--runs",
        type=Path,
        help="WMTUTOR_RUNS to use (default: a new temporary "
        "one; pass an earlier one to reuse its trained models)",
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds for Run All")
    p.add_argument(
        "--min-changed",
        type=float,
        default=0.05,
        help="fraction of pixels that must change (default 0.05)",
    )
    p.add_argument(
        "--pixel-tol",
        type=int,
        default=0,
        help="a pixel counts as changed above this many levels (default 0)",
    )
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--no-move", action="store_true", help="skip the student's action: must fail")
    p.add_argument(
        "--inject-error", action="store_true", help="add a cell that raises to the copy: must fail"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary notebook copy")
    p.add_argument(
        "--find-chromium",
        action="store_true",
        help="print the Chromium that would be used and exit",
    )
    args = p.parse_args(argv)

    try:
        chromium = find_chromium()
        if args.find_chromium:
            print(chromium)
            return 0
        sync_playwright = import_playwright()
    except MissingTool as e:
        print(f"check_lab: {e}", file=sys.stderr)
        return 2
    notebooks = resolve_notebooks(args.notebook)
    work = Path(tempfile.mkdtemp(prefix="wmtutor-browser-"))
    runs = (args.runs or work / "runs").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    out = (args.out or runs / "browser").resolve()
    print(
        f"check_lab: {', '.join(n.name for n in notebooks)} with {chromium}, "
        f"WMTUTOR_PRESET=tiny, WMTUTOR_RUNS={runs}"
    )
    t_total = time.monotonic()
    lab = Lab(work, runs, notebooks, args.inject_error)
    reports = []
    try:
        lab_start = lab.start()
        print(f"JupyterLab ready in {lab_start:.1f} s on port {lab.port}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            try:
                for source in notebooks:
                    dest = out / source.stem if len(notebooks) > 1 else out
                    reports.append(check_notebook(browser, lab, source, dest, args))
            finally:
                browser.close()
    except CheckFailed as e:
        print(f"FAILED: {e}")
        return 1
    finally:
        lab.stop()
        if lab.log_path.exists() and out.exists():
            shutil.copy2(lab.log_path, out / "lab.log")
        if not args.keep:
            shutil.rmtree(work / "notebooks", ignore_errors=True)
            shutil.rmtree(work / "jupyter", ignore_errors=True)
    total = time.monotonic() - t_total

    print("\n== report ==")
    print(f"lab start {lab_start:.1f} s, total {total:.1f} s")
    for r in reports:
        verdict = "PASSED" if r["passed"] else "FAILED"
        act = r.get("action", {})
        print(
            f"{r['notebook']}: {verdict}; run all {r.get('run_all_s', '?')} s"
            + (
                f"; first redraw {act.get('first_redraw_s')} s after the action began, "
                f"settled {act.get('settled_after_release_s')} s after it ended, "
                f"{act.get('redraws')} redraws"
                if act.get("redraws")
                else ""
            )
            + (
                f"; {100 * r['changed_fraction']:.1f}% pixels changed"
                if "changed_fraction" in r
                else ""
            )
        )
        for e in r["errors"]:
            print(f"  ERROR {e}")
        for n in r.get("layout", []):
            print(f"  layout {n}")
        shrunk = [f for f in r.get("figures", []) if f["shown"][0] < 0.9 * f["natural"][0]]
        if shrunk:
            scales = sorted({round(100 * f["shown"][0] / f["natural"][0]) for f in shrunk})
            print(
                f"  layout {len(shrunk)} of {len(r['figures'])} figures shrunk to fit the "
                f"notebook ({scales[0]}-{scales[-1]}% of their size, fonts with them)"
            )
        for n in r["notes"]:
            print(f"  note  {n}")
        for n in r.get("js_errors", []):
            print(f"  js    {n}")
    summary = {
        "lab_start_s": round(lab_start, 1),
        "total_s": round(total, 1),
        "passed": bool(reports) and all(r["passed"] for r in reports),
        "notebooks": {r["notebook"]: r["passed"] for r in reports},
        "left_behind": lab.left_behind,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for name in lab.left_behind:
        print(f"note: {name} was still running after its kernel shut down: killed it")
    print(f"screenshots, reports and the JupyterLab log: {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
