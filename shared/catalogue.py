"""The catalogue: reference data the administrators edit (organisations, units, areas, officers, targets).

The data lives in a TOML file (``catalogue/kiruna.toml`` by default, ``CATALOGUE_PATH`` to change it).
Loading validates it and reports errors with the line and field that are wrong.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_CATALOGUE_PATH = Path(__file__).resolve().parent.parent / "catalogue" / "kiruna.toml"
TRIAGE_ORGANISATION = "innovationsplattformen"


class CatalogueError(ValueError):
    """The catalogue file cannot be used; the message names the file, line and field."""


_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _lower_case_domain(value: str) -> str:
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"'{value}' is not a lower-case domain name such as kiruna.se")
    return value


MailDomain = Annotated[str, AfterValidator(_lower_case_domain)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Unit(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_en: str | None = None
    headcount: int | None = Field(default=None, ge=0)
    keywords: dict[str, float] = Field(default_factory=dict, description="word -> weight, Swedish or English")


class Organisation(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_en: str | None = None
    headcount: int | None = Field(default=None, ge=0)
    subscribes: bool = Field(default=True, description="Gets its own org.<id>.ideas.v1 topic")
    units: tuple[Unit, ...] = ()
    keywords: dict[str, float] = Field(default_factory=dict)
    mail_domains: tuple[MailDomain, ...] = Field(
        default=(),
        description="Lower-case domains of the organisation's e-mail addresses, e.g. kiruna.se: intake takes ideas "
        "by e-mail only from these (exactly; list a subdomain to accept it). A domain shared by several "
        "organisations is allowed, but then says nothing about the submitter's organisation",
    )


class Area(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_en: str | None = None
    keywords_sv: dict[str, float] = Field(default_factory=dict, description="Swedish word -> weight")
    keywords_en: dict[str, float] = Field(default_factory=dict, description="English word -> weight")
    responsible: tuple[str, ...] = Field(
        default=(), description="'organisation' or 'organisation/unit' that answers for the area"
    )
    cross_cutting: bool = Field(
        default=False,
        description="The area concerns every organisation (climate, digitalisation, ways of working): its "
        "responsible organisation is named only when the idea points to no other organisation",
    )


class Officer(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    name: str
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    organisation: str
    unit: str | None = None
    areas: tuple[str, ...] = ()
    language: str = Field(default="sv", pattern=r"^(sv|en)$")


class Targets(_Model):
    """Response-time targets, in working days (shared.workdays: Monday to Friday except Swedish holidays)."""

    acknowledged_within_working_days: int = Field(default=5, ge=1)
    assessed_within_working_days: int = Field(default=30, ge=1)
    decided_within_working_days: int = Field(default=60, ge=1)


class Catalogue(_Model):
    version: str = Field(default="", description="Filled from the file's content hash unless set")
    organisations: tuple[Organisation, ...]
    areas: tuple[Area, ...]
    officers: tuple[Officer, ...] = ()
    targets: Targets = Targets()

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalogue:
        units = {(o.id, u.id) for o in self.organisations for u in o.units}
        orgs = {o.id for o in self.organisations}
        if TRIAGE_ORGANISATION not in orgs:
            raise ValueError(f"organisations: the triage organisation '{TRIAGE_ORGANISATION}' is missing")
        area_ids = {a.id for a in self.areas}
        for i, area in enumerate(self.areas):
            for j, ref in enumerate(area.responsible):
                org, _, unit = ref.partition("/")
                if org not in orgs or (unit and (org, unit) not in units):
                    raise ValueError(f"areas.{i}.responsible.{j}: unknown organisation/unit '{ref}'")
        for i, officer in enumerate(self.officers):
            if officer.organisation not in orgs:
                raise ValueError(f"officers.{i}.organisation: unknown organisation '{officer.organisation}'")
            if officer.unit and (officer.organisation, officer.unit) not in units:
                raise ValueError(f"officers.{i}.unit: unknown unit '{officer.unit}'")
            for area in officer.areas:
                if area not in area_ids:
                    raise ValueError(f"officers.{i}.areas: unknown area '{area}'")
        return self

    @property
    def organisation_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.organisations)

    def organisation(self, org_id: str) -> Organisation | None:
        return next((o for o in self.organisations if o.id == org_id), None)

    def area(self, area_id: str) -> Area | None:
        return next((a for a in self.areas if a.id == area_id), None)


def display_name(item: Organisation | Unit | Area, lang: str) -> str:
    """An organisation's, unit's or area's name in ``lang`` (``en``: the English name when there is one)."""
    return (item.name_en or item.name) if lang == "en" else item.name


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    """Read and validate the catalogue; raise :class:`CatalogueError` naming the line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: not valid TOML: {exc}") from exc
    raw.setdefault("version", "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12])
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(_describe(path, text, raw, exc)) from exc


def _describe(path: Path, text: str, raw: dict, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"]
        if error["type"] == "value_error" and not loc:
            # model-level checks put the field path at the start of the message
            where, _, message = str(error["ctx"]["error"]).partition(": ")
            loc = where.split(".")
        field = ".".join(loc)
        line = _line_of(text, raw, loc)
        lines.append(f"{path}:{line}: {field}: {message}" if line else f"{path}: {field}: {message}")
    return "invalid catalogue:\n  " + "\n  ".join(lines)


def _line_of(text: str, raw: dict, loc: list[str]) -> int | None:
    """Best-effort line number of ``loc`` in the TOML text: the n-th [[table]] header, then the key below it."""
    lines = text.splitlines()
    start = 0
    node: object = raw
    header = ""
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            header = f"{header}.{part}" if header else part
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            seen = -1
            for number, line in enumerate(lines[start:], start):
                if line.strip() == f"[[{header}]]":
                    seen += 1
                    if seen == int(part):
                        start = number
                        break
            node = node[int(part)]
        else:
            break
    key = next((p for p in reversed(loc) if not p.isdigit()), None)
    for number, line in enumerate(lines[start:], start):
        if key and line.strip().startswith((f"{key} ", f"{key}=")):
            return number + 1
    return start + 1 if start else None
