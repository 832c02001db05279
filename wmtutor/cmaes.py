"""CMA-ES from scratch, in NumPy: the optimizer that trains World Models' controller.

The (mu/mu_w, lambda)-CMA-ES of Hansen's tutorial ("The CMA Evolution Strategy: A
Tutorial", arXiv 1604.00772, 2016; equation numbers below refer to it). Each
generation:

1. **sample** lambda candidates  x_i = m + sigma * y_i,  y_i ~ N(0, C);
2. **rank** them by fitness (we minimise, like pycma);
3. **recombine**: move the mean to a weighted average of the best mu steps;
4. **step size** (cumulative step-size adaptation): a long, consistent path of mean
   moves means the steps are too small, so sigma grows; a zig-zagging path shrinks it;
5. **covariance**: the *rank-one* update learns the direction the mean keeps moving
   in (the evolution path p_c); the *rank-mu* update learns the spread of this
   generation's good steps. The worst candidates get small negative weights
   ("active" CMA, the tutorial's default), which unlearns bad directions.

``CMAES`` is the class; ``PyCMA`` wraps the reference implementation (``cma`` on PyPI)
behind the same interface, and ``make_es`` picks one by name. ``minimize`` runs either
on a function until a target, which notebook 02 and the benchmark use to compare them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class CMAES:
    """(mu/mu_w, lambda)-CMA-ES with weighted recombination, CSA, rank-one and rank-mu updates.

    Args:
        x0: starting mean, shape ``(n,)`` with n >= 1 (a scalar is read as n = 1).
        sigma0: initial step size (> 0): about a quarter of the width where the optimum is.
        popsize: lambda, candidates per generation; default ``4 + floor(3 ln n)``.
        seed: seed of the sampler, for repeatable runs.

    Use::

        es = CMAES(np.zeros(10), 0.5, seed=0)
        while es.best_f > 1e-8:
            X = es.ask()                       # (popsize, n)
            es.tell(X, [f(x) for x in X])      # minimises

    Attributes: ``mean`` ``(n,)``, ``sigma`` (float), ``C`` ``(n, n)``, ``generation``,
    ``evaluations``, ``best_x``, ``best_f`` (best ever told), ``weights`` ``(popsize,)``.
    """

    def __init__(
        self,
        x0: np.ndarray | list[float],
        sigma0: float,
        popsize: int | None = None,
        seed: int | None = None,
    ) -> None:
        x0 = np.atleast_1d(np.asarray(x0, dtype=float))
        if x0.ndim != 1 or x0.size == 0 or not np.all(np.isfinite(x0)):
            raise ValueError(f"x0 must be a finite 1-D vector, got shape {x0.shape}")
        if not (np.isfinite(sigma0) and sigma0 > 0):
            raise ValueError(f"sigma0 must be a positive number, got {sigma0!r}")
        n = x0.size
        lam = 4 + int(3 * math.log(n)) if popsize is None else int(popsize)
        if lam < 2:
            raise ValueError(f"popsize must be at least 2, got {popsize!r}")
        self.n, self.popsize = n, lam
        self.rng = np.random.default_rng(seed)

        # --- Strategy parameters (tutorial, Table 1) -----------------------------------
        mu = lam // 2
        w = math.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))  # (49): decreasing
        pos, neg = w[:mu], w[mu:]
        self.mu = mu
        self.mu_eff = pos.sum() ** 2 / (pos**2).sum()  # variance-effective selection mass
        mu_eff_neg = neg.sum() ** 2 / (neg**2).sum() if neg.size else 0.0

        self.c_sigma = (self.mu_eff + 2) / (n + self.mu_eff + 5)  # (55)
        self.d_sigma = 1 + 2 * max(0.0, math.sqrt((self.mu_eff - 1) / (n + 1)) - 1) + self.c_sigma
        self.c_c = (4 + self.mu_eff / n) / (n + 4 + 2 * self.mu_eff / n)  # (56)
        self.c_1 = 2 / ((n + 1.3) ** 2 + self.mu_eff)  # (57)
        self.c_mu = min(  # (58)
            1 - self.c_1,
            2 * (self.mu_eff - 2 + 1 / self.mu_eff) / ((n + 2) ** 2 + self.mu_eff),
        )
        # Negative weights for the worst half, scaled so C stays positive definite (53).
        alpha_mu = 1 + self.c_1 / self.c_mu
        alpha_mu_eff = 1 + 2 * mu_eff_neg / (self.mu_eff + 2)
        alpha_posdef = (1 - self.c_1 - self.c_mu) / (n * self.c_mu)
        self.weights = np.concatenate(
            [
                pos / pos.sum(),
                neg * min(alpha_mu, alpha_mu_eff, alpha_posdef) / np.abs(neg).sum(),
            ]
        )
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))  # E||N(0, I)||

        # --- State ------------------------------------------------------------------
        self.mean = x0.copy()
        self.sigma = float(sigma0)
        self.C = np.eye(n)
        self.p_sigma = np.zeros(n)  # evolution path for sigma (conjugate, isotropic)
        self.p_c = np.zeros(n)  # evolution path for C
        self.B = np.eye(n)  # C = B diag(D^2) B^T, refreshed lazily
        self.D = np.ones(n)
        self._eigen_generation = 0
        self.generation = 0
        self.evaluations = 0
        self.best_x = x0.copy()
        self.best_f = math.inf

    # ----------------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """Sample ``popsize`` candidates ``m + sigma * B D z``: an array ``(popsize, n)``."""
        self._update_eigen()
        z = self.rng.standard_normal((self.popsize, self.n))
        y = (z * self.D) @ self.B.T  # y ~ N(0, C)
        return self.mean + self.sigma * y

    def tell(self, solutions: np.ndarray, fitnesses: np.ndarray | list[float]) -> None:
        """Update the distribution from candidates and their fitnesses (lower is better).

        Args:
            solutions: ``(popsize, n)``, usually what ``ask`` returned (any order).
            fitnesses: ``(popsize,)`` finite numbers.
        """
        X = np.asarray(solutions, dtype=float)
        f = np.asarray(fitnesses, dtype=float).reshape(-1)
        if X.shape != (self.popsize, self.n):
            raise ValueError(f"solutions must have shape {(self.popsize, self.n)}, got {X.shape}")
        if f.shape != (self.popsize,):
            raise ValueError(f"fitnesses must have shape ({self.popsize},), got {f.shape}")
        if not np.all(np.isfinite(f)):
            raise ValueError(f"fitnesses must be finite, got {f[~np.isfinite(f)][:3]}...")
        n, w = self.n, self.weights
        self.generation += 1
        self.evaluations += self.popsize

        # 2. Rank: best (lowest) first.
        order = np.argsort(f, kind="stable")
        if f[order[0]] < self.best_f:
            self.best_f, self.best_x = float(f[order[0]]), X[order[0]].copy()
        y = (X[order] - self.mean) / self.sigma  # (popsize, n) steps, y_i ~ N(0, C)

        # 3. Recombination (41-42): the mean moves by the weighted best mu steps.
        y_w = w[: self.mu] @ y[: self.mu]
        self.mean = self.mean + self.sigma * y_w  # learning rate c_m = 1

        # 4. Cumulative step-size adaptation (43-44). C^{-1/2} makes the path's length
        #    comparable with that of a random walk, E||N(0, I)|| = chi_n.
        C_inv_sqrt = (self.B / self.D) @ self.B.T
        cs = self.c_sigma
        self.p_sigma = (1 - cs) * self.p_sigma + math.sqrt(cs * (2 - cs) * self.mu_eff) * (
            C_inv_sqrt @ y_w
        )
        ps_norm = np.linalg.norm(self.p_sigma)

        # 5. Covariance adaptation (45-47). h_sigma stalls the rank-one update while the
        #    step-size path is too long (sigma is about to grow anyway).
        cc = self.c_c
        threshold = (1.4 + 2 / (n + 1)) * self.chi_n
        h_sigma = ps_norm / math.sqrt(1 - (1 - cs) ** (2 * self.generation)) < threshold
        self.p_c = (1 - cc) * self.p_c + h_sigma * math.sqrt(cc * (2 - cc) * self.mu_eff) * y_w
        # Negative weights act on steps rescaled to the length of a typical step (46),
        # measured in the metric of the *current* C: with the lazily refreshed B, D the
        # bound that keeps C positive definite fails when popsize >> n.
        w_circ = w.copy()
        bad = w < 0
        mahalanobis_sq = np.sum(y[bad].T * np.linalg.solve(self.C, y[bad].T), axis=0)
        w_circ[bad] *= n / np.maximum(mahalanobis_sq, 1e-30)
        delta_h = (1 - h_sigma) * cc * (2 - cc)
        rank_one = np.outer(self.p_c, self.p_c)
        rank_mu = (y * w_circ[:, None]).T @ y
        self.C = (
            (1 + self.c_1 * delta_h - self.c_1 - self.c_mu * w.sum()) * self.C
            + self.c_1 * rank_one
            + self.c_mu * rank_mu
        )
        self.C = (self.C + self.C.T) / 2

        # Step size last: it uses p_sigma only (44). Not in the tutorial: the change is
        # capped at a factor e per generation, as pycma does, so that one freak
        # generation cannot blow sigma up.
        self.sigma *= math.exp(min(1.0, (cs / self.d_sigma) * (ps_norm / self.chi_n - 1)))

    # ----------------------------------------------------------------------------------
    def _update_eigen(self) -> None:
        """Refresh B, D from C (O(n^3)) once every ~lambda / (10 n (c_1 + c_mu)) generations:
        C changes little per generation, so sampling from a slightly old B, D is fine."""
        lag = self.generation - self._eigen_generation
        if self.generation == 0 or lag > self.popsize / (self.c_1 + self.c_mu) / self.n / 10:
            eigvals, self.B = np.linalg.eigh(self.C)
            self.D = np.sqrt(np.maximum(eigvals, 1e-20 * eigvals.max()))
            self._eigen_generation = self.generation

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume exactly, as plain arrays (for ``np.savez``, no pickle)."""
        return {
            "mean": self.mean,
            "sigma": np.float64(self.sigma),
            "C": self.C,
            "p_sigma": self.p_sigma,
            "p_c": self.p_c,
            "B": self.B,
            "D": self.D,
            "eigen_generation": np.int64(self._eigen_generation),
            "generation": np.int64(self.generation),
            "evaluations": np.int64(self.evaluations),
            "best_x": self.best_x,
            "best_f": np.float64(self.best_f),
            "popsize": np.int64(self.popsize),
            "rng_state": np.array(json.dumps(self.rng.bit_generator.state)),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` saved; the dimension and popsize must match."""
        if int(state["popsize"]) != self.popsize or np.shape(state["mean"]) != (self.n,):
            raise ValueError(
                f"saved CMA-ES state is for n={np.shape(state['mean'])[0]}, "
                f"popsize={int(state['popsize'])}; this one has n={self.n}, popsize={self.popsize}"
            )
        for name in ("mean", "C", "p_sigma", "p_c", "B", "D", "best_x"):
            setattr(self, name, np.array(state[name], dtype=float))
        self.sigma, self.best_f = float(state["sigma"]), float(state["best_f"])
        self._eigen_generation = int(state["eigen_generation"])
        self.generation, self.evaluations = int(state["generation"]), int(state["evaluations"])
        self.rng.bit_generator.state = json.loads(str(state["rng_state"]))


class PyCMA:
    """pycma's ``CMAEvolutionStrategy`` behind the ``CMAES`` interface (ask/tell/mean/sigma/C).

    pycma is the reference implementation (by the algorithm's author); having both behind
    one interface lets every caller switch with one option and lets us check our own
    against it. pycma gets ``seed + 1`` because it reads 0 as "seed from the clock".
    """

    def __init__(
        self,
        x0: np.ndarray | list[float],
        sigma0: float,
        popsize: int | None = None,
        seed: int | None = None,
    ) -> None:
        import cma  # only for the pycma backend: our CMA-ES needs nothing but NumPy

        x0 = np.atleast_1d(np.asarray(x0, dtype=float))
        opts: dict = {"verbose": -9, "seed": None if seed is None else int(seed) + 1}
        if popsize is not None:
            opts["popsize"] = int(popsize)
        # pycma treats n = 1 specially (it refuses it); the course only uses n >= 2 with it.
        self._es = cma.CMAEvolutionStrategy(x0, float(sigma0), opts)
        self.n, self.popsize = x0.size, self._es.popsize
        self.best_x, self.best_f = x0.copy(), math.inf

    def ask(self) -> np.ndarray:
        return np.asarray(self._es.ask())

    def tell(self, solutions: np.ndarray, fitnesses: np.ndarray | list[float]) -> None:
        f = np.asarray(fitnesses, dtype=float).reshape(-1)
        i = int(np.argmin(f))
        if f[i] < self.best_f:
            self.best_f, self.best_x = float(f[i]), np.asarray(solutions[i], float).copy()
        self._es.tell(list(np.asarray(solutions)), f.tolist())

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self._es.mean)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    @property
    def C(self) -> np.ndarray:
        return np.asarray(self._es.C)

    @property
    def generation(self) -> int:
        return int(self._es.countiter)

    @property
    def evaluations(self) -> int:
        return int(self._es.countevals)


BACKENDS = {"wmtutor": CMAES, "pycma": PyCMA}


def make_es(
    backend: str, x0: np.ndarray, sigma0: float, popsize: int | None = None, seed: int | None = None
) -> CMAES | PyCMA:
    """Build an optimizer by name: ``"wmtutor"`` (ours, ``CMAES``) or ``"pycma"``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown CMA-ES backend {backend!r}: expected one of {sorted(BACKENDS)}")
    return BACKENDS[backend](x0, sigma0, popsize=popsize, seed=seed)


@dataclass
class MinimizeResult:
    """What ``minimize`` returns: the evaluations used, whether the target was reached,
    and per-generation snapshots (mean, sigma, C, population) for plots and GIFs."""

    evaluations: int
    reached: bool
    best_f: float
    best_x: np.ndarray
    seconds: float
    history: list[dict] = field(default_factory=list)


def minimize(
    es: CMAES | PyCMA,
    f: Callable[[np.ndarray], float],
    target: float = 1e-8,
    max_evals: int = 100_000,
    max_generations: int | None = None,
    record: bool = False,
) -> MinimizeResult:
    """Run ``es`` on ``f`` until ``best f < target``, ``max_evals`` or ``max_generations``.

    With ``record=True`` each generation's population, fitnesses, and the distribution
    they were sampled from (mean, sigma, C before the update) are kept in ``history``.
    """
    start = time.perf_counter()
    history: list[dict] = []
    while es.best_f >= target and es.evaluations < max_evals:
        if max_generations is not None and es.generation >= max_generations:
            break
        if record:  # the distribution this generation is sampled from
            snapshot = {"mean": es.mean.copy(), "sigma": es.sigma, "C": es.C.copy()}
        X = es.ask()
        fx = np.array([f(x) for x in X])
        if record:
            history.append({"X": X, "f": fx, **snapshot})
        es.tell(X, fx)
    return MinimizeResult(
        evaluations=es.evaluations,
        reached=es.best_f < target,
        best_f=es.best_f,
        best_x=np.asarray(es.best_x),
        seconds=time.perf_counter() - start,
        history=history,
    )


def evals_to_target(
    functions: dict[str, Callable[[np.ndarray], float]],
    dim: int,
    n_seeds: int,
    target: float = 1e-8,
    max_evals: int = 100_000,
    backends: tuple[str, ...] = ("wmtutor", "pycma"),
    x0: float = 0.0,
    sigma0: float = 0.5,
) -> list[dict]:
    """Median function evaluations to reach ``f < target``, per function and backend.

    Every run starts at ``x0 * ones(dim)`` with step ``sigma0`` and the default population
    size; seeds ``0 .. n_seeds-1``. A run that misses the target within ``max_evals``
    counts as ``max_evals`` (so the median punishes failures) and is counted in
    ``reached``. Returns one row per (function, backend): ``{"function", "backend",
    "median_evals", "reached", "runs", "seconds"}``.
    """
    rows = []
    for name, f in functions.items():
        for backend in backends:
            evals, reached, seconds = [], 0, 0.0
            for seed in range(n_seeds):
                es = make_es(backend, np.full(dim, float(x0)), sigma0, seed=seed)
                r = minimize(es, f, target=target, max_evals=max_evals)
                evals.append(r.evaluations if r.reached else max_evals)
                reached += r.reached
                seconds += r.seconds
            rows.append(
                {
                    "function": name,
                    "backend": backend,
                    "median_evals": float(np.median(evals)),
                    "reached": reached,
                    "runs": n_seeds,
                    "seconds": seconds,
                }
            )
    return rows
