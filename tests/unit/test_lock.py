"""requirements.lock (what `make run` and `make test` install, `pip install --require-hashes`) against pyproject.toml.

A dependency added to pyproject.toml without `make lock` fails here, naming it, before it fails as an ImportError on
a fresh machine; so does an entry of the lock without a hash, or a pin outside pyproject's bounds.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
IGNORE = ROOT / "deploy" / "audit-ignore.txt"
RELOCK = "run `make lock` (and commit requirements.lock)"
# The platform the lock is made for (`make lock`: --python-version 3.11 --python-platform x86_64-unknown-linux-gnu).
TARGET = {
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def lock_entries() -> dict[str, tuple[str, str]]:
    """Each locked package: canonical name -> (version, the whole entry)."""
    text = re.sub(r"\\\n", " ", LOCK.read_text(encoding="utf-8"))
    entries: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        assert m, f"requirements.lock: not a pinned requirement: {line[:120]!r}"
        entries[canonicalize_name(m.group(1))] = (m.group(3), line)
    return entries


def project_requirements() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for group, reqs in project.get("optional-dependencies", {}).items():
        wanted += [(f"optional group {group}", Requirement(r)) for r in reqs]
    return [(where, r) for where, r in wanted if canonicalize_name(r.name) != "kiruna-innovation"]


def applies(req: Requirement, extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**TARGET, "extra": extra})


def test_the_lock_exists_and_every_entry_is_pinned_with_a_hash():
    assert LOCK.is_file(), f"requirements.lock is missing: {RELOCK}"
    entries = lock_entries()
    assert entries, "requirements.lock pins nothing"
    without = sorted(name for name, (_, line) in entries.items() if not re.search(r"--hash=sha256:[0-9a-f]{64}", line))
    assert not without, f"entries of requirements.lock without --hash: {without}: {RELOCK}"


def test_every_dependency_of_pyproject_is_in_the_lock_within_its_bounds():
    entries = lock_entries()
    missing, outside = [], []
    for where, req in project_requirements():
        if not applies(req):
            continue
        pinned = entries.get(canonicalize_name(req.name))
        if pinned is None:
            missing.append(f"{req} ({where})")
        elif req.specifier and not req.specifier.contains(Version(pinned[0]), prereleases=True):
            outside.append(f"{req.name}=={pinned[0]} is outside {req.specifier} ({where})")
    assert not missing, f"in pyproject.toml but not in requirements.lock: {missing}: {RELOCK}"
    assert not outside, f"requirements.lock disagrees with pyproject.toml: {outside}: {RELOCK}"


def test_the_extras_asked_for_are_in_the_lock():
    """`redis[hiredis]`, `faststream[kafka,prometheus]` ...: what each extra adds is locked too (read from the
    installed distribution's metadata; a distribution not installed here is covered by the test above)."""
    entries = lock_entries()
    missing = []
    for where, req in project_requirements():
        if not req.extras or not applies(req):
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for extra in sorted(req.extras):
            for sub in map(Requirement, requires):
                if sub.marker is not None and applies(sub, extra) and not applies(sub):
                    if canonicalize_name(sub.name) not in entries:
                        missing.append(f"{sub.name} (for {req.name}[{extra}], {where})")
    assert not missing, f"extras' dependencies not in requirements.lock: {missing}: {RELOCK}"


@pytest.mark.parametrize("name", ["redis", "faststream", "fastapi", "aiokafka", "authlib"])
def test_the_libraries_whose_internals_we_use_have_an_upper_bound(name):
    bounds = [r for _, r in project_requirements() if canonicalize_name(r.name) == name]
    assert bounds, f"{name} is no longer a dependency: drop it from this test"
    assert any(s.operator in ("<", "<=", "==", "~=") for r in bounds for s in r.specifier), (
        f"{name} needs an upper bound in pyproject.toml (the code uses its internals)"
    )


def test_every_ignored_advisory_says_why():
    """deploy/audit.sh refuses an ignore line without its reason; so does this, before CI's audit."""
    for n, line in enumerate(IGNORE.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\s+#\s*\S.*", line), (
                f"deploy/audit-ignore.txt:{n}: expected `ADVISORY-ID  # why it is accepted`, got {line!r}"
            )
