"""Package discovery for the wattbus monorepo.

Every folder services/<name>/ holds one package wattbus_<name with _>; it becomes the console
script wattbus-<name>. The common library lives in shared/wattbus and the device simulators in
simulators/wattbus_sim. Nothing here needs editing when a service is added.
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
for name, folder in package_dir.items():
    base = ROOT / folder
    packages.append(name)
    for sub in sorted(p.parent for p in base.rglob("__init__.py") if p.parent != base):
        dotted = ".".join(sub.relative_to(base).parts)
        packages.append(f"{name}.{dotted}")
        package_dir[f"{name}.{dotted}"] = f"{folder}/{'/'.join(sub.relative_to(base).parts)}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"": ["*.json", "*.toml", "*.csv", "*.txt", "*.bin", "*.hex", "*.html", "*.js", "*.css", "*.svg", "py.typed"]},
    include_package_data=True,
    entry_points={"console_scripts": scripts},
)
