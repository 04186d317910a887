"""Package discovery for the wattbus monorepo.

Every folder services/<name>/ holds one package wattbus_<name with _>; it becomes the console
script wattbus-<name>. The common library lives in shared/wattbus and the device simulators in
simulators/wattbus_sim. Every other file in a package folder ships in the wheel as package data.
Nothing here needs editing when a service or a data file is added.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
package_dir = {"wattbus": "shared/wattbus", "wattbus_sim": "simulators/wattbus_sim"}
scripts = ["wattbus = wattbus.cli:main", "wattbus-sim = wattbus_sim.__main__:main"]

for service_dir in sorted((ROOT / "services").glob("*/")):
    package = "wattbus_" + service_dir.name.replace("-", "_")
    if (service_dir / package / "__init__.py").exists():
        package_dir[package] = f"services/{service_dir.name}/{package}"
        scripts.append(f"wattbus-{service_dir.name} = {package}.__main__:main")

packages = []
for name, folder in list(package_dir.items()):
    base = ROOT / folder
    packages.append(name)
    for sub in sorted(p.parent for p in base.rglob("__init__.py") if p.parent != base):
        dotted = ".".join(sub.relative_to(base).parts)
        packages.append(f"{name}.{dotted}")
        package_dir[f"{name}.{dotted}"] = f"{folder}/{'/'.join(sub.relative_to(base).parts)}"


def data_files(folder: str) -> list[str]:
    """Every file under a package folder that is not one of its modules, whatever its extension.

    Subfolders without __init__.py (data/, static/, profiles/ ...) are data, all of them; a subfolder
    with one is a package of its own and lists its files itself. Byte-code caches are left out.
    """
    base = ROOT / folder
    found = []
    for path in sorted(base.rglob("*")):
        inner = path.relative_to(base)
        owner = path.parent
        while owner != base and not (owner / "__init__.py").exists():
            owner = owner.parent
        if (not path.is_file() or owner != base or "__pycache__" in inner.parts
                or path.suffix in (".pyc", ".pyo") or (path.suffix == ".py" and path.parent == base)):
            continue
        found.append(inner.as_posix())
    return found


setup(
    packages=packages,
    package_dir=package_dir,
    package_data={name: data_files(folder) for name, folder in package_dir.items()},
    # package_data above is the whole list; the sdist-manifest route would add nothing but warnings
    # about data folders that look like namespace packages.
    include_package_data=False,
    entry_points={"console_scripts": scripts},
)
