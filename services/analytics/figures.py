"""The figures of the change process, computed from idea summaries. Pure: no I/O, no clock (``now`` is passed).

Definitions (also in the API's documentation):

- *Funnel*: for each stage of the main lifecycle, the ideas that reached that stage or a later one (an idea
  implemented without a pilot has passed the pilot stage). Declined and merged ideas are exits, counted apart;
  so are withdrawn ideas (the submitter took them back), an exit of their own.
- *Time in state*: for each state, the time each idea spent in it before it moved on (calendar time); ideas still
  in a state are counted as ``open`` and left out of the median and 90th percentile (linear interpolation).
- *Response times*: working days (Monday-Friday except Swedish public holidays and the closed eves, see
  shared/workdays.py; local dates) from the submission to the first time the idea
  reached the target, the response-time stages of shared/lifecycle.py (``RESPONSE_STAGES``): acknowledged = any
  officer response (acknowledged or later, or declined/merged); assessed = in assessment or a decision; decided =
  accepted/declined/merged or later. Missed when more working days than the catalogue's target; an idea still
  waiting past its target is ``overdue`` (missed too). A withdrawn idea reached no stage by an officer's hand:
  the stages it had not reached when it was withdrawn are not measured (nor pending, nor overdue).
- *Participation*: distinct submitters (by pseudonym) per organisation and unit of the submitter per month
  of submission, and their share of the catalogue's headcount.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.analytics.domain import IdeaSummary, parse_time
from shared.catalogue import Catalogue, Targets
from shared.lifecycle import (
    ALL_STATES,
    EXITS,
    MAIN_LINE,
    OPEN_PHASE,
    RESPONSE_STAGES,
    TERMINAL,
    WITHDRAWN,
    target_days,
)
from shared.workdays import working_days_between

STOCKHOLM = ZoneInfo("Europe/Stockholm")
FUNNEL_EXITS = (*EXITS, WITHDRAWN)
"""The funnel's exits, each counted apart: declined, merged and withdrawn."""


@dataclass(frozen=True)
class Filters:
    """Which ideas a figure covers: routed to ``organisation`` (and ``unit``), in ``area``, submitted between
    ``start`` and ``end`` (local dates, inclusive)."""

    organisation: str | None = None
    unit: str | None = None
    area: str | None = None
    start: date | None = None
    end: date | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "unit": self.unit,
            "area": self.area,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }


def local_date(iso: str, tz: ZoneInfo = STOCKHOLM) -> date:
    return parse_time(iso).astimezone(tz).date()


def select(summaries: Iterable[IdeaSummary], filters: Filters, tz: ZoneInfo = STOCKHOLM) -> list[IdeaSummary]:
    chosen = []
    for idea in summaries:
        if filters.organisation and filters.organisation not in idea.organisations:
            continue
        if filters.unit and not any(u.endswith(f"/{filters.unit}") for u in idea.units):
            continue
        if filters.area and filters.area not in idea.areas:
            continue
        if filters.start or filters.end:
            day = local_date(idea.created_at, tz)
            if (filters.start and day < filters.start) or (filters.end and day > filters.end):
                continue
        chosen.append(idea)
    return chosen


# --- small numbers -------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


# --- the figures ---------------------------------------------------------------------------------------------


def funnel(ideas: list[IdeaSummary]) -> dict[str, Any]:
    rank = {state.value: i for i, state in enumerate(MAIN_LINE)}
    furthest = []
    exits: Counter[str] = Counter()
    for idea in ideas:
        reached = [rank[state] for state, _ in idea.history if state in rank]
        furthest.append(max(reached, default=0))
        if idea.state in TERMINAL:
            exits[idea.state] += 1
    total = len(ideas)
    stages = []
    previous: int | None = None
    for i, stage in enumerate(MAIN_LINE):
        count = sum(1 for f in furthest if f >= i)
        stages.append(
            {
                "stage": stage.value,
                "count": count,
                "share_of_submitted": _share(count, total),
                "conversion_from_previous": _share(count, previous) if previous is not None else None,
            }
        )
        previous = count
    return {"total": total, "stages": stages, "exits": {state.value: exits[state] for state in FUNNEL_EXITS}}


def state_durations(idea: IdeaSummary) -> tuple[dict[str, float], str | None]:
    """Seconds the idea spent in each state it left, and the state it is still in (None when closed)."""
    spent: dict[str, float] = defaultdict(float)
    steps = [(state, parse_time(at)) for state, at in idea.history]
    for (state, entered), (_, left) in itertools.pairwise(steps):
        spent[state] += max((left - entered).total_seconds(), 0.0)
    current = steps[-1][0] if steps else None
    return dict(spent), (None if current in TERMINAL else current)


def time_in_state(ideas: list[IdeaSummary]) -> dict[str, Any]:
    samples: dict[str, list[float]] = defaultdict(list)
    still: Counter[str] = Counter()
    for idea in ideas:
        spent, current = state_durations(idea)
        for state, seconds in spent.items():
            samples[state].append(seconds)
        if current:
            still[current] += 1
    states = []
    for state in ALL_STATES:
        if state in TERMINAL:
            continue
        values = samples.get(state, [])
        median, p90 = percentile(values, 50), percentile(values, 90)
        states.append(
            {
                "state": state.value,
                "count": len(values),
                "open": still[state],
                "median_hours": _round(median / 3600 if median is not None else None),
                "p90_hours": _round(p90 / 3600 if p90 is not None else None),
                "median_days": _round(median / 86400 if median is not None else None),
                "p90_days": _round(p90 / 86400 if p90 is not None else None),
            }
        )
    return {"states": states}


def reached_at(idea: IdeaSummary, target: str) -> str | None:
    """When the idea first reached ``target`` (ISO time), or None."""
    wanted = RESPONSE_STAGES[target]
    return next((at for state, at in idea.history if state in wanted), None)


def response_times(
    ideas: list[IdeaSummary], targets: Targets, *, now: datetime, tz: ZoneInfo = STOCKHOLM
) -> dict[str, Any]:
    today = now.astimezone(tz).date()
    summary = []
    missed = []
    for target in RESPONSE_STAGES:
        limit = target_days(targets, target)
        measured: list[int] = []
        counts = Counter()
        for idea in ideas:
            start = local_date(idea.created_at, tz)
            at = reached_at(idea, target)
            if at is not None:
                days = working_days_between(start, local_date(at, tz))
                measured.append(days)
                status = "met" if days <= limit else "late"
            elif idea.state in TERMINAL:  # closed without reaching this target: nothing to measure
                continue
            else:
                days = working_days_between(start, today)
                status = "pending" if days <= limit else "overdue"
            counts[status] += 1
            if status in ("late", "overdue"):
                missed.append(
                    {
                        "idea_id": idea.idea_id,
                        "title": idea.title,
                        "target": target,
                        "limit_working_days": limit,
                        "working_days": days,
                        "status": status,
                        "organisations": idea.organisations,
                        "submitted_at": idea.created_at,
                        "state": idea.state,
                    }
                )
        summary.append(
            {
                "target": target,
                "within_working_days": limit,
                "measured": len(measured),
                "met": counts["met"],
                "late": counts["late"],
                "pending": counts["pending"],
                "overdue": counts["overdue"],
                "missed": counts["late"] + counts["overdue"],
                "median_working_days": _round(percentile(measured, 50), 1),
                "p90_working_days": _round(percentile(measured, 90), 1),
            }
        )
    missed.sort(key=lambda m: (list(RESPONSE_STAGES).index(m["target"]), m["submitted_at"], m["idea_id"]))
    return {"as_of": today.isoformat(), "targets": summary, "missed": missed}


def participation(
    ideas: list[IdeaSummary],
    catalogue: Catalogue,
    *,
    organisation: str | None = None,
    tz: ZoneInfo = STOCKHOLM,
) -> dict[str, Any]:
    """Distinct submitters per month, per organisation and per unit of the submitter (``organisation`` filters on
    the submitter's organisation), with their share of the headcount. Anonymous ideas are counted apart."""
    by_org: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_unit: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    whole: dict[str, set[str]] = defaultdict(set)
    anonymous: Counter[str] = Counter()
    ideas_per_month: Counter[str] = Counter()
    for idea in ideas:
        if not idea.submitted:
            continue
        org = idea.submitter_organisation or ""
        if organisation and org != organisation:
            continue
        month = local_date(idea.created_at, tz).strftime("%Y-%m")
        ideas_per_month[month] += 1
        if not idea.submitter_key:
            anonymous[month] += 1
            continue
        by_org[(month, org)].add(idea.submitter_key)
        whole[org].add(idea.submitter_key)
        if idea.submitter_unit:
            by_unit[(month, org, idea.submitter_unit)].add(idea.submitter_key)

    def headcount(org: str, unit: str | None = None) -> int | None:
        found = catalogue.organisation(org)
        if found is None:
            return None
        if unit is None:
            return found.headcount
        return next((u.headcount for u in found.units if u.id == unit), None)

    rows = []
    for (month, org), keys in by_org.items():
        rows.append(_participation_row(month, org, None, len(keys), headcount(org)))
    for (month, org, unit), keys in by_unit.items():
        rows.append(_participation_row(month, org, unit, len(keys), headcount(org, unit)))
    rows.sort(key=lambda r: (r["month"], r["organisation"], r["unit"] or ""))
    months = sorted(ideas_per_month)
    return {
        "months": [
            {
                "month": m,
                "ideas": ideas_per_month[m],
                "anonymous_ideas": anonymous[m],
                "submitters": sum(len(k) for (mm, _), k in by_org.items() if mm == m),
            }
            for m in months
        ],
        "rows": rows,
        "organisations": [
            {
                "organisation": org,
                "submitters": len(keys),
                "headcount": headcount(org),
                "share": _share(len(keys), headcount(org)),
            }
            for org, keys in sorted(whole.items())
        ],
    }


def _participation_row(month: str, org: str, unit: str | None, submitters: int, headcount: int | None) -> dict:
    return {
        "month": month,
        "organisation": org,
        "unit": unit,
        "submitters": submitters,
        "headcount": headcount,
        "share": _share(submitters, headcount),
    }


def by_state(ideas: list[IdeaSummary], dimension: str, ids: Iterable[str]) -> list[dict[str, Any]]:
    """Ideas by state for each organisation (``dimension='organisations'``), unit or area."""
    rows = []
    for key in ids:
        members = [i for i in ideas if key in getattr(i, dimension)]
        counts = Counter(i.state for i in members if i.state)
        rows.append({"id": key, "total": len(members), "by_state": {s.value: counts[s] for s in ALL_STATES}})
    return rows


def _brief(idea: IdeaSummary) -> dict[str, Any]:
    return {"idea_id": idea.idea_id, "title": idea.title, "state": idea.state, "organisations": idea.organisations}


def engagement(ideas: list[IdeaSummary], *, top: int = 5) -> dict[str, Any]:
    ranked = sorted(
        (i for i in ideas if i.supporters or i.comments),
        key=lambda i: (-i.supporters, -i.comments, i.idea_id),
    )
    return {
        "comments": sum(i.comments for i in ideas),
        "supports": sum(i.supporters for i in ideas),
        "follows": sum(i.followers for i in ideas),
        "ideas_with_comments": sum(1 for i in ideas if i.comments),
        "ideas_with_support": sum(1 for i in ideas if i.supporters),
        "top": [{**_brief(i), "supporters": i.supporters, "comments": i.comments} for i in ranked[:top]],
    }


def overview(
    ideas: list[IdeaSummary], catalogue: Catalogue, *, now: datetime, tz: ZoneInfo = STOCKHOLM
) -> dict[str, Any]:
    states = Counter(i.state for i in ideas if i.state)
    cross = sorted((i for i in ideas if i.cross_organisation), key=lambda i: i.created_at, reverse=True)
    spread = sorted((i for i in ideas if i.spread), key=lambda i: i.created_at, reverse=True)
    units = [f"{o.id}/{u.id}" for o in catalogue.organisations for u in o.units]
    responses = response_times(ideas, catalogue.targets, now=now, tz=tz)
    notified = Counter()
    for idea in ideas:
        notified.update(idea.notifications)
    return {
        "ideas": len(ideas),
        "by_state": {s.value: states[s] for s in ALL_STATES},
        "open": sum(states[s] for s in OPEN_PHASE),
        "withdrawn": {"count": states[WITHDRAWN], "share": _share(states[WITHDRAWN], len(ideas))},
        "by_organisation": by_state(ideas, "organisations", catalogue.organisation_ids),
        "by_unit": [row for row in by_state(ideas, "units", units) if row["total"]],
        "by_area": by_state(ideas, "areas", [a.id for a in catalogue.areas]),
        "cross_organisation": {
            "count": len(cross),
            "share": _share(len(cross), len(ideas)),
            "ideas": [_brief(i) for i in cross],
        },
        "spread": {"count": len(spread), "ideas": [{**_brief(i), "spread_to": i.spread_to} for i in spread]},
        "engagement": engagement(ideas),
        "response_targets": {
            t["target"]: {k: t[k] for k in ("within_working_days", "met", "missed", "overdue", "pending")}
            for t in responses["targets"]
        },
        "submitters": len({i.submitter_key for i in ideas if i.submitter_key}),
        "anonymous_ideas": sum(1 for i in ideas if i.submitted and not i.submitter_key),
        "notifications": dict(sorted(notified.items())),
    }


# --- CSV -----------------------------------------------------------------------------------------------------


def csv_rows(figure: str, data: dict[str, Any], *, table: str = "summary") -> tuple[list[str], list[list[Any]]]:
    """The header and rows of a figure as a flat table, for CSV export."""
    if figure == "funnel":
        header = ["stage", "count", "share_of_submitted", "conversion_from_previous"]
        rows = [[s[h] for h in header] for s in data["stages"]]
        rows += [[state, count, None, None] for state, count in data["exits"].items()]
        return header, rows
    if figure == "time-in-state":
        header = ["state", "count", "open", "median_hours", "p90_hours", "median_days", "p90_days"]
        return header, [[s[h] for h in header] for s in data["states"]]
    if figure == "response-times":
        if table == "missed":
            header = ["idea_id", "title", "target", "limit_working_days", "working_days", "status", "state"]
            rows = [[m[h] for h in header] + [" ".join(m["organisations"])] for m in data["missed"]]
            return [*header, "organisations"], rows
        header = ["target", "within_working_days", "measured", "met", "late", "pending", "overdue", "missed"]
        header += ["median_working_days", "p90_working_days"]
        return header, [[t[h] for h in header] for t in data["targets"]]
    if figure == "participation":
        header = ["month", "organisation", "unit", "submitters", "headcount", "share"]
        return header, [[r[h] for h in header] for r in data["rows"]]
    if figure == "overview":
        header = ["figure", "dimension", "id", "state", "value"]
        rows: list[list[Any]] = [["ideas", "", "", "", data["ideas"]]]
        rows += [["ideas", "state", "", s, n] for s, n in data["by_state"].items()]
        for dimension in ("organisation", "unit", "area"):
            for row in data[f"by_{dimension}"]:
                rows += [["ideas", dimension, row["id"], s, n] for s, n in row["by_state"].items()]
        rows.append(["withdrawn", "", "", "", data["withdrawn"]["count"]])
        rows.append(["cross_organisation", "", "", "", data["cross_organisation"]["count"]])
        rows.append(["spread", "", "", "", data["spread"]["count"]])
        for key in ("comments", "supports", "follows", "ideas_with_comments", "ideas_with_support"):
            rows.append(["engagement", key, "", "", data["engagement"][key]])
        for target, values in data["response_targets"].items():
            rows.append(["response_target_missed", "target", target, "", values["missed"]])
        rows.append(["submitters", "", "", "", data["submitters"]])
        return header, rows
    raise ValueError(f"no CSV form for {figure}")
