"""The mixture density head, its NLL and its sampler (wmtutor/mdn.py)."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from wmtutor.mdn import MDNHead, mdn_log_prob, mdn_nll, mdn_sample


def reference_nll(logit_pi, mu, log_sigma, y):
    """The same per-dimension mixture NLL with torch.distributions: (..., K, D) -> (..., D)."""
    mix = MixtureSameFamily(
        Categorical(logits=logit_pi.movedim(-2, -1)),
        Normal(mu.movedim(-2, -1), log_sigma.exp().movedim(-2, -1)),
    )
    return -mix.log_prob(y)


@pytest.mark.parametrize("batch, k, d", [((64,), 5, 1), ((4, 9), 5, 32), ((3,), 1, 2), ((), 7, 3)])
def test_nll_matches_torch_distributions(batch, k, d):
    g = torch.Generator().manual_seed(0)
    logit_pi = torch.randn(*batch, k, d, generator=g) * 2
    mu = torch.randn(*batch, k, d, generator=g)
    log_sigma = torch.randn(*batch, k, d, generator=g) * 0.5 - 0.5
    y = torch.randn(*batch, d, generator=g)
    ours = mdn_nll(logit_pi, mu, log_sigma, y, reduction="none")
    ref = reference_nll(logit_pi, mu, log_sigma, y)
    assert ours.shape == (*batch, d)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mdn_nll(logit_pi, mu, log_sigma, y), ref.mean())
    torch.testing.assert_close(mdn_nll(logit_pi, mu, log_sigma, y, reduction="sum"), ref.sum())


def test_extreme_inputs_stay_finite_with_finite_gradients():
    logit_pi = torch.tensor([[[1e4], [-1e4], [0.0]]], requires_grad=True)  # (1, 3, 1)
    mu = torch.tensor([[[1e3], [-1e3], [0.0]]], requires_grad=True)
    log_sigma = torch.tensor([[[-1e4], [60.0], [-80.0]]], requires_grad=True)
    y = torch.tensor([[5e3]])
    loss = mdn_nll(logit_pi, mu, log_sigma, y)
    loss.backward()
    assert torch.isfinite(loss)
    for p in (logit_pi, mu, log_sigma):
        assert torch.isfinite(p.grad).all()


def test_tiny_sigma_on_target_is_a_large_finite_likelihood():
    mu = torch.zeros(1, 1, 1)
    nll = mdn_nll(torch.zeros(1, 1, 1), mu, torch.full((1, 1, 1), -1e3), torch.zeros(1, 1))
    assert torch.isfinite(nll) and nll < -5  # density far above 1, but not inf


def test_log_prob_rejects_mismatched_target():
    p = torch.zeros(4, 5, 3)
    with pytest.raises(ValueError, match=r"y has shape \(4, 2\), expected \(4, 3\)"):
        mdn_log_prob(p, p, p, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="reduction"):
        mdn_nll(p, p, p, torch.zeros(4, 3), reduction="max")


def mixture_1d(n):
    """A fixed 3-component mixture repeated n times: parameters (n, 3, 1)."""
    logit_pi = torch.log(torch.tensor([0.2, 0.5, 0.3])).view(1, 3, 1).expand(n, 3, 1)
    mu = torch.tensor([-2.0, 0.0, 3.0]).view(1, 3, 1).expand(n, 3, 1)
    log_sigma = torch.log(torch.tensor([0.3, 0.5, 1.0])).view(1, 3, 1).expand(n, 3, 1)
    return logit_pi, mu, log_sigma


def test_samples_match_the_mixture_at_tau_1():
    n = 200_000
    logit_pi, mu, log_sigma = mixture_1d(n)
    s = mdn_sample(logit_pi, mu, log_sigma, tau=1.0, generator=torch.Generator().manual_seed(1))
    assert s.shape == (n, 1)
    pi = torch.tensor([0.2, 0.5, 0.3])
    m, sd = torch.tensor([-2.0, 0.0, 3.0]), torch.tensor([0.3, 0.5, 1.0])
    mean = (pi * m).sum()
    var = (pi * (sd**2 + m**2)).sum() - mean**2
    assert abs(s.mean() - mean) < 0.02
    assert abs(s.var() - var) / var < 0.02
    # Component frequencies: samples above 1.5 come (almost) only from the third
    # component, weight 0.3, which puts P(N(3, 1) > 1.5) of its mass there.
    expected = 0.3 * (1 - Normal(3.0, 1.0).cdf(torch.tensor(1.5)))
    assert abs((s > 1.5).float().mean() - expected) < 0.01


def test_low_tau_concentrates_on_heaviest_component():
    logit_pi, mu, log_sigma = mixture_1d(50_000)
    g = torch.Generator().manual_seed(2)
    spread = [mdn_sample(logit_pi, mu, log_sigma, tau, g).std().item() for tau in (1.0, 0.5, 0.1)]
    assert spread[0] > spread[1] > spread[2]
    cold = mdn_sample(logit_pi, mu, log_sigma, tau=0.01, generator=g)
    assert abs(cold.mean()) < 0.01 and cold.std() < 0.5 * math.sqrt(0.01) * 1.1
    exact = mdn_sample(logit_pi, mu, log_sigma, tau=0.0)
    assert torch.equal(exact, torch.zeros_like(exact))  # the mean of the heaviest component


def test_sampling_is_reproducible_and_rejects_negative_tau():
    logit_pi, mu, log_sigma = mixture_1d(10)
    a = mdn_sample(logit_pi, mu, log_sigma, 1.0, torch.Generator().manual_seed(3))
    b = mdn_sample(logit_pi, mu, log_sigma, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="tau"):
        mdn_sample(logit_pi, mu, log_sigma, tau=-0.5)


def test_head_shapes_for_any_batch_shape():
    head = MDNHead(in_features=16, out_dim=32, n_gaussians=5)
    for batch in [(8,), (4, 10), ()]:
        logit_pi, mu, log_sigma = head(torch.randn(*batch, 16))
        assert logit_pi.shape == mu.shape == log_sigma.shape == (*batch, 5, 32)
    with pytest.raises(ValueError, match="positive sizes"):
        MDNHead(16, 0, 5)
