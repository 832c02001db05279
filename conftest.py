"""Settings for every test run, unit tests and notebooks alike: how ``make test`` shares
the machine's cores (pytest-xdist, ``-n TEST_JOBS``, 2 by default).

Which tests run together (``pytest_xdist_make_scheduler``):

- the notebooks, one after another on one worker, in their order: a notebook's cells
  share a kernel, and a later notebook reads what an earlier one made (rollouts, a V), so
  two of them must never make the same thing at once;
- the tests of each module in ``SHARED_SETUP``, on one worker: they share a module
  fixture that trains models, which every worker would otherwise build again;
- every other test on its own, on whichever worker is free.

(A scheduler of ours: under pytest 9, xdist's ``--dist loadgroup`` no longer groups.)

Each worker computes on one thread, and so do the processes it starts (notebook kernels,
``wmtutor`` commands, their pools): two workers each spreading every matrix product over
both cores take turns on them, and torch's threads spin while they wait (README, "Two
things at once on two cores"). Without ``-n`` nothing here applies.
"""

import os

# modules whose tests share a module-scoped fixture that trains a V and an M (seconds each)
SHARED_SETUP = ("tests/test_beyond.py", "tests/test_bundle.py")

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # read by the processes started from here
    import torch

    torch.set_num_threads(1)


def scope_of(nodeid: str) -> str:
    """The unit a test is scheduled in: ``"notebooks"``, its module (``SHARED_SETUP``), or
    its own id."""
    if ".ipynb::" in nodeid:
        return "notebooks"
    module = nodeid.split("::", 1)[0]
    return module if module in SHARED_SETUP else nodeid


def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` (what ``-n`` implies), with every notebook cell in one unit and
    each ``SHARED_SETUP`` module in one."""
    if config.getvalue("dist") != "load":
        return None  # another mode asked for by name: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):  # xdist's loadscope, with our units (scope_of)
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ByUnit(config, log)
