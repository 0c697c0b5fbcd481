"""Engine tests run with one intra-op thread.

Their chunks are tiny (a few hundred runs at most), so a second OpenMP thread
only adds synchronisation, and on a loaded two-core machine it made them three
to four times slower. Results do not depend on the thread count: every run's
arithmetic is elementwise or row by row, which test_engine checks with two
threads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")  # restored before other packages run
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
