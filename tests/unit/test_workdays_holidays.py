"""shared.workdays against the `holidays` package (python-holidays, pinned in the test extra): every day of
2020-2040 is a working day for one exactly when it is for the other.

shared.workdays keeps its own calendar (a dozen lines, no dependency in the services, and a deadline that cannot
move because a library's data changed); this test is what keeps it honest. `holidays.Sweden`'s "public" category is
the allmänna helgdagar of lag 1989:253, its "de_facto" category is exactly midsommarafton, julafton and nyårsafton,
which the README and shared.workdays also count as closed. Sundays are not listed as holidays here
(``include_sundays=False``): a weekend is a weekend in both.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import pytest
from holidays.constants import DE_FACTO, PUBLIC

from shared.workdays import closed_days, is_working_day, working_days_between

YEARS = range(2020, 2041)


@pytest.fixture(scope="module")
def sweden() -> holidays.HolidayBase:
    return holidays.Sweden(years=YEARS, categories=(PUBLIC, DE_FACTO), include_sundays=False, language="sv")


def test_the_de_facto_holidays_are_the_three_eves_the_offices_close_on(sweden):
    de_facto = holidays.Sweden(years=YEARS, categories=DE_FACTO, language="sv")
    assert sorted(set(de_facto.values())) == ["Julafton", "Midsommarafton", "Nyårsafton"]
    assert len(de_facto) == 3 * len(YEARS)


@pytest.mark.parametrize("year", YEARS)
def test_closed_days_are_swedens_public_and_de_facto_holidays(sweden, year):
    theirs = {day: name for day, name in sweden.items() if day.year == year}
    ours = closed_days(year)
    assert not ours - theirs.keys(), f"closed in shared.workdays only: {sorted(ours - theirs.keys())}"
    missing = {day: theirs[day] for day in sorted(theirs.keys() - ours)}
    assert not missing, f"holidays.Sweden has days shared.workdays does not close: {missing}"


def test_every_day_of_2020_to_2040_is_a_working_day_for_both_or_neither(sweden):
    day, last = date(YEARS.start, 1, 1), date(YEARS.stop - 1, 12, 31)
    disagreements = []
    checked = 0
    while day <= last:
        theirs = day.weekday() < 5 and day not in sweden
        if is_working_day(day) != theirs:
            disagreements.append((day, sweden.get(day)))
        day += timedelta(days=1)
        checked += 1
    assert checked == (last - date(YEARS.start, 1, 1)).days + 1 > 7600
    assert not disagreements, f"is_working_day disagrees with holidays.Sweden on {disagreements[:10]}"


@pytest.mark.parametrize("year", YEARS)
def test_working_days_of_a_year_match_a_count_with_holidays(sweden, year):
    start = date(year - 1, 12, 31)  # working_days_between counts after start, up to and including end
    end = date(year, 12, 31)
    theirs = sum(
        1
        for offset in range(1, (end - start).days + 1)
        if (day := start + timedelta(days=offset)).weekday() < 5 and day not in sweden
    )
    assert working_days_between(start, end) == theirs
    assert 245 <= theirs <= 255  # a Swedish year has about 250 working days (253 in 2021, 254 in 2022)
