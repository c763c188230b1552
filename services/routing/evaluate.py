"""Evaluate the router on labelled ideas: ``python -m services.routing.evaluate PATH [--catalogue FILE]``.

PATH is JSON lines, one idea per line: ``{"title", "description", "expect": {"organisations", "areas"}}``
(optional ``area_hints`` and ``organisation_hints`` are passed to the router). Every idea is routed with the
shipped catalogue (or ``--catalogue``); the misses are printed per idea, and the last line is exactly
``organisations_f1=<0..1> areas_f1=<0..1> ideas=<n>`` (micro-averaged F1 over the sets, three decimals).
Lines that cannot be read are reported on stderr with their number and skipped. The exit code is 0 whatever
the score (2 only when the file or the catalogue cannot be read at all).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from shared.catalogue import DEFAULT_CATALOGUE_PATH, CatalogueError, load_catalogue

from .classifier import Router


@dataclass
class Tally:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def add(self, expected: set[str], got: set[str]) -> None:
        self.true_positives += len(expected & got)
        self.false_positives += len(got - expected)
        self.false_negatives += len(expected - got)

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 1.0 if denominator == 0 else 2 * self.true_positives / denominator


@dataclass(frozen=True)
class Labelled:
    line: int
    title: str
    description: str
    organisations: frozenset[str]
    areas: frozenset[str]
    area_hints: tuple[str, ...] = field(default=())
    organisation_hints: tuple[str, ...] = field(default=())


def read_ideas(lines: Iterable[str], source: str, errors: list[str]) -> Iterator[Labelled]:
    """The readable ideas among JSON ``lines``; a message naming ``source`` and the line goes to ``errors``."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            title = record.get("title", "")
            description = record.get("description", "")
            expect = record["expect"]
            if not isinstance(title, str) or not isinstance(description, str):
                raise ValueError("title and description must be strings")
            if not isinstance(expect, dict):
                raise ValueError("expect must be an object")
            yield Labelled(
                line=number,
                title=title,
                description=description,
                organisations=_string_set(expect.get("organisations"), "expect.organisations"),
                areas=_string_set(expect.get("areas", []), "expect.areas"),
                area_hints=tuple(_string_set(record.get("area_hints", []), "area_hints")),
                organisation_hints=tuple(_string_set(record.get("organisation_hints", []), "organisation_hints")),
            )
        except json.JSONDecodeError as exc:
            errors.append(f"{source}:{number}: not valid JSON: {exc.msg} (column {exc.colno})")
        except KeyError as exc:
            errors.append(f"{source}:{number}: missing field {exc}")
        except (ValueError, TypeError) as exc:
            errors.append(f"{source}:{number}: {exc}")


def _string_set(value: object, name: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of strings")
    return frozenset(value)


def evaluate_lines(
    lines: Iterable[str], source: str, router: Router, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> tuple[float, float, int]:
    """Route every readable idea, print its misses to ``out`` and bad lines to ``err``; the summary line last."""
    errors: list[str] = []
    organisations, areas = Tally(), Tally()
    count = 0

    def report_errors() -> None:
        for message in errors:
            print(message, file=err)
        errors.clear()

    for idea in read_ideas(lines, source, errors):
        report_errors()
        decision = router.route(idea.title, idea.description, idea.area_hints, idea.organisation_hints)
        got_orgs, got_areas = set(decision.organisation_ids), set(decision.area_ids)
        organisations.add(set(idea.organisations), got_orgs)
        areas.add(set(idea.areas), got_areas)
        count += 1
        misses = []
        for label, expected, got in (("organisations", idea.organisations, got_orgs), ("areas", idea.areas, got_areas)):
            missing, extra = sorted(expected - got), sorted(got - expected)
            if missing:
                misses.append(f"missing {label} {', '.join(missing)}")
            if extra:
                misses.append(f"extra {label} {', '.join(extra)}")
        if misses:
            print(f"line {idea.line}: {idea.title[:70]!r}: {'; '.join(misses)}", file=out)
            print(f"    reason: {decision.reason}", file=out)
    report_errors()
    print(f"organisations_f1={organisations.f1:.3f} areas_f1={areas.f1:.3f} ideas={count}", file=out)
    return organisations.f1, areas.f1, count


def evaluate(
    path: Path, router: Router, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> tuple[float, float, int]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return evaluate_lines(lines, str(path), router, out, err)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.routing.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="JSON lines with title, description, expect.organisations/areas")
    parser.add_argument("--catalogue", type=Path, default=DEFAULT_CATALOGUE_PATH, help="catalogue TOML file")
    args = parser.parse_args(argv)
    try:
        router = Router(load_catalogue(args.catalogue))
    except CatalogueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        evaluate(args.path, router)
    except OSError as exc:
        print(f"{args.path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
