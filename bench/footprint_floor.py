"""What one service process costs before it does anything: RSS step by step through its imports.

A fresh interpreter imports, in order, what every service needs (asyncio, msgspec, paho, the
wattbus runner) and then the optional heavy modules some services need. Each row is the RSS
after that import, split into file-backed pages (libpython, libcrypto, extension modules: shared
with every other process running them, so PSS counts them once across processes) and anonymous
pages (the interpreter's own heap and objects: paid by every process).
"""

from __future__ import annotations

import json
import subprocess
import sys

STEPS = [("interpreter (python -c pass)", None),
         ("asyncio (imports ssl: libssl + libcrypto)", "asyncio"),
         ("msgspec", "msgspec"),
         ("paho-mqtt client", "paho.mqtt.client"),
         ("wattbus runner + bus + contract", "wattbus.runner"),
         ("= floor of every service", ""),
         ("+ aiohttp (HTTP client/server)", "aiohttp"),
         ("+ zeroconf (mDNS)", "zeroconf"),
         ("+ pymodbus client", "pymodbus.client"),
         ("+ dsmr_parser", "dsmr_parser.parsers")]

PROBE = r"""
import importlib, json, sys
def usage():
    file_kb = anon_kb = 0
    for line in open("/proc/self/status"):
        if line.startswith(("RssFile:", "RssShmem:")):
            file_kb += int(line.split()[1])
        elif line.startswith("RssAnon:"):
            anon_kb += int(line.split()[1])
    return file_kb, anon_kb
rows = []
for module in json.loads(sys.argv[1]):
    if module:
        importlib.import_module(module)
    rows.append(usage())
print(json.dumps(rows))
"""


def main() -> str:
    modules = [module for _label, module in STEPS]
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(modules)], capture_output=True, text=True,
                         timeout=120, check=True)
    usage = dict(zip(modules, json.loads(out.stdout), strict=True))
    lines = ["| step | RSS | file-backed (shared) | anonymous (per process) |", "|---|---:|---:|---:|"]
    for label, module in STEPS:
        file_kb, anon_kb = usage[module]
        lines.append(f"| {label} | {(file_kb + anon_kb) / 1024:.1f} MB | {file_kb / 1024:.1f} MB | "
                     f"{anon_kb / 1024:.1f} MB |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
