"""The realm ``kiruna`` that deploy/compose.yaml's Keycloak imports on its first start: the local realm
(deploy/keycloak/kiruna-realm.json, generated from the catalogue) with what is local in it replaced by Keycloak's
environment placeholders, which Keycloak resolves from its own environment when it imports the file:

- the web client's secret is ``${OIDC_CLIENT_SECRET}`` (the same value the services are given);
- the web client sends people back only to ``${PUBLIC_URL}`` (the gateway) after sign-in and sign-out;
- every person's first password is ``${KEYCLOAK_INITIAL_PASSWORD}``, to be changed at the first sign-in.

    python deploy/compose/keycloak/realm.py write    # regenerate deploy/compose/keycloak/kiruna-realm.json
    python deploy/compose/keycloak/realm.py check    # exit 1 when it is not in step with the local realm
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOCAL_REALM = HERE.parents[1] / "keycloak" / "kiruna-realm.json"
COMPOSE_REALM = HERE / "kiruna-realm.json"
WEB_CLIENT = "kiruna-web"
PLACEHOLDERS = ("OIDC_CLIENT_SECRET", "PUBLIC_URL", "KEYCLOAK_INITIAL_PASSWORD")


def compose_realm(local: dict[str, Any]) -> dict[str, Any]:
    """The local realm with its development secret, local addresses and shared password replaced."""
    realm = copy.deepcopy(local)
    web = [client for client in realm["clients"] if client["clientId"] == WEB_CLIENT]
    if len(web) != 1:
        raise ValueError(f"the local realm has {len(web)} clients {WEB_CLIENT!r}, expected one")
    client = web[0]
    client["secret"] = "${OIDC_CLIENT_SECRET}"
    client["redirectUris"] = ["${PUBLIC_URL}/auth/callback"]
    client["webOrigins"] = ["+"]
    client.setdefault("attributes", {})["post.logout.redirect.uris"] = "${PUBLIC_URL}/*"
    for user in realm.get("users", []):
        user["credentials"] = [{"type": "password", "value": "${KEYCLOAK_INITIAL_PASSWORD}", "temporary": True}]
        user["requiredActions"] = sorted({*user.get("requiredActions", []), "UPDATE_PASSWORD"})
    return realm


def rendered() -> str:
    return json.dumps(compose_realm(json.loads(LOCAL_REALM.read_text())), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("write", "check"))
    args = parser.parse_args(argv)
    if args.command == "write":
        COMPOSE_REALM.write_text(rendered())
        print(f"wrote {COMPOSE_REALM}")
        return 0
    if not COMPOSE_REALM.exists() or COMPOSE_REALM.read_text() != rendered():
        print(f"{COMPOSE_REALM} is not in step with {LOCAL_REALM}: run python {__file__} write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
