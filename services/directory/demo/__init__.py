"""The demo directory of the Kronoberg federation, read from ``kronoberg.yaml``.

``vardkedja run`` creates these units through each member's own directory API
(``vardkedja.federation.seed_demo_units``). The entries are fictitious: functions and
functional contact paths modelled on the Kronoberg report, phone numbers from the series
PTS reserves for fiction, addresses on the reserved ``.example`` domain.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any

import yaml

__all__ = ["DEMO_FILE", "load_demo_members", "load_demo_units"]

DEMO_FILE = "kronoberg.yaml"


def _json_ready(value: Any) -> Any:
    """A deep copy with YAML's dates and timestamps as ISO strings (the API's JSON form)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dt.date):  # also datetime
        return value.isoformat()
    return value


def _demo() -> dict[str, Any]:
    text = resources.files(__name__).joinpath(DEMO_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def load_demo_members() -> dict[str, dict[str, Any]]:
    """Each demo member's record (``PUT /v1/member`` without ``kind``), by orgnr."""
    return {
        str(m["orgnr"]): {
            "name": m["name"],
            "county_code": str(m["county_code"]),
            "kommunkoder": [str(k) for k in m.get("kommunkoder", [])],
        }
        for m in _demo()["members"]
    }


def load_demo_units() -> dict[str, list[dict[str, Any]]]:
    """The demo units by owner organisationsnummer, as UnitCreate-shaped JSON-ready dicts.

    Every call returns fresh dicts (YAML aliases are copied), so a caller may change them.
    """
    data = _demo()
    units: dict[str, list[dict[str, Any]]] = {}
    for member in data["members"]:
        orgnr = str(member["orgnr"])
        if orgnr in units:
            raise ValueError(f"{DEMO_FILE}: member {orgnr} is listed twice")
        units[orgnr] = [_json_ready(unit) for unit in member["units"]]
    return units
