"""What users install: the wheel built from the checkout, installed into a fresh venv (not editable).

An editable install reads data files from the checkout, so a wheel that leaves them out still passes
every other test; here the wheel is built from the tracked files, installed with the pinned
dependencies, and run from outside the checkout: every console script and the http-api serving
its web UI and settings help from the installed package.
"""

from __future__ import annotations

import compileall
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ServiceProcess
from tests.http_api.conftest import HttpApi
from tests.support.servers import Mosquitto, free_port, wait_port

# Building the wheel and installing its pinned dependencies from a cold pip cache takes minutes.
pytestmark = pytest.mark.timeout(900)

# A package folder: shared/<pkg>, simulators/<pkg> or services/<service>/<pkg>, with an __init__.py.
TOKEN = secrets.token_hex(16)
PACKAGE_INIT = re.compile(r"(shared/[^/]+|simulators/[^/]+|services/[^/]+/[^/]+)/__init__\.py")


def tracked_files(root: Path) -> list[str]:
    """The files a commit would carry: tracked ones and new ones git does not ignore (a module not yet added)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the wheel test builds from the git-tracked files; `git ls-files` in {root} failed: {exc}")
    return [name for name in out.decode().split("\0") if name]


def package_data(files: list[str]) -> dict[str, str]:
    """Wheel path -> checkout path of every non-.py file among `files` under a package folder."""
    folders = [found.group(1) for name in files if (found := PACKAGE_INIT.fullmatch(name))]
    data = {}
    for folder in folders:
        package = folder.rsplit("/", 1)[1]
        for name in files:
            if name.startswith(folder + "/") and not name.endswith(".py"):
                data[f"{package}/{name[len(folder) + 1:]}"] = name
    return data


def run(cmd: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}"
                    f"\n{done.stderr[-4000:]}")
    return done  # type: ignore[no-any-return]


def outside_env() -> dict[str, str]:
    """This process's environment without what would point a child at the checkout or the dev venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


@dataclass
class Installed:
    src: Path  # the checkout's files the wheel was built from, as they were then
    files: list[str]
    wheel: Path
    venv: Path
    away: Path  # a working directory outside the checkout

    def services(self) -> list[str]:
        return sorted(p.parent.parent.name for p in (self.src / "services").glob("*/wattbus_*/__init__.py"))

    def script(self, name: str) -> Path:
        return self.venv / "bin" / name

    def console_scripts(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            text = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
        section = re.search(r"^\[console_scripts\]\n(.*?)(?:^\[|\Z)", text, re.M | re.S)
        assert section, f"no [console_scripts] in the wheel's entry_points.txt:\n{text}"
        return sorted(line.split("=", 1)[0].strip() for line in section.group(1).splitlines() if "=" in line)


@pytest.fixture(scope="module")
def installed(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv, away = base / "src", base / "dist", base / "venv", base / "away"
    # The checkout's files as they are in the working tree (uncommitted edits count), nothing ignored.
    files = [name for name in tracked_files(repo_root) if (repo_root / name).is_file()]
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / name, src / name)
    # A developer's tree has byte-code beside the sources; the wheel must not take it along.
    compileall.compile_dir(src, quiet=1)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], "building the wheel")
    (wheel,) = dist.glob("wattbus-*.whl")
    run([sys.executable, "-m", "venv", str(venv)], "creating the venv")
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
         "-c", str(src / "constraints.txt"), str(wheel)], "installing the wheel with the pins", cwd=base)
    away.mkdir()
    return Installed(src, files, wheel, venv, away)


def test_the_wheel_carries_every_tracked_data_file(installed: Installed) -> None:
    expected = package_data(installed.files)
    assert "wattbus_http_api/data/settings_help.toml" in expected and len(expected) > 20
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        missing = sorted(set(expected) - names)
        assert not missing, f"the wheel leaves out {len(missing)} tracked files: {missing}"
        changed = [w for w, c in expected.items() if wheel.read(w) != (installed.src / c).read_bytes()]
        assert not changed, f"the wheel's copies differ from the checkout: {changed}"
    stray = sorted(n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")))
    assert not stray, f"byte-code in the wheel: {stray[:5]}"


def test_the_venv_imports_the_installed_packages_not_the_checkout(installed: Installed) -> None:
    packages = sorted(found.group(1).rsplit("/", 1)[1] for name in installed.files
                      if (found := PACKAGE_INIT.fullmatch(name)))
    assert {"wattbus", "wattbus_sim", "wattbus_http_api"} <= set(packages)
    code = "import importlib, sys\nfor name in sys.argv[1:]: print(importlib.import_module(name).__file__)"
    out = run([str(installed.script("python")), "-c", code, *packages], "importing the installed packages",
              cwd=installed.away, env=outside_env()).stdout.split()
    site = installed.venv / "lib"
    assert len(out) == len(packages)
    assert [f for f in out if not Path(f).is_relative_to(site)] == [], f"imported from outside {site}"


def test_every_console_script_answers_help(installed: Installed) -> None:
    scripts = installed.console_scripts()
    services = installed.services()
    assert {"wattbus", "wattbus-sim", *(f"wattbus-{s}" for s in services)} <= set(scripts), scripts
    failed = []
    for name in scripts:
        done = subprocess.run([str(installed.script(name)), "--help"], capture_output=True, text=True,
                              cwd=installed.away, env=outside_env(), timeout=60)
        if done.returncode != 0 or not done.stdout.startswith(f"usage: {name} "):
            failed.append(f"{name} --help: exit {done.returncode}\n{done.stdout[:300]}{done.stderr[-1500:]}")
    assert not failed, "\n\n".join(failed)


class InstalledService(ServiceProcess):
    """A console script of the fresh venv, run from outside the checkout (stopped as ServiceProcess is)."""

    def __init__(self, installed: Installed, script: str, args: list[str], env: dict[str, str]) -> None:
        self.log = installed.away / f"{script}-{len(list(installed.away.glob('*.log')))}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(installed.script(script)), *args], cwd=installed.away,
                                         env={**outside_env(), **env}, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def installed_http_api(installed: Installed, broker: Mosquitto) -> Iterator[HttpApi]:
    port = free_port()
    config = installed.away / f"http-api-{port}.toml"
    config.write_text(f'[http-api]\nports = [{port}]\ninstance = "wheel{port}"\nstatus_interval_s = 5\n'
                      f'token = "{TOKEN}"\n')
    service = InstalledService(installed, "wattbus-http-api", ["--config", str(config)], broker.env("http-api"))
    try:
        try:
            wait_port(port, 30)
        except TimeoutError:
            pytest.fail(f"the installed wattbus-http-api did not listen on {port}:\n{service.output()[-3000:]}")
        yield HttpApi(port, service.proc)
    finally:
        service.stop()


def test_installed_http_api_serves_its_web_ui_and_settings_help(installed: Installed,
                                                               installed_http_api: HttpApi) -> None:
    api = installed_http_api
    package = installed.src / "services" / "http-api" / "wattbus_http_api"
    pages = {"/ui/": package / "static" / "index.html", "/ui/setup": package / "static" / "wizard.html",
             "/ui/setup/advanced": package / "static" / "setup.html"}
    pages |= {f"/ui/static/{f.name}": f for f in sorted((package / "static").iterdir())}
    assert {"/ui/static/app.js", "/ui/static/style.css"} <= set(pages)
    for path, source in pages.items():
        status, body, _ = api.call("GET", path)
        assert status == 200, f"GET {path}: {status} {str(body)[:300]}"
        assert body == source.read_text(), f"GET {path} is not {source.relative_to(installed.src)}"
    status, overview, _ = api.call("GET", "/api/v1/setup", token=TOKEN)  # config reads need the token
    assert status == 200, overview
    # settings_help.toml as the installed package read it, and every service the install provides
    assert overview["help"] == tomllib.loads((package / "data" / "settings_help.toml").read_text())
    assert overview["help"]["surplus-controller"]["grid_meter"].startswith("the meter at the grid connection")
    services = installed.services()
    assert overview["services"] == services
