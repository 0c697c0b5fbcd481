"""The mutant catalogue (tests/mutants, docs/testing.md) still applies to the code.

Running the mutants takes minutes and stays outside the suite, but a mutant whose
text no longer occurs exactly once is an ERROR there, not a kill: five had gone
stale that way while the code they mutate was rewritten, and nothing said so
until the harness ran again. This checks, in milliseconds, that every mutant
still finds its text once and names tests that exist, so a change that moves
the code fails here and the catalogue is updated with it.
"""

from __future__ import annotations

from pathlib import Path

from tests.mutants.catalogue import MUTANTS

ROOT = Path(__file__).resolve().parent.parent


def test_every_mutant_finds_its_text_once_and_names_existing_tests() -> None:
    ids = [m.id for m in MUTANTS]
    assert len(set(ids)) == len(ids), "mutant ids repeat"
    stale = []
    for m in MUTANTS:
        path = ROOT / m.path
        hits = path.read_text(encoding="utf-8").count(m.old) if path.exists() else -1
        if hits != 1 or m.new == m.old:
            stale.append(f"{m.id}: {m.path} holds its text {hits} times")
        for arg in m.tests:
            if arg.endswith(".py") and not (ROOT / arg).exists():
                stale.append(f"{m.id}: no test file {arg}")
    assert not stale, "stale mutants (tests/mutants/catalogue.py):\n" + "\n".join(stale)
