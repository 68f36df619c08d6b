"""Figures of the reliability scenarios: printed and written to ``var/reliability/``.

Every scenario reports what happened, not just pass or fail: after the faults stop and the
system drains, ``lost`` (accepted minus applied), duplicated effects, order inversions per
key, redeliveries, and the seconds to recover and to drain (reported, never asserted).
:func:`report` prints one line (shown at the end of the run by this package's
``conftest.py``, and in the test's captured output) and writes
``var/reliability/<scenario>.json``.

Sizes scale with ``VK_RELIABILITY_SCALE`` (default 1: small enough for ``make test``); a
larger value turns the scenarios into a soak of their own, e.g.
``VK_RELIABILITY_SCALE=10 .venv/bin/pytest tests/reliability``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = Path(os.environ.get("VK_RELIABILITY_OUT", ROOT / "var" / "reliability"))
SCALE = float(os.environ.get("VK_RELIABILITY_SCALE", "1"))

LINES: list[str] = []
"""Every line reported in this run (the package's conftest prints them in the summary)."""


def scaled(base: float, *, minimum: int = 1, env: str | None = None) -> int:
    """``base`` times ``VK_RELIABILITY_SCALE`` (at least ``minimum``); ``env`` names a
    variable that sets the value outright."""
    if env and os.environ.get(env):
        return int(os.environ[env])
    return max(minimum, math.ceil(base * SCALE))


def seconds_since(t0: float) -> float:
    """Seconds on the monotonic clock since ``t0``, rounded for a report."""
    return round(time.monotonic() - t0, 2)


def _flat(figures: dict[str, Any], prefix: str = "") -> list[str]:
    parts: list[str] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and len(value) <= 8:
            parts += _flat(value, f"{name}.")
        elif isinstance(value, list) and len(value) > 8:
            parts.append(f"{name}=[{len(value)} items]")
        else:
            parts.append(f"{name}={value}")
    return parts


def report(scenario: str, figures: dict[str, Any], *, variant: str | None = None) -> Path:
    """Print ``figures`` on one line and write them to ``var/reliability/<name>.json``,
    where ``name`` is ``scenario`` (plus ``-variant``, e.g. the database backend)."""
    from tests.conftest import DEFAULT_ENGINE, engine_name

    name = f"{scenario}-{variant}" if variant else scenario
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    broker = engine_name(DEFAULT_ENGINE)  # every scenario runs on the suite's default broker
    record = {
        "scenario": scenario,
        "variant": variant,
        "broker": broker,
        "scale": SCALE,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "figures": figures,
    }
    path.write_text(json.dumps(record, indent=2, default=str, ensure_ascii=False) + "\n")
    line = f"{name} [{broker}]: " + ", ".join(_flat(figures))
    LINES.append(line)
    sys.stdout.write(f"[reliability] {line}\n")
    sys.stdout.flush()
    return path
