"""Bundles: one run's trained models in one file, so a class trains once and starts there.

``wmtutor bundle export --env doom`` packs what training made in a run (``layout.Run``:
a game, a preset, a seed) into one ``.zip``; ``wmtutor bundle import FILE_OR_URL``
checks it and unpacks it into the same run's folder on another machine. Afterwards the
notebooks and commands find the models there and train none of them. A bundle holds,
with paths relative to the run's folder:

* V and M: ``vae.pt``, ``mdnrnn.pt`` and their training logs;
* every controller the run has, each folder's ``state.npz``, ``log.json`` and cached
  scores (``results.json``, ``validation.json``): C trained in the real game
  (``controller_<inputs>/``, and ``controller_<inputs>_full/`` for the pipeline's longer
  C), C trained in the dream (``dream_*/round<k>/controller/``) and the M of each round
  of iterative training (``dream_*/round<k>/mdnrnn.pt``); with
  ``tau_sweep=True`` the temperature sweep's runs (``tau_sweep/``) too;
* ``pipeline.json`` if ``wmtutor pipeline`` ran (the round it shipped, scores, times);
* ``initial_latents.npz``: ``mu`` and ``logvar`` of the first frame of every encoded
  rollout, where dreams start (``dream.initial_latents`` reads it): a dream needs no data;
* ``bundle.json``, the manifest: every file's size and SHA-256, the game, the preset and
  its settings for the game, the seed, each checkpoint's own config, the wmtutor and torch
  versions and when it was made.

Not the rollouts, the latents or the GIFs: data and pictures, hundreds of times larger,
which a notebook may gather and encode again locally with the bundle's V (that is not
training).

**Why a zip, not a .tar.gz.** A zip's central directory lists every member, with its
size, before a byte is unpacked: import checks every name against the manifest, refuses
what is not a plain file and reads each member on its own, never streaming through an
archive to find out what it holds. Zip has no hard links, devices or other special
members for an unpacker to get wrong (a symbolic link is only a mode flag, refused
here), every member has a CRC-32 besides the manifest's SHA-256, and a teacher or a
student opens one with the tools their system has. Compression is no reason either way:
checkpoints are float weights, which deflate shrinks by about 14 %.

**Import trusts nothing in the file.** Every member must be a plain file with a relative
path (no ``/`` at the start, no ``..``), of a name the layout knows and listed in the
manifest; every listed file must be there, of its size and SHA-256; every checkpoint is
read with ``torch.load(..., weights_only=True)`` and loaded into its model (a pickled
object is refused: nothing is ever unpickled), every ``.npz`` without pickle, every
JSON parsed. Only then is anything written: into a temporary folder beside the run,
then renamed into place, the manifest last (it marks the run as bundled). A file the run
has already is never replaced unless ``force`` (the same file, byte for byte, is kept).

**A bundled run.** ``bundled(run, path)`` is true for a file that came in the run's
bundle and is unchanged (its size and SHA-256 as in ``bundle.json``). ``wmtutor.pipeline``
uses such a checkpoint as it is: never trained on, and never refused because the local
rollouts or latents differ from the teacher's (whose digests the checkpoints record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from wmtutor import __version__
from wmtutor.dream import initial_latents
from wmtutor.files import digest, read_manifest
from wmtutor.layout import (
    BUNDLE,
    CONTROLLER_LOG,
    CONTROLLER_STATE,
    INITIAL_LATENTS,
    MANIFEST,
    MDNRNN,
    PIPELINE,
    RESULTS,
    VAE,
    VALIDATION,
    Run,
    check_seed,
    log_path,
)
from wmtutor.mdnrnn import ARCHITECTURE as MDNRNN_ARCHITECTURE
from wmtutor.mdnrnn import MDNRNN as MDNRNNModel
from wmtutor.presets import GAMES, PRESETS
from wmtutor.utils import atomic_path
from wmtutor.vae import ARCHITECTURE as VAE_ARCHITECTURE
from wmtutor.vae import ConvVAE

FORMAT = "wmtutor-bundle"
FORMAT_VERSION = 1
URL_SCHEMES = ("http", "https", "file")
CONTROLLER_FILES = (CONTROLLER_STATE, CONTROLLER_LOG, RESULTS, VALIDATION)


class BundleError(ValueError):
    """A bundle that cannot be made or taken in; the message names the file and why."""


# ---------------------------------------------------------------------------------------
# What a bundle may hold: every path by its place in the layout


def _patterns() -> list[re.Pattern]:
    e = re.escape
    model = f"({e(VAE)}|{e(log_path(VAE).name)}|{e(MDNRNN)}|{e(log_path(MDNRNN).name)})"
    round_m = f"({e(MDNRNN)}|{e(log_path(MDNRNN).name)})"
    c_file = "(" + "|".join(e(n) for n in CONTROLLER_FILES) + ")"
    inputs, tau = "[a-z]+", r"tau[0-9][0-9.e+-]*"
    return [re.compile(p) for p in (
        model, e(PIPELINE), e(INITIAL_LATENTS),
        rf"controller_{inputs}(_full)?/{c_file}",
        rf"dream_{inputs}_{tau}/round[0-9]+/controller/{c_file}",
        rf"dream_{inputs}_{tau}/round[1-9][0-9]*/{round_m}",
        rf"tau_sweep/{inputs}_{tau}/{c_file}",
    )]  # fmt: skip


PATTERNS = _patterns()


def allowed(path: str) -> bool:
    """Is ``path`` (relative, with ``/``) a file a bundle may bring into a run's folder?"""
    return any(p.fullmatch(path) for p in PATTERNS)


def artifacts(run: Run, tau_sweep: bool = False) -> list[str]:
    """The run's files a bundle takes (relative paths, sorted): see the module docstring.
    A controller folder counts only if it has a ``state.npz``."""
    folder = run.folder
    found = [n for n in (VAE, log_path(VAE).name, MDNRNN, log_path(MDNRNN).name, PIPELINE)
             if (folder / n).is_file()]  # fmt: skip
    controllers = [*folder.glob("controller_*"), *folder.glob("dream_*/round[0-9]*/controller")]
    if tau_sweep:
        controllers += folder.glob("tau_sweep/*")
    for c in controllers:
        if (c / CONTROLLER_STATE).is_file():
            found += [(c / n).relative_to(folder).as_posix() for n in CONTROLLER_FILES
                      if (c / n).is_file()]  # fmt: skip
    for m in folder.glob("dream_*/round[0-9]*"):
        if m.name != "round0":
            found += [(m / n).relative_to(folder).as_posix()
                      for n in (MDNRNN, log_path(MDNRNN).name) if (m / n).is_file()]  # fmt: skip
    return sorted(p for p in found if allowed(p))


# ---------------------------------------------------------------------------------------
# Checking a file's content: weights only, no pickle


def sha256_bytes(data: bytes) -> str:
    """The full SHA-256 of some bytes, in hex (the manifest's checksums)."""
    return hashlib.sha256(data).hexdigest()


_SHA_CACHE: dict[tuple, str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """The full SHA-256 of a file, remembered while its size, mtime and inode stay the same."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _reason(err: BaseException) -> str:
    """An exception in a few words on one line (torch's weights-only error is a page)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    m = re.search(r"Unsupported [^.\n]*", text)
    line = m.group(0) if m else " ".join(text.split())
    return f"{type(err).__name__}: {line[:160]}"


def load_weights(data: bytes, where: str) -> dict:
    """A checkpoint's content read with ``torch.load(..., weights_only=True)``: tensors and
    plain data, never code. Raises BundleError naming ``where`` otherwise."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise BundleError(
            f"{where}: not a weights-only checkpoint ({_reason(err)}); wmtutor never "
            "unpickles code from a bundle, so it is refused"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise BundleError(f"{where}: not a wmtutor checkpoint (expected a dict with a config)")
    return state


def _check_model(name: str, state: dict, where: str) -> None:
    """Load a checkpoint's weights into V or M, as the pipeline will."""
    config = state["config"]
    try:
        if name == VAE:
            if config.get("architecture") != VAE_ARCHITECTURE:
                raise ValueError(f"architecture {config.get('architecture')!r}")
            ConvVAE(config["z_dim"]).load_state_dict(state["model"])
        else:
            if config.get("architecture") != MDNRNN_ARCHITECTURE:
                raise ValueError(f"architecture {config.get('architecture')!r}")
            keys = ("z_dim", "action_dim", "hidden", "n_gaussians")
            MDNRNNModel(*(config[k] for k in keys)).load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        what = "V (ConvVAE)" if name == VAE else "M (MDN-RNN)"
        raise BundleError(f"{where}: not a checkpoint of {what} ({_reason(err)})") from None


def _arrays(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise BundleError(f"{where}: not a NumPy .npz of plain arrays ({_reason(err)})") from None


def check_file(rel: str, data: bytes, where: str) -> dict | None:
    """Prove that the content of ``rel`` (a path ``allowed`` names) is what its name says,
    without running any of it; a BundleError naming ``where`` if it is not. Returns a
    checkpoint's config (None for other files)."""
    name = PurePosixPath(rel).name
    if name.endswith(".pt"):
        state = load_weights(data, where)
        _check_model(name, state, where)
        return state["config"]
    if name == CONTROLLER_STATE:
        arrays = _arrays(data, where)
        try:
            json.loads(str(arrays["scalars"]))
            if arrays["mean_params"].ndim != 1:
                raise ValueError(f"mean_params of shape {arrays['mean_params'].shape}")
        except (KeyError, ValueError) as err:
            raise BundleError(f"{where}: not a controller state ({_reason(err)})") from None
    elif name == INITIAL_LATENTS:
        arrays = _arrays(data, where)
        mu, logvar = arrays.get("mu"), arrays.get("logvar")
        if mu is None or logvar is None or mu.ndim != 2 or mu.shape != logvar.shape or not len(mu):
            raise BundleError(f"{where}: expected mu and logvar arrays of one shape (N, z_dim)")
    else:  # .json, .jsonl
        try:
            text = data.decode()
            lines = text.splitlines() if name.endswith(".jsonl") else [text]
            for line in lines:
                if line.strip():
                    json.loads(line)
        except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise BundleError(f"{where}: not valid JSON ({_reason(err)})") from None
    return None


# ---------------------------------------------------------------------------------------
# Export


def dream_starts(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Where the run's dreams start: its bundle's file if it came in one, else the first
    frames of its latents (which must be V's: encoded by this ``vae.pt``)."""
    if bundled(run, run.initial_latents):
        return initial_latents(run.initial_latents)
    if not (run.latents / MANIFEST).is_file():
        raise BundleError(
            f"no encoded rollouts in {run.latents} to start dreams from: run `wmtutor encode "
            f"--env {run.game} --preset {run.preset} --seed {run.seed}` first"
        )
    encoded_by = read_manifest(run.latents)["config"].get("vae_digest")
    if encoded_by not in (None, digest(run.vae)):
        raise BundleError(
            f"{run.latents} was encoded by another V than {run.vae}: run `wmtutor encode "
            f"--env {run.game} --preset {run.preset} --seed {run.seed}` first"
        )
    return initial_latents(run.latents)


def export_bundle(run: Run, out: str | os.PathLike, *, tau_sweep: bool = False,
                  force: bool = False) -> dict:  # fmt: skip
    """Pack ``run``'s trained models into the zip file ``out`` (see the module docstring);
    return its manifest. Every checkpoint is proved weights-only first; ``out`` is written
    atomically and replaced only with ``force``. Nothing in the run is changed."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".zip":
        raise BundleError(f"{out}: expected a file ending in .zip")
    if out.exists() and not force:
        raise BundleError(f"{out} exists already: choose another --out, or pass --force")
    missing = [p.name for p in (run.vae, run.mdnrnn) if not p.is_file()]
    if missing:
        raise BundleError(
            f"no {' and '.join(missing)} in {run.folder}: train the run first (`wmtutor "
            f"pipeline --env {run.game} --preset {run.preset} --seed {run.seed}`)"
        )
    mu, logvar = dream_starts(run)
    starts = io.BytesIO()
    np.savez_compressed(starts, mu=mu.astype(np.float32), logvar=logvar.astype(np.float32))
    contents = {rel: (run.folder / rel).read_bytes() for rel in artifacts(run, tau_sweep)}
    contents[INITIAL_LATENTS] = starts.getvalue()
    configs = {}
    for rel, data in contents.items():
        config = check_file(rel, data, str(run.folder / rel))
        if config is not None:
            configs[rel] = config
    files = [{"path": rel, "bytes": len(data), "sha256": sha256_bytes(data)}
             for rel, data in sorted(contents.items())]  # fmt: skip
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "game": run.game,
        "preset": run.preset,
        "seed": run.seed,
        "settings": dataclasses.asdict(run.sizes),
        "checkpoints": configs,
        "wmtutor_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bytes": sum(f["bytes"] for f in files),
        "files": files,
    }
    text = json.dumps(manifest, indent=1, default=str)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_member(BUNDLE), text)
        for entry in files:
            zf.writestr(_member(entry["path"]), contents[entry["path"]])
    return json.loads(text)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.datetime.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain file
    return info


# ---------------------------------------------------------------------------------------
# Import


def is_url(source: str | os.PathLike) -> bool:
    """Does ``source`` name a URL (``scheme://...``) rather than a local file?"""
    return isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


def check_source(source: str | os.PathLike) -> str:
    """A bundle to import: an existing file, or an http(s):// or file:// URL."""
    text = str(source)
    if is_url(text):
        scheme = text.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise BundleError(f"{text!r}: expected a bundle file (.zip), or an http://, "
                              "https:// or file:// URL")  # fmt: skip
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise BundleError(f"{text!r}: {what}; expected a bundle file (.zip) or a URL")
    return str(path)


@contextlib.contextmanager
def _local(source: str) -> Iterator[Path]:
    """The bundle as a local file: a URL is fetched (urllib) into a temporary file first."""
    if not is_url(source):
        yield Path(source)
        return
    fd, name = tempfile.mkstemp(prefix="wmtutor-bundle-", suffix=".zip")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310
                    shutil.copyfileobj(response, f, 1 << 20)
            except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
                reason = getattr(err, "reason", None) or err
                raise BundleError(f"{source}: cannot fetch it ({reason})") from None
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _read_manifest(zf: zipfile.ZipFile, source: str) -> dict:
    """The archive's ``bundle.json``, every field checked."""
    try:
        info = zf.getinfo(BUNDLE)
    except KeyError:
        raise BundleError(f"{source}: no {BUNDLE} in it; not a wmtutor bundle (`wmtutor "
                          "bundle export` makes one)") from None  # fmt: skip
    if info.file_size > 50 << 20:
        raise BundleError(f"{source}: its {BUNDLE} is {info.file_size} bytes, not a manifest")
    try:
        manifest = json.loads(zf.read(info))
    except (ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise BundleError(f"{source}: its {BUNDLE} is not valid JSON ({_reason(err)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{source}: its {BUNDLE} is not a wmtutor bundle manifest "
                          f"(expected \"format\": \"{FORMAT}\")")  # fmt: skip
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise BundleError(f"{source}: bundle format {version!r}; this wmtutor reads format "
                          f"{FORMAT_VERSION} (update wmtutor?)")  # fmt: skip
    game, preset = manifest.get("game"), manifest.get("preset")
    if game not in GAMES:
        raise BundleError(f"{source}: game {game!r}: expected one of {', '.join(GAMES)}")
    if preset not in PRESETS:
        raise BundleError(f"{source}: preset {preset!r}: expected one of "
                          f"{', '.join(sorted(PRESETS))}")  # fmt: skip
    try:
        check_seed(manifest.get("seed"))
    except ValueError as err:
        raise BundleError(f"{source}: {err}") from None
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise BundleError(f"{source}: its {BUNDLE} lists no files")
    seen = set()
    for entry in files:
        ok = (isinstance(entry, dict) and isinstance(entry.get("path"), str)
              and isinstance(entry.get("bytes"), int) and entry["bytes"] >= 0
              and isinstance(entry.get("sha256"), str)
              and re.fullmatch("[0-9a-f]{64}", entry["sha256"]) is not None)  # fmt: skip
        if not ok:
            raise BundleError(f"{source}: {BUNDLE} entry {str(entry)[:80]}: expected "
                              '{"path": ..., "bytes": N, "sha256": 64 hex digits}')  # fmt: skip
        _check_name(entry["path"], source, "its manifest lists")
        if entry["path"] in seen:
            raise BundleError(f"{source}: its manifest lists {entry['path']!r} twice")
        seen.add(entry["path"])
    needed = [n for n in (VAE, MDNRNN, INITIAL_LATENTS) if n not in seen]
    if needed:
        raise BundleError(f"{source}: its manifest lists no {', '.join(needed)}; a bundle "
                          "holds at least V, M and the dream starts")  # fmt: skip
    return manifest


def _check_name(name: str, source: str, what: str) -> None:
    """A member's name: relative, no ``..``, one the layout knows."""
    parts = name.split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        problem = "an absolute path"
    elif ".." in parts or "\\" in name:
        problem = "a path out of the run's folder ('..' or '\\')"
    elif "" in parts or "." in parts:
        problem = "not a plain relative path"
    elif not allowed(name):
        problem = "not a file of a run's layout (V, M, a controller, logs, scores)"
    else:
        return
    raise BundleError(f"{source}: {what} {name!r}, {problem}; refusing the bundle")


def _check_members(zf: zipfile.ZipFile, manifest: dict, source: str) -> dict[str, zipfile.ZipInfo]:
    """Every member a plain file the manifest lists, of its size; every listed file there."""
    listed = {e["path"]: e for e in manifest["files"]}
    members: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        mode = info.external_attr >> 16
        if name != BUNDLE:
            _check_name(name, source, "it holds")
        if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type given
            kind = "a link" if stat.S_ISLNK(mode) else "a folder" if info.is_dir() else "special"
            raise BundleError(f"{source}: member {name!r} is {kind}, not a plain file; refusing "
                              "the bundle")  # fmt: skip
        if name in seen:
            raise BundleError(f"{source}: it holds {name!r} twice; refusing the bundle")
        seen.add(name)
        if name == BUNDLE:
            continue
        if name not in listed:
            raise BundleError(f"{source}: it holds {name!r}, which its manifest does not list; "
                              "refusing the bundle")  # fmt: skip
        if info.file_size != listed[name]["bytes"]:
            raise BundleError(f"{source}: {name} is {info.file_size} bytes, its manifest says "
                              f"{listed[name]['bytes']}; refusing the bundle")  # fmt: skip
        members[name] = info
    absent = [n for n in listed if n not in members]
    if absent:
        raise BundleError(f"{source}: its manifest lists {', '.join(absent)}, which it does not "
                          "hold; the bundle is incomplete")  # fmt: skip
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, entry: dict, source: str) -> bytes:
    """A member's bytes, of the manifest's SHA-256."""
    try:
        data = zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise BundleError(f"{source}: {info.filename} is damaged ({_reason(err)}); get the "
                          "bundle again") from None  # fmt: skip
    got = sha256_bytes(data)
    if got != entry["sha256"]:
        raise BundleError(f"{source}: {info.filename} has SHA-256 {got[:16]}..., its manifest "
                          f"says {entry['sha256'][:16]}...: the file was changed or damaged; "
                          "refusing the bundle")  # fmt: skip
    return data


def _same(path: Path, entry: dict) -> bool:
    return (
        path.is_file()
        and path.stat().st_size == entry["bytes"]
        and (sha256_file(path) == entry["sha256"])
    )


def import_bundle(source: str | os.PathLike, *, root: str | os.PathLike | None = None,
                  force: bool = False) -> tuple[Run, dict, list[str]]:  # fmt: skip
    """Check the bundle ``source`` (a file, or an http(s):// or file:// URL) and unpack it
    into its run's folder under ``root`` (default: ``layout.runs_root()``). Returns the run,
    the manifest and the paths written (a file already there byte for byte is kept).

    Everything is checked before anything is written (see the module docstring); a file
    of the run that differs from the bundle's is replaced only with ``force``.

    Raises:
        BundleError: the source, a member or the manifest is not what a bundle holds, or
            the run has its own files where the bundle's would go; the message says which.
    """
    source = check_source(source)
    with _local(source) as path:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise BundleError(f"{source}: not a wmtutor bundle (not a zip archive: "
                              f"{_reason(err)})") from None  # fmt: skip
        with zf:
            manifest = _read_manifest(zf, source)
            members = _check_members(zf, manifest, source)
            run = Run.of(manifest["game"], manifest["preset"], manifest["seed"], root=root)
            run.check_layout()
            for entry in manifest["files"]:  # proved, one file at a time, before any write
                rel = entry["path"]
                check_file(rel, _read(zf, members[rel], entry, source), f"{source}: {rel}")
            todo = [e for e in manifest["files"] if not _same(run.folder / e["path"], e)]
            taken = [e["path"] for e in todo if os.path.lexists(run.folder / e["path"])]
            if os.path.lexists(run.bundle):
                try:
                    old_files = (marker(run) or {}).get("files")
                except ValueError:  # a broken marker: replaced like any other file
                    old_files = None
                if old_files != manifest["files"]:
                    taken.append(BUNDLE)
            if taken and not force:
                more = f" and {len(taken) - 4} more" if len(taken) > 4 else ""
                them = "it" if len(taken) == 1 else "them"
                raise BundleError(
                    f"{run.folder} has its own {', '.join(taken[:4])}{more}, not the bundle's: "
                    f"not importing over {them} (pass --force to replace {them})"
                )
            _unpack(zf, members, todo, manifest, run, source)
    return run, manifest, [e["path"] for e in todo]


def _unpack(zf: zipfile.ZipFile, members: dict, todo: list[dict], manifest: dict, run: Run,
            source: str) -> None:  # fmt: skip
    """Unpack ``todo`` into a temporary folder beside the run's, then rename each file into
    place; the marker (the manifest, with where and when it was imported) last."""
    run.folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run.folder.name}.import.", dir=run.folder.parent))
    try:
        for entry in todo:
            dest = tmp / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(_read(zf, members[entry["path"]], entry, source))
        where = urllib.parse.urlsplit(source)._replace(query="", fragment="").geturl()
        imported = {"from": where, "at": datetime.datetime.now(datetime.timezone.utc)
                    .isoformat(timespec="seconds")}  # fmt: skip
        (tmp / BUNDLE).write_text(json.dumps({**manifest, "imported": imported}, indent=1))
        for entry in todo:
            dest = run.folder / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / entry["path"], dest)
        os.replace(tmp / BUNDLE, run.bundle)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# A bundled run


def marker(run: Run) -> dict | None:
    """The manifest of the bundle the run was imported from, or None if it was not."""
    try:
        text = run.bundle.read_text()
    except FileNotFoundError:
        return None
    try:
        found = json.loads(text)
        if not isinstance(found, dict) or not isinstance(found.get("files"), list):
            raise ValueError("no list of files")
    except ValueError as err:
        raise ValueError(
            f"{run.bundle} is not a bundle manifest ({_reason(err)}): import the bundle again "
            "(`wmtutor bundle import FILE --force`), or delete it to train this run yourself"
        ) from None
    return found


def bundled(run: Run, path: str | os.PathLike) -> bool:
    """Did ``path`` (a file in the run's folder) come in the run's bundle, unchanged? Then
    it is used as it is: never trained on, never checked against the local data."""
    found = marker(run)
    if found is None:
        return False
    try:
        rel = Path(path).relative_to(run.folder).as_posix()
    except ValueError:
        return False
    entry = next((e for e in found["files"] if e.get("path") == rel), None)
    return entry is not None and _same(Path(path), entry)
