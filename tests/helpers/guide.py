"""Runs a guide's worked requests as written (``docs/integration/*.md``).

A step is a fenced ``http`` block — request line, headers, a blank line, a body — followed
by an HTML comment saying what the answer must be::

    <!-- expect 201; keep task_id = id; keep etag = header ETag; check status == accepted -->

``retry`` asks again until the answer is as expected (something arrives over the
federation), ``retry until <path> == <value>`` until a value is there too; ``contains``
instead of ``==`` asks for any of the values at a path with ``*``
(``entry.*.resource.id``). Values in braces are filled from what the test gives and what
earlier steps kept; a placeholder nothing fills fails the run (the guide would not work as
written either).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers.harness import eventually
from vardkedja.guide import fill

_CONDITION = re.compile(r"(\S+) (==|contains) (.+)")
_BLOCK = re.compile(r"```http\n(.*?)```\s*<!--(.*?)-->", re.S)

Send = Callable[[str, str, dict[str, str], bytes | None], Awaitable[httpx.Response]]


@dataclass
class Step:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str | None
    expect: int
    keep: list[tuple[str, str]] = field(default_factory=list)
    check: list[tuple[str, str, str]] = field(default_factory=list)
    retry: bool = False


def steps_of(markdown: str) -> list[Step]:
    """Every worked request of a guide, in order."""
    out = []
    for block, comment in _BLOCK.findall(markdown):
        head, _, body = block.partition("\n\n")
        lines = head.strip().splitlines()
        method, url = lines[0].split(" ", 1)
        headers = [tuple(h.split(": ", 1)) for h in lines[1:]]
        step = Step(method, url.strip(), headers, body.strip() or None, expect=0)  # type: ignore[arg-type]
        for part in (p.strip() for p in comment.split(";")):
            if part.startswith("expect "):
                step.expect = int(part.split()[1])
            elif part.startswith("keep "):
                name, where = part.removeprefix("keep ").split(" = ")
                step.keep.append((name.strip(), where.strip()))
            elif part.startswith(("check ", "retry until ")):
                step.retry = step.retry or part.startswith("retry until ")
                condition = part.removeprefix("check ").removeprefix("retry until ")
                path, op, value = _CONDITION.fullmatch(condition).groups()  # type: ignore[union-attr]
                step.check.append((path, op, value))
            elif part == "retry":
                step.retry = True
            else:
                raise ValueError(f"a step's comment the runner does not know: {part!r}")
        out.append(step)
    return out


def at(answer: httpx.Response, where: str) -> str | None:
    """A value of the answer: ``header <Name>``, or a dotted path into its JSON."""
    if where.startswith("header "):
        header: str | None = answer.headers.get(where.removeprefix("header "))
        return header
    found = every(answer.json(), where.split("."))
    return found[0] if found else None


def every(node: Any, parts: list[str]) -> list[str]:
    """The values at a dotted path, ``*`` standing for each item of a list."""
    if not parts:
        return [] if node is None else [str(node)]
    part, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if part == "*":
            return [v for item in node for v in every(item, rest)]
        return every(node[int(part)], rest) if part.isdigit() and int(part) < len(node) else []
    if isinstance(node, dict):
        return every(node.get(part), rest)
    return []


def holds(answer: httpx.Response, path: str, op: str, value: str) -> bool:
    """``path == value`` (the first value there), or ``path contains value`` (any)."""
    if op == "contains":
        return value in every(answer.json(), path.split("."))
    return at(answer, path) == value


async def run(markdown: str, send: Send, values: dict[str, str]) -> dict[str, str]:
    """Every step of ``markdown`` in order; returns the values, those kept included."""
    values = dict(values)
    for n, step in enumerate(steps_of(markdown), 1):
        headers = {k: fill(v, values, strict=True) for k, v in step.headers}
        body = fill(step.body, values, strict=True).encode() if step.body is not None else None
        url = fill(step.url, values, strict=True)
        answers: list[httpx.Response] = []

        async def as_expected(
            step: Step = step,
            url: str = url,
            headers: dict[str, str] = headers,
            body: bytes | None = body,
            answers: list[httpx.Response] = answers,
        ) -> bool:
            answer = await send(step.method, url, headers, body)
            answers[:] = [answer]
            return answer.status_code == step.expect and all(
                holds(answer, path, op, fill(value, values, strict=True))
                for path, op, value in step.check
            )

        if step.retry:
            await eventually(as_expected, within=30, what=f"step {n}: {step.method} {step.url}")
        else:
            ok = await as_expected()
            answer = answers[0]
            assert ok, f"step {n} ({step.method} {step.url}): {answer.status_code} {answer.text}"
        for name, where in step.keep:
            kept = at(answers[0], where)
            assert kept is not None, f"step {n}: nothing at {where}"
            values[name] = kept
    return values


def json_of(body: bytes | None) -> Any:
    return json.loads(body) if body else None
