"""Pictures: every figure and GIF of the course is drawn here, used by notebooks and toy/.

Plot functions take an ``ax`` (so a notebook can show one panel per step) and the
``*_figure`` functions compose them (so a script can save the whole story at once).
GIFs are written with Pillow through ``save_gif`` and shown inline with ``show_gif``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Ellipse
from matplotlib.ticker import EngFormatter, MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from wmtutor.controller import record_episode
from wmtutor.dream import DreamEnv, dream_episode, dream_step, initial_latents
from wmtutor.mdnrnn import load_mdnrnn
from wmtutor.presets import Preset, get_preset
from wmtutor.rollouts import distance_driven, track_coverage
from wmtutor.utils import atomic_path
from wmtutor.vae import decode_latent, load_vae

DATA_STYLE = {"s": 4, "alpha": 0.25, "color": "tab:blue", "label": "data"}

# ---------------------------------------------------------------------------------------
# Preset stamps: a picture made on a preset other than `laptop` says so, so that the tiny
# preset's grey blur is never read as what V learns.

STAMP_WHY = {"tiny": "CI sizes, not a result",
             "paper": "the paper's sizes"}  # fmt: skip
_FIGURE_HOOK = "wmtutor.viz:_stamp_figure"
STAMP_BAND = 17  # pixels of the band a GIF's frames get on top
_stamp = ""


def stamp_pictures(preset: Preset | str | None = None) -> str:
    """From now on, mark every matplotlib figure and every ``save_gif`` GIF with the preset
    they were made on, unless it is ``laptop`` (the preset the course's text discusses).

    Notebooks call it once, beside ``get_preset()``. Figures get a line above their title
    (through matplotlib's ``figure.hooks``), GIFs a band on top. Returns the stamp's text
    (``""`` on laptop)."""
    global _stamp
    name = preset.name if isinstance(preset, Preset) else get_preset(preset).name
    _stamp = "" if name == "laptop" else f"[{name} preset: {STAMP_WHY.get(name, name)}]"
    hooks = [h for h in mpl.rcParams["figure.hooks"] if h != _FIGURE_HOOK]
    mpl.rcParams["figure.hooks"] = hooks + ([_FIGURE_HOOK] if _stamp else [])
    return _stamp


def _stamp_figure(fig: plt.Figure) -> None:
    """matplotlib's ``figure.hooks`` calls this on every new pyplot figure."""
    fig.text(0.5, 1.0, _stamp, ha="center", va="bottom", fontsize=10, color="firebrick")


def _stamp_frames(images: list[Image.Image]) -> list[Image.Image]:
    """The same frames under a band that names the preset (when there is a stamp)."""
    if not _stamp:
        return images
    out = []
    for image in images:
        band = Image.new("RGB", (image.width, STAMP_BAND), (150, 20, 20))
        ImageDraw.Draw(band).text((3, 1), _stamp, fill=(255, 255, 255), font=_font())
        framed = Image.new("RGB", (image.width, image.height + STAMP_BAND))
        framed.paste(band, (0, 0))
        framed.paste(image.convert("RGB"), (0, STAMP_BAND))
        out.append(framed)
    return out


# ---------------------------------------------------------------------------------------
# Notebook 01: the MDN toy


def plot_toy_data(ax: plt.Axes, x: torch.Tensor, y: torch.Tensor, title: str = "") -> None:
    """Scatter the inverse problem: x on the horizontal axis, the y to predict vertically."""
    ax.scatter(x.squeeze(-1), y.squeeze(-1), **DATA_STYLE)
    ax.set(xlabel="x (input)", ylabel="y (to predict)", title=title or "the inverse problem")


def plot_mse_fit(
    ax: plt.Axes, x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor, y_pred: torch.Tensor
) -> None:
    """The data with the MSE network's prediction ``y_pred`` along the grid ``xs``."""
    plot_toy_data(ax, x, y, title="MSE network: predicts the average")
    ax.plot(xs.squeeze(-1), y_pred.squeeze(-1), color="tab:red", lw=2.5, label="MSE fit")
    ax.legend(loc="upper left")


def plot_mdn_samples(
    ax: plt.Axes,
    x: torch.Tensor,
    y: torch.Tensor,
    xs: torch.Tensor,
    samples: torch.Tensor,
    tau: float = 1.0,
) -> None:
    """The data with one MDN sample of y per point of the grid ``xs``."""
    plot_toy_data(ax, x, y, title=f"MDN samples (tau = {tau:g})")
    ax.scatter(xs.squeeze(-1), samples.squeeze(-1), s=5, color="tab:red", label="MDN samples")
    ax.legend(loc="upper left")


def plot_mixture(
    axes: Sequence[plt.Axes], xs: torch.Tensor, logit_pi: torch.Tensor, mu: torch.Tensor
) -> None:
    """Left: each component's weight pi_k(x). Right: its mean mu_k(x), drawn only where
    the component carries weight (its opacity is pi_k), so the branches appear."""
    pi = torch.softmax(logit_pi, dim=-2)[..., 0].numpy()  # (N, K)
    mu = mu[..., 0].numpy()
    x = xs.squeeze(-1).numpy()
    colors = plt.cm.tab10(np.arange(pi.shape[1]))
    for k in range(pi.shape[1]):
        axes[0].plot(x, pi[:, k], color=colors[k], lw=2, label=f"k={k}")
        axes[1].scatter(x, mu[:, k], s=6, color=colors[k], alpha=np.clip(pi[:, k], 0.02, 1))
    # Weights never exceed 1: the legend gets the band above, in one row, over no curve.
    axes[0].set(xlabel="x", ylabel="pi_k(x)", title="mixture weights", ylim=(0, 1.3),
                yticks=[0, 0.25, 0.5, 0.75, 1])  # fmt: skip
    axes[0].legend(loc="upper center", fontsize=7, ncol=pi.shape[1], handlelength=1.2)
    axes[1].set(xlabel="x", ylabel="mu_k(x)", title="component means (opacity = weight)")


def mdn_toy_figure(
    x: torch.Tensor,
    y: torch.Tensor,
    xs: torch.Tensor,
    y_mse: torch.Tensor,
    samples: torch.Tensor,
    logit_pi: torch.Tensor,
    mu: torch.Tensor,
) -> plt.Figure:
    """The whole MDN toy story in one 2x2 figure (data + MSE, MDN samples, weights, means)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), constrained_layout=True)
    plot_mse_fit(axes[0, 0], x, y, xs, y_mse)
    plot_mdn_samples(axes[0, 1], x, y, xs, samples)
    plot_mixture(axes[1], xs, logit_pi, mu)
    return fig


def plot_losses(ax: plt.Axes, curves: dict[str, Sequence[float]], ylabel: str = "loss") -> None:
    """Training curves, one line per name."""
    for name, values in curves.items():
        ax.plot(values, label=name)
    ax.set(xlabel="step", ylabel=ylabel, title="training curves")
    ax.legend()


# ---------------------------------------------------------------------------------------
# Notebook 02: CMA-ES


def covariance_ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0, **kw) -> Ellipse:
    """The ``n_std``-sigma contour of N(mean, cov) in 2-D, as a matplotlib patch."""
    eigvals, eigvecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(eigvecs[1, -1], eigvecs[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.maximum(eigvals[::-1], 0))
    return Ellipse(mean, width, height, angle=angle, fill=False, **kw)


def plot_cmaes_state(
    ax: plt.Axes,
    g: dict,
    optimum: np.ndarray,
    background: np.ndarray | None = None,
    lim: tuple[float, float] = (-5.0, 15.0),
    title: str = "",
    f=None,
) -> None:
    """One generation of a 2-D CMA-ES: population (red), the mean it was sampled around
    (green), the optimum (hollow blue star) and the 2-sigma ellipse of sigma^2 C.

    ``g`` is one entry of ``minimize(..., record=True).history``; ``background`` an
    optional ``log10 f`` image over ``lim`` x ``lim`` (see ``landscape``). Given ``f``, a
    population that has shrunk below a twentieth of the view gets a zoomed inset.
    """
    if background is not None:
        ax.imshow(background, extent=(*lim, *lim), origin="lower", cmap="Greys_r", alpha=0.8)
    _draw_generation(ax, g, optimum, legend=True)
    ax.set(xlim=lim, ylim=lim, title=title)
    ax.tick_params(labelsize=7)
    # Once the population has shrunk to a dot, a zoomed inset keeps it visible.
    half = 4 * g["sigma"] * float(np.sqrt(np.linalg.eigvalsh(g["C"]).max()))
    if f is not None and half < (lim[1] - lim[0]) / 20:
        zoom = (
            (g["mean"][0] - half, g["mean"][0] + half),
            (g["mean"][1] - half, g["mean"][1] + half),
        )
        inset = ax.inset_axes([0.02, 0.58, 0.4, 0.4])  # over rings only
        xs, ys = np.meshgrid(np.linspace(*zoom[0], 60), np.linspace(*zoom[1], 60))
        grid = np.log10(f(np.stack([xs, ys], axis=-1)) + 1e-12)
        inset.imshow(grid, extent=(*zoom[0], *zoom[1]), origin="lower", cmap="Greys_r", alpha=0.8)
        _draw_generation(inset, g, optimum, legend=False, scale=0.5)
        inset.set(xlim=zoom[0], ylim=zoom[1], xticks=[], yticks=[])
        inset.set_title(f"zoom: ±{half:.1g}", fontsize=7, pad=2)


def _draw_generation(ax: plt.Axes, g: dict, optimum: np.ndarray, legend: bool,
                     scale: float = 1.0) -> None:  # fmt: skip
    """Ellipse, population, mean and a hollow optimum star (the population stays visible)."""
    ax.add_patch(covariance_ellipse(g["mean"], g["sigma"] ** 2 * g["C"], color="tab:green", lw=2))
    ax.scatter(*optimum, s=160 * scale, marker="*", facecolor="none", edgecolor="tab:blue",
               lw=1.5, label="optimum" if legend else None, zorder=2)  # fmt: skip
    ax.scatter(g["X"][:, 0], g["X"][:, 1], s=18 * scale, color="tab:red",
               label="population" if legend else None, zorder=3)  # fmt: skip
    ax.scatter(*g["mean"], s=60 * scale, color="tab:green", edgecolor="k",
               label="mean" if legend else None, zorder=4)  # fmt: skip


def landscape(f, lim: tuple[float, float] = (-5.0, 15.0), n: int = 300) -> np.ndarray:
    """``log10(f + 1e-3)`` on an ``n x n`` grid over ``lim`` x ``lim``: a background image."""
    grid = np.linspace(*lim, n)
    X, Y = np.meshgrid(grid, grid)
    return np.log10(f(np.stack([X, Y], axis=-1)) + 1e-3)


def best_so_far(history: list[dict]) -> np.ndarray:
    """Best f found up to each generation of a recorded run: shape ``(generations,)``."""
    return np.minimum.accumulate([g["f"].min() for g in history])


def plot_cmaes_history(axes: Sequence[plt.Axes], history: list[dict]) -> None:
    """Three panels over generations: best f so far, the step size sigma, and the axis
    lengths sigma * sqrt(eigenvalues of C) of the search distribution."""
    gens = np.arange(1, len(history) + 1)
    best = best_so_far(history)
    axes[0].semilogy(gens, best)
    axes[0].set(xlabel="generation", ylabel="best f so far", title="progress")
    axes[1].semilogy(gens, [g["sigma"] for g in history])
    axes[1].set(xlabel="generation", ylabel="sigma", title="step size")
    axes_len = np.array([g["sigma"] * np.sqrt(np.linalg.eigvalsh(g["C"])) for g in history])
    axes[2].semilogy(gens, axes_len)
    axes[2].set(xlabel="generation", ylabel="sigma * sqrt(eig C)", title="axes of the ellipse")


def cmaes_frames(
    runs: dict[str, list[dict]],
    f,
    optimum: np.ndarray,
    lim: tuple[float, float] = (-5.0, 15.0),
    dpi: int = 70,
) -> list[Image.Image]:
    """GIF frames, one per generation: a ``plot_cmaes_state`` panel for each named run
    (e.g. ours and pycma) and a last panel with best f per generation so far.

    ``runs`` maps a label to ``minimize(..., record=True).history``.
    """
    background = landscape(f, lim)
    n_frames = max(len(h) for h in runs.values())
    best = {k: best_so_far(h) for k, h in runs.items()}
    frames = []
    for t in range(n_frames):
        fig, axes = plt.subplots(
            1, len(runs) + 1, figsize=(4.2 * (len(runs) + 1), 4.2), dpi=dpi, constrained_layout=True
        )
        for ax, (label, hist) in zip(axes, runs.items(), strict=False):
            i = min(t, len(hist) - 1)
            plot_cmaes_state(
                ax, hist[i], optimum, background, lim, f"{label}: generation {i + 1}", f
            )
        axes[0].legend(loc="lower right", fontsize=7)
        ax = axes[-1]
        for label, b in best.items():
            ax.semilogy(np.arange(1, len(b) + 1)[: t + 1], b[: t + 1], label=label)
        lo = max(min(b.min() for b in best.values()), 1e-12) / 2
        ax.set(
            xlim=(1, n_frames),
            ylim=(lo, max(b.max() for b in best.values()) * 2),
            xlabel="generation",
            ylabel="best f",
            title="best so far",
        )
        ax.legend(fontsize=8)
        frames.append(figure_to_image(fig))
        plt.close(fig)
    return frames


def plot_evals_to_target(ax: plt.Axes, rows: list[dict]) -> None:
    """Grouped bars of the median evaluations to target, per function and backend."""
    functions = list(dict.fromkeys(r["function"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        vals = [
            next(r["median_evals"] for r in rows if r["function"] == fn and r["backend"] == backend)
            for fn in functions
        ]
        ax.bar(np.arange(len(functions)) + i * width, vals, width, label=backend)
    ax.set_xticks(np.arange(len(functions)) + width * (len(backends) - 1) / 2, functions)
    ax.set(ylabel="median evaluations to f < target", title="CMA-ES: ours vs pycma")
    ax.legend()


# ---------------------------------------------------------------------------------------
# Images and GIFs


def figure_to_image(fig: plt.Figure) -> Image.Image:
    """Render a matplotlib figure to a Pillow RGB image (no display needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a figure as PNG atomically (the old file survives a failed save)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def save_gif(
    frames: Sequence[Image.Image | np.ndarray],
    path: str | os.PathLike,
    fps: float = 8,
    last_frame_hold: float = 1.5,
) -> Path:
    """Write frames (Pillow images or ``(H, W, 3)`` uint8 arrays) as a looping GIF, atomically.

    The last frame is held ``last_frame_hold`` seconds so the end result can be seen. After
    ``stamp_pictures`` on a preset other than laptop, every frame carries the preset's name.
    """
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    images = [f if isinstance(f, Image.Image) else Image.fromarray(np.asarray(f)) for f in frames]
    images = _stamp_frames(images)
    durations = [int(1000 / fps)] * len(images)
    durations[-1] += int(1000 * last_frame_hold)
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
            optimize=True,
        )
    return Path(path)


def show_gif(path: str | os.PathLike):
    """Display a GIF inline in a notebook (the bytes are embedded in the notebook)."""
    from IPython.display import Image as IPImage  # notebooks only: not a dependency of the package

    return IPImage(data=Path(path).read_bytes(), format="gif")


# ---------------------------------------------------------------------------------------
# Notebook 03: the games and the data


def upscale(frames: np.ndarray, k: int = 3) -> np.ndarray:
    """Enlarge ``(..., H, W, 3)`` frames k times with square pixels (for GIFs people watch)."""
    return np.repeat(np.repeat(np.asarray(frames), k, axis=-3), k, axis=-2)


def tile_videos(videos: Sequence[np.ndarray], scale: int = 3, gap: int = 4) -> np.ndarray:
    """Place ``(T_i, H, W, 3)`` videos side by side; a shorter one holds its last frame.

    Returns ``(max T_i, H * scale, sum(W) * scale + gaps, 3)`` uint8.
    """
    length = max(len(v) for v in videos)
    panels = []
    for i, video in enumerate(videos):
        video = np.asarray(video)
        held = np.concatenate([video, np.repeat(video[-1:], length - len(video), axis=0)])
        panels.append(upscale(held, scale))
        if i < len(videos) - 1:
            panels.append(np.full((length, panels[-1].shape[1], gap, 3), 255, np.uint8))
    return np.concatenate(panels, axis=2)


def raw_vs_frame_figure(samples: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """For each game, its raw frame (top) above the 64×64 observation made from it (bottom)."""
    fig, axes = plt.subplots(2, len(samples), figsize=(3.4 * len(samples), 6.2), squeeze=False)
    for col, (name, (raw, frame)) in enumerate(samples.items()):
        axes[0, col].imshow(raw)
        axes[0, col].set_title(f"{name}: raw {raw.shape[0]}×{raw.shape[1]}")
        axes[1, col].imshow(frame)
        axes[1, col].set_title(f"{name}: observation 64×64")
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_track_coverage(ax: plt.Axes, rollout: dict, title: str = "") -> None:
    """CarRacing: the track's centre line, and where the car went (coloured by time)."""

    track, xy = rollout["track"], rollout["positions"]
    loop = np.concatenate([track, track[:1]])
    ax.plot(loop[:, 0], loop[:, 1], color="0.75", lw=6, solid_capstyle="round", label="track")
    points = ax.scatter(xy[:, 0], xy[:, 1], c=np.arange(len(xy)), cmap="plasma", s=3)
    ax.plot(*xy[0], "g^", ms=9, label="start")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"{title}: drove {distance_driven(rollout):.0f} units, "
        f"touched {100 * track_coverage(rollout):.1f}% of the tiles"
    )
    ax.legend(loc="lower left", fontsize=8)
    plt.colorbar(points, ax=ax, fraction=0.04, label="step")


def plot_action_traces(ax: plt.Axes, actions: np.ndarray, names: Sequence[str], title: str) -> None:
    """A continuous action over time, one line per dimension (steer, gas, brake)."""
    actions = np.asarray(actions)
    for j, name in enumerate(names):
        ax.plot(actions[:, j], lw=1, label=name)
    ax.set(xlabel="step", ylabel="action", title=title, ylim=(-1.1, 1.1))
    ax.legend(loc="upper right", fontsize=8, ncol=len(names))


def frame_grid(frames: np.ndarray, ncols: int = 8, scale: int = 2) -> np.ndarray:
    """``(N, H, W, 3)`` frames as one image of ``ncols`` columns (1-pixel white grid)."""
    frames = upscale(np.asarray(frames), scale)
    n, h, w, _ = frames.shape
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + 1) + 1, ncols * (w + 1) + 1, 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, ncols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = frame
    return grid


def format_table(rows: Sequence[dict], formats: dict[str, str]) -> str:
    """A plain-text table: one column per key of ``formats`` (its value a format spec).

    A ``None`` cell prints as ``-``. Example: ``format_table(rows, {"game": "", "mib": ".1f"})``.
    """
    cells = [[k for k in formats]]
    for row in rows:
        cells.append(["-" if row[k] is None else format(row[k], f) for k, f in formats.items()])
    widths = [max(len(r[j]) for r in cells) for j in range(len(formats))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


# ---------------------------------------------------------------------------------------
# Notebook 04: the VAE


def plot_training_log(
    ax: plt.Axes, log: Sequence[dict], title: str = "", key: str = "loss", yscale: str = "log"
) -> None:
    """Training ``key`` every few steps (line) and the held-out value after each epoch (dots)."""
    train = [r for r in log if r["kind"] == "train"]
    epochs = [r for r in log if r["kind"] == "epoch"]
    if train:
        ax.plot([r["step"] for r in train], [r[key] for r in train], lw=1, label=f"train {key}")
    ax.plot([r["step"] for r in epochs], [r[key] for r in epochs], "o-", label=f"held-out {key}")
    ax.set(xlabel="step", ylabel=key, title=title, yscale=yscale)
    ax.legend()


def plot_kl_per_dim(ax: plt.Axes, kl: np.ndarray, title: str = "", named: int = 8) -> None:
    """The mean KL of each latent dimension, largest first: the dimensions V really uses.
    The ``named`` most used are listed in a corner (64 tick labels would not fit)."""
    kl = np.asarray(kl)
    order = np.argsort(kl)[::-1]
    ax.bar(np.arange(len(kl)), kl[order], color="tab:purple")
    top = ", ".join(str(i) for i in order[:named])
    ax.text(0.98, 0.95, f"most used: z[{top}]", transform=ax.transAxes, ha="right", va="top",
            fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip
    ax.set(xlabel="dimensions, most used first", ylabel="mean KL (nats)", title=title)


def latent_explorer(model, z0: np.ndarray, dims: Sequence[int], scale: int = 4):
    """An ipywidgets explorer: one slider per latent dimension in ``dims``, the decoded frame.

    The picture is drawn by ``wmtutor.vae.decode_latent`` (a plain function that also runs
    headless); this only wires sliders to it.
    """
    import ipywidgets as widgets  # notebooks only: scripts and workers never load it

    z0 = np.asarray(z0, dtype=np.float32)
    image = fixed_image(widgets, 64 * scale)
    sliders = {
        d: widgets.FloatSlider(
            value=float(z0[d]),
            min=-3.0,
            max=3.0,
            step=0.05,
            description=f"z[{d}]",
            continuous_update=True,
        )  # fmt: skip
        for d in dims
    }

    def redraw(_change=None) -> None:
        z = z0.copy()
        for d, slider in sliders.items():
            z[d] = slider.value
        frame = upscale(decode_latent(model, z)[0], scale)
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="png")
        image.value = buf.getvalue()

    reset = widgets.Button(description="reset z", tooltip="back to the frame's own z")

    def on_reset(_button) -> None:
        for d, slider in sliders.items():
            slider.value = float(z0[d])

    reset.on_click(on_reset)
    for slider in sliders.values():
        slider.observe(redraw, names="value")
    redraw()
    return widgets.HBox([image, widgets.VBox([*sliders.values(), reset])],
                        layout=widgets.Layout(align_items="flex-start"))  # fmt: skip


def fixed_image(widgets, width: int, height: int | None = None):
    """An image widget drawn at ``width`` × ``height`` screen pixels (square by default):
    JupyterLab otherwise stretches it to the cell's width (a VBox) or to its neighbours'
    height (an HBox)."""
    w, h = f"{width}px", f"{height or width}px"
    layout = widgets.Layout(width=w, height=h, min_width=w, object_fit="contain")
    return widgets.Image(format="png", layout=layout)


# ---------------------------------------------------------------------------------------
# Notebook 05: the MDN-RNN


def label_frames(frames: np.ndarray, text: str | Sequence[str], scale: int = 3) -> np.ndarray:
    """Upscale ``(T, H, W, 3)`` frames and write ``text`` in their top-left corner: one
    text for all, or one per frame (a score that changes as the clip plays)."""
    font = _font()
    texts = [text] * len(frames) if isinstance(text, str) else list(text)
    if len(texts) != len(frames):
        raise ValueError(f"{len(texts)} texts for {len(frames)} frames: expected one per frame")
    out = []
    for frame, text in zip(upscale(frames, scale), texts, strict=True):
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        right, bottom = draw.textbbox((3, 1), text, font=font)[2:]
        draw.rectangle((0, 0, right + 3, bottom + 3), fill=(0, 0, 0))
        draw.text((3, 1), text, fill=(255, 255, 255), font=font)
        out.append(np.asarray(image))
    return np.stack(out)


def _font(size: int = 12):
    """Pillow's own font at a readable size (its bitmap default is about 7 px)."""
    return ImageFont.load_default(size=size)


def plot_done_probability(ax: plt.Axes, done_prob: np.ndarray, terminated: np.ndarray) -> None:
    """M's done probability along a real episode, with the real end marked."""
    ax.plot(done_prob, color="tab:red", label="M: P(done)")
    for t in np.flatnonzero(terminated):
        ax.axvline(t, color="k", ls="--", label="the real end")
    ax.axhline(0.5, color="0.6", lw=0.8)
    ax.set(xlabel="step", ylabel="probability", ylim=(-0.02, 1.02))
    ax.legend(loc="upper left")


# ---------------------------------------------------------------------------------------
# Notebook 06: the controller


def agent_frames(
    frames: np.ndarray,
    reconstructions: np.ndarray,
    actions: np.ndarray,
    names: Sequence[str],
    scale: int = 3,
) -> np.ndarray:
    """GIF frames: the real frame | V's reconstruction | a bar per action, for each step.

    ``actions`` ``(T, n)`` in each action's own range (CarRacing: steer in [-1, 1], gas
    and brake in [0, 1]) or ``(T,)`` discrete action indices, named by ``names``.
    """

    real = label_frames(frames, "real", scale)
    recon = label_frames(reconstructions, "V sees", scale)
    height = real.shape[1]
    actions = np.asarray(actions)
    out = []
    for t in range(len(frames)):
        panel = Image.new("RGB", (150, height), (255, 255, 255))
        draw = ImageDraw.Draw(panel)
        draw.text((6, 4), f"step {t}", fill=(0, 0, 0))
        if actions.ndim == 2:
            for j, name in enumerate(names):
                y = 30 + 34 * j
                value = float(actions[t, j])
                draw.text((6, y), f"{name} {value:+.2f}", fill=(0, 0, 0))
                draw.rectangle((6, y + 14, 144, y + 24), outline=(150, 150, 150))
                zero = 75 if name == "steer" else 6
                end = zero + value * (69 if name == "steer" else 138)
                draw.rectangle((min(zero, end), y + 14, max(zero, end), y + 24), fill=(200, 60, 60))
        else:
            k = int(actions[t])
            draw.text((6, 30), f"action {k}: {names[k] if k < len(names) else ''}", fill=(0, 0, 0))
        out.append(np.concatenate([real[t], np.full((height, 4, 3), 255, np.uint8), recon[t],
                                   np.asarray(panel)], axis=1))  # fmt: skip
    return np.stack(out)


def plot_cmaes_log(ax: plt.Axes, log: Sequence[dict], title: str = "") -> None:
    """Best, mean and worst fitness per generation, and the evaluated mean (with its std)."""
    g = [r["generation"] for r in log]
    ax.plot(g, [r["best"] for r in log], label="best", color="tab:green")
    ax.plot(g, [r["mean"] for r in log], label="mean", color="tab:blue")
    ax.plot(g, [r["worst"] for r in log], label="worst", color="tab:red", lw=0.8)
    evals = [r for r in log if "eval_mean" in r]
    if evals:
        ax.errorbar([r["generation"] for r in evals], [r["eval_mean"] for r in evals],
                    yerr=[r["eval_std"] for r in evals], fmt="ko", capsize=3,
                    label="mean params, evaluated")  # fmt: skip
    ax.set(xlabel="generation", ylabel="return", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside, over no curve


def episode_player(frames: np.ndarray, scale: int = 2):
    """An ipywidgets player (play button and a slider over time) for a recorded episode."""
    import ipywidgets as widgets  # notebooks only: scripts and workers never load it

    image = widgets.Image(format="png")
    slider = widgets.IntSlider(value=0, min=0, max=len(frames) - 1, description="step")
    play = widgets.Play(value=0, min=0, max=len(frames) - 1, interval=60)
    widgets.jslink((play, "value"), (slider, "value"))

    def show(change=None) -> None:
        buf = io.BytesIO()
        Image.fromarray(upscale(frames[slider.value], scale) if frames.shape[1] <= 96
                        else frames[slider.value]).save(buf, format="png")  # fmt: skip
        image.value = buf.getvalue()

    slider.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([play, slider]), image])


# ---------------------------------------------------------------------------------------
# Notebook 07: dreaming


def dream_player(env, names: Sequence[str] = ("left", "stay", "right"), scale: int = 4):
    """Play inside M's dream yourself: left / stay / right buttons, a tau slider, a new-dream
    button; each press steps the dream once and shows the frame V decodes.

    ``env`` is a ``wmtutor.dream.DreamEnv`` with one dream and V; the stepping is
    ``wmtutor.dream.dream_step`` (a plain function that also runs headless), this only wires
    buttons to it. The buttons send the adapter's left / stay / right actions.
    """
    import ipywidgets as widgets  # notebooks only: scripts and workers never load it

    adapter = env.adapter
    actions = (adapter.low, adapter.stay, adapter.high)
    image = fixed_image(widgets, 64 * scale)
    status = widgets.Label()
    tau = widgets.FloatSlider(value=env.tau, min=0.0, max=2.0, step=0.05, description="tau")
    steps = {"n": 0}

    def show(frame: np.ndarray, text: str) -> None:
        buf = io.BytesIO()
        Image.fromarray(upscale(frame, scale)).save(buf, format="png")
        image.value = buf.getvalue()
        status.value = text

    def press(action: int) -> None:
        env.tau = tau.value
        frame, ended, done_prob = dream_step(env, action)
        steps["n"] = 0 if ended else steps["n"] + 1
        text = "the dream ended: M believes you died" if ended else f"step {steps['n']}"
        show(frame, f"{text}  (P(done) = {done_prob:.2f}, tau = {tau.value:.2f})")

    def new_dream(_button=None) -> None:
        env.reset()
        steps["n"] = 0
        show(env.render(), "a new dream, from a real first frame")

    buttons = []
    for name, action in zip(names, actions, strict=True):
        button = widgets.Button(description=name)
        button.on_click(lambda _b, a=action: press(a))
        buttons.append(button)
    again = widgets.Button(description="new dream")
    again.on_click(new_dream)
    new_dream()
    return widgets.VBox([image, widgets.HBox([*buttons, again]), tau, status])


def plot_tau_sweep(ax: plt.Axes, rows: Sequence[dict], paper: dict | None = None) -> None:
    """Real-game and in-dream scores (mean ± std) of controllers trained at each tau, random
    play as a band; ``paper`` ``{tau: real score}`` drawn as crosses if given."""
    taus = [r["tau"] for r in rows]
    for key, label, color in (("real", "real game", "tab:blue"),
                              ("dream", "in its own dream", "tab:orange")):  # fmt: skip
        ax.errorbar(taus, [r[f"{key}_mean"] for r in rows], yerr=[r[f"{key}_std"] for r in rows],
                    fmt="o-", capsize=4, color=color, label=label)  # fmt: skip
    random = np.mean([r["random_mean"] for r in rows])
    ax.axhline(random, color="gray", ls="--", label=f"random play ({random:.0f})")
    if paper:
        ax.plot(list(paper), list(paper.values()), "kx", ms=8, label="paper, real game")
    ax.set(xlabel="temperature tau of the dream C was trained in", ylabel="steps survived")
    ax.legend(fontsize=8)


def dream_vs_real_gif(spec: dict, params: np.ndarray, tau: float, path: str | os.PathLike,
                      seed: int = 0, max_steps: int = 600) -> Path:  # fmt: skip
    """A GIF of the agent with ``params`` in its dream at ``tau`` (the frames V decodes from
    M's z) beside the same agent in the real game, each up to ``max_steps`` steps; a score
    marked "+" is an episode the clip cut short. Pass the controller's own ``max_steps``
    when it is shorter, so the clip's scores are the evaluation's (tiny: 20 steps)."""

    device = spec.get("device")
    vae, mdnrnn = load_vae(spec["vae"], device=device), load_mdnrnn(spec["mdnrnn"], device=device)
    mu, _ = initial_latents(spec["latents"])
    env = DreamEnv(mdnrnn, spec["game"], mu, tau=tau, vae=vae, max_steps=max_steps)
    dreamed = dream_episode(env, params, spec["inputs"], seed=seed)
    real = record_episode(spec, np.asarray(params), seed, max_steps)

    def score(episode: dict) -> str:  # "600+": the clip ended before the episode did
        cut = len(episode["frames"]) >= max_steps
        return f"{episode['return']:.0f}{'+ (clip ends)' if cut else ''}"

    video = tile_videos(
        [label_frames(dreamed["frames"][::2], f"dream, tau {tau:g}: {score(dreamed)}", 3),
         label_frames(real["frames"][::2], f"real game: {score(real)}", 3)],
        scale=1,
    )  # fmt: skip
    return save_gif(video, path, fps=17)


def dreams_gif(entries: Sequence[tuple[str, dict]], params: np.ndarray, tau: float,
               path: str | os.PathLike, seed: int = 0,
               max_steps: int = 600) -> tuple[Path, list[dict]]:  # fmt: skip
    """One controller ``params``, the same start and the same noise, in the dreams of
    several Ms side by side (``entries``: ``(label, spec)`` pairs, e.g. round 0's M and a
    later round's): a dream the controller learnt to cheat beside one that no longer lets
    it. Returns the GIF and each dream's ``dream_episode`` (``return``, ``done_prob``...)."""
    episodes, videos = [], []
    for label, spec in entries:
        device = spec.get("device")
        vae = load_vae(spec["vae"], device=device)
        mdnrnn = load_mdnrnn(spec["mdnrnn"], device=device)
        mu, _ = initial_latents(spec["latents"])
        env = DreamEnv(mdnrnn, spec["game"], mu, tau=tau, vae=vae, max_steps=max_steps)
        episode = dream_episode(env, params, spec["inputs"], seed=seed)
        cut = len(episode["frames"]) >= max_steps
        text = f"{label}: {episode['return']:.0f}{'+ (clip ends)' if cut else ''}"
        videos.append(label_frames(episode["frames"][::2], text, 3))
        episodes.append(episode)
    return save_gif(tile_videos(videos, scale=1), path, fps=17), episodes


# ---------------------------------------------------------------------------------------
# Notebook 08: beyond the paper

LEARNER_STYLE = {"cmaes": "-", "ppo": "--"}
WORLD_MODEL_COLOR = {"separate": "tab:blue", "joint": "tab:orange"}


def plot_learning_curves(axes: Sequence[plt.Axes], curves: dict[tuple[str, str], list[dict]],
                         title: str = "", smooth: int = 20) -> None:  # fmt: skip
    """Each learner's dream return against dream steps (``axes[0]``) and against seconds of
    training (``axes[1]``): ``curves`` keyed ``(world_model, learner)``, rows with
    ``dream_steps``, ``seconds`` and ``mean`` (None where no dream ended); PPO's rows (with
    ``episodes``) averaged over the last ``smooth``."""
    for (wm, learner), log in curves.items():
        rows = [r for r in log if r.get("mean") is not None]
        # PPO's rows are rollouts in which few dreams end: average over the last `smooth`
        # rollouts, each weighted by its dreams (CMA-ES's rows are whole generations).
        weights = np.array([r.get("episodes", 1) for r in rows], dtype=float)
        means = np.array([r["mean"] for r in rows], dtype=float)
        k = smooth if any("episodes" in r for r in rows) else 1
        kernel = np.ones(k)
        mean = np.convolve(means * weights, kernel)[: len(rows)] / np.maximum(
            np.convolve(weights, kernel)[: len(rows)], 1e-9
        )
        style = {"ls": LEARNER_STYLE.get(learner, "-"), "color": WORLD_MODEL_COLOR.get(wm),
                 "label": f"{learner}, {wm} world model"}  # fmt: skip
        axes[0].plot([r["dream_steps"] for r in rows], mean, **style)
        axes[1].plot([r["seconds"] for r in rows], mean, **style)
    axes[0].xaxis.set_major_formatter(EngFormatter())
    axes[0].set(xlabel="dream steps", ylabel="mean return in the dream (steps survived)",
                title=title)  # fmt: skip
    axes[1].set(xlabel="seconds of training", title=title)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
