"""Routing classification throughput: ``python -m bench.routing_classify [--seconds 5]``.

Routes the sample ideas (../shared/data/sample-ideas.jsonl, when present) and the held-out ideas
(tests/data/routing-heldout.jsonl) over and over on one core for about five seconds, after one warm-up pass,
and prints ``routing_classify_ideas_per_s=<n>``. Classification only: no Kafka, no Redis, no JSON parsing in
the timed loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.routing.classifier import Router  # noqa: E402
from shared.catalogue import load_catalogue  # noqa: E402

IDEA_FILES = (ROOT.parent / "shared" / "data" / "sample-ideas.jsonl", ROOT / "tests" / "data" / "routing-heldout.jsonl")


def load_ideas() -> list[tuple[str, str]]:
    ideas = []
    for path in IDEA_FILES:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                ideas.append((record.get("title", ""), record.get("description", "")))
    return ideas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    ideas = load_ideas()
    if not ideas:
        sys.exit("no ideas to route")
    router = Router(load_catalogue())
    for title, description in ideas:  # warm-up: token readings are cached after the first sight of a word
        router.route(title, description)
    routed = 0
    started = time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        for title, description in ideas:
            router.route(title, description)
        routed += len(ideas)
    elapsed = time.perf_counter() - started
    print(f"routing_classify_ideas_per_s={routed / elapsed:.0f}")


if __name__ == "__main__":
    main()
