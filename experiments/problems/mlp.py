"""A small MLP on a real data set: scikit-learn's bundled digits, or a random teacher.

Zhang et al. back their batch-size claim (smaller batches need larger beta2)
with networks on MNIST and CIFAR; `digits` is the 8x8, 1,797-image, 10-class
data set that ships inside scikit-learn, so no run ever downloads anything.
Every run of a program is one batched forward and backward pass: torch.bmm over
per-run weight matrices, the gradient written out layer by layer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from experiments.problems.base import ProblemBase, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch

DIGITS = (1797, 64, 10)  # samples, inputs (8x8 pixels), classes
MAX_PARAMS = 1_000_000  # per run: a chunk holds x, the gradient and moments for each
TEACHER = {"n_samples": 512, "n_inputs": 16, "n_outputs": 1, "data_seed": 0}
ALIGN = 16  # every width a matrix product sees, in elements (64 bytes of float32)


class MlpSpec(ProblemBase):
    kind: Literal["mlp"]
    dataset: Literal["digits", "teacher"] = "digits"
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [32], max_length=8
    )
    activation: Literal["tanh", "relu"] = "tanh"
    init_seed: int = Field(0, ge=0, le=2**63 - 1)
    # the teacher's data set (digits is fixed: 1,797 samples, 64 inputs, 10 classes)
    n_samples: int | None = Field(None, ge=1, le=100_000)
    n_inputs: int | None = Field(None, ge=1, le=4096)
    n_outputs: int | None = Field(None, ge=1, le=4096)
    data_seed: int | None = Field(None, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _fits(self) -> MlpSpec:
        if self.dataset != "teacher":
            for name in TEACHER:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only the teacher data set takes it")
        count = n_params(self.widths())
        if count > MAX_PARAMS:
            raise ValueError(
                f"hidden: {self.hidden} makes {count:,} parameters per run; at most {MAX_PARAMS:,}"
            )
        return self

    def teacher(self, name: str) -> int:
        value = getattr(self, name)
        return TEACHER[name] if value is None else int(value)

    def widths(self) -> list[int]:
        """Layer widths from input to output."""
        if self.dataset == "digits":
            return [DIGITS[1], *self.hidden, DIGITS[2]]
        return [self.teacher("n_inputs"), *self.hidden, self.teacher("n_outputs")]

    def samples(self) -> int:
        return DIGITS[0] if self.dataset == "digits" else self.teacher("n_samples")


def n_params(widths: list[int]) -> int:
    return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))


def padded(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


def rows(batch_size: int) -> int:
    """The rows a minibatch of `batch_size` takes in the matrix products.

    MKL rounds a row of a batched product differently by the matrix's address
    and, with several threads, by the row count (measured: counts 5-7, 9-11,
    ... differ between chunks; 1-4 and multiples of 8 never did). Padding to
    such a count, with zero-weight rows, fixed by the batch size alone keeps a
    run's numbers independent of its chunk.
    """
    return batch_size if batch_size <= 4 else padded(batch_size, 8)


class Mlp:
    """f(x) = mean over samples of the loss of an MLP whose parameters are x.

    Layers z_l = a_{l-1} W_l^T + b_l, a_l = act(z_l) between them; digits: the
    mean cross-entropy of the logits z_L against the class, teacher: the mean
    over samples and outputs of (z_L - t)^2 (torch.nn.functional.mse_loss).
    x is W_1, b_1, W_2, b_2, ... flattened row-major, each one block.

    A minibatch summary is [indices, weights] of rows(b) slots: weight 1/b for
    the sampled rows (repeats count twice), 0 for padding. Its width depends on
    the batch size, so the engine runs each batch size as a program of its own
    (`per_batch_size`): mixing them would pad every run to the widest batch,
    which costs the small batches that width and changes their rounding.
    Measured, one gradient of 256 runs (64 each at batch 1, 4, 16, 64; float64,
    one thread): 25.7 ms as four programs, 52 ms as one program padded to 64,
    2.4 s as per-sample weights over all 1,797 samples (lstsq's summary).
    """

    per_batch_size = True

    def __init__(self, spec: MlpSpec, *, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self.widths = spec.widths()
        self.relu = spec.activation == "relu"
        self.classify = spec.dataset == "digits"
        self.n = spec.samples()
        inputs, targets = _data(spec)
        self.pw = [padded(w) for w in self.widths]
        x_pad = torch.zeros(self.n, self.pw[0], dtype=torch.float64)
        x_pad[:, : self.widths[0]] = inputs
        self.X = x_pad.to(device=device, dtype=dtype)
        self.y = targets.to(device=device, dtype=torch.int64 if self.classify else dtype)
        self.blocks: list[tuple[int, int]] = []
        at = 0
        for a, b in zip(self.widths, self.widths[1:], strict=False):
            self.blocks += [(at, at + a * b), (at + a * b, at + a * b + b)]
            at += a * b + b
        self.dim = at
        self.n_stats = 2 * rows(self.n)  # the widest summary; 2 * rows(b) for batch b
        self.x_star: Tensor | None = None  # many minima (hidden units permute)
        self.f_star: float | None = None  # unknown: rel = f(x) / f(x0)
        self._x0 = _initial(self.widths, spec.init_seed, dtype).to(device)

    def x0(self) -> Tensor:
        return self._x0

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        from experiments.sampling import batch_indices

        idx = batch_indices(
            seed=seed, batch_size=batch_size, sampling=sampling, steps=steps, n=self.n
        )
        slots = rows(batch_size)
        stats = torch.zeros(len(steps), 2 * slots, dtype=self.dtype, device=self.device)
        stats[:, :batch_size] = idx.to(self.dtype)
        stats[:, slots : slots + batch_size] = 1.0 / batch_size
        return stats

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        slots = stats.shape[1] // 2
        idx = stats[:, :slots].to(torch.int64)
        weights = stats[:, slots:]
        return self._backward(x, self.X[idx], self.y[idx], weights)

    def loss(self, x: Tensor) -> Tensor:
        """The full objective over every sample, a slice of runs at a time."""
        slots = rows(self.n)
        idx = torch.zeros(slots, dtype=torch.int64, device=self.device)
        idx[: self.n] = torch.arange(self.n, device=self.device)
        weights = torch.zeros(1, slots, dtype=self.dtype, device=self.device)
        weights[0, : self.n] = 1.0 / self.n
        targets = self.y[idx][None]
        per_run = slots * max(self.pw)
        step = max(1, (1 << 24) // per_run)  # activations of about 2**24 numbers
        out = []
        for lo in range(0, x.shape[0], step):
            xs = x[lo : lo + step]
            r = xs.shape[0]
            z = self._forward(self._layers(xs), self.X[idx].expand(r, -1, -1))[-1]
            t = targets.expand(r, *targets.shape[1:])
            per_sample = self._per_sample(z[:, :, : self.widths[-1]], t)
            out.append(_weighted_sum(per_sample, weights))
        return torch.cat(out) if out else x.new_zeros(0)

    def project(self, x: Tensor) -> Tensor:
        return x

    # --- the network ------------------------------------------------------------------------

    def _layers(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(W_l^T, b_l) per layer, zero-padded to aligned widths: [R, in, out], [R, 1, out]."""
        r = x.shape[0]
        out = []
        for i, (a, b) in enumerate(zip(self.widths, self.widths[1:], strict=False)):
            (w0, w1), (b0, b1) = self.blocks[2 * i], self.blocks[2 * i + 1]
            wt = x.new_zeros(r, self.pw[i], self.pw[i + 1])
            wt[:, :a, :b] = x[:, w0:w1].reshape(r, b, a).transpose(1, 2)
            bias = x.new_zeros(r, 1, self.pw[i + 1])
            bias[:, 0, :b] = x[:, b0:b1]
            out.append((wt, bias))
        return out

    def _forward(self, layers: list[tuple[Tensor, Tensor]], inputs: Tensor) -> list[Tensor]:
        """The activations a_0 (inputs), a_1, ..., and the output z_L."""
        acts = [inputs]
        for i, (wt, bias) in enumerate(layers):
            z = torch.bmm(acts[-1], wt) + bias
            if i < len(layers) - 1:
                z = torch.relu(z) if self.relu else torch.tanh(z)
            acts.append(z)
        return acts

    def _per_sample(self, z: Tensor, targets: Tensor) -> Tensor:
        """Each sample's loss, [R, P], from the outputs z [R, P, out]."""
        if self.classify:
            logp = torch.log_softmax(z, dim=2)
            return -torch.gather(logp, 2, targets[:, :, None])[:, :, 0]
        return ((z - targets) ** 2).mean(dim=2)

    def _output_grad(self, z: Tensor, targets: Tensor) -> Tensor:
        """d(per-sample loss)/dz, [R, P, out]."""
        if self.classify:
            g = torch.softmax(z, dim=2)
            return g.scatter_add(2, targets[:, :, None], -torch.ones_like(g[:, :, :1]))
        return (2.0 / z.shape[2]) * (z - targets)

    def _backward(self, x: Tensor, inputs: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
        layers = self._layers(x)
        acts = self._forward(layers, inputs)
        out = self.widths[-1]
        d = self._output_grad(acts[-1][:, :, :out], targets) * weights[:, :, None]
        d = torch.nn.functional.pad(d, (0, self.pw[-1] - out))
        ones = d.new_ones(1, 1, d.shape[1]).expand(d.shape[0], -1, -1)
        grads: list[Tensor] = []
        for i in range(len(layers) - 1, -1, -1):
            a, b = self.widths[i], self.widths[i + 1]
            gw = torch.bmm(d.transpose(1, 2), acts[i])[:, :b, :a]
            gb = torch.bmm(ones, d)[:, 0, :b]
            grads = [gw.reshape(x.shape[0], -1), gb, *grads]
            if i > 0:
                d = torch.bmm(d, layers[i][0].transpose(1, 2))
                if self.relu:
                    d = d * (acts[i] > 0).to(d.dtype)
                else:
                    d = d * (1.0 - acts[i] * acts[i])
        return torch.cat(grads, dim=1)


def _weighted_sum(values: Tensor, weights: Tensor) -> Tensor:
    """sum_j w_j v_j per run, [R, P] by [1, P], as [1, P] @ [P, 16] products: a
    product's rounding depends on its address (see rows), so every matrix here
    starts at a multiple of 64 bytes."""
    cols = torch.nn.functional.pad(values[:, :, None], (0, ALIGN - 1))
    return torch.bmm(weights[:, None, :].expand(values.shape[0], -1, -1), cols)[:, 0, 0]


def _data(spec: MlpSpec) -> tuple[Tensor, Tensor]:
    """Inputs [n, in] (float64) and targets: class indices, or teacher outputs [n, out]."""
    if spec.dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (
            torch.tensor(digits.data, dtype=torch.float64) / 16.0,
            torch.tensor(digits.target, dtype=torch.int64),
        )
    g = torch.Generator().manual_seed(spec.teacher("data_seed"))
    widths = spec.widths()
    inputs = torch.randn(spec.samples(), widths[0], generator=g, dtype=torch.float64)
    a = inputs
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False)):
        w = torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
        a = a @ w.T
        if i < len(widths) - 2:
            a = torch.relu(a) if spec.activation == "relu" else torch.tanh(a)
    return inputs, a


def _initial(widths: list[int], seed: int, dtype: torch.dtype) -> Tensor:
    """torch.nn.Linear layers created input to output under torch.manual_seed(seed), on
    the CPU in `dtype`, flattened; the caller's global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [
            torch.nn.Linear(a, b, dtype=dtype) for a, b in zip(widths, widths[1:], strict=False)
        ]
    with torch.no_grad():
        return torch.cat([t.reshape(-1) for layer in layers for t in (layer.weight, layer.bias)])


@register(MlpSpec)
def build(spec: MlpSpec, *, dtype: torch.dtype, device: torch.device) -> Mlp:
    return Mlp(spec, dtype=dtype, device=device)
