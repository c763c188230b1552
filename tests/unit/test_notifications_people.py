"""What a person's requests to notifications may carry: bounded lists and strings (a huge body is a 422 naming
the field, before the catalogue is asked)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.notifications.people import PreferencesBody


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("areas", ["boende"] * 1000),
        ("organisations", ["kirunabostader"] * 1000),
        ("areas", ["x" * 10_000]),
        ("organisations", ["y" * 10_000]),
        ("channels", ["email"] * 1000),
    ],
)
def test_preference_lists_and_their_items_are_bounded(field, value):
    with pytest.raises(ValidationError) as refused:
        PreferencesBody.model_validate({field: value})
    assert refused.value.errors()[0]["loc"][0] == field


def test_a_full_choice_of_the_catalogue_fits():
    body = PreferencesBody(areas=[f"area-{n}" for n in range(50)], organisations=[f"org-{n}" for n in range(50)])
    assert len(body.areas) == len(body.organisations) == 50
