"""Mint a local officer token for development: ``python -m services.intake.tokens --sub erik.lindberg
--org tekniska-verken --role officer``. Signed with INTAKE_JWT_SECRET (HS256)."""

from __future__ import annotations

import argparse

from services.intake.auth import Role, mint_token
from services.intake.settings import IntakeSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.tokens", description=__doc__)
    parser.add_argument("--sub", required=True, help="the person's id, e.g. erik.lindberg")
    parser.add_argument("--org", required=True, help="their organisation id, e.g. tekniska-verken")
    parser.add_argument("--role", default="officer", choices=[r.value for r in Role])
    parser.add_argument("--name", help="display name")
    parser.add_argument("--hours", type=float, default=8.0, help="validity (default 8 hours)")
    args = parser.parse_args(argv)
    print(
        mint_token(IntakeSettings(), sub=args.sub, org=args.org, role=Role(args.role), name=args.name, hours=args.hours)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
