"""`make run` as a user sees it: `vardkedja run` starts the three-member demo federation
(24 processes and the broker), prints docs URLs and tokens, replicates the demo units
between members, writes each unit's token and the walkthrough of the seed report's
processes (which is taken here step by step, as written), and stops cleanly on Ctrl-C.
Twice: on the embedded Tansu broker (`make run`) and on Apache Kafka
(`make run BROKER=kafka`)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.config import SERVICES
from shared.messaging.broker import Engine
from shared.messaging.processes import free_port_block
from tests.conftest import require_engine
from tests.helpers import guide
from tests.helpers.harness import eventually
from vardkedja.federation import DEMO_MEMBERS, DEMO_UNITS
from vardkedja.walkthrough import document, steps, taking

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,ppid=", "-e"], capture_output=True, text=True)
    kids = []
    for line in out.stdout.splitlines():
        child, parent = (int(x) for x in line.split())
        if parent == pid:
            kids.append(child)
    return kids


BANNER = {"tansu": "running on Tansu ", "kafka": "running on Apache Kafka 3.9.1 (KRaft"}


@pytest.mark.parametrize("engine", ["tansu", "kafka"])
async def test_vardkedja_run_starts_the_demo_federation_and_stops_on_ctrl_c(
    tmp_path: Path, engine: Engine
) -> None:
    require_engine(engine)
    if any(_port_taken(m.port_base + i) for m in DEMO_MEMBERS for i in range(4)):
        raise AssertionError("the demo ports 8010-8033 are taken by another process")
    if any(_port_taken(port) for port in (CATCHER, CATCHER + 1)):
        raise AssertionError("the mail catcher's ports 8040-8041 are taken by another process")
    log = tmp_path / "run.out"
    with log.open("w") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - a launcher process, not awaited
            [
                sys.executable,
                "-m",
                "vardkedja.cli",
                "run",
                "--broker",
                engine,
                "--data-dir",
                str(tmp_path / "var"),
                "--broker-port",
                str(free_port_block(2)),  # Apache Kafka's controller listens on the next
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            # As on a newcomer's machine: no trust configured, so the demo makes its own keys.
            env={
                **{k: v for k, v in os.environ.items() if k != "VK_TRUST__DIR"},
                "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
                "PYTHONUNBUFFERED": "1",
            },
            # As a script's background job starts it (`make run &` without job control):
            # with SIGINT ignored. Ctrl-C must stop it all the same.
            preexec_fn=_sigint_ignored,
        )
    try:

        async def running() -> bool:
            assert proc.poll() is None, log.read_text()
            return "stop: Ctrl-C" in log.read_text()  # the last line of the banner

        await eventually(running, within=240, what="the federation to start")
        text = log.read_text()
        assert BANNER[engine] in text  # the banner names the broker, engine and version
        for member in DEMO_MEMBERS:
            for offset in range(4):
                assert f"http://127.0.0.1:{member.port_base + offset}/docs" in text
            assert f"http://127.0.0.1:{member.port('fhir')}/fhir/R4" in text  # its facade
        assert f"http://127.0.0.1:{CATCHER}/" in text  # the page of e-mails and webhooks
        tokens = re.findall(r"token\s+(\S+)", text)
        assert len(tokens) == 3
        children = _children_of(proc.pid)
        assert len(children) == 28  # 24 service processes, 3 FHIR facades, the broker

        async with httpx.AsyncClient(timeout=10) as client:
            docs = await client.get("http://127.0.0.1:8021/docs")
            assert docs.status_code == 200
            assert "swagger" in docs.text.lower()
            openapi = (await client.get("http://127.0.0.1:8020/openapi.json")).json()
            assert "/v1/units" in openapi["paths"]
            # Region Kronoberg's replica holds every member's demo units.
            want = sum(len(units) for units in DEMO_UNITS.values())
            region_token = tokens[0]

            async def replicated() -> bool:
                r = await client.get(
                    "http://127.0.0.1:8010/v1/replica/units?limit=100",
                    headers={"Authorization": f"Bearer {region_token}"},
                )
                return r.status_code == 200 and len(r.json()["items"]) >= want

            await eventually(replicated, within=60, what="demo units in the region's replica")
            region = {"Authorization": f"Bearer {region_token}"}

            async def members_known() -> bool:
                r = await client.get("http://127.0.0.1:8010/v1/members", headers=region)
                return r.status_code == 200 and len(r.json()) == 3

            await eventually(members_known, within=60, what="the three member records")

            # Issue 3's "done when", as a user of the region's docs page would: who handles
            # a kontaktbegäran about housing support for a person living in Alvesta ...
            r = await client.post(
                "http://127.0.0.1:8010/v1/routing/resolve",
                json={
                    "referral_kind": "kontaktbegaran",
                    "kommunkod": "0764",
                    "needs": ["boendestod"],
                },
                headers=region,
            )
            assert r.status_code == 200, r.text
            first = r.json()["routes"][0]
            assert first["unit"]["owner_orgnr"] == "212000-0613"  # Alvesta kommun
            assert "boendestod" in first["matched_needs"]
            assert first["unit"]["name"] == "Socialtjänstens mottagning vuxna Alvesta"
            # ... how to reach that function ...
            assert first["contact_path"]["reason"].startswith("Kontaktbegäran")
            assert first["contact_path"]["channel"] == "inbox"
            # ... and the printable overview of Alvesta, named by its member record.
            pdf = await client.get(
                "http://127.0.0.1:8010/v1/overview/212000-0613?format=pdf", headers=region
            )
            assert pdf.status_code == 200
            assert pdf.content.startswith(b"%PDF")
            html = await client.get("http://127.0.0.1:8010/v1/overview/212000-0613", headers=region)
            assert "Alvesta kommun" in html.text

            # Issue 5's "done when": the seed report's processes from the docs pages alone.
            # The banner points a unit's user to its token and to the walkthrough, which
            # is taken here exactly as written.
            var = tmp_path / "var"
            assert str(var / "demo-tokens.md") in text
            assert str(var / "walkthrough.md") in text
            listed = (var / "demo-tokens.md").read_text()
            for units in DEMO_UNITS.values():
                assert all(f"| {unit['name']} |" in listed for unit in units)
            guide = (var / "walkthrough.md").read_text()
            sections, tokens = document.from_json((var / "walkthrough.json").read_text())
            for section in sections:
                assert f"{section.title}\n" in guide
                for step in section.steps:
                    assert f"`{step.method} {step.path}`" in guide
            ports = {m.orgnr: {s: m.port(s) for s in SERVICES} for m in DEMO_MEMBERS}
            noted = await taking.perform(sections, tokens, ports, client)
            # The sender at Växjö sees the remissmöte's ordered plan; the ward sees the
            # action the housing support ended; the HVB notice is in the region's inbox.
            assert {"vkr_plan_id", "sip_action_id", "hvb_task_id"} <= noted.keys()
            # The integrator's first hour: the kontaktbegäran's e-mail and signed webhook ...
            await _the_catcher_shows_the_notifications(client)
            # ... and a referral end to end through FHIR alone, the guide's requests sent as
            # `make run` wrote them out (the demo's values filled in).
            fhir_guide = var / "fhir-first-referral.md"
            assert str(fhir_guide) in text
            await _the_fhir_guide_works_as_written(fhir_guide.read_text(), client)
            # Issue 19's curious operator: after every process of the walkthrough and a
            # withdrawal, nothing anyone typed about the person is readable on the bus.
            await _withdraw_and_scan_the_bus(
                engine, text, var, sections, tokens, ports, noted, client
            )

        proc.send_signal(signal.SIGINT)
        await eventually(
            lambda: _true(proc.poll() is not None), within=60, what="shutdown after Ctrl-C"
        )
        assert "stopped." in log.read_text()
        await asyncio.sleep(0.2)
        assert all(not _alive(pid) for pid in children), "no process may outlive the launcher"
    finally:
        if proc.poll() is None:  # a failed assertion: stop the federation the user's way
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()  # its children get SIGTERM from the kernel (PR_SET_PDEATHSIG)
                proc.wait()


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _true(value: bool) -> bool:
    return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited though.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _port_taken(port: int) -> bool:
    from shared.messaging.processes import port_open

    return port_open("127.0.0.1", port)


CATCHER = 8040  # the page (and webhook receiver); its SMTP server listens on the next port


async def _the_fhir_guide_works_as_written(written: str, client: httpx.AsyncClient) -> None:
    async def send(
        method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> httpx.Response:
        return await client.request(method, url, headers=headers, content=body)

    kept = await guide.run(written, send, {})
    assert {"consent_id", "task_id", "etag"} <= kept.keys()


async def _the_catcher_shows_the_notifications(client: httpx.AsyncClient) -> None:
    """The receiving unit's functional mailbox got an e-mail whose link leads to its own
    member's notify service, and the unit's case system (the demo's receiver) a webhook
    whose signature verified with the secret the demo subscribed with."""
    (soc,) = (u for u in DEMO_UNITS[steps.VAXJO] if u["name"] == steps.SOC)
    (mailbox,) = (p["email"] for p in soc["contact_paths"] if p["channel"] == "functional_email")
    vaxjo_notify = next(m for m in DEMO_MEMBERS if m.orgnr == steps.VAXJO).port("notify")
    link = f"http://127.0.0.1:{vaxjo_notify}/v1/notifications/"
    caught: dict[str, list[dict[str, object]]] = {}

    async def notified() -> bool:
        caught.update((await client.get(f"http://127.0.0.1:{CATCHER}/caught.json")).json())
        mails = [m for m in caught["mails"] if mailbox in m["to"]]  # type: ignore[operator]
        hooks = [w for w in caught["webhooks"] if w["verified"]]
        return any(link in str(m["body"]) for m in mails) and bool(hooks)

    await eventually(notified, within=60, what="the e-mail and webhook in the catcher")
    assert not [w for w in caught["webhooks"] if not w["verified"]]
    page = await client.get(f"http://127.0.0.1:{CATCHER}/")
    assert mailbox in page.text
    assert "verified" in page.text


WITHDRAWAL_REASON = "Personen återkallar samtycket vid besöket på avdelningen."


async def _withdraw_and_scan_the_bus(
    engine: str,
    banner: str,
    var: Path,
    sections: tuple[steps.Section, ...],
    tokens: dict[tuple[str, str], str],
    ports: dict[str, dict[str, int]],
    noted: dict[str, str],
    client: httpx.AsyncClient,
) -> None:
    """The consent is withdrawn by the ward that recorded it; once Växjö's copy says so,
    every topic is read raw from offset 0 and searched for the personnummer (every form)
    and every free text the walkthrough typed: found 0 times raw, and found again in the
    same records once their recipients open them (the search is not blind)."""
    region = ports[steps.REGION]["consent"]
    vaxjo = ports[steps.VAXJO]["consent"]
    consent = noted["consent_id"]
    ward = {"Authorization": f"Bearer {tokens[(steps.REGION, steps.AVDELNING)]}"}
    soc = {"Authorization": f"Bearer {tokens[(steps.VAXJO, steps.SOC)]}"}
    r = await client.post(
        f"http://127.0.0.1:{region}/v1/consents/{consent}/withdraw",
        json={"reason": WITHDRAWAL_REASON, "withdrawn_by": {"kind": "person"}},
        headers=ward,
    )
    assert r.status_code == 200, r.text

    async def withdrawn_at_vaxjo() -> bool:
        url = f"http://127.0.0.1:{vaxjo}/v1/consent-copies/{consent}"
        try:
            copy = await client.get(url, headers=soc)
        except httpx.RemoteProtocolError:
            # A kept-alive connection the server closed just as the request went out (seen
            # once in CI, docs/known-issues.md): a GET, so asked again, as a client would.
            return False
        return copy.status_code == 200 and copy.json().get("status") == "withdrawn"

    await eventually(withdrawn_at_vaxjo, within=60, what="the withdrawal at Växjö")
    from shared.config import KafkaSettings
    from tests.security._support import write_figures
    from tests.security.bus_scan import free_texts, person_forms, scan_the_bus
    from vardkedja.federation import DEMO_MEMBERS

    organisational = {m.name for m in DEMO_MEMBERS} | {
        unit["name"] for units in DEMO_UNITS.values() for unit in units
    }
    bodies = [step.body for section in sections for step in section.steps]
    canaries = (
        person_forms(steps.PERSON)
        | person_forms(steps.CHILD)
        | free_texts([*bodies, WITHDRAWAL_REASON], except_=organisational)
    )
    bootstrap = re.search(r"bootstrap (\S+:\d+);", banner)
    kafka = KafkaSettings(bootstrap_servers=bootstrap.group(1) if bootstrap else "")
    scan = await scan_the_bus(kafka, [m.orgnr for m in DEMO_MEMBERS], var / "keys", canaries)
    figures = {"broker": engine, "canaries": len(canaries), **scan.figures()}
    write_figures("curious-operator", engine, figures)
    assert scan.records["inbound"] > 0
    assert scan.records["internal"] > 0
    assert scan.found_raw == {}, f"readable on the bus: {sorted(scan.found_raw)}"
    assert scan.keys_with_canaries == 0
    assert scan.unopened == {}
    assert (var / "keys" / "trust-list.json").exists()  # made on the fly by make run
    # Not blind: the personnummer and free texts are in the records, sealed.
    assert any(c in scan.found_opened for c in person_forms(steps.PERSON))
    assert len(scan.found_opened) >= 3
