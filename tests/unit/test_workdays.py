"""Working days in Sweden: weekends, public holidays and the closed eves are not counted."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.workdays import add_working_days, closed_days, easter_sunday, is_working_day, working_days_between


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 3, 3), date(2025, 3, 3), 0),  # same Monday
        (date(2025, 3, 3), date(2025, 3, 4), 1),  # Monday -> Tuesday
        (date(2025, 3, 7), date(2025, 3, 10), 1),  # Friday -> Monday
        (date(2025, 3, 8), date(2025, 3, 9), 0),  # Saturday -> Sunday
        (date(2025, 3, 8), date(2025, 3, 10), 1),  # Saturday -> Monday
        (date(2025, 3, 3), date(2025, 3, 10), 5),  # a week
        (date(2025, 3, 3), date(2025, 3, 17), 10),  # two weeks
        (date(2025, 3, 6), date(2025, 3, 13), 5),  # Thursday -> next Thursday
        (date(2025, 3, 10), date(2025, 3, 3), 0),  # backwards
    ],
)
def test_working_days_count_monday_to_friday(start, end, expected):
    assert working_days_between(start, end) == expected


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2000, date(2000, 4, 23)),
        (2019, date(2019, 4, 21)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),
    ],
)
def test_easter_sunday(year, easter):
    assert easter_sunday(year) == easter


def test_the_closed_days_of_2026_are_swedens_public_holidays_and_the_three_eves():
    assert sorted(closed_days(2026)) == [
        date(2026, 1, 1),  # nyårsdagen
        date(2026, 1, 6),  # trettondedag jul
        date(2026, 4, 3),  # långfredagen
        date(2026, 4, 5),  # påskdagen
        date(2026, 4, 6),  # annandag påsk
        date(2026, 5, 1),  # första maj
        date(2026, 5, 14),  # Kristi himmelsfärdsdag
        date(2026, 5, 24),  # pingstdagen
        date(2026, 6, 6),  # nationaldagen
        date(2026, 6, 19),  # midsommarafton
        date(2026, 6, 20),  # midsommardagen
        date(2026, 10, 31),  # alla helgons dag
        date(2026, 12, 24),  # julafton
        date(2026, 12, 25),  # juldagen
        date(2026, 12, 26),  # annandag jul
        date(2026, 12, 31),  # nyårsafton
    ]
    assert max(closed_days(2027) - {date(2027, 12, 31)}) == date(2027, 12, 26)
    assert date(2027, 6, 25) in closed_days(2027) and date(2027, 11, 6) in closed_days(2027)  # latest possible


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 4, 17), date(2025, 4, 22), 1),  # Maundy Thursday -> the Tuesday after Easter
        (date(2026, 6, 18), date(2026, 6, 22), 1),  # the Thursday before midsummer -> Monday
        (date(2026, 12, 23), date(2027, 1, 7), 6),  # 28, 29, 30 Dec, 4, 5, 7 Jan (1 and 6 Jan closed)
        (date(2026, 4, 30), date(2026, 5, 4), 1),  # 1 May is a Friday
    ],
)
def test_holidays_are_not_working_days(start, end, expected):
    assert working_days_between(start, end) == expected


def test_a_deadline_moves_past_the_holidays():
    before_christmas = datetime(2026, 12, 22, 9, tzinfo=UTC)  # a Tuesday
    assert add_working_days(before_christmas, 5) == datetime(2027, 1, 4, 9, tzinfo=UTC)  # 23, 28, 29, 30, 4
    assert add_working_days(datetime(2026, 4, 2, 9, tzinfo=UTC), 1) == datetime(2026, 4, 7, 9, tzinfo=UTC)


def test_counting_and_adding_agree_with_a_day_by_day_count():
    rng = random.Random(2026)
    for _ in range(500):
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(1500))
        end = start + timedelta(days=rng.randrange(400))
        naive = sum(is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1))
        assert working_days_between(start, end) == naive
        days = rng.randrange(30)
        moment = datetime.combine(start, datetime.min.time(), UTC)
        assert working_days_between(start, add_working_days(moment, days).date()) == days
