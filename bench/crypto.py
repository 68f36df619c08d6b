"""What the trust costs per event (ADR 0020): CPU to sign, verify, seal and open.

Builds a throw-away federation's keys, then for events of three realistic sizes (a unit on
the broadcast topic: signed only; a kontaktbegäran and a plan on an inbound topic: sealed
and signed) measures, over ``--events`` events each, the process CPU time of:

- ``protect``: what the outbox adds to writing one event (seal when the topic is a
  member's, then sign);
- ``admit``: what the inbox adds before a handler runs (verify, then open);
- and each step alone (sign, verify, seal, open).

Writes ``bench/results/crypto.json`` and prints a table. No timed assertion anywhere: these
are figures for the README and the performance issue's budget (200 events a second).

    python -m bench.crypto --events 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.messaging.events import CloudEvent, encode, topics
from shared.messaging.trust import Trust, trust_in
from shared.messaging.trust_keys import ensure_members

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REGION, VAXJO = "232100-0065", "212000-0647"


def _unit() -> dict[str, Any]:
    return {
        "unit_id": str(uuid.uuid4()),
        "owner_orgnr": REGION,
        "name": "Beroendemottagningen Växjö",
        "kommunkoder": ["0780", "0764", "0767"],
        "target_groups": [{"code": "vuxna", "label": "Vuxna 18+"}],
        "contact_paths": [{"reason": "Kontaktbegäran", "channel": "inbox", "hours": "mån–fre 8–16"}]
        * 3,
        "description": "Öppenvård för vuxna med skadligt bruk och beroende. " * 6,
        "version": 7,
    }


def _referral() -> dict[str, Any]:
    return {
        "task_id": str(uuid.uuid4()),
        "referral_id": str(uuid.uuid4()),
        "kind": "kontaktbegaran",
        "sender_orgnr": REGION,
        "recipient_orgnr": VAXJO,
        "person": {"personnummer": "191212121212", "protected_identity": False},
        "needs": ["boendestod", "sysselsattning"],
        "summary": "Skrivs ut inom två veckor och saknar bostad; önskar kontakt. " * 8,
        "persons_wish": "Vill ha stöd med boende nära sin dotter.",
        "basis": {"kind": "consent", "consent_id": str(uuid.uuid4())},
        "acknowledge_by": dt.date.today().isoformat(),
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _plan() -> dict[str, Any]:
    action = {
        "id": str(uuid.uuid4()),
        "text": "Boendestöd två gånger i veckan, med fokus på vardagsrutiner.",
        "owner_unit": str(uuid.uuid4()),
        "status": "planned",
        "due": dt.date.today().isoformat(),
    }
    return {
        "plan_id": str(uuid.uuid4()),
        "owner_orgnr": REGION,
        "kind": "sip",
        "personnummer": "191212121212",
        "goals": ["Eget boende inom ett år", "Drogfrihet", "Sysselsättning"],
        "actions": [action] * 12,
        "viewers": [{"orgnr": VAXJO, "unit_id": str(uuid.uuid4())}] * 4,
        "plan_version": 3,
    }


def _cpu(fn: Callable[[], object], n: int) -> float:
    """Process CPU milliseconds per call of ``fn`` over ``n`` calls."""
    fn()  # warm
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) * 1000 / n


def _row(
    name: str, data: dict[str, Any], topic: str, region: Trust, vaxjo: Trust, n: int
) -> dict[str, Any]:
    """The figures of one kind of event."""
    event = CloudEvent(
        source="urn:vardkedja:2321000065:referral",
        type="se.vardkedja.referral.sent.v1",
        subject=str(uuid.uuid4()),
        partitionkey=str(uuid.uuid4()),
        data=data,
    )
    key, plain, headers = encode(event)
    body, protected = region.protect(
        topic, key, plain, headers, event_id=event.id, source=event.source
    )
    sealed = topic != topics.DIRECTORY
    sealed_body = (
        body
        if sealed
        else region.seal(plain, recipient="2120000647", event_id=event.id, source=event.source)
    )
    row: dict[str, Any] = {
        "event": name,
        "data_bytes": len(plain),
        "wire_bytes": len(body),
        "protect_ms": _cpu(
            lambda: region.protect(
                topic, key, plain, headers, event_id=event.id, source=event.source
            ),
            n,
        ),
        "admit_ms": _cpu(lambda: vaxjo.admit(topic, key, body, protected), n),
        "sign_ms": _cpu(lambda: region.sign(headers, key, body, topic), n),
        "seal_ms": _cpu(
            lambda: region.seal(
                plain, recipient="2120000647", event_id=event.id, source=event.source
            ),
            n,
        ),
        "open_ms": _cpu(lambda: vaxjo.open(sealed_body, event_id=event.id, source=event.source), n),
    }
    return row


def measure(n: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vk-bench-crypto-"))
    ensure_members(folder, [(REGION, "Region Kronoberg"), (VAXJO, "Växjö kommun")])
    region, vaxjo = trust_in(folder, REGION), trust_in(folder, VAXJO)
    cases = {
        "unit (broadcast, signed)": (_unit(), topics.DIRECTORY),
        "kontaktbegäran (inbound, sealed+signed)": (_referral(), topics.inbound(VAXJO)),
        "plan (inbound, sealed+signed)": (_plan(), topics.inbound(VAXJO)),
    }
    rows = [_row(name, data, topic, region, vaxjo, n) for name, (data, topic) in cases.items()]
    return {
        "what": "CPU per event of the trust (ADR 0020): protect = seal + sign (outbox), "
        "admit = verify + open (inbox)",
        "events_per_case": n,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": f"python -m bench.crypto --events {n}",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=RESULTS / "crypto.json")
    args = parser.parse_args()
    result = measure(args.events)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("| event | data B | on the wire B | protect ms | admit ms | sign | seal | open |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(
            f"| {r['event']} | {r['data_bytes']} | {r['wire_bytes']} | {r['protect_ms']:.3f} | "
            f"{r['admit_ms']:.3f} | {r['sign_ms']:.3f} | {r['seal_ms']:.3f} | {r['open_ms']:.3f} |"
        )


if __name__ == "__main__":
    main()
