"""The files on disk: one ``.npz`` per episode, and a folder's ``manifest.json``.

A *rollout* file (``wmtutor gather``, ``wmtutor.rollouts``) holds, for an episode of T
agent steps:

==============  ===================  =================================================
key             shape, dtype         meaning
==============  ===================  =================================================
``frames``      (T, 64, 64, 3) uint8  the observation *before* each action
``actions``     (T, ...) float32/int  the action taken (game's own format)
``rewards``     (T,) float32         reward after each action
``terminated``  (T,) bool            the game ended at this step (crash, death, 21 pts)
``truncated``   (T,) bool            the step cap ended the episode here
``seed``        () int64             the seed the episode was played with
``frame_skip``  () int64             game frames per agent step
``positions``   (T, 2) float32       CarRacing only: the car's (x, y) before each action
``track``       (N, 2) float32       CarRacing only: the centre line of the track
==============  ===================  =================================================

A *latent* file (``wmtutor encode``) has the same name as its rollout and holds ``mu``
and ``logvar`` ``(T, z_dim)`` float32 instead of the frames, beside the same actions,
rewards and dones.

The folder's ``manifest.json`` says what made it (``config``) and lists every file with
its length, size and SHA-256 (``files``), so a resumed stage can check each file cheaply
and redo the broken ones. This module needs only NumPy: gathering workers import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wmtutor.layout import MANIFEST
from wmtutor.utils import atomic_path

TIME_KEYS = ("frames", "actions", "rewards", "terminated", "truncated", "positions")
LATENT_KEYS = ("mu", "logvar")


class RolloutFileError(ValueError):
    """A rollout or latent file that cannot be read; the message names it and the fix."""


def digest(path: str | os.PathLike) -> str:
    """A short SHA-256 of a file (16 hex digits): what made an artifact, and is it whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fix_hint(path: Path) -> str:
    """The command that remakes ``path``: ``encode`` for latent files, else ``gather``."""
    manifest = path.parent / MANIFEST
    latent = path.parent.name == "latents"
    if manifest.exists():
        try:
            latent = "vae_digest" in json.loads(manifest.read_text()).get("config", {})
        except (OSError, ValueError):
            pass
    if latent:
        return "re-run `wmtutor encode`: it re-encodes missing and broken files"
    return "re-run `wmtutor gather` with the same settings: it replays missing and broken files"


def load_rollout(path: str | os.PathLike, keys: Sequence[str] | None = None) -> dict:
    """Read a rollout or latent ``.npz`` (all arrays, or only ``keys``) and check its shapes.

    Raises:
        RolloutFileError: the file is missing, cut short, corrupt, lacks a key, or its
            arrays disagree on the episode length. The message names the file and the
            command that remakes it.
    """
    path = Path(path)
    if not path.exists():
        raise RolloutFileError(f"{path}: no such file; {fix_hint(path)}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys or () if k not in data.files]
            if missing:
                raise RolloutFileError(
                    f"{path} has no {', '.join(missing)} (it has {', '.join(data.files)}): "
                    + (
                        "pass a folder of latents (`wmtutor encode` makes one)"
                        if set(missing) & set(LATENT_KEYS)
                        else "pass a folder of rollouts (`wmtutor gather` makes one)"
                    )
                )
            out = {k: data[k] for k in (keys or data.files)}
    except RolloutFileError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise RolloutFileError(
            f"{path}: cannot read this file ({type(err).__name__}: {err}); it is corrupt or "
            f"was cut short: {fix_hint(path)}"
        ) from err
    lengths = {k: len(v) for k, v in out.items() if k in TIME_KEYS or k in LATENT_KEYS}
    if len(set(lengths.values())) > 1:
        raise RolloutFileError(f"{path}: arrays of different lengths {lengths}; {fix_hint(path)}")
    frames = out.get("frames")
    if frames is not None and (frames.ndim != 4 or frames.shape[1:] != (64, 64, 3)):
        raise RolloutFileError(f"{path}: frames of shape {frames.shape}, expected (T, 64, 64, 3)")
    if frames is not None and frames.dtype != np.uint8:
        raise RolloutFileError(f"{path}: frames of dtype {frames.dtype}, expected uint8")
    return out


def save_arrays(path: str | os.PathLike, compress: bool = True, **arrays) -> dict:
    """Write one episode's arrays atomically; return ``{"bytes", "sha256"}`` for the manifest."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return {"bytes": path.stat().st_size, "sha256": digest(path)}


def read_manifest(folder: str | os.PathLike) -> dict:
    """The ``manifest.json`` of a rollout or latent folder."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: {folder} is not a rollout folder (make one with `wmtutor gather`)"
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix_hint(path)}") from None
    if not isinstance(manifest, dict) or "config" not in manifest or "files" not in manifest:
        raise ValueError(f"{path} is not a wmtutor manifest (no 'config' or 'files')")
    return manifest


def write_manifest(folder: str | os.PathLike, manifest: dict) -> dict:
    """Write a folder's manifest atomically, with ``n_rollouts``, ``frames`` and ``bytes``
    totalled from its ``files``; return it."""
    files = manifest["files"]
    manifest = {
        **manifest,
        "n_rollouts": len(files),
        "frames": sum(e["length"] for e in files),
        "bytes": sum(e.get("bytes", 0) for e in files),
    }
    with atomic_path(Path(folder) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def manifest_digest(manifest: dict) -> str:
    """What identifies a folder's content: a hash of its config and every file's checksum
    (or size, for manifests made before checksums). Later stages record it."""
    files = [(e["file"], e.get("sha256", e.get("bytes")), e["length"]) for e in manifest["files"]]
    text = json.dumps([manifest["config"], files], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_is_whole(folder: Path, entry: dict) -> bool:
    """Is the file a manifest entry lists there, of its recorded size and checksum?"""
    path = Path(folder) / entry["file"]
    try:
        if "bytes" in entry and path.stat().st_size != entry["bytes"]:
            return False
    except FileNotFoundError:
        return False
    return "sha256" not in entry or digest(path) == entry["sha256"]


def source_digest(source: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    """What identifies a training set: a folder's ``manifest_digest``, or for a list of
    files a hash of their names and sizes. A checkpoint records it (``made_from``)."""
    if isinstance(source, (str, os.PathLike)):
        return manifest_digest(read_manifest(source))
    files = sorted((Path(p).name, Path(p).stat().st_size) for p in source)
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
