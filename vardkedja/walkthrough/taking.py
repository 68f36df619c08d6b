"""Taking the walkthrough's steps exactly as written against a running federation
(``tests/e2e/test_make_run.py``): the document a user follows is the document the tests
prove."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from vardkedja.walkthrough.steps import Section, Step

_PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")


class WalkthroughFailed(AssertionError):
    """A step did not answer as the walkthrough says."""


def _pick(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _fill(value: Any, noted: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: noted[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, noted) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, noted) for k, v in value.items()}
    return value


ETAG_OF = "etag:"
"""A note ``etag:<path>``: the version at ``<path>`` of the answer, as an ETag (``"3"``) for
``If-Match`` — a recipient's version in a sent referral, which has no ETag of its own."""


def _noted(answer: httpx.Response, where: str) -> str:
    """What a step notes from its answer: the ``ETag`` header, a version as an ETag, or the
    value at a path of the JSON body."""
    if where == "ETag":
        return answer.headers["ETag"]
    if where.startswith(ETAG_OF):
        return f'"{_pick(answer.json(), where.removeprefix(ETAG_OF))}"'
    return str(_pick(answer.json(), where))


def _as_described(step: Step, answer: httpx.Response, noted: Mapping[str, str]) -> bool:
    if answer.status_code != step.status:
        return False
    if step.until is None:
        return True
    try:
        return bool(_pick(answer.json(), step.until[0]) == _fill(step.until[1], noted))
    except (KeyError, IndexError, ValueError):
        return False


async def perform(
    sections: Sequence[Section],
    tokens: Mapping[tuple[str, str], str],
    ports: Mapping[str, Mapping[str, int]],
    client: httpx.AsyncClient,
    *,
    within: float = 60.0,
) -> dict[str, str]:
    """Take every step as written; returns the values noted. A step that does not answer
    as described (within ``within`` seconds for one that waits) raises
    :class:`WalkthroughFailed` naming it."""
    noted: dict[str, str] = {}
    for i, section in enumerate(sections, start=1):
        for j, step in enumerate(section.steps, start=1):
            url = f"http://127.0.0.1:{ports[step.member][step.service]}{_fill(step.path, noted)}"
            headers = {"Authorization": f"Bearer {tokens[(step.member, step.unit)]}"}
            if step.if_match:
                headers["If-Match"] = noted[step.if_match]
            body = _fill(step.body, noted)
            deadline = time.monotonic() + within
            while True:
                answer = await client.request(step.method, url, json=body, headers=headers)
                if _as_described(step, answer, noted) or not step.wait:
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            if not _as_described(step, answer, noted):
                wanted = f"{step.status}"
                if step.until is not None:
                    wanted += f" with {step.until[0]} = {_fill(step.until[1], noted)!r}"
                raise WalkthroughFailed(
                    f"step {i}.{j} ({step.method} {step.path}): wanted {wanted}, answered "
                    f"{answer.status_code}: {answer.text[:500]}"
                )
            for name, where in step.note.items():
                noted[name] = _noted(answer, where)
    return noted
