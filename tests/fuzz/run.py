"""``python -m tests.fuzz.run`` (``make fuzz``): the four services as real processes on their own topics, then

1. random bytes and mangled CloudEvents into every topic they consume (each must reach ``<topic>.dlq``, every
   consumer must stay alive and ready; events of people whose key is gone must be handled, never dead-lettered):
   :mod:`tests.fuzz.records`;
2. XSS payloads through the real doors, every page that shows user text rendered in Chromium: :mod:`tests.fuzz.xss`
   (before the API's thousands of ideas, which would keep the payloads' notifications waiting behind them);
3. schemathesis against each service's OpenAPI document, without a token and with an employee's, an officer's and
   an administrator's, until at least ``--requests`` requests were sent: :mod:`tests.fuzz.api`.

It ends with ``fuzz_cases=<n> fivexx=<n> schema_violations=<n> scripts_run=<n>`` and exits non-zero when any of the
last three is not 0, or a bad record was not dead-lettered, or a service died. Kafka, Redis and Keycloak must answer
(``deploy/fuzz.sh`` starts them when they do not)."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import logging
import signal
import sys
import time

from tests.fuzz import api, records, stack, xss
from tests.support import identity

SHOWN = 25  # findings printed in full per kind; the rest are counted


def say(message: str) -> None:
    print(f"fuzz: {message}", flush=True)


def identities() -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "employee": identity.bearer(identity.ANNA),
        "officer": identity.bearer(identity.ERIK),
        "admin": identity.bearer(identity.ADMIN),
    }


def fuzz_one(name: str, url: str, who: dict[str, dict[str, str]], examples: int) -> api.Findings:
    findings = api.Findings()
    api.fuzz_service(name, url, who, examples, findings, progress=say)
    return findings


def grouped(lines: list[str]) -> list[str]:
    """Findings of the same operation, status and kind counted once each, with how often they occurred and the
    first of them in full (the request's path and the answer's body)."""
    counts: collections.Counter = collections.Counter()
    first: dict[str, str] = {}
    for line in lines:
        head, _, _ = line.partition(": ")
        title = line.split(": ", 2)[1] if line.count(": ") >= 2 else ""
        key = f"{head}: {title}"
        counts[key] += 1
        first.setdefault(key, line)
    return [f"{count:6d} x {key}\n            e.g. {first[key][:400]}" for key, count in counts.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="generated API requests at least (10,000)")
    parser.add_argument("--examples", type=int, default=55, help="cases per operation, identity and mode per pass")
    parser.add_argument("--max-passes", type=int, default=4)
    parser.add_argument("--skip", action="append", default=[], choices=["records", "api", "pages"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the services and delete the topics on the way out
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    failed: list[str] = []
    cases = fivexx = violations = scripts = 0

    with stack.running() as platform:
        say(f"services up on topic prefix {platform.prefix} in {time.monotonic() - started:.0f}s: {platform.urls}")

        if "records" not in args.skip:
            t0 = time.monotonic()
            outcome = records.fuzz_topics(platform.kafka, platform.urls, platform.alive)
            cases += outcome.produced
            say(
                f"topics: {outcome.produced} bad records into every consumed topic; {outcome.dead_lettered} of "
                f"{outcome.expected} (record, reader) dead-lettered; {outcome.tolerated} odd but readable ones "
                f"tolerated; {outcome.handled - len(outcome.wrongly_dead_lettered)} of {outcome.handled} (record, "
                "reader) with people whose key is gone handled, not dead-lettered; consumers alive: "
                f"{not outcome.dead_consumers} ({time.monotonic() - t0:.0f}s)"
            )
            for line in outcome.missing[:SHOWN]:
                say(f"  NOT DEAD-LETTERED {line}")
            for line in outcome.wrongly_dead_lettered[:SHOWN]:
                say(f"  DEAD-LETTERED, BUT SHOULD READ AS ERASED {line}")
            if outcome.missing:
                failed.append(f"{len(outcome.missing)} bad records not dead-lettered")
            if outcome.wrongly_dead_lettered:
                failed.append(f"{len(outcome.wrongly_dead_lettered)} records of erased people dead-lettered")
            if outcome.dead_consumers:
                failed.append(f"not alive and ready after the bad records: {', '.join(outcome.dead_consumers)}")

        if "pages" not in args.skip:
            t0 = time.monotonic()
            pages = xss.fuzz_pages(platform.urls, platform.settings)
            cases += pages.submitted + pages.rendered
            scripts += pages.scripts_run
            fivexx += len(pages.fivexx)
            say(
                f"pages: {len(xss.corpus())} payloads sent {pages.submitted} times through the doors, "
                f"{pages.rendered} pages rendered in Chromium ({pages.showing} show payloads), scripts run: "
                f"{pages.scripts_run} "
                f"({time.monotonic() - t0:.0f}s)"
            )
            if pages.without:
                say(f"  without a payload (no user text there): {', '.join(pages.without)}"[:1500])
            for line in pages.findings[:SHOWN]:
                say(f"  SCRIPT RAN {line}")
            for line in pages.fivexx[:SHOWN]:
                say(f"  5XX {line}")
            for line in pages.problems[:SHOWN]:
                say(f"  PROBLEM {line}")
            if pages.problems:
                failed.append(f"{len(pages.problems)} problems while submitting or rendering")

        if "api" not in args.skip:
            t0 = time.monotonic()
            findings = api.Findings()
            who = identities()
            for number in range(1, args.max_passes + 1):
                # One process per service: the requests wait on four services at once, and each generator has
                # its own interpreter (hypothesis and schemathesis compile code, which CPython 3.11 does not like
                # from several threads at once).
                with concurrent.futures.ProcessPoolExecutor(len(stack.SERVICES)) as pool:
                    running = {
                        name: pool.submit(fuzz_one, name, url, who, args.examples)
                        for name, url in platform.urls.items()
                    }
                    passes = {name: future.result() for name, future in running.items()}
                for name in stack.SERVICES:
                    findings.merge(passes[name])
                say(f"api: pass {number}: {findings.requests} requests ({time.monotonic() - t0:.0f}s)")
                if findings.requests >= args.requests:
                    break
            cases += findings.requests
            fivexx += len(findings.fivexx)
            violations += len(findings.violations)
            for line in findings.fivexx[:SHOWN]:
                say(f"  5XX {line}")
            for line in grouped(findings.violations)[:SHOWN]:
                say(f"  VIOLATION {line}")
            if findings.undeclared:
                say("  not counted as violations: answers any operation may give (401, 403, 413, 429, 503) that")
                say("  these operations' documents do not declare, and uvicorn's 400 to what is not valid HTTP:")
                by_operation = collections.defaultdict(list)
                for (operation, status), count in sorted(findings.undeclared.items()):
                    by_operation[operation].append(f"{status} x{count}")
                for operation, statuses in by_operation.items():
                    say(f"    {operation}: {', '.join(statuses)}")
            if findings.requests < args.requests:
                failed.append(f"only {findings.requests} API requests, fewer than {args.requests}")

        dead = [name for name, ok in platform.alive().items() if not ok]
        if dead:
            failed.append(f"not alive and ready at the end: {', '.join(dead)}")

    if fivexx:
        failed.append(f"{fivexx} answers >= 500")
    if violations:
        failed.append(f"{violations} answers that do not match the OpenAPI documents")
    if scripts:
        failed.append(f"{scripts} XSS payloads ran")
    say(f"{'FAILED: ' + '; '.join(failed) if failed else 'passed'} (in {time.monotonic() - started:.0f}s)")
    print(f"fuzz_cases={cases} fivexx={fivexx} schema_violations={violations} scripts_run={scripts}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
