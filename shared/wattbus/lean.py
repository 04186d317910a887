"""Keep OpenSSL out of service processes that never use TLS (the Raspberry Pi footprint).

`import asyncio` imports `ssl`, and paho imports `hashlib`, whose OpenSSL backend `_hashlib` maps and
initialises libcrypto: 4.6 MB RSS in every service process (bench/footprint_floor.py), about 40 MB
across the stack, paid by services that talk to a broker on loopback and to devices over plain HTTP.

A service package calls `keep_openssl_out(<its section>)` first thing in its `__init__.py`, before
anything imports asyncio. Depending on `WATTBUS_OPENSSL`:

  on    (the default) nothing changes.
  auto  (what the embedded stack sets) like `off`, unless the service's configuration asks for TLS:
        `[bus] tls` (or WATTBUS_BUS_TLS), or an `https://`, `mqtts://` or `wss://` URL in its own
        section, in `[bus]` or in any WATTBUS_* environment variable.
  off   `ssl` and `_hashlib` are marked unavailable: hashlib uses CPython's builtin sha256/md5, and
        asyncio, paho and aiohttp run as on a Python built without OpenSSL. Asking for TLS then fails
        with a message that names WATTBUS_OPENSSL (see `tls_unavailable`).

Nothing happens when OpenSSL is already loaded (tests, the one-process profile, an importing host):
the saving only exists for a fresh service process, and a module already holding `ssl` must keep it.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ENV = "WATTBUS_OPENSSL"
MODES = ("on", "auto", "off")
_TLS_SCHEMES = ("https://", "mqtts://", "wss://")
_TRUE = ("1", "true", "yes", "on")
_OPENSSL_MODULES = ("ssl", "_ssl", "_hashlib")


def mode(environ: Mapping[str, str] | None = None) -> str:
    value = (os.environ if environ is None else environ).get(ENV, "on").strip().lower() or "on"
    return value if value in MODES else "on"


def keep_openssl_out(section: str, argv: Sequence[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> bool:
    """Mark OpenSSL unavailable in this process if WATTBUS_OPENSSL allows it; True if it did."""
    environ = os.environ if environ is None else environ
    chosen = mode(environ)
    if chosen == "on" or any(sys.modules.get(name) is not None for name in _OPENSSL_MODULES):
        return False
    if chosen == "auto" and config_wants_tls(section, sys.argv if argv is None else argv, environ):
        return False
    for name in _OPENSSL_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # documented: `import` then raises ImportError
    return True


def openssl_kept_out() -> bool:
    return "_hashlib" in sys.modules and sys.modules["_hashlib"] is None


def tls_unavailable(what: str) -> str:
    """The error text for a TLS setting met in a process that keeps OpenSSL out."""
    return (f"{what} asks for TLS, but this process runs without OpenSSL ({ENV}={mode()}); "
            f"set {ENV}=on for it")


def _config_path(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    if environ.get("WATTBUS_CONFIG"):
        return Path(environ["WATTBUS_CONFIG"])
    default = Path("/etc/wattbus/wattbus.toml")
    return default if default.exists() else None


def _mentions_tls(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower().startswith(_TLS_SCHEMES)
    if isinstance(value, Mapping):
        return any(_mentions_tls(item) for item in value.values())
    if isinstance(value, list):
        return any(_mentions_tls(item) for item in value)
    return False


def config_wants_tls(section: str, argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the service's configuration asks for TLS anywhere (unreadable config: assume it does,
    the service then reports the config error itself with OpenSSL loaded as usual)."""
    if environ.get("WATTBUS_BUS_TLS", "").strip().lower() in _TRUE:
        return True
    # Every WATTBUS_* variable, not only this section's: it costs nothing and errs towards loading.
    if any(key.startswith("WATTBUS_") and _mentions_tls(value) for key, value in environ.items()):
        return True
    path = _config_path(argv, environ)
    if path is None:
        return False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    bus = data.get("bus", {})
    if isinstance(bus, Mapping) and bus.get("tls") is True:
        return True
    return _mentions_tls(bus) or _mentions_tls(data.get(section, {}))
