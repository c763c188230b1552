"""The wheel built from pyproject.toml is the whole platform: every template and static file of the services and
`shared`, the catalogue beside the packages, and nothing imported that pyproject.toml does not declare.

The wheel is built with the virtual environment's setuptools (locked in the test extra) and no build isolation, so
the test downloads nothing; it builds from a copy of the sources so that no build/ or *.egg-info is left in the
repository. It takes a few seconds.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ("shared", "services", "catalogue")
"""What the wheel is built from (with pyproject.toml and README.md) and what it must carry."""
NOT_SHIPPED = {".py", ".pyc", ".md"}
"""Modules are checked by import below; a README beside a service's code is for the repository's readers."""


def _run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def _source_files() -> list[str]:
    """The repository's files under shared/, services/ and catalogue/: tracked by git in a checkout, else on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "--", *PACKAGED], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
    )
    if listed.returncode == 0 and listed.stdout.strip():
        return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]
    return [
        path.relative_to(ROOT).as_posix()
        for top in PACKAGED
        for path in (ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for top in PACKAGED:
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    _run([*build, "--wheel-dir", str(out), "."], cwd=source)
    built = list(out.glob("kiruna_innovation-*.whl"))
    assert len(built) == 1, f"expected one kiruna_innovation wheel, found {sorted(p.name for p in out.iterdir())}"
    with zipfile.ZipFile(built[0]) as archive:
        yield archive


def test_the_wheel_carries_every_template_static_file_and_the_catalogue(wheel):
    names = set(wheel.namelist())
    data = [name for name in _source_files() if Path(name).suffix not in NOT_SHIPPED]
    missing = sorted(set(data) - names)
    assert not missing, f"files the services read at run time but the wheel leaves out: {missing}"
    for required in (
        "catalogue/kiruna.toml",
        "catalogue/synonyms.toml",
        "services/notifications/templates/sv/layout.html.j2",
        "services/notifications/templates/en/layout.txt.j2",
        "services/notifications/templates/pages/live.js",
        "shared/static/site.css",
    ):
        assert required in names, f"{required} is not in the wheel"
    for language in ("sv", "en"):
        templates = [n for n in names if n.startswith(f"services/notifications/templates/{language}/")]
        assert len([n for n in templates if n.endswith(".txt.j2")]) >= 10, f"{language} mail templates: {templates}"
    modules = {name for name in _source_files() if name.endswith(".py")}
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], "compiled files in the wheel"
    development = ("tests/", "deploy/", "bench/", "chaos/", "demo/")
    assert not [n for n in names if n.startswith(development)], "non-runtime code"


def test_the_installed_wheel_finds_its_catalogue_synonyms_and_templates(wheel, tmp_path):
    """Installed (here into a target directory put first on the path), the default paths of the catalogue and the
    synonyms resolve inside the installation, not to a checkout, and the files load."""
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), wheel.filename], cwd=tmp_path)
    probe = """
import sys
from pathlib import Path
import shared.catalogue, shared.similarity, services.notifications.settings as notifications
site = Path(sys.argv[1]).resolve()
for name, path in (
    ("shared", Path(shared.catalogue.__file__)),
    ("catalogue", shared.catalogue.DEFAULT_CATALOGUE_PATH),
    ("synonyms", shared.similarity.DEFAULT_SYNONYMS_PATH),
    ("templates", notifications.TEMPLATES_DIR / "sv" / "routed.txt.j2"),
):
    assert path.resolve().is_relative_to(site), f"{name} resolves to {path}, outside the installed wheel {site}"
    assert path.is_file(), f"{name}: {path} is not a file"
catalogue = shared.catalogue.load_catalogue()
synonyms = shared.similarity.load_synonyms()
print(len(catalogue.organisations), len(synonyms.groups))
"""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"the installed wheel does not find its data:\n{result.stderr[-3000:]}"
    organisations, groups = (int(n) for n in result.stdout.split())
    assert organisations >= 3
    assert groups > 0


# ------------------------------------------------------------------------------------------------------------
# Every import declared


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


@functools.cache
def _module_owners() -> dict[str, set[str]]:
    """Every module and package of every installed distribution (dotted name) -> the distributions that ship it."""
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        distribution = _canonical(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] in ("..", "bin"):
                continue
            name = parts[-1]
            if name.endswith(".py"):
                stem = name[:-3]
            elif name.endswith((".so", ".pyd")):
                stem = name.split(".", 1)[0]
            else:
                continue
            dotted = [*parts[:-1]] if stem == "__init__" else [*parts[:-1], stem]
            for depth in range(1, len(dotted) + 1):  # a package is owned by whoever ships a module inside it
                owners.setdefault(".".join(dotted[:depth]), set()).add(distribution)
    return owners


def _imports(path: Path) -> set[str]:
    """The absolute imports of a module, as the most specific dotted names (``from a import b`` -> ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _python_files() -> list[str]:
    """The repository's Python files (git's list in a checkout, else a walk that skips var/ and virtual envs)."""
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode == 0 and listed.stdout.strip():
        return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in {"var", ".venv", ".git", "build", "node_modules"}]
        found += [(Path(directory) / f).relative_to(ROOT).as_posix() for f in files if f.endswith(".py")]
    return found


# Which distributions the code under each directory may import: the project's dependencies plus these extras.
# The first matching prefix wins; every Python file of the repository must match one.
EXTRAS_BY_DIRECTORY: list[tuple[str, list[str]]] = [
    ("shared/", []),
    ("services/", []),
    ("tests/fuzz/", ["test", "fuzz"]),
    ("tests/", ["test"]),
    ("bench/", ["test", "bench"]),
    ("chaos/", ["test"]),
    ("demo/", ["test"]),  # make demo (httpx, tqdm, Playwright for its screenshots)
    ("deploy/", ["test"]),
]
OWN = {"shared", "services", "tests", "bench", "chaos", "demo", "deploy", "catalogue"}


def _directory_of(file: str) -> str | None:
    return next((prefix for prefix, _ in EXTRAS_BY_DIRECTORY if file.startswith(prefix)), None)


def _undeclared(files: list[str], declared: set[str]) -> dict[str, list[str]]:
    """Third-party imports in ``files`` whose distribution is not in ``declared``: "module (distributions)" -> files."""
    owners = _module_owners()
    problems: dict[str, list[str]] = {}
    for file in files:
        for name in _imports(ROOT / file):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in OWN or top == "__future__":
                continue
            parts = name.split(".")
            candidates = [".".join(parts[:depth]) for depth in range(len(parts), 0, -1)]
            dists = next((owners[c] for c in candidates if owners.get(c)), set())
            if not dists & declared:
                label = f"{top} ({', '.join(sorted(dists)) or 'no installed distribution'})"
                if file not in problems.setdefault(label, []):
                    problems[label].append(file)
    return problems


def _declared(project: dict, extras: list[str]) -> set[str]:
    requirements = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    return {_requirement_name(r) for r in requirements}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.mark.parametrize(("prefix", "extras"), EXTRAS_BY_DIRECTORY, ids=[p for p, _ in EXTRAS_BY_DIRECTORY])
def test_every_import_is_declared(project, prefix, extras):
    """A module imports only the standard library, the project's own packages and the distributions pyproject.toml
    declares (for shared/ and services/, the wheel's modules, [project] dependencies alone): a package that arrives
    only as another's dependency can leave with that one's next release."""
    files = [f for f in _python_files() if _directory_of(f) == prefix]
    assert files, f"no Python file under {prefix}: remove it from EXTRAS_BY_DIRECTORY"
    problems = _undeclared(files, _declared(project, extras))
    where = "[project] dependencies" + "".join(f" or the {extra} extra" for extra in extras)
    assert not problems, f"imported under {prefix} but not declared in {where}: " + "; ".join(
        f"{module} in {', '.join(files[:3])}" for module, files in sorted(problems.items())
    )


def test_every_python_file_is_under_a_checked_directory():
    unchecked = [f for f in _python_files() if _directory_of(f) is None]
    assert not unchecked, f"Python files the import check does not cover (add to EXTRAS_BY_DIRECTORY): {unchecked}"


def test_the_import_check_sees_an_undeclared_package(project):
    """The check is not vacuous: with fast-depends left out of the declared set, shared/asyncapi.py's import of it is
    reported (and nothing else)."""
    declared = _declared(project, []) - {"fast-depends"}
    problems = _undeclared([f for f in _python_files() if f.startswith("shared/")], declared)
    assert problems == {"fast_depends (fast-depends)": ["shared/asyncapi.py"]}
