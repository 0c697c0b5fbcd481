"""What a plug-in's build() returned, checked once before any run steps.

A plug-in's mistakes would otherwise surface deep inside torch (a dtype clash in a
matrix product, a vmap error, a shape that fails to broadcast) or, worse, as silently
wrong runs (a batch size larger than the samples a loss draws from). Each check
here raises one PluginError (a ValueError, which `betascope run`, the notebook API
and the workers report as a message) naming the kind, the plug-in's module and the
rule broken. They cost a few evaluations of the loss and its gradient at x0 on two
runs, once per built problem: nothing in the engine's steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from experiments.problems.autograd import AutogradProblem, Vectorized
from experiments.problems.plugins import PluginError

if TYPE_CHECKING:
    import torch
else:
    from experiments.lazy import torch

# what the engine reads of a Problem (experiments.problems.base.Problem)
PROBLEM_ATTRS = ("dim", "blocks", "n_stats", "x_star", "f_star")
PROBLEM_METHODS = ("x0", "loss", "batch_stats", "grad", "project")


def checked(built: Any, spec: Any, *, label: str, dtype: Any, device: Any) -> Any:
    """The engine's Problem for what `spec.build(dtype=, device=)` returned, or a
    PluginError `label: <the rule broken>` (label: `problem K (plug-in module)`)."""

    def fail(msg: str) -> PluginError:
        return PluginError(f"{label}: {msg}")

    if isinstance(built, AutogradProblem):
        return _autograd(built, spec, fail, dtype, device)
    missing = [a for a in PROBLEM_ATTRS if not hasattr(built, a)]
    missing += [m for m in PROBLEM_METHODS if not callable(getattr(built, m, None))]
    if missing:
        raise fail(
            f"build() must return an AutogradProblem (or an engine Problem), got "
            f"{type(built).__name__}" + ("" if built is None else f" (no {', '.join(missing)})")
        )
    x0 = built.x0()
    if not isinstance(x0, torch.Tensor) or tuple(x0.shape) != (built.dim,):
        raise fail(f"x0() must be a tensor of shape ({built.dim},) (dim), got {_shape(x0)}")
    if x0.dtype != dtype:
        raise fail(f"x0() is {_name(x0.dtype)}, the spec asks for {_name(dtype)}")
    return built


def _autograd(
    p: AutogradProblem, spec: Any, fail: Callable[[str], PluginError], dtype: Any, device: Any
) -> Vectorized:
    cls = type(p).__name__
    if not hasattr(p, "params0"):
        raise fail(f"{cls}.__init__ must call super().__init__(params=..., n_samples=...)")
    for name, t in p.params0.items():
        if not t.is_floating_point() or t.dtype != dtype:
            raise fail(
                f"the parameters are {_name(t.dtype)} ({name!r}), the spec asks for "
                f"{_name(dtype)}: make them in the dtype build() is given"
            )
        if not _same_device(t.device, device):
            raise fail(f"parameter {name!r} is on {t.device}, the sweep runs on {device}")
        if t.numel() == 0:
            raise fail(f"parameter {name!r} is empty (shape {_shape(t)})")
    samples = _samples(spec)
    if samples is not None and samples != p.n_samples:
        raise fail(
            f"samples() is {samples} but {cls} has n_samples={p.n_samples}; they must be "
            "equal (batch sizes are checked against samples(), minibatches are drawn "
            "from n_samples)"
        )
    _check_optimum(p, fail)
    vec = Vectorized(p)
    _check_loss(vec, fail, cls, dtype)
    return vec


def _samples(spec: Any) -> int | None:
    try:
        return int(spec.samples())
    except NotImplementedError:
        return None


def _check_optimum(p: AutogradProblem, fail: Callable[[str], PluginError]) -> None:
    if p.x_star is not None:
        if not isinstance(p.x_star, Mapping):
            raise fail(
                f"x_star must be a dict like params (or None), got {type(p.x_star).__name__}"
            )
        names, given = set(p.params0), set(p.x_star)
        if names != given:
            raise fail(f"x_star has the tensors {sorted(given)}, the parameters {sorted(names)}")
        for name, t in p.x_star.items():
            want = tuple(p.params0[name].shape)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
                raise fail(f"x_star[{name!r}] has shape {_shape(t)}, the parameters have {want}")
    if p.f_star is not None:
        try:
            f_star = float(p.f_star)
        except (TypeError, ValueError, RuntimeError):
            raise fail(f"f_star must be a number (or None), got {p.f_star!r}") from None
        if not math.isfinite(f_star):
            raise fail(f"f_star must be finite, got {f_star}")


def _check_loss(vec: Vectorized, fail: Callable[[str], PluginError], cls: str, dtype: Any) -> None:
    """The loss once on x0 as written, then as the engine calls it: under vmap over
    two runs, and its gradient under torch.func.grad."""
    x0 = vec.x0()
    f = _call(lambda: vec.problem.loss(vec.unflatten(x0.clone()), vec._uniform), fail, cls)
    if not isinstance(f, torch.Tensor):
        raise fail(f"{cls}.loss must return a tensor (one scalar), got {type(f).__name__}")
    if f.dim() != 0:
        raise fail(f"{cls}.loss must return one scalar per run, got shape {_shape(f)}")
    if f.dtype != dtype:
        raise fail(f"{cls}.loss returns {_name(f.dtype)}, the spec asks for {_name(dtype)}")
    f0 = float(f)
    if not math.isfinite(f0):
        raise fail(f"the loss at x0 is {f0}: outcomes are judged relative to f(x0)")
    if vec.f_star is not None and f0 == vec.f_star:
        raise fail(
            f"the loss at x0 equals f_star ({f0}): outcomes are relative to f(x0) - f*, "
            "so x0 must not be optimal"
        )
    xs = x0.expand(2, -1).clone()
    ws = vec._uniform.expand(2, -1)
    runs = _call(lambda: vec.loss(xs), fail, cls)
    grads = _call(lambda: vec.grad(xs, ws), fail, cls)
    if tuple(runs.shape) != (2,) or tuple(grads.shape) != (2, vec.dim):
        raise fail(
            f"{cls}.loss must return one scalar per run (under torch.vmap, two runs "
            f"gave losses of shape {_shape(runs)} and gradients {_shape(grads)})"
        )


def _call(f: Callable[[], Any], fail: Callable[[str], PluginError], cls: str) -> Any:
    try:
        return f()
    except Exception as exc:  # noqa: BLE001  (any failure of foreign code, named)
        text = str(exc)
        if ".item()" in text:
            msg = "must not call .item() (it runs under torch.vmap)"
        elif "data-dependent control flow" in text:
            msg = "must not branch on a tensor's value (it runs under torch.vmap; use torch.where)"
        elif "inplace" in text or "in-place" in text:
            msg = "must not modify params in place (its gradient is taken with torch.func.grad)"
        else:
            msg = f"raised {type(exc).__name__}: {text}"
        raise fail(f"{cls}.loss(params, batch) {msg}") from exc


def _same_device(have: Any, want: Any) -> bool:
    want = torch.device(want)
    return bool(have.type == want.type and (want.index is None or have.index == want.index))


def _name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _shape(t: Any) -> str:
    shape = getattr(t, "shape", None)
    return str(tuple(shape)) if shape is not None else type(t).__name__
