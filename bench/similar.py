"""How fast the similar-ideas engine answers over a large index: ``python -m bench.similar [--ideas N]``.

Builds two indexes of N synthetic ideas (default 10,000) made from the words of the real ideas in
``tests/data/similar-heldout.jsonl``, then times ``suggest`` for every real idea (three rounds) and prints the
median, 95th percentile and maximum in milliseconds, and the time per ``add``:

- ``topical``: each synthetic idea rewrites one real idea (most of its words, a few words of other ideas and a
  few made-up names and places), so words are about as common as in a real collection: a topic's words are in
  about a hundred ideas, not in thousands;
- ``dense``: every word drawn at random from all real ideas, so every common word is in thousands of ideas and
  a look-up walks long posting lists: a worst case no real collection reaches.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from shared.language import tokenize
from shared.similarity import SimilarityIndex

SOURCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "similar-heldout.jsonl"


def real_ideas() -> list[tuple[str, str]]:
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    return [(idea["title"], idea["description"]) for idea in map(json.loads, filter(str.strip, lines))]


def topical_ideas(count: int, real: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    pool = [word for title, description in real for word in tokenize(f"{title} {description}")]
    ideas = []
    for _ in range(count):
        title, description = rng.choice(real)
        kept_title = [word for word in tokenize(title) if rng.random() < 0.7]
        kept = [word for word in tokenize(description) if rng.random() < 0.6]
        names = [f"plats{rng.randrange(20_000)}", f"namn{rng.randrange(50_000)}"]
        ideas.append((" ".join(kept_title), " ".join([*kept, *rng.choices(pool, k=5), *names])))
    return ideas


def dense_ideas(count: int, real: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    title_words = [word for title, _ in real for word in tokenize(title)]
    description_words = [word for _, description in real for word in tokenize(description)]
    ideas = []
    for number in range(count):
        title = " ".join(rng.choices(title_words, k=rng.randint(3, 8)))
        description = " ".join([*rng.choices(description_words, k=rng.randint(15, 60)), f"projekt{number}"])
        ideas.append((title, description))
    return ideas


def measure(name: str, ideas: list[tuple[str, str]], queries: list[tuple[str, str]]) -> str:
    index = SimilarityIndex()
    started = time.perf_counter()
    for number, (title, description) in enumerate(ideas):
        index.add(f"idea-{number}", title, description)
    add_ms = (time.perf_counter() - started) * 1000 / len(ideas)
    index.suggest(*queries[0])  # the first look-up after the adds computes the vectors' lengths once
    timings = []
    for title, description in queries * 3:
        started = time.perf_counter()
        index.suggest(title, description)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return (
        f"{name}: ideas={len(index)} suggest_ms_median={statistics.median(timings):.2f} "
        f"suggest_ms_p95={timings[int(0.95 * (len(timings) - 1))]:.2f} suggest_ms_max={timings[-1]:.2f} "
        f"add_ms={add_ms:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.similar", description=__doc__.split("\n")[0])
    parser.add_argument("--ideas", type=int, default=10_000)
    args = parser.parse_args(argv)
    real = real_ideas()
    print(measure("topical", topical_ideas(args.ideas, real, random.Random(18)), real))
    print(measure("dense", dense_ideas(args.ideas, real, random.Random(18)), real))


if __name__ == "__main__":
    main()
