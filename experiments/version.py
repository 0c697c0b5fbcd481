"""The engine's version string, part of every run_key.

Bump ENGINE_VERSION whenever a change can alter any run's numbers, so cached
results computed by an older engine are not reused. The kernel is part of the
string: the compiled kernel agrees with the eager one to about 1e-13, the fused
kernel bit for bit on zhang2022 but only to rounding on lstsq, and betascope never
mixes two kernels under one key.
"""

ENGINE_VERSION = "betascope-engine/2"
KERNELS = ("eager", "compiled", "fused")


def engine_version(kernel: str = "eager") -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel: must be one of {KERNELS}, got {kernel!r}")
    return ENGINE_VERSION if kernel == "eager" else f"{ENGINE_VERSION}+{kernel}"
