"""The walkthrough as the user reads it (``walkthrough.md``) and as data
(``walkthrough.json``, which :mod:`vardkedja.walkthrough.taking` takes)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from vardkedja.walkthrough.steps import ACTORS, MEMBER_NAMES, PERSON, Section, Step, build


def to_json(sections: Sequence[Section], tokens: Mapping[tuple[str, str], str]) -> str:
    """The walkthrough as data, with the tokens of the units it acts as."""
    return json.dumps(
        {
            "sections": [dataclasses.asdict(s) for s in sections],
            "tokens": [{"orgnr": o, "unit": u, "token": t} for (o, u), t in tokens.items()],
        },
        ensure_ascii=False,
        indent=1,
    )


def from_json(text: str) -> tuple[tuple[Section, ...], dict[tuple[str, str], str]]:
    data = json.loads(text)
    sections = tuple(
        Section(
            s["title"],
            s["says"],
            tuple(
                Step(**{**step, "until": tuple(step["until"]) if step["until"] else None})
                for step in s["steps"]
            ),
        )
        for s in data["sections"]
    )
    tokens = {(t["orgnr"], t["unit"]): t["token"] for t in data["tokens"]}
    return sections, tokens


def render(
    sections: Sequence[Section],
    tokens: Mapping[tuple[str, str], str],
    ports: Mapping[str, Mapping[str, int]],
) -> str:
    """The walkthrough as the user reads it (``ports``: orgnr → service → port)."""
    out = [
        "# The seed report's processes from the docs pages",
        "",
        "Written by `vardkedja run` for the federation it started: the unit ids, dates and "
        "tokens below are this demo's. Each step names the docs page, the unit whose token "
        "to paste into *Authorize* (the page remembers it until you log out or reload), the "
        "operation (*Try it out*), the body to paste and what to note from the answer.",
        "Values in braces, like `{kb_task_id}`, are ones you noted in an earlier step. A "
        "step marked *repeat until* follows an event between the members: if the answer is "
        "404 or not yet as described, wait a second and execute it again. Copy an `ETag` "
        'with its quotes (`"1"`) into the `If-Match` field.',
        "",
        f"The person is fictitious ({PERSON}, Skatteverket's test personnummer).",
        "",
        "## The units' tokens",
        "",
        "| member | unit | token |",
        "|---|---|---|",
    ]
    for (orgnr, unit), token in tokens.items():
        out.append(f"| {MEMBER_NAMES.get(orgnr, orgnr)} | {unit} | `{token}` |")
    n = 0
    for i, section in enumerate(sections, start=1):
        out += ["", f"## {i}. {section.title}", "", section.says]
        for j, step in enumerate(section.steps, start=1):
            n += 1
            port = ports[step.member][step.service]
            out += [
                "",
                f"### {i}.{j} {step.says}".rstrip(),
                "",
                f"- page: <http://127.0.0.1:{port}/docs> ({MEMBER_NAMES.get(step.member)}, "
                f"{step.service}); token: **{step.unit}**",
                f"- operation: `{step.method} {step.path}`",
            ]
            if step.if_match:
                out.append(f"- header `If-Match`: `{{{step.if_match}}}`")
            if step.body is not None:
                body = json.dumps(step.body, ensure_ascii=False, indent=2)
                out += ["- body:", "", "```json", body, "```", ""]
            answer = f"- answer: {step.status}"
            if step.wait:
                answer += " (*repeat until* it is"
                if step.until:
                    answer += f", with `{step.until[0]}` = `{json.dumps(step.until[1])}`"
                answer += ")"
            out.append(answer)
            for name, where in step.note.items():
                if where == "ETag":
                    source = "the `ETag` header"
                elif where.startswith("etag:"):
                    source = f'`{where.removeprefix("etag:")}` of the answer, in quotes (`"3"`),'
                else:
                    source = f"`{where}` of the answer"
                out.append(f"- note {source} as `{{{name}}}`")
    return "\n".join(out) + "\n"


def write(
    directory: Path,
    units: Mapping[tuple[str, str], str],
    tokens: Mapping[tuple[str, str], str],
    ports: Mapping[str, Mapping[str, int]],
    today: dt.date,
) -> Path:
    """Write ``walkthrough.md`` and ``walkthrough.json`` into ``directory``; returns the
    markdown's path."""
    sections = build(units, today)
    acting = {actor: tokens[actor] for actor in ACTORS}
    (directory / "walkthrough.json").write_text(to_json(sections, acting), encoding="utf-8")
    path = directory / "walkthrough.md"
    path.write_text(render(sections, acting, ports), encoding="utf-8")
    return path
