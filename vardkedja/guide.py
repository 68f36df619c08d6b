"""The integration guide's worked requests (``docs/integration/fhir-first-referral.md``)
with the demo's values filled in: ``vardkedja run`` writes ``var/fhir-first-referral.md``,
so a newcomer can send each request as it stands (the values an answer gives — an id, an
``ETag`` — stay in braces, to be taken from that answer)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path

from stdnum import luhn

from shared.identity.auth import mint_token

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "integration" / "fhir-first-referral.md"
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
REGION_SCOPES = ("consent:read", "consent:write", "referral:read", "referral:write")
KOMMUN_SCOPES = ("consent:read", "referral:read", "referral:write")


def fill(text: str, values: Mapping[str, str], *, strict: bool = False) -> str:
    """``text`` with every ``{name}`` that ``values`` has replaced; with ``strict``, a
    placeholder nothing fills is an error (KeyError)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if strict:
            raise KeyError(f"nothing fills {{{name}}}")
        return m.group(0)

    return PLACEHOLDER.sub(value, text)


def guide_person() -> str:
    """A synthetic personnummer of the guide's own (not the walkthrough's person)."""
    nine = "850415238"
    return "19" + nine + str(luhn.calc_check_digit(nine))


def demo_values(
    *,
    region: tuple[str, str, int, int],
    kommun: tuple[str, str, int, int],
    today: dt.date,
) -> dict[str, str]:
    """The guide's placeholders for a sending unit and a receiving unit, each given as
    (member orgnr, unit id, FHIR facade port, consent service port)."""
    values = {
        "person": guide_person(),
        "today": today.isoformat(),
        "in_90_days": (today + dt.timedelta(days=90)).isoformat(),
    }
    for side, (orgnr, unit, fhir_port, consent_port), scopes in (
        ("region", region, REGION_SCOPES),
        ("kommun", kommun, KOMMUN_SCOPES),
    ):
        values[f"{side}_fhir"] = f"http://127.0.0.1:{fhir_port}/fhir/R4"
        values[f"{side}_consent"] = f"http://127.0.0.1:{consent_port}"
        values[f"{side}_orgnr"] = orgnr
        values[f"{side}_unit"] = unit
        values[f"{side}_token"] = mint_token(
            sub=f"guide-{side}", org=orgnr, unit=unit, scopes=list(scopes), ttl_seconds=12 * 3600
        )
    return values


def write(directory: Path, values: Mapping[str, str]) -> Path | None:
    """``fhir-first-referral.md`` in ``directory`` with ``values`` filled (None without the
    guide: an installation without the project's docs)."""
    if not GUIDE.exists():
        return None
    path = directory / GUIDE.name
    path.write_text(fill(GUIDE.read_text(encoding="utf-8"), values), encoding="utf-8")
    return path
