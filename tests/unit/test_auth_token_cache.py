"""The verifier's cache of verified tokens: by exact token text, within exp/nbf, bounded."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.config import AuthSettings
from shared.identity.auth import TokenVerifier, mint_token
from shared.identity.auth import tokens as tokens_module
from shared.web.errors import Unauthorized

VAXJO = "212000-0647"


class CountingVerifier(TokenVerifier):
    """Counts the signature checks (``_decode``) behind ``verify``."""

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self.decoded = 0

    def _decode(self, token: str, alg: str, candidates: list[Any]) -> dict[str, Any]:
        self.decoded += 1
        return super()._decode(token, alg, candidates)


def token(**kwargs: Any) -> str:
    return mint_token(sub="user-42", org=VAXJO, scopes=["consent:read"], **kwargs)


class TestTheSameTokenIsVerifiedOnce:
    async def test_a_repeated_token_gives_the_same_caller_without_a_new_check(self) -> None:
        verifier = CountingVerifier(AuthSettings())
        t = token()
        first = await verifier.verify(t)
        again = await verifier.verify(t)
        assert again == first
        assert verifier.decoded == 1

    async def test_another_token_of_the_same_caller_is_checked(self) -> None:
        verifier = CountingVerifier(AuthSettings())
        await verifier.verify(token())
        await verifier.verify(token())  # another jti: another text
        assert verifier.decoded == 2

    async def test_a_tampered_copy_of_a_cached_token_is_refused(self) -> None:
        verifier = CountingVerifier(AuthSettings())
        t = token()
        await verifier.verify(t)
        head, body, signature = t.split(".")
        forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
        with pytest.raises(Unauthorized):
            await verifier.verify(forged)


class TestACachedTokenKeepsItsValidity:
    async def test_within_exp_and_the_cache_ttl_the_cache_answers(self) -> None:
        verifier = CountingVerifier(AuthSettings())
        t = token(ttl_seconds=600)
        await verifier.verify(t)
        soon = time.time() + tokens_module.TOKEN_CACHE_TTL_SECONDS / 2
        verifier._wall = lambda: soon
        await verifier.verify(t)
        assert verifier.decoded == 1

    async def test_past_exp_the_cache_does_not_answer(self) -> None:
        verifier = CountingVerifier(AuthSettings(leeway_seconds=0))
        t = token(ttl_seconds=30)  # expires before the cache's TTL would end the entry
        await verifier.verify(t)
        verifier._wall = lambda: time.time() + 31
        # The real clock says the token is still valid, so the new check passes; the point is
        # that the cache did not answer once its wall clock passed exp.
        await verifier.verify(t)
        assert verifier.decoded == 2

    async def test_before_nbf_the_cache_does_not_answer(self) -> None:
        verifier = CountingVerifier(AuthSettings(leeway_seconds=0))
        t = token()
        await verifier.verify(t)
        verifier._wall = lambda: time.time() - 3600  # a clock set back before iat
        await verifier.verify(t)
        assert verifier.decoded == 2

    async def test_an_entry_is_verified_again_after_the_cache_ttl(self) -> None:
        verifier = CountingVerifier(AuthSettings())
        t = token(ttl_seconds=3600)
        await verifier.verify(t)
        later = time.time() + tokens_module.TOKEN_CACHE_TTL_SECONDS + 1
        verifier._wall = lambda: later
        await verifier.verify(t)
        assert verifier.decoded == 2

    async def test_an_expired_token_is_never_cached(self) -> None:
        verifier = CountingVerifier(AuthSettings(leeway_seconds=0))
        t = token(
            ttl_seconds=1, now=tokens_module.datetime.now(tokens_module.UTC).replace(year=2020)
        )
        for _ in range(2):
            with pytest.raises(Unauthorized, match="token expired"):
                await verifier.verify(t)
        assert verifier.decoded == 2


class TestTheCacheIsBounded:
    async def test_at_most_the_configured_number_of_tokens_are_kept(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tokens_module, "TOKEN_CACHE_SIZE", 3)
        verifier = CountingVerifier(AuthSettings())
        ts = [token() for _ in range(5)]
        for t in ts:
            await verifier.verify(t)
        assert len(verifier._verified) == 3
        assert ts[-1] in verifier._verified
        assert ts[0] not in verifier._verified
        await verifier.verify(ts[0])  # dropped: checked again
        assert verifier.decoded == 6
