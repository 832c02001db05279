"""The two toy problems of notebooks 01 and 02, and the training loop of the first.

* The **inverse problem** (Bishop 1994): ``x = y + 0.3 sin(2 pi y) + noise`` is a
  function of y, but predicting y *from x* is one-to-many: for x near 0.5 there are
  three right answers. A network trained with mean squared error predicts their average
  (often none of them); a mixture density network predicts all three.
* **Test functions** for CMA-ES, each with minimum f* = 0: sphere, ellipsoid,
  Rosenbrock, and a shifted Schaffer function for the 2-D animation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from wmtutor.mdn import MDNHead, mdn_nll, mdn_sample

# ---------------------------------------------------------------------------------------
# Notebook 01: the inverse problem


def inverse_problem(
    n_samples: int, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the inverse problem: y ~ U(0, 1), x = y + 0.3 sin(2 pi y) + U(-noise, noise).

    Returns ``(x, y)``, each ``(n_samples, 1)`` float32: the task is to predict y from x.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n_samples, 1, generator=g)
    eps = (torch.rand(n_samples, 1, generator=g) * 2 - 1) * noise
    x = y + 0.3 * torch.sin(2 * torch.pi * y) + eps
    return x, y


class MSENet(nn.Module):
    """An MLP ``x -> y`` trained by mean squared error: ``(B, 1) -> (B, 1)``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self(x) - y).square().mean()


class MDNNet(nn.Module):
    """The same MLP body with an MDN head: ``(B, 1) -> (logit_pi, mu, log_sigma)``, each
    ``(B, K, 1)``. Trained by the mixture's negative log-likelihood."""

    def __init__(self, hidden: int, n_gaussians: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, hidden), nn.Tanh())
        self.head = MDNHead(hidden, out_dim=1, n_gaussians=n_gaussians)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mdn_nll(*self(x), y)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, tau: float = 1.0, seed: int = 0) -> torch.Tensor:
        """One sample of y per x, at temperature ``tau``: ``(B, 1) -> (B, 1)``."""
        return mdn_sample(*self(x), tau=tau, generator=torch.Generator().manual_seed(seed))


def fit(
    model: MSENet | MDNNet,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    progress: bool = True,
) -> list[float]:
    """Full-batch Adam on ``model.loss(x, y)`` for ``steps`` steps; returns the loss curve.

    Runs on one torch thread: these nets are so small that a second thread only waits,
    and on a busy 2-core machine it made a step about 40x slower
    (``python benchmarks/toys.py``).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    bar = tqdm(range(steps), desc=type(model).__name__, disable=not progress, leave=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in bar:
            loss = model.loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) % 100 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    finally:
        torch.set_num_threads(threads)
    return losses


# ---------------------------------------------------------------------------------------
# Notebook 02: test functions for CMA-ES (vectorised: x is (n,) or (..., n))

# Every function below has its minimum, f = 0, at x = 1 (Rosenbrock's is there anyway), so
# a search started at x0 = 0 has to travel; none is solved by standing still.
OPTIMUM = 1.0


def sphere(x: np.ndarray) -> np.ndarray:
    """sum_i (x_i - 1)^2: the easiest case, round contours."""
    return np.sum((np.asarray(x) - OPTIMUM) ** 2, axis=-1)


def ellipsoid(x: np.ndarray) -> np.ndarray:
    """sum_i 10^(6 (i-1)/(n-1)) (x_i - 1)^2: condition number 10^6, so the covariance
    matrix has to learn the axes' scales."""
    x = np.asarray(x) - OPTIMUM
    n = x.shape[-1]
    scales = 10 ** (6 * np.arange(n) / max(n - 1, 1))
    return np.sum(scales * x**2, axis=-1)


def rosenbrock(x: np.ndarray) -> np.ndarray:
    """sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2: a bent valley; C must keep turning."""
    x = np.asarray(x)
    return np.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, axis=-1)


SCHAFFER_OPTIMUM = np.array([10.0, 10.0])
# Where the 2-D animation starts: far from the optimum, with a step size that lets the
# population see past the nearest ring of local minima (sigma0 = 2 gets trapped often).
SCHAFFER_X0, SCHAFFER_SIGMA0 = np.array([0.0, 0.0]), 4.0


def schaffer(x: np.ndarray) -> np.ndarray:
    """Schaffer's F7 shifted to (10, 10): rings of local minima around the optimum.

    f(x) = s^0.25 (1 + sin^2(50 s^0.1)), with s = ||x - (10, 10)||^2; f* = 0 at (10, 10).
    """
    s = np.sum((np.asarray(x) - SCHAFFER_OPTIMUM) ** 2, axis=-1)
    return s**0.25 * (1 + np.sin(50 * s**0.1) ** 2)


FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sphere": sphere,
    "ellipsoid": ellipsoid,
    "rosenbrock": rosenbrock,
}
