"""The package registries this machine uses, for the compose test's images and its network allow-list.

    registries.py hosts         host names the image builds reach (Debian mirror, pip index)
    registries.py mirror        the Debian mirror for debootstrap
    registries.py apt-sources   the machine's Debian sources (deb822), for the images
    registries.py pip-conf      the machine's pip index settings, as the images' /etc/pip.conf

The images get what this machine uses, so a build inside the test's network namespace goes where
the machine's own apt and pip go (and through the same TLS interception, whose CA the images get
from images.sh).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

APT = Path("/etc/apt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_INDEX = "https://pypi.org/simple"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
RELEASE = "bookworm"


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
        if fields.get("Types") and fields.get("URIs") and fields.get("Enabled", "yes") != "no":
            stanzas.append(fields)
    return stanzas


def debian_stanzas() -> list[dict[str, str]]:
    """The machine's Debian archive entries (not third-party repositories) for this release."""
    found: list[dict[str, str]] = []
    for path in sorted(APT.glob("sources.list.d/*.sources")):
        for stanza in _deb822_stanzas(path.read_text()):
            suites = stanza.get("Suites", "").split()
            if "deb" in stanza["Types"].split() and any(s.startswith(RELEASE) for s in suites) \
                    and (KEYRING in stanza.get("Signed-By", "") or "/debian" in stanza["URIs"]):
                found.append(stanza)
    legacy = APT / "sources.list"
    if not found and legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 4 and parts[0] == "deb" and parts[2].startswith(RELEASE) and not parts[1].startswith("["):
                found.append({"Types": "deb", "URIs": parts[1], "Suites": parts[2], "Components": " ".join(parts[3:]),
                              "Signed-By": KEYRING})
    if not found:
        found = [{"Types": "deb", "URIs": DEFAULT_MIRROR, "Suites": f"{RELEASE} {RELEASE}-updates",
                  "Components": "main", "Signed-By": KEYRING},
                 {"Types": "deb", "URIs": "http://deb.debian.org/debian-security", "Suites": f"{RELEASE}-security",
                  "Components": "main", "Signed-By": KEYRING}]
    return found


def mirror() -> str:
    for stanza in debian_stanzas():
        if RELEASE in stanza.get("Suites", "").split():
            return stanza["URIs"].split()[0]
    return DEFAULT_MIRROR


def apt_sources() -> str:
    keys = ("Types", "URIs", "Suites", "Components", "Signed-By")
    return "\n".join("".join(f"{k}: {s[k]}\n" for k in keys if k in s) for s in debian_stanzas())


def pip_settings() -> dict[str, list[str]]:
    """index-url, extra-index-url and trusted-host as this machine's pip sees them (files and PIP_*)."""
    settings: dict[str, list[str]] = {"index-url": [], "extra-index-url": [], "trusted-host": []}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}).stdout
    for line in listed.splitlines():
        match = re.fullmatch(r"[^.]*\.([a-z-]+)='(.*)'", line.strip())
        if match and match[1] in settings:
            settings[match[1]] = match[2].split()
    # Indexes on this machine's disk (file://) do not exist in an image: only network indexes count.
    for key in ("index-url", "extra-index-url"):
        settings[key] = [u for u in settings[key] if urlsplit(u).scheme in ("http", "https")]
    if not settings["index-url"]:
        settings["index-url"] = [DEFAULT_INDEX]
    return settings


def pip_conf() -> str:
    settings = pip_settings()
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    lines += [f"{key} = {' '.join(values)}" for key, values in settings.items() if values]
    timeout = os.environ.get("PIP_DEFAULT_TIMEOUT") or os.environ.get("PIP_TIMEOUT")
    if timeout:
        lines.append(f"timeout = {timeout}")
    return "\n".join(lines) + "\n"


def hosts() -> list[str]:
    names = {urlsplit(uri).hostname or "" for s in debian_stanzas() for uri in s["URIs"].split()}
    settings = pip_settings()
    for url in settings["index-url"] + settings["extra-index-url"]:
        host = urlsplit(url).hostname or ""
        names.add(host)
        if host == "pypi.org":
            names.add("files.pythonhosted.org")  # where pypi.org's index points for the files
    return sorted(n for n in names if n)


def main(argv: list[str]) -> int:
    commands = {"hosts": lambda: "\n".join(hosts()) + "\n", "mirror": lambda: mirror() + "\n",
                "apt-sources": apt_sources, "pip-conf": pip_conf}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: registries.py {{{','.join(commands)}}}", file=sys.stderr)
        return 2
    sys.stdout.write(commands[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
