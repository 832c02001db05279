"""Fixtures shared by several test files."""

import pytest
import torch

from wmtutor.mdnrnn import MDNRNN


@pytest.fixture(scope="module")
def mdnrnn() -> MDNRNN:
    """A small untrained M (z 6, 3 actions, hidden 12) whose done head fires now and then,
    so that dreams end: what the dream's and PPO's tests play in."""
    torch.manual_seed(0)
    model = MDNRNN(z_dim=6, action_dim=3, hidden=12).eval()
    with torch.no_grad():
        model.done_head.weight.mul_(20.0)
        model.done_head.bias.fill_(-1.0)
    return model
