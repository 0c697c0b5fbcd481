"""Apply each curated mutant to a temporary copy of the repository and run the
tests named for it; every mutant must make them fail.

    python -m tests.mutants                 # all mutants, table to stdout
    python -m tests.mutants -k seed -k W    # mutants whose id contains any of these
    python -m tests.mutants --list          # the catalogue, nothing run
    python -m tests.mutants --out table.md  # also write the Markdown table

The copy holds the files git tracks plus untracked ones it does not ignore,
so the working tree is tested as it is. Each mutant replaces one exact piece
of text in one file (which must occur exactly once: a pattern that no longer
applies is reported as an error, never as killed), runs its tests in the copy
with PYTHONPATH pointing there (also for the servers and workers the tests
start), and restores the file. Exit status 0 only if every mutant was killed.
Service variables (BETASCOPE_TEST_DATABASE_URL, BETASCOPE_TEST_REDIS_URL,
BETASCOPE_REQUIRE_SERVICES) are passed through, as for the suite itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mutants.catalogue import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 900  # seconds per mutant: a mutant that hangs its tests counts as killed


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed | SURVIVED | ERROR
    detail: str  # the first failing test, or why it is an error
    seconds: float


def copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if not src.is_file() or name.startswith("tests/mutants/"):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never meet a stale .pyc
    env["BETASCOPE_ARTIFACTS"] = str(copy / "artifacts")
    return env


def _first_failure(output: str) -> str:
    for pattern in (r"^(?:FAILED|ERROR) (\S+)", r"^(\S+::\S+) (?:FAILED|ERROR)"):
        m = re.search(pattern, output, re.M)
        if m:
            return m.group(1)
    tail = [line for line in output.strip().splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


def run_one(mutant: Mutant, copy: Path) -> Result:
    t0 = time.monotonic()
    path = copy / mutant.path
    if not path.exists():
        return Result(mutant, "ERROR", f"{mutant.path} does not exist", 0.0)
    original = path.read_text()
    hits = original.count(mutant.old)
    if hits != 1:
        return Result(mutant, "ERROR", f"pattern found {hits} times in {mutant.path}", 0.0)
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
               *mutant.tests]
        try:
            proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return Result(mutant, "killed", f"timeout after {TIMEOUT} s", time.monotonic() - t0)
    finally:
        path.write_text(original)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return Result(mutant, "SURVIVED", "all tests passed", took)
    if proc.returncode == 1 or (proc.returncode == 2 and "during collection" in out):
        return Result(mutant, "killed", _first_failure(out), took)  # failed, or failed to import
    # 2 interrupted, 3 internal error, 4 usage error, 5 no tests: the harness, not the code
    return Result(mutant, "ERROR", f"pytest exited {proc.returncode}: {_first_failure(out)}", took)


def baseline(copy: Path, mutants: list[Mutant]) -> str | None:
    """The unmutated copy must pass every selection, or a 'kill' means nothing."""
    seen: set[tuple[str, ...]] = set()
    for m in mutants:
        if m.tests in seen:
            continue
        seen.add(m.tests)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *m.tests]
        proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                              timeout=TIMEOUT)
        if proc.returncode != 0:
            return f"{' '.join(m.tests)} fails without any mutant:\n{proc.stdout[-3000:]}"
    return None


def table(results: list[Result]) -> str:
    lines = [
        "| id | file | mistake | result | killed by | s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m = r.mutant
        lines.append(f"| {m.id} | `{m.path}` | {m.what} | {r.status} | `{r.detail}` | "
                     f"{r.seconds:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", action="append", default=[], help="run mutants whose id contains this")
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running each test selection once without mutants")
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.k or any(k in m.id for k in args.k)]
    if args.list:
        for m in chosen:
            print(f"{m.id:5s} {m.path:32s} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="betascope-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_tree(copy)
        if not args.no_baseline:
            problem = baseline(copy, chosen)
            if problem:
                print(problem, file=sys.stderr)
                return 2
        results = []
        for m in chosen:
            r = run_one(m, copy)
            results.append(r)
            print(f"{m.id:5s} {r.status:8s} {r.seconds:6.0f} s  {r.detail}", flush=True)
    text = table(results)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    killed = sum(r.status == "killed" for r in results)
    print(f"\n{killed} of {len(results)} mutants killed")
    return 0 if killed == len(results) else 1
