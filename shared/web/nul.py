"""The NUL character (U+0000) is refused at the edge of every service.

PostgreSQL cannot store it in text (the request failed with a 500 after part of its work)
and no one types it, so a request carrying it in any field is refused before anything
runs: ``create_app`` makes :func:`refuse_nul_characters` a dependency of every service
operation, right after the caller is authenticated. It checks the path and query
parameters, the headers and the JSON body; the problem (``422``, rule ``nul_character``)
names each field, never its value. Bodies an operation reads itself (the CSV and YAML unit
import) check their text with :func:`nul_paths`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

from fastapi import Request

from shared.web.errors import FieldProblem, InvalidInput

__all__ = ["NUL", "NUL_MESSAGE", "NUL_RULE", "nul_paths", "refuse_nul_characters"]

NUL: Final = "\x00"
NUL_RULE: Final = "nul_character"
NUL_MESSAGE: Final = "text must not contain the NUL character (U+0000)"
# JSON writes NUL as an escape (a raw NUL byte is not JSON at all): look for either before
# parsing the body again.
_IN_JSON: Final = (b"\\u0000", b"\x00")


def nul_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """The dotted path (``parties.0.unit_id``) of every text in ``value`` holding a NUL."""
    if isinstance(value, str):
        if NUL in value:
            yield prefix or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if NUL in str(key):
                yield path
            else:
                yield from nul_paths(item, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from nul_paths(item, f"{prefix}.{index}" if prefix else str(index))


def _body_paths(body: bytes) -> list[str]:
    if not any(marker in body for marker in _IN_JSON):
        return []
    try:
        document = json.loads(body)
    except ValueError:
        # Not JSON: FastAPI refuses it (422); only a NUL in it is this rule's business.
        return ["body"] if b"\x00" in body else []
    return list(nul_paths(document))


async def refuse_nul_characters(request: Request) -> None:
    """Refuses (422, each field named) a request with a NUL in any parameter or its body."""
    paths = [name for name, value in request.path_params.items() if NUL in str(value)]
    paths += [name for name, value in request.query_params.multi_items() if NUL in name + value]
    paths += [name for name, value in request.headers.items() if NUL in value]
    route = request.scope.get("route")
    # Only a body the operation declares (and FastAPI has already read): an operation that
    # reads its body itself streams it under its own size limit and checks it itself.
    if getattr(route, "body_field", None) is not None:
        paths += _body_paths(await request.body())
    if paths:
        unique = list(dict.fromkeys(paths))
        n = len(unique)
        raise InvalidInput(
            f"{n} field{'s' * (n != 1)} invalid",
            errors=[FieldProblem(field=p, rule=NUL_RULE, message=NUL_MESSAGE) for p in unique],
        )
