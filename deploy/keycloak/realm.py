"""The local Keycloak realm ``kiruna``, kept in step with the catalogue (the catalogue says who is an officer where).

    python deploy/keycloak/realm.py write            # regenerate deploy/keycloak/kiruna-realm.json from the catalogue
    python deploy/keycloak/realm.py check            # exit 1 when the committed realm file is not the catalogue's
    python deploy/keycloak/realm.py sync [--url U]   # bring a running Keycloak's officers in step (admin REST API)

LOCAL ONLY: every user's password is ``kiruna-local`` and the clients' secrets are development values. A real
deployment points ``OIDC_ISSUER_URL`` at the group's own identity provider and never imports this realm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from shared.catalogue import Catalogue, load_catalogue

REALM = "kiruna"
REALM_FILE = Path(__file__).with_name("kiruna-realm.json")
PASSWORD = "kiruna-local"
AUDIENCE = "kiruna-innovation"
WEB_CLIENT_SECRET = "kiruna-web-local-secret"
ROLES = ("employee", "officer", "innovation-office", "admin")
# Where the pages may send people back after sign-in: the proxy (8080), the services' own ports, and the
# proxy the browser tests start (18080).
WEB_ORIGINS = tuple(f"http://{host}:{port}" for host in ("127.0.0.1", "localhost") for port in (8080, 18080))
WEB_ORIGINS += tuple(f"http://127.0.0.1:{port}" for port in (8000, 8001, 8002, 8003))
# Plain employees of the local realm (officers come from the catalogue).
EMPLOYEES = (
    {
        "username": "anna.svensson",
        "name": "Anna Svensson",
        "email": "anna.svensson@kiruna.se",
        "org": "kiruna-kommun",
        "unit": "kultur-och-fritid",
    },
    {
        "username": "per.niemi",
        "name": "Per Niemi",
        "email": "per.niemi@kirunabostader.se",
        "org": "kirunabostader",
        "unit": "forvaltning",
    },
)
ADMIN = {
    "username": "admin",
    "name": "Plattformens administratör",
    "email": "admin@kiruna.se",
    "org": "innovationsplattformen",
    "unit": None,
}
TRIAGE_ROLE_ORGANISATION = "innovationsplattformen"


def officer_users(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The catalogue's officers as realm users: the innovation office's with that role, the others as officers."""
    return [
        user(
            officer.id,
            officer.name,
            officer.email,
            officer.organisation,
            officer.unit,
            ("employee", "innovation-office" if officer.organisation == TRIAGE_ROLE_ORGANISATION else "officer"),
        )
        for officer in catalogue.officers
    ]


def user(username: str, name: str, email: str, org: str, unit: str | None, roles: tuple[str, ...]) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    attributes = {"org": [org]} | ({"unit": [unit]} if unit else {})
    return {
        "username": username,
        "enabled": True,
        "email": email,
        "emailVerified": True,
        "firstName": first,
        "lastName": last,
        "attributes": attributes,
        "realmRoles": list(roles),
        "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
    }


def mapper(name: str, kind: str, **config: str) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": "openid-connect",
        "protocolMapper": kind,
        "consentRequired": False,
        "config": config,
    }


def mappers() -> list[dict[str, Any]]:
    """The claims every token carries: the audience, the person's organisation, unit and roles."""
    claim = {"access.token.claim": "true", "id.token.claim": "true", "userinfo.token.claim": "true"}
    return [
        mapper(
            "audience",
            "oidc-audience-mapper",
            **{"included.custom.audience": AUDIENCE, "access.token.claim": "true", "id.token.claim": "false"},
        ),
        mapper(
            "org",
            "oidc-usermodel-attribute-mapper",
            **{"user.attribute": "org", "claim.name": "org", "jsonType.label": "String"},
            **claim,
        ),
        mapper(
            "unit",
            "oidc-usermodel-attribute-mapper",
            **{"user.attribute": "unit", "claim.name": "unit", "jsonType.label": "String"},
            **claim,
        ),
        mapper(
            "roles",
            "oidc-usermodel-realm-role-mapper",
            **{"claim.name": "roles", "multivalued": "true", "jsonType.label": "String"},
            **claim,
        ),
    ]


def user_profile() -> dict[str, Any]:
    """Keycloak's declarative user profile: the default attributes plus ``org`` and ``unit``, which only an
    administrator (or this script) may change."""
    admin_only = {"view": ["admin", "user"], "edit": ["admin"]}
    both = {"view": ["admin", "user"], "edit": ["admin", "user"]}
    return {
        "attributes": [
            {"name": "username", "displayName": "${username}", "permissions": both, "validations": {}},
            {
                "name": "email",
                "displayName": "${email}",
                "required": {"roles": ["user"]},
                "permissions": both,
                "validations": {"email": {}},
            },
            {"name": "firstName", "displayName": "${firstName}", "permissions": both, "validations": {}},
            {"name": "lastName", "displayName": "${lastName}", "permissions": both, "validations": {}},
            {"name": "org", "displayName": "Organisation", "permissions": admin_only, "validations": {}},
            {"name": "unit", "displayName": "Unit", "permissions": admin_only, "validations": {}},
        ],
        "groups": [],
    }


def realm(catalogue: Catalogue) -> dict[str, Any]:
    users = officer_users(catalogue)
    users += [user(**e, roles=("employee",)) for e in EMPLOYEES]
    users.append(user(**ADMIN, roles=("employee", "admin")))
    return {
        "realm": REALM,
        "displayName": "Kirunas innovationsplattform (lokal)",
        "enabled": True,
        "sslRequired": "external",
        "registrationAllowed": False,
        "loginWithEmailAllowed": True,
        "internationalizationEnabled": True,
        "supportedLocales": ["sv", "en"],
        "defaultLocale": "sv",
        "accessTokenLifespan": 900,
        "ssoSessionIdleTimeout": 28800,
        "ssoSessionMaxLifespan": 36000,
        "bruteForceProtected": True,
        "roles": {"realm": [{"name": role, "description": f"Kiruna innovation platform: {role}"} for role in ROLES]},
        "requiredActions": [],
        "components": {
            "org.keycloak.userprofile.UserProfileProvider": [
                {
                    "providerId": "declarative-user-profile",
                    "subComponents": {},
                    "config": {"kc.user.profile.config": [json.dumps(user_profile())]},
                }
            ]
        },
        "clients": [
            {
                "clientId": "kiruna-web",
                "name": "Kirunas innovationsplattform (webb)",
                "enabled": True,
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": WEB_CLIENT_SECRET,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "implicitFlowEnabled": False,
                "serviceAccountsEnabled": False,
                "redirectUris": [f"{origin}/auth/callback" for origin in WEB_ORIGINS],
                "webOrigins": ["+"],
                "attributes": {
                    "pkce.code.challenge.method": "S256",
                    "post.logout.redirect.uris": "##".join(f"{origin}/*" for origin in WEB_ORIGINS),
                },
                "protocolMappers": mappers(),
            },
            {
                "clientId": "kiruna-cli",
                "name": "Kirunas innovationsplattform (kommandorad och tester, bara lokalt)",
                "enabled": True,
                "publicClient": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": True,
                "implicitFlowEnabled": False,
                "protocolMappers": mappers(),
            },
        ],
        "users": users,
    }


def render(catalogue: Catalogue) -> str:
    return json.dumps(realm(catalogue), indent=2, ensure_ascii=False) + "\n"


class Admin:
    """Keycloak's admin REST API, signed in as the master realm's administrator."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = httpx.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password},
            timeout=30,
        )
        token.raise_for_status()
        self.http = httpx.Client(
            base_url=f"{self.url}/admin/realms/{REALM}",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def find(self, username: str) -> dict[str, Any] | None:
        found = self.http.get("/users", params={"username": username, "exact": "true"})
        found.raise_for_status()
        return next(iter(found.json()), None)

    def roles_of(self, user_id: str) -> set[str]:
        answer = self.http.get(f"/users/{user_id}/role-mappings/realm")
        answer.raise_for_status()
        return {role["name"] for role in answer.json()}

    def set_roles(self, user_id: str, wanted: set[str]) -> tuple[set[str], set[str]]:
        have = self.roles_of(user_id) & set(ROLES)
        add, remove = wanted - have, have - wanted
        for method, names in (("POST", add), ("DELETE", remove)):
            if names:
                body = [self.http.get(f"/roles/{name}").json() for name in sorted(names)]
                self.http.request(method, f"/users/{user_id}/role-mappings/realm", json=body).raise_for_status()
        return add, remove


def sync(catalogue: Catalogue, admin: Admin) -> dict[str, int]:
    """Create missing officers, update changed ones, and take the officer roles from users the catalogue no
    longer names. Idempotent: a second run changes nothing."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "demoted": 0}
    officers = officer_users(catalogue)
    for wanted in officers:
        existing = admin.find(wanted["username"])
        if existing is None:
            admin.http.post("/users", json=wanted).raise_for_status()
            created = admin.find(wanted["username"])
            assert created is not None
            admin.set_roles(created["id"], set(wanted["realmRoles"]))
            print(f"created {wanted['username']} ({wanted['attributes']['org'][0]})")
            counts["created"] += 1
            continue
        fields = ("email", "firstName", "lastName", "attributes")
        changed = {k: wanted[k] for k in fields if existing.get(k) != wanted[k]}
        added, removed = admin.set_roles(existing["id"], set(wanted["realmRoles"]))
        if changed:
            admin.http.put(f"/users/{existing['id']}", json={**existing, **changed}).raise_for_status()
        if changed or added or removed:
            print(f"updated {wanted['username']}: {sorted(changed) + sorted(added | removed)}")
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    names = {o["username"] for o in officers}
    for role in ("officer", "innovation-office"):
        members = admin.http.get(f"/roles/{role}/users", params={"max": 1000})
        members.raise_for_status()
        for member in members.json():
            if member["username"] not in names:
                admin.set_roles(member["id"], admin.roles_of(member["id"]) & set(ROLES) - {role})
                print(f"demoted {member['username']}: no longer an officer in the catalogue")
                counts["demoted"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("write", "check", "sync"))
    parser.add_argument("--catalogue", default=os.environ.get("CATALOGUE_PATH"), help="catalogue file")
    parser.add_argument("--url", default=os.environ.get("KEYCLOAK_URL", "http://127.0.0.1:8180"))
    parser.add_argument("--admin", default=os.environ.get("KEYCLOAK_ADMIN", "admin"))
    parser.add_argument("--password", default=os.environ.get("KEYCLOAK_ADMIN_PASSWORD", PASSWORD))
    args = parser.parse_args(argv)
    catalogue = load_catalogue(args.catalogue) if args.catalogue else load_catalogue()
    if args.command == "write":
        REALM_FILE.write_text(render(catalogue), encoding="utf-8")
        print(f"wrote {REALM_FILE} ({len(catalogue.officers)} officers from the catalogue)")
    elif args.command == "check":
        if REALM_FILE.read_text(encoding="utf-8") != render(catalogue):
            print(f"{REALM_FILE} is not the catalogue's: run 'python deploy/keycloak/realm.py write'", file=sys.stderr)
            return 1
        print(f"{REALM_FILE} matches the catalogue")
    else:
        try:
            counts = sync(catalogue, Admin(args.url, args.admin, args.password))
        except httpx.HTTPError as exc:
            print(f"keycloak: cannot sync the officers with {args.url}: {exc}", file=sys.stderr)
            return 1
        print("officers in step with the catalogue: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
