"""constraints.txt (written by `make lock`) pins every dependency pyproject.toml declares, inside its range."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version


def read_pins(path: Path) -> dict[NormalizedName, Requirement]:
    """Every `name==version[; marker]` line of a constraints file; anything else is a named error."""
    pins: dict[NormalizedName, Requirement] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        pin = Requirement(line)
        specs = list(pin.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}:{number}: {line!r} is not an exact pin"
        name = canonicalize_name(pin.name)
        assert name not in pins, f"{path.name}:{number}: {pin.name} is pinned twice"
        pins[name] = pin
    return pins


def declared(root: Path) -> list[tuple[str, Requirement]]:
    """(where, requirement) for the runtime dependencies and every extra in pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    found = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project["optional-dependencies"].items():
        found += [(f"optional-dependencies.{extra}", Requirement(r)) for r in reqs]
    return found


@pytest.fixture(scope="module")
def pins(repo_root: Path) -> dict[NormalizedName, Requirement]:
    return read_pins(repo_root / "constraints.txt")


def test_every_declared_dependency_is_pinned_inside_its_range(
        repo_root: Path, pins: dict[NormalizedName, Requirement]) -> None:
    problems = []
    for where, req in declared(repo_root):
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{where}: {req} has no pin in constraints.txt")
            continue
        version = Version(next(iter(pin.specifier)).version)
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{where}: {req} does not allow the pinned {version}")
        if str(pin.marker) != str(req.marker):
            problems.append(f"{where}: {req} has marker {req.marker}, its pin {pin.marker}")
    assert not problems, "run `make lock` (or fix pyproject.toml):\n" + "\n".join(problems)
    assert canonicalize_name("msgspec") in pins and canonicalize_name("pytest") in pins


def test_pins_are_the_whole_closure(pins: dict[NormalizedName, Requirement]) -> None:
    """What each pinned package needs (as installed here) is pinned too, so a fresh machine adds nothing unpinned."""
    missing = []
    checked = 0
    for name in pins:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an extra this venv does not have (atheris before `make reliability`)
        checked += 1
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # needed only for an extra nobody asked for, or another platform/Python
            if canonicalize_name(req.name) not in pins:
                missing.append(f"{dist.metadata['Name']} needs {req}")
    assert checked >= len(pins) - 1, f"only {checked} of {len(pins)} pinned packages are installed: `make install`"
    assert not missing, "constraints.txt misses packages: run `make lock`\n" + "\n".join(missing)


def test_the_lock_is_sorted_and_says_how_it_is_made(repo_root: Path, pins: dict[NormalizedName, Requirement]) -> None:
    lines = (repo_root / "constraints.txt").read_text().splitlines()
    assert any("make lock" in line for line in lines if line.startswith("#")), "the header names `make lock`"
    assert list(pins) == sorted(pins), "constraints.txt is sorted by name, as `make lock` writes it"
    assert pins[canonicalize_name("atheris")].marker == Marker('platform_machine == "x86_64"')
