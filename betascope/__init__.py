"""betascope from Python: run a sweep here, or drive a betascope server.

    import betascope

    r = betascope.run("zhang2022-batch")   # a preset name, a spec dict, a file or YAML text
    r.runs, r.cells                        # pandas DataFrames with the CSVs' columns
    r.boundary()                           # beta2* per slice and against batch size
    r.phase_map(batch_size=4)              # a Plotly figure, as the sweep page draws it

    c = betascope.Client("http://127.0.0.1:8000", token=None)
    c.submit("zhang2022-batch"); c.wait()  # a progress bar in notebooks and terminals
    c.runs(), c.cells(), c.export("runs.csv")

`betascope.run` needs PyTorch (it runs the engine here); `Client` needs only httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from betascope.client import ApiError, Client, SweepError
    from betascope.local import Result

__all__ = ["ApiError", "Client", "Result", "SweepError", "run"]


def run(spec: Any, **options: Any) -> Any:
    """Run a sweep in this process; see betascope.local.run for the options."""
    from betascope.local import run as run_here

    return run_here(spec, **options)


def __getattr__(name: str) -> Any:
    # loaded on first use: a plug-in problem imports betascope.problems, and every
    # process that validates specs loads the plug-ins; none of them needs httpx
    if name == "Result":
        from betascope.local import Result

        return Result
    if name in ("ApiError", "Client", "SweepError"):
        from betascope import client

        return getattr(client, name)
    raise AttributeError(name)
