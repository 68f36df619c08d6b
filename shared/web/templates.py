"""The one Jinja2 environment of every HTML page a service renders (the directory's
overview, the consent service's audit extract): autoescaped, strict about undefined names."""

from __future__ import annotations

from pathlib import Path

import jinja2


def templates(module_file: str) -> jinja2.Environment:
    """The templates in the ``templates/`` folder beside ``module_file`` (pass ``__file__``)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(module_file).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
