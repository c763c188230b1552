"""Evaluate the similar-ideas engine: ``python -m shared.similarity_eval FILE [--synonyms FILE]``.

FILE is JSON lines in submission order, one idea per line:
``{"title": "...", "description": "...", "duplicate_of": <0-based index of an earlier idea, or null>}``.
For each idea in turn the engine is asked for suggestions among the earlier ideas, then the idea is added.

- recall at 3: of the ideas with a ``duplicate_of``, the share whose duplicate is among the suggestions (up to 3);
- false alarm rate: of the ideas without one, the share that got any suggestion.

The misses and false alarms are printed with their titles (so a person can see why), and the last line is
exactly ``duplicates_recall_at_3=<x> false_alarm_rate=<x> ideas=<n>`` (two decimals). A file that cannot be read
or has a bad line (not JSON, no title, ``duplicate_of`` not an earlier index...) is reported with its line numbers
on stderr and the exit code is 2; nothing is evaluated then.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from shared.similarity import DEFAULT_SYNONYMS_PATH, SimilarityIndex, Suggestion, SynonymsError

LIMIT = 3
MAX_ERRORS = 20


class EvaluationFileError(ValueError):
    """The file has bad lines; ``problems`` name each line and what is wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LabelledIdea:
    line: int
    """1-based line number in the file."""
    title: str
    description: str
    duplicate_of: int | None


@dataclass(frozen=True)
class Result:
    recall_at_3: float
    false_alarm_rate: float
    ideas: int
    misses: tuple[str, ...]
    false_alarms: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"duplicates_recall_at_3={self.recall_at_3:.2f} false_alarm_rate={self.false_alarm_rate:.2f} "
            f"ideas={self.ideas}"
        )


def read_ideas(lines: Iterable[str], source: str) -> list[LabelledIdea]:
    """The ideas of a JSON-lines file (blank lines skipped: an index counts ideas, not blank lines).

    Raises :class:`EvaluationFileError` listing every bad line (up to :data:`MAX_ERRORS`)."""
    ideas: list[LabelledIdea] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        problem = None
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON: {exc.msg} (column {exc.colno})"
        else:
            problem = _check(record, len(ideas))
        if problem:
            problems.append(f"{source}:{number}: {problem}")
            if len(problems) == MAX_ERRORS:
                problems.append(f"{source}: stopped after {MAX_ERRORS} bad lines")
                break
            ideas.append(LabelledIdea(number, "", "", None))  # keeps the indexes of later lines right
            continue
        ideas.append(LabelledIdea(number, record["title"], record.get("description") or "", record["duplicate_of"]))
    if problems:
        raise EvaluationFileError(problems)
    if not ideas:
        raise EvaluationFileError([f"{source}: no ideas in the file"])
    return ideas


def _check(record: object, index: int) -> str | None:
    """What is wrong with the record of the idea at ``index`` (0-based), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    title = record.get("title")
    if "title" not in record:
        return "missing title"
    if not isinstance(title, str) or not title.strip():
        return "title must be a non-empty string"
    description = record.get("description")
    if description is not None and not isinstance(description, str):
        return "description must be a string"
    if "duplicate_of" not in record:
        return "missing duplicate_of (an earlier idea's 0-based index, or null)"
    duplicate_of = record["duplicate_of"]
    if duplicate_of is None:
        return None
    if not isinstance(duplicate_of, int) or isinstance(duplicate_of, bool):
        return f"duplicate_of must be an integer or null, not {json.dumps(duplicate_of)}"
    if not 0 <= duplicate_of < index:
        earlier = f"0..{index - 1}" if index else "none: this is the first idea"
        return f"duplicate_of {duplicate_of} is not the index of an earlier idea (earlier ideas: {earlier})"
    return None


def evaluate(ideas: list[LabelledIdea], index: SimilarityIndex) -> Result:
    """Ask for suggestions for each idea among the ones before it, then add it; count hits and false alarms."""
    duplicates = hits = originals = alarms = 0
    misses: list[str] = []
    false_alarms: list[str] = []
    for position, idea in enumerate(ideas):
        suggestions = index.suggest(idea.title, idea.description, limit=LIMIT)
        found = [int(suggestion.idea_id) for suggestion in suggestions]
        if idea.duplicate_of is not None:
            duplicates += 1
            if idea.duplicate_of in found:
                hits += 1
            else:
                score = index.similarity(idea.title, idea.description, str(idea.duplicate_of))
                original = ideas[idea.duplicate_of]
                misses.append(
                    f"[{position}] {_short(idea.title)} -> [{idea.duplicate_of}] {_short(original.title)}"
                    f" (score {score:.2f}){_listed(suggestions, ideas)}"
                )
        else:
            originals += 1
            if suggestions:
                alarms += 1
                false_alarms.append(f"[{position}] {_short(idea.title)}{_listed(suggestions, ideas)}")
        index.add(str(position), idea.title, idea.description)
    return Result(
        recall_at_3=hits / duplicates if duplicates else 1.0,
        false_alarm_rate=alarms / originals if originals else 0.0,
        ideas=len(ideas),
        misses=tuple(misses),
        false_alarms=tuple(false_alarms),
    )


def _short(title: str, width: int = 60) -> str:
    title = " ".join(title.split())
    return repr(title if len(title) <= width else title[: width - 1] + "…")


def _listed(suggestions: list[Suggestion], ideas: list[LabelledIdea]) -> str:
    if not suggestions:
        return "; suggested nothing"
    shown = ", ".join(
        f"[{s.idea_id}] {_short(ideas[int(s.idea_id)].title, 40)} {s.score:.2f} ({' '.join(s.shared_words)})"
        for s in suggestions
    )
    return f"; suggested {shown}"


def report(result: Result, out: TextIO) -> None:
    """The misses and false alarms (indexes are 0-based, as in duplicate_of), then the summary line, last."""
    if result.misses:
        print(f"Missed duplicates ({len(result.misses)}): idea -> its earlier duplicate (score), suggestions", file=out)
        for line in result.misses:
            print(f"  {line}", file=out)
    if result.false_alarms:
        print(f"False alarms ({len(result.false_alarms)}): idea with no duplicate, suggestions", file=out)
        for line in result.false_alarms:
            print(f"  {line}", file=out)
    print(result.summary(), file=out)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.similarity_eval", description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="JSON lines: title, description, duplicate_of (index or null)")
    parser.add_argument("--synonyms", type=Path, default=DEFAULT_SYNONYMS_PATH, help="synonyms TOML file")
    args = parser.parse_args(argv)
    try:
        with args.path.open(encoding="utf-8") as lines:
            ideas = read_ideas(lines, str(args.path))
        index = SimilarityIndex(args.synonyms)
    except OSError as exc:
        print(f"{args.path}: cannot read: {exc.strerror}", file=err)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{args.path}: not UTF-8 text ({exc.reason} at byte {exc.start})", file=err)
        return 2
    except EvaluationFileError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 2
    except SynonymsError as exc:
        print(exc, file=err)
        return 2
    report(evaluate(ideas, index), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
