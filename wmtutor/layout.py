"""Where everything of a run lives: every folder and file name, in one place.

A *run* is one game, one preset and one seed. Its folder holds every stage's artifacts::

    runs/<game>/<preset>/seed<seed>/
        rollouts/                 random episodes (rollout_NNNNN.npz, manifest.json)
        vae.pt  vae_log.jsonl     V
        vae_frames_<digest>.npy   ... its frame cache, only while it trains (on a GPU)
        latents/                  every rollout encoded by V (M's data)
        mdnrnn.pt  mdnrnn_log.jsonl   M
        controller_<inputs>/      C trained in the real game (state.npz, log.json)
        controller_<inputs>_full/ ... longer, to the full length: `wmtutor pipeline`'s C
                                  for CarRacing (the game's `full` section)
        dream_<inputs>_tau<tau>/  C trained in M's dream at temperature tau
            round0/controller/    ... in the dream of the M above
            round<k>/             iterative training, round k >= 1:
                rollouts/ latents/    real episodes of round k-1's C, and their z
                mdnrnn.pt mdnrnn_log.jsonl   M trained on those too
                controller/           C trained in this round's dream
        tau_sweep/<inputs>_tau<tau>/  the temperature sweep's shorter runs
        pipeline.json             `wmtutor pipeline`: stage times and scores
        pipeline_clock.json       ... the time so far of a stage not yet finished
        bundle.json               `wmtutor bundle import`: the manifest of the bundle the
                                  run's models came from (they are used as they are)
        initial_latents.npz       ... and where its dreams start (first-frame mu, logvar)
        joint/joint.pt            `wmtutor train-joint`: V, M and an inverse model together
        beyond/                   notebook 08 (wmtutor.beyond), on data of its own:
            rollouts/                 random episodes, for both world models
            separate/  joint/         each: vae.pt latents/ mdnrnn.pt (joint/ also joint.pt)
                cmaes/  ppo/              the learners trained in that dream, and
                                          results.json (their real-game test)
            random.json               random play on the test episodes

The root is ``$WMTUTOR_RUNS`` if set, else ``runs/`` at the top of the checkout when
wmtutor is used from one (so notebooks and the CLI share artifacts), else
``~/.cache/wmtutor/runs``. Naming a path never creates it: the stage that writes a file
makes its folder.

This module only names paths. It imports nothing of wmtutor but the presets.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from wmtutor.presets import Preset, get_preset

ROOT_ENV_VAR = "WMTUTOR_RUNS"

# File names, each in one place.
MANIFEST = "manifest.json"
VAE = "vae.pt"
MDNRNN = "mdnrnn.pt"
JOINT = "joint.pt"  # V, M and the inverse model trained together (wmtutor.joint)
CONTROLLER_STATE = "state.npz"
CONTROLLER_LOG = "log.json"
RESULTS = "results.json"  # the real-game test (test seeds)
VALIDATION = "validation.json"  # real episodes of the validation seeds
PIPELINE = "pipeline.json"
PIPELINE_CLOCK = "pipeline_clock.json"  # the time so far of stages not yet finished
DREAM_VS_REAL_GIF = "dream_vs_real.gif"
BUNDLE = "bundle.json"  # in a run's folder: its models came from a bundle (wmtutor.bundle)
INITIAL_LATENTS = "initial_latents.npz"  # a bundle's dream starts, in place of latents/


def log_path(ckpt: str | os.PathLike) -> Path:
    """A checkpoint's training log, beside it: ``vae.pt`` -> ``vae_log.jsonl``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(f"{ckpt.stem}_log.jsonl")


def frame_cache_path(ckpt: str | os.PathLike, digest: str) -> Path:
    """V's frame cache while it trains, beside its checkpoint and named by the digest of
    the rollouts it copies: ``vae.pt`` -> ``vae_frames_<digest>.npy``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(f"{ckpt.stem}_frames_{digest}.npy")


def frame_caches(ckpt: str | os.PathLike) -> list[Path]:
    """The frame caches beside ``ckpt`` (``frame_cache_path``'s names, whatever the digest)."""
    ckpt = Path(ckpt)
    name = re.compile(re.escape(ckpt.stem) + r"_frames_[0-9a-f]{16}\.npy")
    if not ckpt.parent.is_dir():
        return []
    return sorted(p for p in ckpt.parent.iterdir() if name.fullmatch(p.name))


def runs_root() -> Path:
    """The folder all runs live under (see the module docstring); not created here."""
    root = os.environ.get(ROOT_ENV_VAR)
    if root:
        return Path(root).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / "runs"
    return Path.home() / ".cache" / "wmtutor" / "runs"


def pictures_dir(topic: str, preset: Preset | str | None = None) -> Path:
    """Where a notebook's pictures go: ``runs/<topic>/<preset>`` (e.g. ``toys``, ``dream``)."""
    return runs_root() / topic / _preset(preset).name


def _preset(preset: Preset | str | None) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def check_seed(seed: object) -> int:
    """A run's seed must be a non-negative integer; returns it as an int."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed {seed!r}: expected an integer >= 0")
    return int(seed)


def tau_name(tau: float) -> str:
    """``1.15`` -> ``"tau1.15"``: how a temperature appears in folder names."""
    return f"tau{tau:g}"


@dataclass(frozen=True)
class Run:
    """One game, one preset, one seed: the paths of everything the pipeline makes.

    ``Run.of("doom")`` takes the preset from ``$WMTUTOR_PRESET`` and its seed. ``settings``
    is the preset itself, possibly with sizes changed (the command line's overrides): the
    folder is named after the preset either way.
    """

    game: str
    preset: str
    seed: int
    root: Path
    settings: Preset = field(repr=False, compare=False, default=None)

    @classmethod
    def of(
        cls,
        game: str,
        preset: Preset | str | None = None,
        seed: int | None = None,
        root: str | os.PathLike | None = None,
    ) -> Run:
        p = _preset(preset)
        p.game(game)  # an unknown game: a ValueError that lists the games
        seed = p.seed if seed is None else check_seed(seed)
        return cls(game, p.name, seed, Path(root) if root else runs_root(), p)

    @property
    def sizes(self):
        """The preset's sizes for this game (``presets.Game``)."""
        return (self.settings or get_preset(self.preset)).game(self.game)

    @property
    def folder(self) -> Path:
        return self.root / self.game / self.preset / f"seed{self.seed}"

    # V and M and their data
    @property
    def rollouts(self) -> Path:
        return self.folder / "rollouts"

    @property
    def vae(self) -> Path:
        return self.folder / VAE

    @property
    def latents(self) -> Path:
        return self.folder / "latents"

    @property
    def mdnrnn(self) -> Path:
        return self.folder / MDNRNN

    @property
    def joint(self) -> Path:
        """V, M and the inverse model trained together, ``joint/joint.pt``; the V and M
        exported from it sit beside it as ``joint/vae.pt`` and ``joint/mdnrnn.pt``."""
        return self.folder / "joint" / JOINT

    @property
    def beyond(self) -> Path:
        """Notebook 08's experiment (``wmtutor.beyond``), with rollouts of its own."""
        return self.folder / "beyond"

    # C
    def controller(self, inputs: str | None = None, full: bool = False) -> Path:
        """C trained in the real game: ``controller_<inputs>/`` (notebook 06's), or with
        ``full`` ``controller_<inputs>_full/`` (the pipeline's, the game's ``full`` section)."""
        name = f"controller_{inputs or self.sizes.controller.inputs}"
        return self.folder / (f"{name}_full" if full else name)

    def dream(self, tau: float | None = None, inputs: str | None = None) -> Path:
        """Everything trained in M's dream at ``tau``: ``dream_<inputs>_tau<tau>/``."""
        tau = self.sizes.dream.tau if tau is None else tau
        return self.folder / f"dream_{inputs or self.sizes.controller.inputs}_{tau_name(tau)}"

    def round(self, k: int = 0, tau: float | None = None, inputs: str | None = None) -> Path:
        """Round k of iterative training in the dream at ``tau``: ``.../round<k>/``."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"round {k!r}: expected an integer >= 0")
        return self.dream(tau, inputs) / f"round{k}"

    def round_mdnrnn(self, k: int, tau: float | None = None, inputs: str | None = None) -> Path:
        """The M whose dream round k's C is trained in (round 0: the run's own M)."""
        return self.mdnrnn if k == 0 else self.round(k, tau, inputs) / MDNRNN

    def dream_controller(
        self, k: int = 0, tau: float | None = None, inputs: str | None = None
    ) -> Path:
        """Round k's C, trained in the dream at ``tau``: ``.../round<k>/controller/``."""
        return self.round(k, tau, inputs) / "controller"

    def sweep(self, tau: float, inputs: str | None = None) -> Path:
        """A short run of the temperature sweep: ``tau_sweep/<inputs>_tau<tau>/``."""
        inputs = inputs or self.sizes.controller.inputs
        return self.folder / "tau_sweep" / f"{inputs}_{tau_name(tau)}"

    @property
    def pipeline(self) -> Path:
        return self.folder / PIPELINE

    @property
    def pipeline_clock(self) -> Path:
        return self.folder / PIPELINE_CLOCK

    # A run imported from a bundle (``wmtutor bundle import``, ``wmtutor.bundle``)
    @property
    def bundle(self) -> Path:
        """The marker of an imported bundle: its manifest (every file's size and SHA-256)."""
        return self.folder / BUNDLE

    @property
    def initial_latents(self) -> Path:
        """A bundle's dream starts (``mu``, ``logvar`` of every rollout's first frame)."""
        return self.folder / INITIAL_LATENTS

    # -----------------------------------------------------------------------------------
    # The layout before seeds (wmtutor 0.1): runs/<game>/<preset>/ held one run directly.

    @property
    def old_folder(self) -> Path:
        return self.root / self.game / self.preset

    def old_layout(self) -> list[Path]:
        """What of the pre-seed layout is in ``runs/<game>/<preset>/`` (empty if nothing)."""
        old = self.old_folder
        names = ("rollouts", "latents", VAE, MDNRNN, PIPELINE, "tau_sweep")
        found = [old / n for n in names if (old / n).exists()]
        found += sorted(p for p in old.glob("controller_*") if p.is_dir())
        found += sorted(p for p in old.glob("round[0-9]*") if p.is_dir())
        return found

    def check_layout(self) -> None:
        """Refuse to work beside a run in the pre-seed layout; say how to migrate it."""
        if self.seed == get_preset(self.preset).seed and self.old_layout():
            raise ValueError(
                f"{self.old_folder} holds a run in the layout of wmtutor 0.1 (before seeds). "
                f"Move it into {self.folder.name}/ with `wmtutor migrate --env {self.game} "
                f"--preset {self.preset}` (nothing is retrained), or move it away"
            )


def migrate(run: Run) -> list[tuple[Path, Path]]:
    """Move a pre-seed run (``runs/<game>/<preset>/...``) into ``run``'s layout.

    Returns the moves made, ``(old, new)``. Nothing is rewritten or retrained; a target
    that exists already is never overwritten (a ValueError names it, before anything
    moves). Old names: ``controller_<inputs>_dream<tau>/`` (round 0's C),
    ``round<k>/controller_<inputs>_dream<tau>/``, ``tau_sweep/dream<tau>/``.
    """
    old = run.old_folder
    inputs = run.sizes.controller.inputs
    tau = run.sizes.dream.tau
    moves: list[tuple[Path, Path]] = []
    for name in ("rollouts", "latents", VAE, MDNRNN, log_path(VAE).name, log_path(MDNRNN).name):
        if (old / name).exists():
            moves.append((old / name, run.folder / name))
    for path in sorted(old.glob("controller_*")):
        name = path.name[len("controller_") :]
        if "_dream" in name:
            c_inputs, c_tau = name.split("_dream", 1)
            moves.append((path, run.dream_controller(0, float(c_tau), c_inputs)))
        else:
            moves.append((path, run.controller(name)))
    for path in sorted(old.glob("round[0-9]*")):
        k = int(path.name[len("round") :])
        for item in sorted(path.iterdir()):
            if item.name.startswith("controller_") and "_dream" in item.name:
                c_inputs, c_tau = item.name[len("controller_") :].split("_dream", 1)
                moves.append((item, run.dream_controller(k, float(c_tau), c_inputs)))
            else:  # rollouts/, latents/, mdnrnn.pt: made from the preset's tau and inputs
                moves.append((item, run.round(k, tau, inputs) / item.name))
    for path in sorted((old / "tau_sweep").glob("dream*")):
        moves.append((path, run.sweep(float(path.name[len("dream") :]), inputs)))
    taken = [str(new) for _, new in moves if new.exists()]
    if taken:
        raise ValueError(f"not migrating: {', '.join(taken)} exist(s) already")
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    for path in (old / PIPELINE, old / "tau_sweep"):  # the old record's paths are stale
        if path.is_file():
            shutil.move(str(path), str(run.folder / "pipeline_wmtutor0.1.json"))
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for path in sorted(old.glob("round[0-9]*")):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return moves
