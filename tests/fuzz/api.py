"""Schemathesis against each service's OpenAPI document over real HTTP: generated requests (valid and invalid
data) for every operation, without a token and with an employee's and an officer's real tokens; every answer is
checked for a 5xx and against the document (status code, content type, response schema)."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, openapi
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
# Streams (server-sent events) never end: a fuzzer would wait on each until its timeout. They are covered by
# notifications' own tests; their access rules are the same as the feed's, which is fuzzed.
SKIPPED = re.compile(r"/stream$")
# Answers any operation may give whatever its own document says (README, "Signing in, and who may do what"; the
# rate and body limits of every door; a dependency away): counted apart as "undeclared" and listed, not as violations.
CROSS_CUTTING = {401, 403, 413, 429, 503}
SERVER_REFUSAL = "Invalid HTTP request received."  # uvicorn's answer to what is not HTTP (a control byte in a header)


@dataclass
class Findings:
    requests: int = 0
    fivexx: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    undeclared: collections.Counter = field(default_factory=collections.Counter)  # (operation, status) -> answers
    by_operation: collections.Counter = field(default_factory=collections.Counter)

    def excerpt(self, response: requests.Response) -> str:
        return re.sub(r"\s+", " ", response.text[:300])

    def merge(self, other: Findings) -> None:
        self.requests += other.requests
        self.fivexx += other.fivexx
        self.violations += other.violations
        self.undeclared.update(other.undeclared)
        self.by_operation.update(other.by_operation)


def declared_statuses(operation) -> set[str]:
    return set(operation.definition.raw.get("responses", {}))


def fuzz_service(
    name: str,
    base_url: str,
    identities: dict[str, dict[str, str]],
    examples: int,
    findings: Findings,
    *,
    progress: Callable[[str], None] = print,
) -> None:
    """Every operation of ``base_url``'s OpenAPI document, as each identity (name -> headers), ``examples``
    generated cases per operation, identity and mode (positive and negative)."""
    schema = openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if SKIPPED.search(operation.path):
            continue
        label = f"{operation.method.upper()} {operation.path}"
        declared = declared_statuses(operation)
        for who, headers in identities.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                before = findings.requests
                try:
                    run_cases(operation, mode, base_url, session, headers, examples, findings, name, label, declared)
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body): the positive cases suffice
                    pass
                except Exception as exc:  # generation itself failed (an unsatisfiable schema): say so, go on
                    progress(f"  {name} {label} as {who} ({mode.value}): could not generate: {exc!r}"[:300])
                findings.by_operation[f"{name} {label}"] += findings.requests - before
    progress(f"api: {name}: {findings.requests} requests so far")


def run_cases(operation, mode, base_url, session, headers, examples, findings, name, label, declared) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        database=None,
        verbosity=Verbosity.quiet,  # no "reproduce with @seed" notes: the findings are printed, with their requests
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every case is counted, none is re-sent
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case) -> None:
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30, allow_redirects=False)
        except requests.RequestException as exc:
            findings.requests += 1
            findings.fivexx.append(f"{name} {case.method} {case.formatted_path}: no answer: {exc!r}"[:400])
            return
        findings.requests += 1
        status = response.status_code
        if status >= 500:
            findings.fivexx.append(
                f"{name} {case.method} {case.formatted_path} -> {status}: {findings.excerpt(response)}"
            )
        if str(status) not in declared and f"{str(status)[0]}XX" not in declared and "default" not in declared:
            if status in CROSS_CUTTING:
                findings.undeclared[(f"{name} {label}", status)] += 1
                return
            if status == 400 and response.text == SERVER_REFUSAL:  # the app never saw it: no document applies
                findings.undeclared[(f"{name} {label} (refused by uvicorn: not valid HTTP)", status)] += 1
                return
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                findings.violations.append(describe(name, label, case, response, failure))
        except Failure as failure:
            findings.violations.append(describe(name, label, case, response, failure))

    one()


def describe(name: str, label: str, case, response: requests.Response, failure: Failure) -> str:
    """``<service> <METHOD> <path template> -> <status>: <what>: <the request's path> <body excerpt>``."""
    body = re.sub(r"\s+", " ", response.text[:200])
    sent = case.formatted_path[:120]
    return f"{name} {label} -> {response.status_code}: {failure.title}: {case.method} {sent} {body}"
