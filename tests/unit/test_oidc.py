"""The token verifier against a hand-written fake identity provider (discovery and JWKS over an in-memory HTTP
transport, keys made here): every way a token can be wrong, key rotation, and the provider going down."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.oidc import OidcSettings, ProviderUnavailable, TokenVerifier, Unauthenticated
from shared.principal import Role

ISSUER = "https://idp.example/realms/kiruna"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeProvider:
    """Discovery and JWKS of an OpenID provider; counts the JWKS fetches; can be taken down."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"k1": rsa_key()}
        self.jwks_fetches = 0
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"})
        if request.url.path.endswith("/certs"):
            self.jwks_fetches += 1
            keys = []
            for kid, key in self.keys.items():
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
            return httpx.Response(200, json={"keys": keys})
        return httpx.Response(404)

    def token(self, kid: str = "k1", key: rsa.RSAPrivateKey | None = None, **claims) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": "kiruna-innovation",
            "sub": "5357535b",
            "exp": now + 300,
            "iat": now,
            "preferred_username": "anna.svensson",
            "email": "Anna.Svensson@kiruna.se",
            "name": "Anna Svensson",
            "org": "kiruna-kommun",
            "unit": "kultur-och-fritid",
            "roles": ["employee", "officer", "default-roles-kiruna"],
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


def verifier_for(provider: FakeProvider, **settings) -> TokenVerifier:
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider.handle))
    return TokenVerifier(OidcSettings(issuer_url=ISSUER, **settings), http=http)


async def test_a_good_token_gives_the_principal(provider):
    principal = await verifier_for(provider).verify(provider.token())
    assert principal.id == "anna.svensson" and principal.email == "anna.svensson@kiruna.se"
    assert (principal.organisation, principal.unit) == ("kiruna-kommun", "kultur-och-fritid")
    assert principal.roles == {Role.EMPLOYEE, Role.OFFICER}  # unknown roles are left out
    assert principal.officer_of("kiruna-kommun") and not principal.officer_of("tekniska-verken")


def unsigned(claims: dict, header: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.token(exp=int(time.time()) - 120), "expired"),
        (lambda p: p.token(nbf=int(time.time()) + 600), "not yet valid"),
        (lambda p: p.token(iss="https://evil.example/realms/kiruna"), "issuer"),
        (lambda p: p.token(aud="another-app"), "audience"),
        (lambda p: p.token(exp=None), "exp"),
        (lambda p: p.token(key=rsa_key()), "Signature verification failed"),
        (lambda p: unsigned({"iss": ISSUER, "aud": "kiruna-innovation"}, {"alg": "none", "kid": "k1"}), "'none'"),
        (lambda p: p.token(kid="k9", key=rsa_key()), "key the identity provider does not publish"),
        (lambda p: "not-a-token", "not a JSON Web Token"),
    ],
)
async def test_a_wrong_token_is_refused_with_the_reason(provider, make, why):
    with pytest.raises(Unauthenticated) as refused:
        await verifier_for(provider).verify(make(provider))
    assert why in refused.value.detail


async def test_hs256_signed_with_the_providers_public_key_is_refused(provider):
    """The classic algorithm confusion: the public key (which anyone has) used as an HMAC secret."""
    public_pem = (
        provider.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = {"iss": ISSUER, "aud": "kiruna-innovation", "exp": int(time.time()) + 300, "sub": "x"}
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    signing_input = f"{unsigned(claims, header).rstrip('.')}".encode()
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    forged = signing_input.decode() + "." + signature.decode()
    with pytest.raises(Unauthenticated) as refused:
        await verifier_for(provider).verify(forged)
    assert "HS256" in refused.value.detail


async def test_a_rotated_key_is_fetched_but_made_up_key_ids_do_not_hammer_the_provider(provider):
    verifier = verifier_for(provider, jwks_refresh_s=3600)
    await verifier.verify(provider.token())
    assert provider.jwks_fetches == 1
    for n in range(20):
        with pytest.raises(Unauthenticated):
            await verifier.verify(provider.token(kid=f"made-up-{n}", key=rsa_key()))
    assert provider.jwks_fetches == 1  # the first unknown kid may not refresh within the interval

    fresh = verifier_for(provider, jwks_refresh_s=1)
    await fresh.verify(provider.token())
    provider.keys["k2"] = rsa_key()  # the provider rotates its key
    fresh._last_fetch -= 2  # the interval has passed
    principal = await fresh.verify(provider.token(kid="k2"))
    assert principal.id == "anna.svensson" and provider.jwks_fetches == 3


async def test_tokens_keep_working_while_the_provider_is_down_and_nothing_cached_is_a_503(provider):
    verifier = verifier_for(provider)
    await verifier.verify(provider.token())
    provider.down = True
    assert (await verifier.verify(provider.token())).id == "anna.svensson"
    with pytest.raises(ProviderUnavailable):
        await verifier_for(provider).verify(provider.token())


async def test_another_providers_claim_names_map_onto_the_principal(provider):
    """Microsoft Entra ID, say: the person in 'upn', the organisation in an extension claim, app roles."""
    token = provider.token(
        preferred_username=None,
        upn="erik.lindberg@tekniskaverken.kiruna.se",
        extension_org="tekniska-verken",
        roles=["officer"],
    )
    verifier = verifier_for(provider, claim_id="upn", claim_email="upn", claim_organisation="extension_org")
    principal = await verifier.verify(token)
    assert principal.id == "erik.lindberg@tekniskaverken.kiruna.se"
    assert principal.organisation == "tekniska-verken" and principal.has(Role.OFFICER, Role.EMPLOYEE)


async def test_a_verified_token_is_remembered_but_never_past_its_expiry(provider):
    verifier = verifier_for(provider, verified_cache_s=60)
    token = provider.token()
    first = await verifier.verify(token)
    provider.down = True  # remembered: no call to the provider, no second RSA check
    assert await verifier.verify(token) is first
    provider.down = False
    expires = int(time.time()) + 5
    short = provider.token(exp=expires)
    await verifier.verify(short)
    assert verifier._verified[short][1] <= expires  # remembered at most until the token expires
    verifier._verified[short] = (first, time.time() - 1)  # once that moment has passed, it is verified again
    assert (await verifier.verify(short)).id == "anna.svensson" and verifier._verified[short][1] > time.time()
