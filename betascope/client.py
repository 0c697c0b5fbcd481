"""`betascope.Client`: a betascope server from Python, over its REST API (httpx only;
nothing of the service's own code is imported)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from betascope.exports import export_route
from betascope.frames import read_csv
from betascope.progress import progress_bar
from betascope.specs import spec_document

FINAL = ("done", "failed", "canceled")


class ApiError(Exception):
    """The server refused a request; the message names each offending field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class SweepError(Exception):
    """A sweep that was waited for ended failed or canceled."""

    def __init__(self, sweep: dict[str, Any]) -> None:
        errors = "; ".join(f"chunk {e.get('seq')}: {e.get('last_error')}"
                           for e in sweep.get("errors", []) or [])
        done = f"{sweep.get('done_runs')} of {sweep.get('total_runs')} runs done"
        super().__init__(f"sweep {sweep['id']} {sweep['status']}: {done}"
                         + (f" ({errors})" if errors else ""))
        self.sweep = sweep


def _message(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return resp.text[:500]
    if isinstance(detail, list):
        return "; ".join(f"{e.get('field') or '.'.join(map(str, e.get('loc', [])))}: "
                         f"{e.get('msg')}" for e in detail)
    return str(detail)


class Client:
    """A betascope server at `url` (token: for a server with BETASCOPE_API_TOKEN set).

    `submit(spec)` starts a sweep and makes it the client's current one; `wait()`,
    `runs()`, `cells()`, `boundary()`, `phase_map()` and `export(path)` act on the
    current sweep unless given another id.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, *,
                 timeout: float = 60.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url: a betascope server's address, http:// or https://; "
                             f"got {url!r}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout)
        self.sweep_id: int | None = None

    def __repr__(self) -> str:
        return f"<betascope.Client {self.url} sweep={self.sweep_id}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- requests -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with self._reaching():
            resp = self.http.request(method, path, **kw)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _message(resp))
        return resp

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """A server out of reach (refused, a wrong name, a timeout) is one
        ConnectionError naming it, not httpx's own exception."""
        try:
            yield
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach betascope at {self.url}: "
                                  f"{exc or type(exc).__name__}") from None

    def _id(self, sweep_id: int | None) -> int:
        sid = sweep_id if sweep_id is not None else self.sweep_id
        if sid is None:
            raise ValueError("no sweep yet: submit(spec) first, or pass sweep_id")
        return int(sid)

    # --- sweeps -----------------------------------------------------------------------------

    def presets(self) -> dict[str, dict[str, Any]]:
        """The server's built-in specs by name."""
        return {p["name"]: p["spec"] for p in self._request("GET", "/presets").json()}

    def submit(self, spec: Any) -> dict[str, Any]:
        """Create a sweep from a spec dict, a preset name, a YAML/JSON file or text; it
        becomes the current sweep. Returns the server's sweep record (id, status, ...)."""
        doc = spec_document(spec, self.presets)
        sweep = self._request("POST", "/sweeps", json=doc).json()
        self.sweep_id = int(sweep["id"])
        return sweep

    def use(self, sweep_id: int) -> dict[str, Any]:
        """Make an existing sweep the current one; returns its status."""
        status = self.status(sweep_id)
        self.sweep_id = int(sweep_id)
        return status

    def status(self, sweep_id: int | None = None) -> dict[str, Any]:
        """GET /sweeps/{id}: status, total_runs, done_runs, progress, spec, ..."""
        return dict(self._request("GET", f"/sweeps/{self._id(sweep_id)}").json())

    def wait(self, sweep_id: int | None = None, *, progress: bool = True, poll_s: float = 0.5,
             timeout: float | None = None) -> dict[str, Any]:
        """Follow the sweep until it ends, with a progress bar (a notebook cell's HTML bar,
        or rich in a terminal) whose time left is measured from the server's progress.
        Returns the final status; raises SweepError if it failed or was canceled and
        TimeoutError after `timeout` seconds."""
        sid = self._id(sweep_id)
        sweep = self.status(sid)
        steps = int((sweep.get("spec") or {}).get("steps") or 1)
        total = max(1, int(sweep["total_runs"])) * steps
        deadline = None if timeout is None else time.monotonic() + timeout
        with progress_bar(f"sweep {sid}", total, show=progress) as bar:
            while True:
                bar.update(float(sweep["progress"]) * total, total, sweep["status"])
                if sweep["status"] in FINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {sid} still {sweep['status']} after {timeout} s")
                time.sleep(poll_s)
                sweep = self.status(sid)
        if sweep["status"] != "done":
            raise SweepError(sweep)
        return sweep

    def cancel(self, sweep_id: int | None = None) -> dict[str, Any]:
        return dict(self._request("POST", f"/sweeps/{self._id(sweep_id)}/cancel").json())

    # --- results ----------------------------------------------------------------------------

    def _csv(self, sweep_id: int | None, level: str) -> Any:
        resp = self._request("GET", f"/sweeps/{self._id(sweep_id)}/export.csv",
                             params={"level": level})
        return read_csv(resp.text)

    def runs(self, sweep_id: int | None = None) -> Any:
        """One row per run with results, as a DataFrame in the runs CSV's columns."""
        return self._csv(sweep_id, "runs")

    def cells(self, sweep_id: int | None = None) -> Any:
        """One row per (beta1, beta2, batch_size, clip, lr) cell, as a DataFrame."""
        return self._csv(sweep_id, "cells")

    def boundary(self, sweep_id: int | None = None) -> dict[str, Any]:
        """GET /boundary: beta2*(beta1) per slice, beta2* against batch size and its fit."""
        return dict(self._request("GET", f"/sweeps/{self._id(sweep_id)}/boundary").json())

    def phase_map(self, metric: str = "outcome", *, sweep_id: int | None = None,
                  x: str | None = None, y: str | None = None,
                  batch_size: int | None = None, clip: str | None = None,
                  lr: float | None = None, scale: str | dict[str, str] | None = None,
                  show_sqrt: bool = True, show_star: bool = True, **axes: Any) -> Any:
        """One slice's phase map as a Plotly figure, drawn as the sweep page draws it: over
        x, y (beta1, beta2 by default), every other axis a slice as GET /phase-map takes
        it (beta1=... when not mapped, an extra axis by path: **{"problem.n": 50})."""
        from web.figures import phase_map_figure

        unknown = [a for a in axes if "." not in a and a not in ("beta1", "beta2")]
        if unknown:
            raise ValueError(f"{unknown[0]}: not an axis (slices: batch_size, clip, lr, "
                             "beta1, beta2, or an extra axis by path such as problem.n)")
        sid = self._id(sweep_id)
        chosen = {"x": x, "y": y, "batch_size": batch_size, "clip": clip, "lr": lr, **axes}
        params = {k: v for k, v in chosen.items() if v is not None}
        pm = self._request("GET", f"/sweeps/{sid}/phase-map",
                           params={"metric": metric, **params}).json()
        extra = {m: self._request("GET", f"/sweeps/{sid}/phase-map",
                                  params={"metric": m, **params}).json()
                 for m in ("diverged_frac", "converged_frac") if m != metric}
        star = None
        if show_star and (pm["x"]["name"], pm["y"]["name"]) == ("beta1", "beta2"):
            star = pm.get("beta2_star")
            if star is None:  # a server that does not send it: its slice's boundary
                sl = pm["slice"]
                star = next((s["beta2_star"] for s in self.boundary(sid)["slices"]
                             if all(s.get(k) == v for k, v in sl.items())), None)
        return phase_map_figure(pm, star=star, scale=scale, show_sqrt=show_sqrt, extra=extra)

    def export(self, path: str | Path, sweep_id: int | None = None, *,
               level: str = "runs") -> Path:
        """Save the runs (or cells) table as the server streams it: CSV, or Parquet with
        its typed columns when the file name ends in .parquet (level "curves" too).
        Returns the path written."""
        out = Path(path)
        route = export_route(out, level)
        sid = self._id(sweep_id)
        with self._reaching(), self.http.stream("GET", f"/sweeps/{sid}/{route}",
                                                params={"level": level}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ApiError(resp.status_code, _message(resp))
            with out.open("wb") as fh:
                for block in resp.iter_bytes():
                    fh.write(block)
        return out
