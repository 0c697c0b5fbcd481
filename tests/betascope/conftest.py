"""The notebook API's tests run the engine in this process: one torch thread, as a
notebook on a shared machine would, and as the suite's other pytest beside it needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
