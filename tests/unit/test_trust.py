"""The federation's trust (ADR 0020): keys, the trust list, signatures, seals, and failing
closed where the deployment is not declared."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from shared.config import ProductionConfigError, Settings, check_production
from shared.messaging.events import CloudEvent, encode, topics
from shared.messaging.trust import (
    SEALED_CONTENT_TYPE,
    SIGNATURE_HEADER,
    Trust,
    Untrusted,
    member_trust,
    trust_in,
)
from shared.messaging.trust_keys import (
    TrustConfigError,
    TrustList,
    create_member,
    ensure_members,
    rotate_member,
)

REGION, VAXJO, ALVESTA = "232100-0065", "212000-0647", "212000-0613"
PNR = "199001012389"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    ensure_members(tmp_path, [(REGION, "Region"), (VAXJO, "Växjö"), (ALVESTA, "Alvesta")])
    return tmp_path


def _event(sender: str = "2321000065", **data: object) -> CloudEvent:
    return CloudEvent(
        source=f"urn:vardkedja:{sender}:referral",
        type="se.vardkedja.referral.sent.v1",
        subject="task-1",
        partitionkey="task-1",
        data=data or {"personnummer": PNR},
    )


def _protect(trust: Trust, event: CloudEvent, topic: str) -> tuple[bytes | None, bytes, list]:
    key, body, headers = encode(event)
    body, headers = trust.protect(topic, key, body, headers, event_id=event.id, source=event.source)
    return key, body, headers


class TestSealAndSign:
    def test_a_members_data_is_sealed_and_only_its_recipient_opens_it(self, keys: Path) -> None:
        region, vaxjo = trust_in(keys, REGION), trust_in(keys, VAXJO)
        topic = topics.inbound(VAXJO)
        key, body, headers = _protect(region, _event(), topic)
        assert PNR.encode() not in body
        assert dict(headers)["content-type"] == SEALED_CONTENT_TYPE.encode()
        assert json.loads(vaxjo.admit(topic, key, body, headers)) == {"personnummer": PNR}
        with pytest.raises(Untrusted) as info:
            trust_in(keys, ALVESTA).admit(topic, key, body, headers)
        assert info.value.rule == "cannot_open"

    def test_the_broadcast_topic_stays_plain_but_signed(self, keys: Path) -> None:
        region = trust_in(keys, REGION)
        key, body, headers = _protect(region, _event(name="unit"), topics.DIRECTORY)
        assert json.loads(body) == {"name": "unit"}
        assert SIGNATURE_HEADER in dict(headers)
        assert trust_in(keys, ALVESTA).admit(topics.DIRECTORY, key, body, headers) == body

    @pytest.mark.parametrize(
        ("change", "rule"),
        [
            ("no_signature", "bad_signature"),
            ("forged_source", "unknown_key"),
            ("not_a_member", "sender_not_member"),
            ("tampered_body", "bad_signature"),
            ("tampered_subject", "bad_signature"),
            ("tampered_key", "bad_signature"),
            ("replayed_elsewhere", "wrong_destination"),
            ("unsealed", "not_sealed"),
            ("sealed_body_of_another_event", "cannot_open"),
        ],
    )
    def test_a_record_that_does_not_check_out_is_refused_with_its_rule(
        self, keys: Path, change: str, rule: str
    ) -> None:
        region, vaxjo = trust_in(keys, REGION), trust_in(keys, VAXJO)
        topic = topics.inbound(VAXJO)
        key, body, headers = _protect(region, _event(), topic)
        read_from = topic

        def replace(name: str, value: bytes) -> list[tuple[str, bytes]]:
            return [(k, value if k == name else v) for k, v in headers]

        if change == "no_signature":
            headers = [(k, v) for k, v in headers if k != SIGNATURE_HEADER]
        elif change == "forged_source":  # Region's signature, Alvesta named as sender
            headers = replace("ce_source", b"urn:vardkedja:2120000613:referral")
        elif change == "not_a_member":
            headers = replace("ce_source", b"urn:vardkedja:5560360793:referral")
        elif change == "tampered_body":
            body = body[:-4] + b"AAAA"
        elif change == "tampered_subject":
            headers = replace("ce_subject", b"task-2")
        elif change == "tampered_key":
            key = b"task-2"
        elif change == "replayed_elsewhere":  # Region's event to Växjö, put on Alvesta's
            read_from = topics.inbound(ALVESTA)
        elif change == "unsealed":  # signed properly by Region, but in clear
            plain_key, plain, plain_headers = encode(_event())
            signature = region.sign(plain_headers, plain_key, plain, topic)
            key, body = plain_key, plain
            headers = [*plain_headers, (SIGNATURE_HEADER, signature)]
        elif change == "sealed_body_of_another_event":
            # Region signs, as itself, a body that Alvesta sealed for Växjö in another
            # event: the seal names that event, so it does not open here.
            other = _event("2120000613")
            _k, other_body, _h = _protect(trust_in(keys, ALVESTA), other, topic)
            plain_key, _plain, plain_headers = encode(_event())
            plain_headers = [
                (k, SEALED_CONTENT_TYPE.encode() if k == "content-type" else v)
                for k, v in plain_headers
            ]
            key, body = plain_key, other_body
            headers = [
                *plain_headers,
                (SIGNATURE_HEADER, region.sign(plain_headers, key, body, topic)),
            ]
        reader = vaxjo if read_from == topic else trust_in(keys, ALVESTA)
        with pytest.raises(Untrusted) as info:
            reader.admit(read_from, key, body, headers)
        assert info.value.rule == rule
        assert PNR not in str(info.value)


class TestKeys:
    def test_keys_new_refuses_to_overwrite_and_writes_the_private_file_for_its_owner_only(
        self, tmp_path: Path
    ) -> None:
        path = create_member(tmp_path, REGION, "Region Kronoberg")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        listed = json.loads((tmp_path / "trust-list.json").read_text())
        assert all("d" not in key for m in listed["members"] for key in m["keys"])
        with pytest.raises(TrustConfigError):
            create_member(tmp_path, REGION, "Region Kronoberg")

    def test_after_a_rotation_old_events_verify_during_the_overlap_and_not_after(
        self, keys: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        topic = topics.inbound(VAXJO)
        key, body, headers = _protect(trust_in(keys, REGION), _event(), topic)
        rotate_member(keys, REGION, overlap=dt.timedelta(days=7))
        rotate_member(keys, VAXJO, overlap=dt.timedelta(days=7))
        vaxjo = trust_in(keys, VAXJO)
        assert json.loads(vaxjo.admit(topic, key, body, headers))["personnummer"] == PNR
        # New events use the new keys.
        key2, body2, headers2 = _protect(trust_in(keys, REGION), _event(), topic)
        assert dict(headers2)[SIGNATURE_HEADER] != dict(headers)[SIGNATURE_HEADER]
        assert vaxjo.admit(topic, key2, body2, headers2)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
        monkeypatch.setattr("shared.messaging.trust_keys._now", lambda: later)
        with pytest.raises(Untrusted) as info:
            vaxjo.admit(topic, key, body, headers)
        assert info.value.rule == "retired_key"
        assert vaxjo.admit(topic, key2, body2, headers2)

    @pytest.mark.parametrize(
        "broken",
        ["private_key_in_list", "no_enc_key", "kid_twice", "bad_orgnr", "wrong_curve"],
    )
    def test_an_invalid_trust_list_is_refused(self, keys: Path, broken: str) -> None:
        document = json.loads((keys / "trust-list.json").read_text())
        member = document["members"][0]
        if broken == "private_key_in_list":
            own = json.loads((keys / f"{member['orgnr'].replace('-', '')}.keys.json").read_text())
            member["keys"] = own["keys"]
        elif broken == "no_enc_key":
            member["keys"] = [k for k in member["keys"] if k["use"] != "enc"]
        elif broken == "kid_twice":
            document["members"][1]["keys"][0]["kid"] = member["keys"][0]["kid"]
        elif broken == "bad_orgnr":
            member["orgnr"] = "232100-0066"
        elif broken == "wrong_curve":
            member["keys"][0]["use"] = "enc"
            member["keys"][1]["use"] = "sig"
        with pytest.raises(ValueError):  # noqa: PT011 - each broken rule has its own message
            TrustList.parse(document)

    def test_a_process_without_trust_refuses_to_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("VK_TRUST__DIR", raising=False)
        settings = Settings.model_validate(
            {"env": "development", "trust": {"dir": str(tmp_path / "none")}}
        )
        with pytest.raises(TrustConfigError):
            member_trust(settings)
        bare = Settings.model_validate({"env": "development", "trust": {}})
        with pytest.raises(TrustConfigError, match="vardkedja keys new"):
            member_trust(bare)

    def test_a_member_whose_keys_are_not_in_the_trust_list_refuses_to_start(
        self, keys: Path, tmp_path: Path
    ) -> None:
        other = tmp_path / "other"
        create_member(other, REGION, "Region")  # its own list; not the federation's
        (keys / "2321000065.keys.json").write_text((other / "2321000065.keys.json").read_text())
        with pytest.raises(TrustConfigError, match="not in the trust list"):
            trust_in(keys, REGION)


class TestFailClosed:
    def test_the_development_token_key_is_trusted_only_where_vk_env_says_so(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("VK_ENV", raising=False)
        assert not Settings().auth.allow_dev_key
        assert Settings(env="development").auth.allow_dev_key
        assert not Settings(env="production").auth.allow_dev_key
        monkeypatch.setenv("VK_ENV", "development")
        assert Settings().auth.allow_dev_key

    def test_the_package_carries_no_key(self) -> None:
        root = Path(__file__).resolve().parents[2]
        for package in ("shared", "services", "vardkedja"):
            found = [
                p
                for p in (root / package).rglob("*")
                if p.suffix in (".pem", ".key") or p.name.endswith(".keys.json")
            ]
            assert found == [], f"key material in the package: {found}"

    def test_a_container_without_vk_env_refuses_to_start(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("VK_ENV", raising=False)
        monkeypatch.setenv("container", "podman")
        with pytest.raises(ProductionConfigError, match="VK_ENV is not set"):
            check_production(Settings())
        check_production(Settings(env="development"))
        monkeypatch.delenv("container")
        if not os.path.exists("/.dockerenv"):
            check_production(Settings())


def test_a_rotated_trust_list_is_read_without_a_restart(keys: Path) -> None:
    """A member rotates; the others' processes (member_trust, as the inbox asks it for every
    record) verify its new key as soon as their trust list file is updated."""
    settings = Settings.model_validate(
        {
            "env": "test",
            "member": {"orgnr": VAXJO, "name": "Växjö", "kind": "kommun"},
            "trust": {"dir": str(keys)},
        }
    )
    before = member_trust(settings)
    rotate_member(keys, REGION, overlap=dt.timedelta(days=1))
    topic = topics.inbound(VAXJO)
    key, body, headers = _protect(trust_in(keys, REGION), _event(), topic)
    with pytest.raises(Untrusted) as info:
        before.admit(topic, key, body, headers)
    assert info.value.rule == "unknown_key"
    assert json.loads(member_trust(settings).admit(topic, key, body, headers))
