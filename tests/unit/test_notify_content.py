"""Notify's pure parts: what events say (facts), the rules table's validation, the templates,
secrets, signatures, backoff and the personnummer guard."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from services.notify.consume import HANDLED_EVENTS
from services.notify.content import (
    Facts,
    NotificationData,
    derived_id,
    email_content,
    email_message,
    looks_like_personnummer,
    title,
    webhook_body,
)
from services.notify.dispatch import backoff, signatures
from services.notify.facts import facts_of
from services.notify.subscriptions import check_secret, generate_secret
from shared.config import NotifyRule, NotifySettings
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGED_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    REFERRAL_RECEIVED_V1,
    ConsentEndedV1,
    ConsentPartyRef,
    ReferralDeadlineV1,
    ReferralDischargedV1,
    ReferralDocumentAddedV1,
    ReferralReceivedV1,
)
from shared.web.errors import InvalidInput

NOW = dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC)
VAXJO = "212000-0647"
REGION = "232100-0065"


def data(**overrides: object) -> NotificationData:
    values: dict[str, object] = {
        "kind": "referral.received",
        "subject_type": "referral",
        "subject_id": "ref-1",
        "unit_id": "vaxjo-intag",
        "referral_kind": "kontaktbegaran",
        "urgency": "acute",
        "deadline": "acknowledge",
        "due_at": NOW,
        "notification_id": derived_id("e", "r", "unit", "vaxjo-intag"),
        "recipient_kind": "unit",
        "recipient": "vaxjo-intag",
        "created_at": NOW,
        "link": "https://notify.vaxjo.se/v1/notifications/x",
        **overrides,
    }
    return NotificationData.model_validate(values)


class TestFacts:
    def test_a_received_referral_names_its_unit_kind_and_counterpart(self) -> None:
        payload = ReferralReceivedV1(
            referral_id="r1",
            kind="kontaktbegaran",
            unit_id="vaxjo-intag",
            sender_orgnr=REGION,
            received_at=NOW,
        )
        [facts] = facts_of(event_type=REFERRAL_RECEIVED_V1, payload=payload, own_orgnr=VAXJO)
        assert (facts.kind, facts.unit_id, facts.counterpart_orgnr) == (
            "referral.received",
            "vaxjo-intag",
            REGION,
        )

    def test_deadline_states_map_to_reminder_overdue_or_nothing(self) -> None:
        def kinds(state: str) -> list[str]:
            payload = ReferralDeadlineV1(
                referral_id="r1",
                kind="vardkedjeremiss",
                unit_id="u",
                deadline="plan",
                due_at=NOW,
                state=state,
            )
            return [
                f.kind
                for f in facts_of(event_type=REFERRAL_DEADLINE_V1, payload=payload, own_orgnr=VAXJO)
            ]

        assert kinds("near") == ["deadline.reminder"]
        assert kinds("overdue") == ["deadline.overdue"]
        assert kinds("met") == []

    def test_a_deadline_told_to_the_sender_is_an_alert_that_the_other_has_not_answered(
        self,
    ) -> None:
        payload = ReferralDeadlineV1(
            referral_id="t1",
            kind="sip_kallelse",
            unit_id="region-avd-12",
            deadline="answer",
            due_at=NOW,
            state="overdue",
            audience="sender",
        )
        [facts] = facts_of(event_type=REFERRAL_DEADLINE_V1, payload=payload, own_orgnr=VAXJO)
        assert (facts.kind, facts.unit_id, facts.deadline, facts.due_at) == (
            "deadline.unanswered",
            "region-avd-12",
            "answer",
            NOW,
        )
        assert (
            title(data(kind="deadline.unanswered", referral_kind="sip_kallelse"))
            == "Inget svar: Kallelse till SIP har inte besvarats av mottagaren senast "
            "2026-11-23 09:30"
        )

    def test_the_senders_komplettering_is_its_own_deadline_in_its_own_words(self) -> None:
        """A holder asked the sending unit for more information: the sending unit must act
        (audience actor), reminded and told it is late, never an alert of another's delay."""
        payload = ReferralDeadlineV1(
            referral_id="t1", kind="kontaktbegaran", unit_id="rk-beroende",
            deadline="information", due_at=NOW, state="near",
        )  # fmt: skip
        [facts] = facts_of(event_type=REFERRAL_DEADLINE_V1, payload=payload, own_orgnr=VAXJO)
        assert (facts.kind, facts.deadline) == ("deadline.reminder", "information")
        assert title(data(kind="deadline.reminder", deadline="information")) == (
            "Komplettering: Kontaktbegäran ska kompletteras senast 2026-11-23 09:30"
        )
        assert title(data(kind="deadline.overdue", deadline="information")).startswith(
            "Försenad komplettering: Kontaktbegäran"
        )
        # Any other deadline keeps the general words.
        assert title(data(kind="deadline.reminder", deadline="answer")).startswith("Påminnelse")

    def test_a_late_action_is_escalated_to_a_coordinator_about_its_plan(self) -> None:
        payload = ReferralDeadlineV1(
            referral_id="p1", kind="sip_kallelse", unit_id="vx-soc", deadline="action_end",
            due_at=NOW, state="overdue", audience="coordinator", action_id="a1",
        )  # fmt: skip
        [facts] = facts_of(event_type=REFERRAL_DEADLINE_V1, payload=payload, own_orgnr=VAXJO)
        assert (facts.kind, facts.subject_type, facts.subject_id, facts.unit_id) == (
            "deadline.escalated",
            "plan",
            "p1",
            "vx-soc",
        )
        assert facts.referral_kind is None  # the title names a planned action, not a kind

    @pytest.mark.parametrize(
        ("deadline", "audience", "action_id"),
        [
            ("action_start", "actor", None),  # an action's deadline names the action
            ("answer", "actor", "a1"),  # and only an action's does
            ("discharge", "coordinator", None),  # coordinators: late actions, non-answers
        ],
    )
    def test_an_action_deadline_names_its_action_and_what_goes_to_coordinators(
        self, deadline: str, audience: str, action_id: str | None
    ) -> None:
        with pytest.raises(ValidationError, match=r"action|coordinators"):
            ReferralDeadlineV1(
                referral_id="p1", kind="sip_kallelse", unit_id="vx-soc", deadline=deadline,
                due_at=NOW, state="overdue", audience=audience, action_id=action_id,
            )  # fmt: skip

    def test_consent_ended_gives_one_item_per_own_unit_and_none_for_other_members(self) -> None:
        payload = ConsentEndedV1(
            consent_id="c1",
            owner_orgnr=REGION,
            reason="withdrawn",
            ended_at=NOW,
            parties=[
                ConsentPartyRef(orgnr=VAXJO, unit_id="a"),
                ConsentPartyRef(orgnr=VAXJO, unit_id="b"),
                ConsentPartyRef(orgnr=VAXJO),
                ConsentPartyRef(orgnr=REGION, unit_id="r"),
            ],
            purposes=["sip"],
            version=1,
        )
        items = facts_of(event_type=CONSENT_ENDED_V1, payload=payload, own_orgnr=VAXJO)
        assert sorted(str(f.unit_id) for f in items) == ["None", "a", "b"]

    @pytest.mark.parametrize(
        "value", ["191212121212", "19121212-1212", "121212-1212", "1212121212"]
    )
    def test_an_id_that_is_a_personnummer_is_refused(self, value: str) -> None:
        assert looks_like_personnummer(f"id-{value}")
        with pytest.raises(ValidationError):
            Facts(kind="referral.received", subject_type="referral", subject_id=value)

    @pytest.mark.parametrize("value", ["232100-0065", "ref-2026-000123", "1763872345"])
    def test_organisation_numbers_and_ordinary_ids_pass(self, value: str) -> None:
        assert not looks_like_personnummer(value)

    def test_uuids_are_never_taken_for_personnummer(self) -> None:
        """Digits inside a UUID's hex groups are not a number of their own (a benchmark once
        refused a random referral id whose last group held a valid number)."""
        rng = random.Random(6)
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(50_000)]
        ids.append("d988c4f7-9e59-4ed1-b462-a1912121212b")
        assert [i for i in ids if looks_like_personnummer(i)] == []
        assert looks_like_personnummer("pnr-191212121212")

    @pytest.mark.parametrize(
        "value",
        [
            # Random UUID4s whose first two groups read as a valid personnummer and a
            # samordningsnummer (2 in 3 million; `make bench` on 2026-11-24 lost a
            # notification to one: its event was dead-lettered as not notifiable).
            "19140525-0638-4aa5-b3b9-462d84860516",
            "19411184-4322-4f10-ab89-7926daf3cca6",
        ],
    )
    def test_a_uuid_whose_first_groups_read_as_a_personnummer_is_an_id(self, value: str) -> None:
        assert not looks_like_personnummer(value)
        assert not looks_like_personnummer(value.upper())
        facts = Facts(
            kind="referral.received", subject_type="referral", subject_id=value, unit_id=value
        )
        assert facts.subject_id == value
        # The same digits outside a UUID's shape are still refused.
        assert looks_like_personnummer(value[:13])
        assert looks_like_personnummer(f"id-{value[:13]}-x")


class TestRulesTable:
    def test_the_default_table_covers_every_event_notify_handles_and_the_timers(self) -> None:
        events = {r.event for r in NotifySettings().rules}
        assert set(HANDLED_EVENTS) | {"timer:remind", "timer:overdue", "timer:escalate"} == events

    def test_a_rule_without_the_inbox_or_with_an_unknown_recipient_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            NotifyRule(id="x", event="e", recipients=["unit"], channels=["email"])
        with pytest.raises(ValidationError):
            NotifyRule(id="x", event="e", recipients=["everyone"], channels=["inbox"])

    def test_rules_come_from_the_environment_as_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from shared.config import Settings

        rule = {
            "id": "r",
            "event": "se.vardkedja.x.y.v1",
            "recipients": ["role:socialchef"],
            "channels": ["inbox"],
        }
        monkeypatch.setenv("VK_NOTIFY__RULES", json.dumps([rule]))
        assert Settings().notify.rules == [NotifyRule.model_validate(rule)]


class TestTheHandover:
    def test_a_discharge_tells_the_task_s_unit_and_a_coordinator_about_its_plan(self) -> None:
        def told(audience: str, unplanned: bool) -> Facts:
            payload = ReferralDischargedV1(
                referral_id="t-1" if audience == "recipient" else "p-1",
                kind="utskrivningsplanering", unit_id="vx-soc", audience=audience,
                sender_orgnr=REGION, unplanned=unplanned, at=NOW,
            )  # fmt: skip
            [facts] = facts_of(event_type=REFERRAL_DISCHARGED_V1, payload=payload, own_orgnr=VAXJO)
            return facts

        task, plan = told("recipient", True), told("coordinator", False)
        assert (task.kind, task.subject_type, task.subject_id, task.status) == (
            "referral.discharged",
            "referral",
            "t-1",
            "unplanned",
        )
        assert (plan.subject_type, plan.subject_id, plan.counterpart_orgnr) == (
            "plan",
            "p-1",
            REGION,
        )
        assert title(task) == "Personen har skrivits ut (oplanerat): Utskrivningsplanering"
        assert title(plan) == "Personen har skrivits ut (planerat): Utskrivningsplanering"

    def test_a_document_added_later_tells_the_unit_its_type_never_its_title(self) -> None:
        payload = ReferralDocumentAddedV1(
            referral_id="t-1", kind="kontaktbegaran", unit_id="vx-soc", sender_orgnr=REGION,
            content_type="application/pdf", at=NOW,
        )  # fmt: skip
        [facts] = facts_of(event_type=REFERRAL_DOCUMENT_ADDED_V1, payload=payload, own_orgnr=VAXJO)
        assert (facts.kind, facts.subject_type, facts.subject_id, facts.unit_id) == (
            "referral.document_added",
            "referral",
            "t-1",
            "vx-soc",
        )
        assert facts.counterpart_orgnr == REGION
        assert title(facts) == "Ny bilaga till Kontaktbegäran i inkorgen"

    def test_the_sip_an_hvb_notification_owes_has_titles_of_its_own(self) -> None:
        def told(state: str) -> str:
            payload = ReferralDeadlineV1(
                referral_id="r-1", kind="hvb_underrattelse", unit_id="vx-soc", deadline="sip",
                due_at=NOW, state=state,
            )  # fmt: skip
            [facts] = facts_of(event_type=REFERRAL_DEADLINE_V1, payload=payload, own_orgnr=VAXJO)
            return title(facts)

        what = "Underrättelse om HVB-placering"
        assert told("near") == f"Påminnelse: kalla till SIP senast 2026-11-23 09:30 ({what})"
        assert told("overdue") == f"Försenad: ingen SIP kallad senast 2026-11-23 09:30 ({what})"
        escalated = data(
            kind="deadline.escalated", deadline="sip", referral_kind="hvb_underrattelse"
        )
        assert title(escalated) == f"Eskalering: ingen SIP kallad senast 2026-11-23 09:30 ({what})"


class TestTemplates:
    def test_titles_say_what_and_by_when_in_swedish_local_time(self) -> None:
        assert title(data()) == "Ny Kontaktbegäran i inkorgen"
        overdue = data(kind="deadline.overdue")
        assert (
            title(overdue) == "Försenad: Kontaktbegäran skulle ha hanterats senast 2026-11-23 09:30"
        )

    def test_the_email_says_where_by_when_and_links_without_ids(self) -> None:
        content = email_content(data(), unit_name="Socialtjänstens mottagning")
        assert "Inkorg: Socialtjänstens mottagning" in content.text
        assert "Senast: 2026-11-23 09:30" in content.text
        assert "ref-1" not in content.text
        message = email_message(content, sender="a@b.se", to="c@d.se", delivery_id="d1")
        assert message["Message-ID"] == "<d1@vardkedja.notify>"

    def test_the_webhook_body_is_the_standard_envelope(self) -> None:
        body = json.loads(webhook_body(data()))
        assert set(body) == {"type", "timestamp", "data"}
        assert body["data"]["subject_id"] == "ref-1"
        assert "status" not in body["data"]  # None fields are left out


class TestSecretsAndSignatures:
    def test_generated_secrets_are_accepted_and_short_ones_refused(self) -> None:
        check_secret(secret=generate_secret(), min_bytes=24)
        with pytest.raises(InvalidInput) as err:
            check_secret(secret="whsec_" + "QUJD", min_bytes=24)
        assert err.value.errors is not None
        assert err.value.errors[0].rule == "secret_too_short"

    def test_each_secret_signs_and_a_receiver_verifies_with_either(self) -> None:
        old, new = generate_secret(), generate_secret()
        body = webhook_body(data())
        header = signatures((new, old), "msg_1", NOW, body)
        assert len(header.split(" ")) == 2
        for secret in (old, new):
            assert Webhook(secret).sign("msg_1", NOW, body.decode()) in header.split(" ")

    def test_derived_ids_are_stable(self) -> None:
        assert derived_id("a", "b") == derived_id("a", "b") != derived_id("a", "c")

    def test_derived_ids_are_the_uuid5_ids_stored_before(self) -> None:
        # Ids already stored must be found again: the same UUIDv5 of the same namespace.
        namespace = uuid.UUID("5b0f8a52-52f8-4d5e-9b7e-6a0c2c1f4e11")
        rng = random.Random(6)
        for _ in range(500):
            parts = [
                "".join(rng.choice("abcåäö019-:\x1f ") for _ in range(rng.randint(0, 40)))
                for _ in range(rng.randint(1, 5))
            ]
            expected = uuid.uuid5(namespace, "\x1f".join(parts))
            assert derived_id(*parts) == str(expected)
            assert uuid.UUID(derived_id(*parts)).version == 5


class TestBackoff:
    def test_it_doubles_up_to_the_cap_with_jitter_between_half_and_all(self) -> None:
        for attempt, full in [(1, 5.0), (2, 10.0), (3, 20.0), (10, 60.0)]:
            for _ in range(50):
                assert full / 2 <= backoff(attempt, base=5.0, maximum=60.0) <= full
