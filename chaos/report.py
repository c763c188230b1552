"""The suite's output: one row per scenario, and the last line that a script (or issue 15) reads."""

from __future__ import annotations

from collections.abc import Sequence

from chaos.invariants import Outcome

COLUMNS = (
    ("scenario", "scenario"),
    ("ideas/s", "rate"),
    ("accepted", "accepted"),
    ("503s", "unavailable"),
    ("gave up", "gave_up"),
    ("lost", "lost"),
    ("unrouted", "unrouted"),
    ("dup mails", "duplicate_mails"),
    ("no mail", "missing_mails"),
    ("dup org events", "duplicate_org_events"),
    ("dup ce ids", "duplicate_event_ids"),
    ("unexpected dlq", "unexpected_dlq"),
    ("lag", "lag"),
    ("recovery s", "recovery_s"),
    ("restarts", "restarts"),
    ("result", None),
)


def _cell(outcome: Outcome, attribute: str | None) -> str:
    if attribute is None:
        return "ok" if outcome.passed else "FAIL"
    value = getattr(outcome, attribute)
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _aligned(column: int, cell: str, width: int) -> str:
    return cell.ljust(width) if column == 0 else cell.rjust(width)


def table(outcomes: Sequence[Outcome]) -> str:
    rows = [[title for title, _ in COLUMNS]] + [[_cell(o, a) for _, a in COLUMNS] for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(_aligned(i, cell, w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for outcome in outcomes:
        lines.extend(f"  {outcome.scenario}: {problem}" for problem in outcome.problems)
    return "\n".join(lines)


def last_line(outcomes: Sequence[Outcome]) -> str:
    return (
        f"scenarios={len(outcomes)} accepted={sum(o.accepted for o in outcomes)} lost={sum(o.lost for o in outcomes)} "
        f"duplicate_mails={sum(o.duplicate_mails for o in outcomes)} "
        f"duplicate_org_events={sum(o.duplicate_org_events for o in outcomes)} "
        f"unexpected_dlq={sum(o.unexpected_dlq for o in outcomes)} "
        f"max_recovery_s={max((o.recovery_s for o in outcomes), default=0.0):.1f}"
    )
