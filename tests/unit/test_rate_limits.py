"""Which reads count against the expensive-query budget (shared/rate_limits.py)."""

from __future__ import annotations

import pytest

from shared.rate_limits import expensive_query


@pytest.mark.parametrize(
    ("path", "query", "expensive"),
    [
        ("/api/v1/stats/funnel", b"", True),
        ("/dashboard", b"", True),
        ("/en/dashboard", b"", True),
        ("/api/v1/ideas", b"q=sn%C3%B6r%C3%B6jning", True),
        ("/api/v1/ideas", b"state=routed", False),
        ("/api/v1/ideas/similar", b"title=Sn%C3%B6r%C3%B6jning", True),  # asked as people write
        ("/api/v1/ideas/4f1c9a", b"", False),
        ("/ideas/4f1c9a", b"", False),
    ],
)
def test_the_reads_that_compute_over_many_ideas_are_expensive(path: str, query: bytes, expensive: bool) -> None:
    assert expensive_query({"path": path, "query_string": query}) is expensive
