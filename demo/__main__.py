"""``python -m demo [--limit N] [--api-ideas K]``: load the demo history into the running platform (make demo).

Checks first that the platform answers (intake, analytics, Keycloak, Kafka) and says what does not; exits 2 then.
Ends with one summary line: ``demo: ideas=<n> events_published=<n> events_already_there=<n> api_ideas=<n> ...``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

import httpx

from demo.load import DemoLoader, PlatformNotRunning
from demo.plan import load_data, plan_history
from services.intake.settings import IntakeSettings
from shared.catalogue import load_catalogue

PASSWORD = "kiruna-local"  # the local realm's (deploy/keycloak/realm.py): make demo is for a local platform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--intake-url", default=os.environ.get("DEMO_INTAKE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--analytics-url", default=os.environ.get("DEMO_ANALYTICS_URL", "http://127.0.0.1:8003"))
    parser.add_argument("--issuer", default=os.environ.get("OIDC_ISSUER_URL", "http://127.0.0.1:8180/realms/kiruna"))
    parser.add_argument("--limit", type=int, default=None, help="load only the first N ideas of demo/ideas.toml")
    parser.add_argument("--api-ideas", type=int, default=6, help="recent open ideas sent through intake's API")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(run(args))
    except PlatformNotRunning as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


def tokens(issuer: str):
    cache: dict[str, str] = {}

    def token(username: str) -> str:
        if username not in cache:
            try:
                answer = httpx.post(
                    f"{issuer}/protocol/openid-connect/token",
                    data={
                        "grant_type": "password",
                        "client_id": "kiruna-cli",
                        "username": username,
                        "password": PASSWORD,
                    },
                    timeout=30,
                )
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise PlatformNotRunning(
                    f"Keycloak at {issuer} gave no token for {username} ({exc!r}): is the platform running "
                    "(make run), and is it the local realm?"
                ) from exc
            cache[username] = answer.json()["access_token"]
        return cache[username]

    return token


async def check_running(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for name, url in (("intake", args.intake_url), ("analytics", args.analytics_url)):
            try:
                ready = await http.get(f"{url}/readyz")
            except httpx.HTTPError as exc:
                raise PlatformNotRunning(
                    f"the platform is not running: {name} does not answer at {url}/readyz ({type(exc).__name__}). "
                    "Start it with 'make run' (make status shows what runs), then 'make demo' again."
                ) from exc
            if ready.status_code != 200:
                raise PlatformNotRunning(
                    f"{name} at {url} is not ready ({ready.status_code}: {ready.text[:200]}); wait for it "
                    "(make status) and run 'make demo' again"
                )


async def run(args: argparse.Namespace):
    await check_running(args)
    settings = IntakeSettings()
    token = tokens(args.issuer)
    token("anna.svensson")  # Keycloak answers (a clear error now rather than halfway through)
    data = load_data()
    ideas = data.ideas[: args.limit] if args.limit else data.ideas
    plans = plan_history(
        data,
        load_catalogue(settings.catalogue_path),
        datetime.now(UTC),
        api_ideas=args.api_ideas,
        titles={i["title"] for i in ideas},
    )
    async with httpx.AsyncClient(base_url=args.intake_url, timeout=30) as intake:
        loader = DemoLoader(settings, intake=intake, token=token)
        try:
            return await loader.load(plans)
        finally:
            await loader.close()


if __name__ == "__main__":
    sys.exit(main())
