"""Working days in Sweden, in which the catalogue's response-time targets are counted: Monday to Friday except
the public holidays (allmänna helgdagar, lag 1989:253) and the three eves on which the group's offices are closed
(midsommarafton, julafton, nyårsafton). Every service counts them here, so a deadline warned of by notifications
and the one measured by analytics are the same.

The calendar is computed here, with no dependency at run time (a deadline cannot move because a library's data
changed); tests/unit/test_workdays_holidays.py checks it day by day against the `holidays` package's Sweden (its
public and de facto holidays) for 2020-2040."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta


def easter_sunday(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous algorithm of Meeus, Jones and Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


@functools.cache
def closed_days(year: int) -> frozenset[date]:
    """The days of ``year`` that are not working days although they may fall on Monday to Friday."""
    easter = easter_sunday(year)
    midsummer_eve = date(year, 6, 19) + timedelta(days=(4 - date(year, 6, 19).weekday()) % 7)  # Friday 19-25 June
    all_saints = date(year, 10, 31) + timedelta(days=(5 - date(year, 10, 31).weekday()) % 7)  # Saturday 31 Oct-6 Nov
    return frozenset(
        {
            date(year, 1, 1),  # nyårsdagen
            date(year, 1, 6),  # trettondedag jul
            easter - timedelta(days=2),  # långfredagen
            easter,  # påskdagen
            easter + timedelta(days=1),  # annandag påsk
            date(year, 5, 1),  # första maj
            easter + timedelta(days=39),  # Kristi himmelsfärdsdag
            easter + timedelta(days=49),  # pingstdagen
            date(year, 6, 6),  # Sveriges nationaldag
            midsummer_eve,  # midsommarafton
            midsummer_eve + timedelta(days=1),  # midsommardagen
            all_saints,  # alla helgons dag
            date(year, 12, 24),  # julafton
            date(year, 12, 25),  # juldagen
            date(year, 12, 26),  # annandag jul
            date(year, 12, 31),  # nyårsafton
        }
    )


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in closed_days(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` working days, at the same time of day (in ``start``'s time zone)."""
    moment = start
    added = 0
    while added < days:
        moment += timedelta(days=1)
        if is_working_day(moment.date()):
            added += 1
    return moment


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end``: the same day 0, Friday to Monday 1."""
    if end <= start:
        return 0
    weeks, rest = divmod((end - start).days, 7)
    weekdays = weeks * 5 + sum((start + timedelta(days=offset)).weekday() < 5 for offset in range(1, rest + 1))
    closed = sum(
        start < day <= end and day.weekday() < 5
        for year in range(start.year, end.year + 1)
        for day in closed_days(year)
    )
    return weekdays - closed
