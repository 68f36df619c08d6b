"""The person's audit extract (loggutdrag) as a printable HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import jinja2

from services.consent.schemas import AuditExtract

SERVICE_LABELS: Final = {
    "consent": "Samtycken",
    "directory": "Katalog",
    "referral": "Remisser",
    "notify": "Aviseringar",
}
OUTCOME_LABELS: Final = {"allowed": "tillåten", "denied": "nekad", "not_found": "hittades inte"}

_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(extract: AuditExtract) -> str:
    """The extract as a printable page (A4 print styles, autoescaped), in Swedish."""
    return _TEMPLATES.get_template("loggutdrag.html").render(
        ex=extract, services=SERVICE_LABELS, outcomes=OUTCOME_LABELS
    )
