"""A small `make fuzz` inside `make test`: the four services as real processes, ~200 schemathesis requests across
their OpenAPI documents without a token and with an employee's, and not one answered with a 5xx. (`make fuzz` runs
10,000 and more, with the topics and the pages; README, "Tests".)"""

from __future__ import annotations

import pytest

from tests.fuzz import stack
from tests.support import identity

pytestmark = pytest.mark.kafka
api = pytest.importorskip("tests.fuzz.api", reason="schemathesis is missing: pip install -e '.[fuzz]'")


def test_generated_requests_to_every_service_never_answer_5xx():
    findings = api.Findings()
    with stack.running() as platform:
        who = {"anonymous": {}, "employee": identity.bearer(identity.ANNA)}
        for name, url in platform.urls.items():
            api.fuzz_service(name, url, who, 2, findings, progress=lambda _: None)
        assert all(platform.alive().values()), platform.alive()
    print(f"\nfuzz smoke: {findings.requests} requests, {len(findings.violations)} schema violations")
    assert findings.requests >= 150
    assert not findings.fivexx, "\n".join(findings.fivexx)
