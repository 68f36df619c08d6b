"""Shared by the security scenarios 10-12: where their figures are written, and test data.

Each scenario writes what it measured to ``var/security/<name>.json`` (``var/`` is ignored by
git). A test adds its own section and keeps the others, so running one test alone still
leaves a complete file for what ran.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdnum import luhn

VAR_SECURITY = Path(__file__).resolve().parents[2] / "var" / "security"


def write_figures(name: str, key: str, figures: dict[str, Any]) -> Path:
    """Put ``figures`` under ``key`` in ``var/security/<name>.json``; returns the path."""
    VAR_SECURITY.mkdir(parents=True, exist_ok=True)
    path = VAR_SECURITY / f"{name}.json"
    current: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            current = loaded
    current[key] = figures
    fd, tmp = tempfile.mkstemp(dir=VAR_SECURITY, prefix=f".{name}.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(current, out, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        out.write("\n")
    Path(tmp).replace(path)
    return path


def personnummer(birth: str, serial: str) -> str:
    """A valid personnummer ``YYYYMMDD-NNNC`` for ``birth`` (YYYYMMDD) and ``serial`` (3
    digits): the check digit is the Luhn digit of the 10-digit form."""
    assert len(birth) == 8
    assert len(serial) == 3
    short = birth[2:] + serial
    return f"{birth}-{serial}{luhn.calc_check_digit(short)}"


def samordningsnummer(birth: str, serial: str) -> str:
    """A valid samordningsnummer (the birth day plus 60) for ``birth`` and ``serial``."""
    day = int(birth[6:]) + 60
    return personnummer(birth[:6] + f"{day:02d}", serial).replace("-", "")


@dataclass
class FuzzTarget:
    """What one fuzzed target did: examples run, outcomes, crashes and property failures."""

    examples: int = 0
    crashes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crash_samples: list[str] = field(default_factory=list)
    property_failures: list[str] = field(default_factory=list)

    def crashed(self, exc: BaseException, context: str = "") -> None:
        """Count a crash; keep one sample (error and input) per kind of error."""
        self.crashes += 1
        text = str(exc)
        kind = f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
        if len(self.crash_samples) < 8 and not any(s.startswith(kind) for s in self.crash_samples):
            detail = text[-700:] if len(text) > 200 else ""
            self.crash_samples.append(f"{kind}\n{detail}\ninput: {context[:900]}")


class FuzzLog:
    """Counts per fuzzed target, written to ``var/security/fuzz.json`` under ``section``."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.targets: dict[str, FuzzTarget] = {}

    def target(self, name: str) -> FuzzTarget:
        return self.targets.setdefault(name, FuzzTarget())

    def run(self, name: str, prop: Callable[[], None]) -> None:
        """Runs a hypothesis test; a failure is recorded (its first line) and re-raised."""
        target = self.target(name)
        try:
            prop()
        except BaseException as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            target.property_failures.append(f"{type(exc).__name__}: {first}"[:500])
            raise

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, t in sorted(self.targets.items()):
            out[name] = {
                "examples": t.examples,
                "crashes": t.crashes,
                "outcomes": dict(t.outcomes),
                "crash_samples": t.crash_samples,
                "property_failures": t.property_failures,
            }
        out["total"] = {
            "examples": sum(t.examples for t in self.targets.values()),
            "crashes": sum(t.crashes for t in self.targets.values()),
            "property_failures": sum(len(t.property_failures) for t in self.targets.values()),
        }
        return out

    def write(self) -> Path:
        return write_figures("fuzz", self.section, self.figures())
