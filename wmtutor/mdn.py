"""Mixture density networks: the head, its negative log-likelihood, and sampling with tau.

A mixture density network (Bishop 1994) predicts a *distribution* instead of a single
value: for each output dimension d, a mixture of K Gaussians

    p(y_d | x) = sum_k pi_kd(x) * N(y_d; mu_kd(x), sigma_kd(x)^2).

World Models uses one such mixture per latent dimension (K = 5, diagonal) on top of an
LSTM; notebook 01 uses it on a toy problem. Both use the code below, so there is one
copy of the mixture math in the course.

Shapes: the mixture is over the last-but-one axis, dimensions over the last one.

* ``logit_pi``, ``mu``, ``log_sigma``: ``(..., K, D)``
* ``y`` and samples: ``(..., D)``

``...`` is any batch shape: ``(B,)`` for the toy, ``(B, T)`` for the MDN-RNN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Standard deviations are floored at exp(LOG_SIGMA_MIN) inside the likelihood and the
# sampler. Without a floor a collapsing component (sigma -> 0 on one training point)
# overflows (y - mu) / sigma in float32 and the loss becomes inf, then nan.
LOG_SIGMA_MIN = -10.0
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class MDNHead(nn.Module):
    """A linear layer whose outputs are read as the parameters of a Gaussian mixture.

    Args:
        in_features: size of the features fed in (the MLP's or the LSTM's hidden size).
        out_dim: D, the number of output dimensions (1 for the toy, z_dim for the MDN-RNN).
        n_gaussians: K, mixture components per output dimension.

    ``forward(features)`` maps ``(..., in_features)`` to ``(logit_pi, mu, log_sigma)``,
    each ``(..., K, D)``.
    """

    def __init__(self, in_features: int, out_dim: int, n_gaussians: int = 5) -> None:
        super().__init__()
        if min(in_features, out_dim, n_gaussians) < 1:
            raise ValueError(
                f"MDNHead needs positive sizes, got in_features={in_features}, "
                f"out_dim={out_dim}, n_gaussians={n_gaussians}"
            )
        self.out_dim = out_dim
        self.n_gaussians = n_gaussians
        self.linear = nn.Linear(in_features, 3 * n_gaussians * out_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.linear(features).unflatten(-1, (3, self.n_gaussians, self.out_dim))
        logit_pi, mu, log_sigma = out.unbind(-3)
        return logit_pi, mu, log_sigma


def mdn_log_prob(
    logit_pi: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """log p(y) under the mixture, per output dimension: shape ``(..., D)``.

    Computed as ``logsumexp_k(log pi_k + log N(y; mu_k, sigma_k))`` with
    ``log pi = log_softmax(logit_pi)``: no probability is ever exponentiated, so a
    component far from ``y`` contributes ``-big`` rather than underflowing to 0 and
    giving ``log 0``.
    """
    if y.shape != mu.shape[:-2] + mu.shape[-1:]:
        raise ValueError(
            f"y has shape {tuple(y.shape)}, expected {tuple(mu.shape[:-2] + mu.shape[-1:])} "
            f"to match mu {tuple(mu.shape)} = (..., K, D)"
        )
    log_sigma = log_sigma.clamp(min=LOG_SIGMA_MIN)
    log_pi = torch.log_softmax(logit_pi, dim=-2)
    scaled = (y.unsqueeze(-2) - mu) * torch.exp(-log_sigma)
    log_normal = -0.5 * scaled.square() - log_sigma - _LOG_SQRT_2PI
    return torch.logsumexp(log_pi + log_normal, dim=-2)


def mdn_nll(
    logit_pi: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    y: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under a per-dimension Gaussian mixture.

    Args:
        logit_pi: ``(..., K, D)`` unnormalised mixture weights (softmax over K).
        mu: ``(..., K, D)`` component means.
        log_sigma: ``(..., K, D)`` log standard deviations (floored at ``LOG_SIGMA_MIN``).
        y: ``(..., D)`` targets.
        reduction: ``"mean"`` (over every batch element and dimension, the usual
            training loss), ``"sum"``, or ``"none"`` (returns ``(..., D)``).

    Stays finite for tiny or huge sigma, far-away targets and extreme logits.
    """
    nll = -mdn_log_prob(logit_pi, mu, log_sigma, y)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    if reduction == "none":
        return nll
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mdn_sample(
    logit_pi: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    tau: float = 1.0,
    generator: torch.Generator | None = None,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Draw one sample per batch element and dimension, with temperature ``tau``.

    As in World Models: the mixture logits are divided by ``tau`` and each Gaussian's
    standard deviation is multiplied by ``sqrt(tau)``. ``tau = 1`` samples the model's
    own distribution; ``tau < 1`` concentrates on the likeliest component and its mean;
    ``tau > 1`` is wilder. ``tau = 0`` is the deterministic limit: the mean of the
    heaviest component.

    Shapes: parameters ``(..., K, D)`` -> sample ``(..., D)``.

    ``noise = (u, eps)``, both ``(..., D)``, fixes the randomness instead of ``generator``:
    ``u`` uniform in [0, 1) picks the component (inverse CDF of the weights), ``eps``
    standard normal is the Gaussian noise. The same noise gives the same sample whether
    the batch is evaluated all at once or row by row (the dream's equivalence test).
    """
    if not tau >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    with torch.no_grad():
        if tau == 0:
            k = logit_pi.argmax(dim=-2, keepdim=True)
            return mu.gather(-2, k).squeeze(-2)
        probs = torch.softmax(logit_pi.float() / tau, dim=-2)
        if noise is not None:
            u, eps = noise
            cdf = probs.cumsum(dim=-2)
            k = (cdf < u.unsqueeze(-2)).sum(dim=-2, keepdim=True).clamp(max=probs.shape[-2] - 1)
        else:
            flat = probs.movedim(-2, -1).reshape(-1, probs.shape[-2])
            k = torch.multinomial(flat, 1, generator=generator)
            k = k.reshape(probs.shape[:-2] + probs.shape[-1:]).unsqueeze(-2)
        mu_k = mu.gather(-2, k).squeeze(-2)
        sigma_k = log_sigma.clamp(min=LOG_SIGMA_MIN).gather(-2, k).squeeze(-2).exp()
        if noise is None:
            eps = torch.randn(mu_k.shape, generator=generator, device=mu_k.device, dtype=mu_k.dtype)
        return mu_k + sigma_k * math.sqrt(tau) * eps
