"""A referral's content is one value object from the API, through the event, to the rows:
every copy goes through it, and the rows, the event and the API agree on its fields."""

from __future__ import annotations

import datetime as dt

from services.referral.models import Incoming, Referral
from services.referral.schemas import ReferralCreate
from shared.domain.content import ReferralContent
from shared.messaging.events.payloads import ReferralSentV1

CREATE = {
    "kind": "kontaktbegaran",
    "person": {"personnummer": "19121212-1212"},
    "needs": ["boendestod", "sysselsattning"],
    "summary": "Utskrivs inom två veckor.",
    "urgency": "urgent",
    "children_in_household": "no",
    "persons_wish": "Nära min mamma.",
    "attachments": [{"title": "Epikris", "reference": "urn:doc:1"}],
    "resolve": {"kommunkod": "0764"},
    "kontaktbegaran": {"kommunkod": "0764"},
}


def test_the_rows_keep_every_field_of_the_content() -> None:
    for model in (Referral, Incoming):
        columns = set(model.__table__.columns.keys())
        assert set(ReferralContent.FIELDS) <= columns, model.__name__
    assert set(ReferralContent.FIELDS) == set(ReferralContent.model_fields)


def test_the_event_is_the_content_with_its_parties() -> None:
    assert issubclass(ReferralSentV1, ReferralContent)


def test_the_api_makes_the_content_with_the_kinds_block_as_details() -> None:
    content = ReferralCreate.model_validate(CREATE).content()
    assert content.kind == "kontaktbegaran"
    assert content.needs == ["boendestod", "sysselsattning"]
    assert content.urgency == "urgent"
    assert content.children_in_household == "no"
    assert content.details == {"kommunkod": "0764"}
    assert content.attachments == [{"title": "Epikris", "reference": "urn:doc:1"}]
    assert content.drug_free is None


def test_a_copy_through_a_row_and_an_event_is_the_same_content() -> None:
    content = ReferralCreate.model_validate(CREATE).content()
    row = Referral(**content.columns())
    assert ReferralContent.of(row) == content
    event = ReferralSentV1.model_validate(
        {
            **content.columns(),
            "task_id": "t-1",
            "referral_id": "r-1",
            "sender_orgnr": "232100-0016",
            "sender_unit_id": "u-1",
            "recipient_orgnr": "212000-0142",
            "recipient_unit_id": "u-2",
            "person": {"personnummer": "191212121212"},
            "basis": {"kind": "same_member"},
            "acknowledge_by": dt.date(2026, 12, 10),
            "sent_at": dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC),
        }
    )
    assert ReferralContent.of(event) == content
    assert ReferralContent.of(Incoming(**ReferralContent.of(event).columns())) == content


def test_a_forward_changes_only_what_it_names() -> None:
    content = ReferralCreate.model_validate(CREATE).content()
    forwarded = ReferralContent.of(content, details={"kommunkod": "0780"})
    assert forwarded.details == {"kommunkod": "0780"}
    assert forwarded.model_dump(exclude={"details"}) == content.model_dump(exclude={"details"})
