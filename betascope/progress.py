"""Progress with an honest time-left: throughput measured after a warm-up.

A sweep's first seconds are not its speed: imports, allocation and the first
calls of every kernel come before any run-step is done. So the time left is
only estimated from progress made *after* the first progress report, over a
trailing window, and until enough of that has been seen it says "estimating".
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

DAY_S = 86_400.0


def fmt_duration(seconds: float) -> str:
    """0:00:27, 3:12:05; "under 1 s" and "4.2 days" at either end."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 1:
        return "under 1 s"
    if seconds >= DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Throughput:
    """Work done per second and the time left, from `update(done)` calls.

    The first update that shows progress ends the warm-up: the rate is measured from
    there on, over the last `window_s` seconds or the last half of the time measured,
    whichever is longer. No estimate until `min_s` seconds of measured progress.
    """

    def __init__(self, total: float, *, clock: Callable[[], float] = time.monotonic,
                 min_s: float = 1.0, window_s: float = 10.0) -> None:
        self.total = float(total)
        self.clock = clock
        self.min_s = min_s
        self.window_s = window_s
        self.done = 0.0
        self._first_t: float | None = None  # when the warm-up ended
        self._samples: deque[tuple[float, float]] = deque()  # (t, done) at each advance

    def update(self, done: float, total: float | None = None) -> None:
        if total is not None:
            self.total = float(total)
        if done <= self.done:
            return
        now = self.clock()
        self.done = float(done)
        if self._first_t is None:
            self._first_t = now
        self._samples.append((now, self.done))
        horizon = max(self.window_s, (now - self._first_t) / 2)
        while len(self._samples) > 2 and now - self._samples[1][0] >= horizon:
            self._samples.popleft()

    def rate(self, *, until_now: bool = False) -> float | None:
        """Work per second after the warm-up, up to the last advance (or up to now, so
        that a stall counts), or None while there is too little to say."""
        if self._first_t is None or len(self._samples) < 2:
            return None
        now = self.clock()
        (t0, d0), (t1, _) = self._samples[0], self._samples[-1]
        end = now if until_now else t1
        if now - self._first_t < self.min_s or end <= t0:
            return None
        return (self.done - d0) / (end - t0)

    def remaining_s(self) -> float | None:
        """Seconds left at the measured rate, counting down between advances; once a
        stall outlasts that, at the rate that counts the stall."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate()
        if not rate:
            return None
        left = (self.total - self.done) / rate - (self.clock() - self._samples[-1][0])
        if left > 0:
            return left
        slow = self.rate(until_now=True)
        return (self.total - self.done) / slow if slow else None

    def eta_text(self) -> str:
        left = self.remaining_s()
        return "estimating…" if left is None else fmt_duration(left)


# --- bars for terminals and notebooks --------------------------------------------------------


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic notebook, VS Code, Colab)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()  # type: ignore[no-untyped-call]
    return shell is not None and getattr(shell, "kernel", None) is not None


class NotebookBar:
    """An HTML <progress> bar updated in place in a notebook cell; needs nothing beyond
    IPython (no ipywidgets), so it draws in every front end that shows HTML output."""

    def __init__(self, description: str, total: float, *,
                 clock: Callable[[], float] = time.monotonic, every_s: float = 0.25) -> None:
        self.description = description
        self.meter = Throughput(total, clock=clock)
        self.clock = clock
        self.every_s = every_s
        self.status = ""
        self._shown = -math.inf
        self._handle: object | None = None

    def html(self) -> str:
        import html as _html

        m = self.meter
        total = max(m.total, 1e-12)
        frac = min(1.0, m.done / total)
        left = "done" if m.done >= m.total else f"{m.eta_text()} left"
        extra = f" · {_html.escape(self.status)}" if self.status else ""
        return (f"<div><b>{_html.escape(self.description)}</b> "
                f"<progress value='{frac:.4f}' max='1' style='width:18em'></progress> "
                f"{100 * frac:.1f} % · {left}{extra}</div>")

    def __enter__(self) -> NotebookBar:
        from IPython.display import HTML, display

        self._handle = display(HTML(self.html()), display_id=True)
        return self

    def update(self, done: float, total: float, status: str = "") -> None:
        self.meter.update(done, total)
        self.status = shown_status(status)
        now = self.clock()
        if now - self._shown >= self.every_s or done >= total:
            self._shown = now
            self._draw()

    def _draw(self) -> None:
        from IPython.display import HTML

        if self._handle is not None:
            self._handle.update(HTML(self.html()))  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self._draw()


def shown_status(status: str) -> str:
    """A sweep's status beside the bar; not "done", which the time column says already
    ("100.0% done done")."""
    return "" if status == "done" else status


class TerminalBar:
    """rich's bar whose time column is a `Throughput` estimate, with a status column."""

    def __init__(self, description: str, total: float, *,
                 clock: Callable[[], float] = time.monotonic, console: Any = None) -> None:
        from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
        from rich.text import Text

        meter = self.meter = Throughput(total, clock=clock)

        class EtaColumn(ProgressColumn):
            max_refresh = 0.5

            def render(self, task: Task) -> Text:
                left = "done" if task.finished else f"{meter.eta_text()} left"
                return Text(left, style="progress.remaining")

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.percentage:>5.1f}%"), EtaColumn(),
                            TextColumn("{task.fields[status]}"), console=console)
        self.console = self.bar.console
        self._task = self.bar.add_task(description, total=total, status="")

    def __enter__(self) -> TerminalBar:
        self.bar.__enter__()
        return self

    def update(self, done: float, total: float, status: str = "") -> None:
        self.meter.update(done, total)
        self.bar.update(self._task, completed=done, total=total, status=shown_status(status))

    def refresh(self) -> None:
        self.bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)


class NoBar:
    def __init__(self, description: str = "", total: float = 1.0) -> None:
        self.meter = Throughput(total)

    def __enter__(self) -> NoBar:
        return self

    def update(self, done: float, total: float, status: str = "") -> None:
        self.meter.update(done, total)

    def __exit__(self, *exc: object) -> None:
        return None


def progress_bar(description: str, total: float, show: bool = True) -> Any:
    """The bar that suits where Python runs: HTML in a notebook, rich in a terminal."""
    if not show:
        return NoBar(description, total)
    if in_notebook():
        return NotebookBar(description, total)
    return TerminalBar(description, total)
