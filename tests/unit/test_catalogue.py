"""The catalogue file: the shipped one is valid; a broken one is refused naming the line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalogue import DEFAULT_CATALOGUE_PATH, CatalogueError, load_catalogue


def test_the_shipped_catalogue_describes_the_kiruna_group():
    catalogue = load_catalogue()
    assert set(catalogue.organisation_ids) == {
        "kiruna-kommun",
        "tekniska-verken",
        "kirunabostader",
        "innovationsplattformen",
    }
    assert {a.id for a in catalogue.areas} >= {
        "stadsomvandling",
        "klimat-och-energi",
        "boende",
        "arbetssatt-och-arbetsmiljo",
    }
    assert {u.id for u in catalogue.organisation("tekniska-verken").units} == {
        "energi",
        "vatten-och-avlopp",
        "avfall-och-atervinning",
        "stadsnat",
    }
    assert catalogue.version.startswith("sha256:")


def test_every_officer_writes_from_a_mail_domain_of_their_organisation():
    catalogue = load_catalogue()
    assert catalogue.organisation("kiruna-kommun").mail_domains == ("kiruna.se",)
    for officer in catalogue.officers:
        domain = officer.email.rpartition("@")[2].lower()
        assert domain in catalogue.organisation(officer.organisation).mail_domains, officer.id


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CATALOGUE_PATH.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "catalogue.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_an_unknown_responsible_unit_names_the_line_and_field(tmp_path):
    path = broken(tmp_path, 'responsible = ["tekniska-verken/energi"]', 'responsible = ["tekniska-verken/energy"]')
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert "responsible" in message and "tekniska-verken/energy" in message
    assert f":{line_of(path, 'tekniska-verken/energy')}:" in message


def test_an_invalid_officer_email_names_the_field(tmp_path):
    path = broken(tmp_path, 'email = "erik.lindberg@', 'email = "erik.lindberg-at-')
    with pytest.raises(CatalogueError, match=r"officers\.\d+\.email"):
        load_catalogue(path)


@pytest.mark.parametrize("domain", ["Kiruna.se", "kiruna", "@kiruna.se", "kiruna..se", "-kiruna.se", "kiruna.se."])
def test_a_mail_domain_must_be_a_lower_case_domain_name(tmp_path, domain):
    path = broken(tmp_path, 'mail_domains = ["kirunabostader.se"]', f'mail_domains = ["{domain}"]')
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert "mail_domains" in message and "lower-case domain name" in message
    line = line_of(path, f'["{domain}"]')
    assert f":{line}:" in message


def test_a_toml_syntax_error_names_the_line(tmp_path):
    path = broken(tmp_path, "[targets]", "[targets")
    with pytest.raises(CatalogueError, match=r"line \d+"):
        load_catalogue(path)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nowhere.toml")
