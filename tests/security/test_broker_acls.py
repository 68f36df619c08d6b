"""The broker's ACLs: what production's scripts grant, on Apache Kafka run as production runs it.

One Apache Kafka KRaft node with mutual TLS on every listener, the certificate's CN as the
principal, the ``StandardAuthorizer`` and ``allow.everyone.if.no.acl.found=false``
(``deploy/README.md``, "ACLs" and "mTLS"). Its topics come from
``deploy/kafka/create-topics.sh`` and its ACLs from ``deploy/kafka/acls.sh <member> <the
federation> | sh`` for each of the three members: the very scripts production runs, with
Kafka's own tools of the same version.

With the certificates of Växjö kommun (A) and Region Kronoberg (B):

- **refused**: A reading any of B's topics, writing B's internal and deadletter topics,
  joining B's consumer group, creating a topic; a certificate the federation's CA issued to
  an organisation with no ACLs writing any inbound topic; a client without a certificate
  (its TLS handshake fails);
- **allowed**, through our own ``shared.messaging.kafka.Producer`` and ``Consumer``: A writing B's
  inbound topic, its own internal and deadletter topics and the directory, with and without
  the idempotent producer (production's, which needs no cluster ACL since Kafka 3.0); B
  reading from its inbound topic what A wrote, in its own consumer group; A reading its own
  internal topic; B reading the directory; the outbox relay's broker check (log ends of the
  partitions it wrote, its marker read back).

Not vacuous: before the real ACLs the fixture applies an emptied copy of ``acls.sh`` the
same way and runs every allowed operation, which must then be refused
(:class:`TestTheAllowedOperationsNeedTheScript`). So the allowed tests fail when ``acls.sh``
grants less, and the refused ones when it grants more.

The figures (operations tried, refused, allowed; the script's lines and the bindings they
made; set-up times) go to ``var/security/broker_acls.json``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import ssl
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    for_code,
)

from shared.config import KafkaSettings
from shared.messaging.apache_kafka import ApacheKafka
from shared.messaging.events.topics import DIRECTORY, consumer_group, deadletter, inbound, internal
from shared.messaging.kafka import (
    Consumer,
    OffsetProbe,
    OutgoingRecord,
    Producer,
    SentRecord,
    TopicPartition,
)
from shared.messaging.kafka_jars import tools_dir
from shared.messaging.kafka_tls import KafkaTls
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, kafka_settings, require_engine
from tests.helpers.harness import eventually
from tests.security._support import write_figures

ROOT = Path(__file__).resolve().parents[2]
CREATE_TOPICS = ROOT / "deploy" / "kafka" / "create-topics.sh"
ACLS = ROOT / "deploy" / "kafka" / "acls.sh"

MEMBERS = (ORG_REGION, ORG_VAXJO, ORG_ALVESTA)
A, B = ORG_VAXJO, ORG_REGION


def cn(orgnr: str) -> str:
    """A member's certificate CN, which the broker maps to its principal ``User:<CN>``."""
    return "member-" + orgnr.replace("-", "")


ADMIN = "federation-admin"
OUTSIDER = "member-5560000001"
"""A certificate of the federation's CA for an organisation that is no member: no ACLs."""

REFUSALS: tuple[type[BaseException], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)
"""The broker's answers to an operation its ACLs do not allow."""

CERTIFICATE_ALERTS = {"SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"}
"""The TLS alerts of a server that wanted the client's certificate."""

SCRIPT_VARIABLES = (
    "PRINCIPAL",
    "DRY_RUN",
    "PARTITIONS",
    "REPLICATION_FACTOR",
    "VK_FEDERATION_MEMBERS",
    "VK_TOPIC_MEMBERS",
)
"""The deploy scripts' own variables, which must not leak in from the caller's environment."""


def fresh() -> bytes:
    return uuid.uuid4().hex.encode()


# ---------------------------------------------------------------------------------------
# The operations, through our own clients
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One record to ``topic`` with ``who``'s certificate, through
    ``shared.messaging.kafka.Producer``
    (acks=all; ``idempotent``: production's idempotent producer, which first asks the broker
    for a producer id)."""

    who: str
    topic: str
    idempotent: bool = False

    @property
    def name(self) -> str:
        producer = "idempotent producer" if self.idempotent else "plain producer"
        return f"{self.who} writes {self.topic} ({producer})"

    async def __call__(self, fed: AclBroker, value: bytes) -> SentRecord:
        producer = Producer(fed.settings(self.who, idempotent_producer=self.idempotent), "acls")
        try:
            await producer.start()
            # ce_id: the header the relay's probe reads back (OffsetProbe.event_id_at).
            [result] = await producer.send_ordered(
                [OutgoingRecord(self.topic, value, value, [("ce_id", value)])]
            )
        finally:
            await producer.stop()
        if isinstance(result, BaseException):
            raise result
        return result


@dataclass(frozen=True)
class Read:
    """``who`` reads ``topic`` in consumer group ``group`` through
    ``shared.messaging.kafka.Consumer``
    until it sees the record of value ``want``, committing what it reads as the services
    do."""

    who: str
    topic: str
    group: str

    @property
    def name(self) -> str:
        return f"{self.who} reads {self.topic} in group {self.group}"

    async def __call__(self, fed: AclBroker, want: bytes) -> None:
        consumer = Consumer(
            fed.settings(self.who), topics=[self.topic], group_id=self.group, client_id="acls"
        )
        seen: list[bytes | None] = []

        async def found() -> bool:
            for tp, records in (await consumer.poll(200)).items():
                seen.extend(r.value for r in records)
                await consumer.commit({tp: records[-1].offset + 1})
            return want in seen

        try:
            await consumer.start()
            await eventually(found, within=30, what=f"{self.name} finding its record")
        finally:
            await consumer.stop()


def ssl_context(fed: AclBroker, who: str | None) -> ssl.SSLContext:
    """A client TLS context trusting the federation's CA, with ``who``'s certificate."""
    ctx = ssl.create_default_context(cafile=str(fed.tls.cafile))
    if who is not None:
        cert, key = fed.tls.clients[who]
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def admin_client(fed: AclBroker, who: str) -> AIOKafkaAdminClient:
    """An admin client with ``who``'s certificate."""
    return AIOKafkaAdminClient(
        bootstrap_servers=fed.node.bootstrap,
        security_protocol="SSL",
        ssl_context=ssl_context(fed, who),
    )


async def topic_names(fed: AclBroker, who: str) -> set[str]:
    admin = admin_client(fed, who)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def create_topic(fed: AclBroker, who: str, name: str) -> None:
    """A CreateTopics request with ``who``'s certificate; the broker's error raised."""
    admin = admin_client(fed, who)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    for topic, code, *message in response.topic_errors:
        if code:
            raise for_code(code)(f"{topic}: {message[0] if message else ''}")


def api_versions_over_tls(bootstrap: str, ctx: ssl.SSLContext) -> int:
    """Send a Kafka ApiVersions request (v0) over TLS with ``ctx``; the correlation id of the
    answer (a refused certificate raises ``ssl.SSLError``)."""
    host, port = bootstrap.rsplit(":", 1)
    body = struct.pack(">hhih", 18, 0, 7, -1)  # ApiVersions v0, correlation id 7, no client id
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 8:  # the answer's size, then its correlation id
            chunk = conn.recv(8 - len(head))
            if not chunk:
                raise ConnectionError("the broker closed the connection without an answer")
            head += chunk
    return int(struct.unpack(">ii", head)[1])


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"SSLError {exc.reason}"
    return type(exc).__name__


async def outcome_of(
    operation: Awaitable[object], refusals: tuple[type[BaseException], ...] = REFUSALS
) -> str:
    """``allowed``, ``refused (<the broker's error>)`` or ``failed (<anything else>)``."""
    try:
        async with asyncio.timeout(90):
            await operation
    except refusals as exc:
        return f"refused ({describe(exc)})"
    except Exception as exc:
        return f"failed ({describe(exc)}: {str(exc)[:300]})"
    return "allowed"


# ---------------------------------------------------------------------------------------
# The broker, its topics and ACLs from the deploy scripts
# ---------------------------------------------------------------------------------------


@dataclass
class AclBroker:
    """The node, its TLS material, the scripts' environment, and what the tests found."""

    node: ApacheKafka
    tls: KafkaTls
    env: dict[str, str]
    printed: list[str] = field(default_factory=list)
    """The command lines ``acls.sh`` printed for the three members (all were run)."""
    emptied_printed: list[str] = field(default_factory=list)
    emptied: dict[str, str] = field(default_factory=dict)
    """Each allowed operation's outcome under the ACLs of the emptied ``acls.sh``."""
    ledger: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def settings(self, who: str | None, **overrides: object) -> KafkaSettings:
        """Our clients' settings with ``who``'s certificate (None: TLS without one)."""
        tls: dict[str, str] = (
            self.tls.client_settings(who)
            if who is not None
            else {"security_protocol": "SSL", "ssl_cafile": str(self.tls.cafile)}
        )
        values: dict[str, object] = {
            **tls,
            "create_topics": False,
            "fetch_max_wait_ms": 200,
            **overrides,
        }
        return kafka_settings(self.node.bootstrap, **values)

    async def attempt(
        self,
        name: str,
        expected: str,
        operation: Awaitable[object],
        refusals: tuple[type[BaseException], ...] = REFUSALS,
    ) -> str:
        """Run ``operation``, record its outcome in the figures and return it."""
        outcome = await outcome_of(operation, refusals)
        self.ledger[name] = {"expected": expected, "outcome": outcome}
        return outcome

    def summary(self) -> dict[str, Any]:
        def met(entry: dict[str, str]) -> bool:
            return entry["outcome"].startswith(entry["expected"])

        return {
            "broker": self.node.description,
            "acls_sh": {"members": len(MEMBERS), "lines_printed_and_run": len(self.printed)},
            "operations": {
                "tried": len(self.ledger),
                "allowed": sum(e["outcome"] == "allowed" for e in self.ledger.values()),
                "refused": sum(e["outcome"].startswith("refused") for e in self.ledger.values()),
                "not_as_expected": sorted(n for n, e in self.ledger.items() if not met(e)),
            },
            "outcomes": self.ledger,
            "emptied_acls_sh": {
                "lines_printed": len(self.emptied_printed),
                "tried": len(self.emptied),
                "refused": sum(o.startswith("refused") for o in self.emptied.values()),
                "outcomes": self.emptied,
            },
            **self.figures,
        }


def run(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        cmd, env=env, input=stdin, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{shlex.join(cmd)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return done.stdout


def grant(script: Path, member: str, env: dict[str, str]) -> list[str]:
    """``script member <the federation> | sh`` (``sh -e``: a failing line stops and fails);
    the command lines it printed."""
    printed = run([str(script), member, *MEMBERS], env)
    run(["sh", "-e"], env, stdin=printed)
    return [line for line in printed.splitlines() if line.strip() and not line.startswith("#")]


async def grant_all(script: Path, env: dict[str, str]) -> list[str]:
    """:func:`grant` for the three members at once (three tool runs at a time)."""
    per_member = await asyncio.gather(
        *(asyncio.to_thread(grant, script, member, env) for member in MEMBERS)
    )
    return [line for lines in per_member for line in lines]


ALLOWED_WRITES = [
    Write(cn(A), topic, idempotent)
    for topic in (inbound(B), internal(A), deadletter(A), DIRECTORY)
    for idempotent in (False, True)
]
ALLOWED_READS = [
    Read(cn(B), inbound(B), consumer_group(B, "referral")),
    Read(cn(A), internal(A), consumer_group(A, "notify")),
    Read(cn(B), DIRECTORY, consumer_group(B, "directory")),
]


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AclBroker]:
    """The TLS node with the scripts' topics; first the ACLs of an emptied ``acls.sh`` (and
    every allowed operation tried under them), then the real script's."""
    require_engine("kafka")
    work = tmp_path_factory.mktemp("broker-acls")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    tls = KafkaTls.create(work / "tls", client_cns=[*(cn(m) for m in MEMBERS), OUTSIDER])
    node = ApacheKafka(work / "kafka", tls=tls, log_path=work / "kafka.log")
    tools = await asyncio.to_thread(tools_dir)
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES}
    env |= {
        "BOOTSTRAP_SERVERS": node.bootstrap,
        "COMMAND_CONFIG": str(tls.admin_properties),
        "KAFKA_BIN": str(tools),
        "KAFKA_ACLS": str(tools / "kafka-acls.sh"),
    }
    fed = AclBroker(node, tls, env)
    try:
        await asyncio.to_thread(node.start)
        seconds["broker_start"] = time.monotonic() - started

        mark = time.monotonic()
        await asyncio.to_thread(run, [str(CREATE_TOPICS), *MEMBERS], env)
        seconds["create_topics_sh"] = time.monotonic() - mark

        # The emptied script: a copy of acls.sh that prints nothing, applied the same way.
        emptied = work / "acls-emptied.sh"
        emptied.write_text(ACLS.read_text().split("\n", 1)[0] + "\n# emptied\n")
        emptied.chmod(0o755)
        fed.emptied_printed = await grant_all(emptied, env)
        seeded = fresh()  # what the reads look for: written by the super user
        for topic in (inbound(B), internal(A), DIRECTORY):
            await Write(ADMIN, topic)(fed, seeded)
        for w in ALLOWED_WRITES:
            fed.emptied[w.name] = await outcome_of(w(fed, fresh()))
        for r in ALLOWED_READS:
            fed.emptied[r.name] = await outcome_of(r(fed, seeded))

        mark = time.monotonic()
        fed.printed = await grant_all(ACLS, env)
        seconds["acls_sh"] = time.monotonic() - mark
        seconds["set_up"] = time.monotonic() - started
        fed.figures["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
        yield fed
    finally:
        await asyncio.to_thread(node.stop)
        write_figures("broker_acls", "apache_kafka", fed.summary())


# ---------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------


def binding_of_line(line: str) -> set[tuple[str, str, str, str, str]]:
    """The bindings (resource type, name, pattern type, principal, operation) one printed
    ``kafka-acls.sh --add`` line asks for."""
    args = shlex.split(line)

    def after(flag: str) -> list[str]:
        return [args[i + 1] for i, a in enumerate(args) if a == flag]

    [principal] = after("--allow-principal")
    pattern = (after("--resource-pattern-type") or ["literal"])[0].upper()
    [(kind, name)] = [("TOPIC", n) for n in after("--topic")] + [
        ("GROUP", n) for n in after("--group")
    ]
    return {(kind, name, pattern, principal, op.upper()) for op in after("--operation")}


_RESOURCE = re.compile(r"resourceType=(\w+), name=([^,]+), patternType=(\w+)\)")
_ACL = re.compile(r"\(principal=([^,]+), host=\*, operation=(\w+), permissionType=ALLOW\)")


def bindings_listed(listing: str) -> set[tuple[str, str, str, str, str]]:
    """The bindings in ``kafka-acls.sh --list``'s output."""
    found: set[tuple[str, str, str, str, str]] = set()
    resource: tuple[str, str, str] | None = None
    for line in listing.splitlines():
        if m := _RESOURCE.search(line):
            resource = (m[1], m[2], m[3])
        elif (m := _ACL.search(line)) and resource:
            found.add((*resource, m[1], m[2]))
    return found


class TestTheScriptsGrantsLandOnTheBroker:
    async def test_the_broker_holds_exactly_the_bindings_the_printed_lines_ask_for(
        self, fed: AclBroker
    ) -> None:
        for line in fed.printed:  # the script honours the environment it is given
            args = shlex.split(line)
            assert args[:5] == [
                fed.env["KAFKA_ACLS"],
                "--bootstrap-server",
                fed.node.bootstrap,
                "--command-config",
                fed.env["COMMAND_CONFIG"],
            ]
        wanted: set[tuple[str, str, str, str, str]] = set()
        for line in fed.printed:
            wanted |= binding_of_line(line)
        listing = await asyncio.to_thread(run, [*args[:5], "--list"], fed.env)
        listed = bindings_listed(listing)
        fed.figures["bindings_on_broker"] = len(listed)
        assert listed == wanted
        principals = {b[3] for b in listed}
        assert principals == {f"User:{cn(m)}" for m in MEMBERS}


class TestAMemberWritesWhereTheFederationNeedsIt:
    @pytest.mark.parametrize("write", ALLOWED_WRITES, ids=lambda w: w.name)
    async def test_write_is_acknowledged(self, fed: AclBroker, write: Write) -> None:
        assert await fed.attempt(write.name, "allowed", write(fed, fresh())) == "allowed"


class TestAMemberReadsItsOwnTopicsInItsOwnGroups:
    @pytest.mark.parametrize("read", ALLOWED_READS, ids=lambda r: r.name)
    async def test_reads_what_another_member_wrote(self, fed: AclBroker, read: Read) -> None:
        """What A wrote (to B's inbound, its own internal topic, the directory) is read by
        the topic's reader in its own group, and the offsets commit."""
        value = fresh()
        await Write(cn(A), read.topic)(fed, value)
        assert await fed.attempt(read.name, "allowed", read(fed, value)) == "allowed"


class TestTheRelaysBrokerCheckWorksWithTheAcls:
    async def test_the_probe_sees_log_ends_it_wrote_and_its_marker(self, fed: AclBroker) -> None:
        """What the outbox relay's broker-loss check asks
        (``shared.messaging.outbox``): the log end of
        another member's inbound partition it wrote (ListOffsets needs Describe, which Write
        implies; the probe takes a topic it may not see for an empty one, 0) and the record
        at its marker's offset in its own internal topic (a fetch without a group)."""
        sent = await Write(cn(A), inbound(B))(fed, fresh())
        marker = fresh()
        at = await Write(cn(A), internal(A))(fed, marker)
        probe = OffsetProbe(fed.settings(cn(A)), "acls-probe")

        async def check() -> None:
            tp = TopicPartition(sent.topic, sent.partition)
            assert (await probe.end_offsets([tp]))[tp] > sent.offset

            async def marker_found() -> bool:
                found = await probe.event_id_at(TopicPartition(at.topic, at.partition), at.offset)
                return found == marker.decode()

            await eventually(marker_found, within=30, what="the marker read back")

        try:
            outcome = await fed.attempt(f"{cn(A)} relay probe", "allowed", check())
        finally:
            await probe.stop()
        assert outcome == "allowed"


class TestAMemberCannotReachAnotherMembersTopics:
    @pytest.mark.parametrize("topic", [inbound(B), internal(B), deadletter(B)])
    async def test_reading_another_members_topic_is_refused(
        self, fed: AclBroker, topic: str
    ) -> None:
        """A reads in its own group, so only the topic can refuse it; the topic holds a
        record. A may write B's inbound topic, so it sees it, and the fetch is refused."""
        value = fresh()
        await Write(ADMIN, topic)(fed, value)
        read = Read(cn(A), topic, consumer_group(A, "referral"))
        outcome = await fed.attempt(read.name, "refused", read(fed, value))
        assert outcome == "refused (TopicAuthorizationFailedError)"

    @pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
    @pytest.mark.parametrize("topic", [internal(B), deadletter(B)])
    async def test_writing_another_members_internal_or_deadletter_is_refused(
        self, fed: AclBroker, topic: str, idempotent: bool
    ) -> None:
        write = Write(cn(A), topic, idempotent)
        outcome = await fed.attempt(write.name, "refused", write(fed, fresh()))
        assert outcome == "refused (TopicAuthorizationFailedError)"

    async def test_joining_another_members_consumer_group_is_refused(self, fed: AclBroker) -> None:
        """A reads its own internal topic (allowed), but in B's group: only the group can
        refuse it."""
        value = fresh()
        await Write(cn(A), internal(A))(fed, value)
        read = Read(cn(A), internal(A), consumer_group(B, "referral"))
        outcome = await fed.attempt(read.name, "refused", read(fed, value))
        assert outcome == "refused (GroupAuthorizationFailedError)"

    async def test_creating_a_topic_is_refused(self, fed: AclBroker) -> None:
        name = f"vardkedja.member.{cn(A).removeprefix('member-')}.extra"
        outcome = await fed.attempt(
            f"{cn(A)} creates {name}", "refused", create_topic(fed, cn(A), name)
        )
        assert outcome == "refused (TopicAuthorizationFailedError)"
        assert name not in await topic_names(fed, ADMIN)


class TestOnlyTheFederationGetsIn:
    @pytest.mark.parametrize("topic", [inbound(m) for m in MEMBERS])
    async def test_a_certificate_without_acls_cannot_write_an_inbound_topic(
        self, fed: AclBroker, topic: str
    ) -> None:
        """A plain producer: the idempotent one is refused before any topic (below)."""
        write = Write(OUTSIDER, topic)
        outcome = await fed.attempt(write.name, "refused", write(fed, fresh()))
        assert outcome == "refused (TopicAuthorizationFailedError)"

    async def test_the_idempotent_producer_needs_a_write_acl(self, fed: AclBroker) -> None:
        """A producer id is granted for Write on some topic (KIP-679): the outsider, who has
        none, gets none, while every member's idempotent writes above are acknowledged."""
        write = Write(OUTSIDER, inbound(B), idempotent=True)
        outcome = await fed.attempt(write.name, "refused", write(fed, fresh()))
        assert outcome == "refused (ClusterAuthorizationFailedError)"

    async def test_a_client_without_a_certificate_fails_the_tls_handshake(
        self, fed: AclBroker
    ) -> None:
        producer = Producer(fed.settings(None), "acls")
        outcome = await fed.attempt(
            "no certificate: our Producer connects",
            "refused",
            producer.start(),
            refusals=(KafkaConnectionError,),
        )
        await producer.stop()
        assert outcome == "refused (KafkaConnectionError)"

        raw = await fed.attempt(
            "no certificate: a Kafka request over TLS",
            "refused",
            asyncio.to_thread(api_versions_over_tls, fed.node.bootstrap, ssl_context(fed, None)),
            refusals=(ssl.SSLError,),
        )
        assert raw in {f"refused (SSLError {alert})" for alert in CERTIFICATE_ALERTS}
        # The same request with a member's certificate is answered: the alert is about the
        # missing certificate, nothing else.
        answered = await asyncio.to_thread(
            api_versions_over_tls, fed.node.bootstrap, ssl_context(fed, cn(A))
        )
        assert answered == 7


class TestTheAllowedOperationsNeedTheScript:
    def test_with_an_emptied_acls_sh_every_allowed_operation_is_refused(
        self, fed: AclBroker
    ) -> None:
        """The same allowed operations, run under the ACLs an emptied copy of acls.sh made
        (applied the same way, before the real script), are all refused by the broker."""
        assert fed.emptied_printed == []
        operations = [w.name for w in ALLOWED_WRITES] + [r.name for r in ALLOWED_READS]
        assert sorted(fed.emptied) == sorted(operations)
        not_refused = {n: o for n, o in fed.emptied.items() if not o.startswith("refused")}
        assert not_refused == {}
