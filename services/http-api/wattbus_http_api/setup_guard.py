"""What the setup API may show and change of the config file.

Secrets are write-only. A key is a secret by its name, wherever it sits (a service's config
field such as `password`, `wifi_password`, `token`, or a key inside a free-form table); no
service marks its fields otherwise, and a name rule also covers keys added later. GET shows a
secret as "set" or "not set"; a PUT that sends "set" back keeps the stored value (list items are
matched by their other keys first, so removing or reordering devices keeps each one's password),
and a stored secret never follows a changed address (`url`, `host`, `port` of the same table):
it would hand the password to whoever the new address belongs to. Error messages never carry a
secret's value.

Paths are not settable over HTTP: a key named `*_file`, `*_dir`, `*_path` (`config_file`,
`password_file`, `spool_dir`, `template_files`, ...) may keep its value or go, never get a new
one; nor may any other value that is a file path (except a serial device under /dev/) or a URL of
another scheme than http, https, socket or rfc2217 (a `file://` meter "port" reads any file).
The access keys of the http-api (PROTECTED) and the [bus] section (broker address and
credentials) cannot be changed over HTTP at all: the API never widens who may use it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from wattbus.secret_keys import SECRET_FILE, is_secret

SET, NOT_SET = "set", "not set"
PATH_NAME = re.compile(r"(^|_)(file|files|dir|dirs|path|paths)$", re.IGNORECASE)
DESTINATION = ("url", "host", "port")
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
SCHEMES = frozenset({"http", "https", "socket", "rfc2217"})
PROTECTED: dict[str, tuple[str, ...]] = {"http-api": ("token", "token_file", "trusted_networks", "allowed_hosts")}
NOT_WRITABLE = frozenset({"bus"})
_MISSING = object()


class GuardError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def mask(data: Any) -> Any:
    """A copy with every secret's value replaced by "set" or "not set"."""
    if isinstance(data, dict):
        return {k: (SET if v not in ("", None) else NOT_SET) if is_secret(str(k)) and not isinstance(v, dict | list)
                else mask(v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data


def secret_values(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if is_secret(str(key)) and isinstance(value, str | int | float) and not isinstance(value, bool):
                yield str(value)
            else:
                yield from secret_values(value)
    elif isinstance(data, list):
        for value in data:
            yield from secret_values(value)


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with any secret value (3 characters or more; shorter ones match too much) taken out."""
    for value in sorted({s for s in secrets if len(s) >= 3 and s not in (SET, NOT_SET)}, key=len, reverse=True):
        text = text.replace(value, "(secret)")
    return text


# ------------------------------------------------------------------ a PUT body against the stored section

def prepare(section: str, body: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The body to save: secrets sent back as "set" restored; GuardError for what HTTP may not change."""
    if section in NOT_WRITABLE:
        raise GuardError("path", f"the [{section}] section (broker address and credentials) cannot be changed "
                                 "over HTTP: edit the config file")
    out = copy.deepcopy(body)
    _restore(out, stored, "$")
    for key in PROTECTED.get(section, ()):
        if out.get(key, _MISSING) != stored.get(key, _MISSING):
            raise GuardError(f"$.{key}", f"[{section}] {key} cannot be changed over HTTP (it decides who may use "
                                         "this API without a token or from where): edit the config file")
    known = _strings_by_key(stored)
    for where, key, value in _strings(out, "$", ""):
        if value in known.get(key, ()) or is_secret(key):
            continue  # kept as stored (paths and URLs a person wrote into the file stay), or opaque
        problem = _value_problem(key, value)
        if problem is not None:
            raise GuardError(where, problem)
    return out


def _value_problem(key: str, value: str) -> str | None:
    if PATH_NAME.search(key):
        return f"{key} is a file path; paths cannot be set over HTTP (edit the config file)"
    scheme = URL_SCHEME.match(value)
    if scheme and value[scheme.end():].startswith("//") and scheme.group(1).lower() not in SCHEMES:
        return (f"{key}: the URL scheme {scheme.group(1)!r} is not accepted over HTTP; use http:// or https:// "
                "(serial devices: socket:// or rfc2217://)")
    if value.startswith(("/", "~", "\\")) and not os.path.normpath(value).startswith("/dev/"):
        return f"{key}: {value[:80]!r} is a file path; over HTTP only a serial device under /dev/ may be given"
    return None


def _restore(body: dict[str, Any], stored: Any, where: str) -> None:
    stored_dict = stored if isinstance(stored, dict) else {}
    kept: list[str] = []
    for key, value in list(body.items()):
        here = f"{where}.{key}"
        if is_secret(key) and isinstance(value, str) and value in (SET, NOT_SET):
            if key in stored_dict:
                body[key] = stored_dict[key]
                kept.append(key)
            elif value == NOT_SET:
                del body[key]
            else:
                raise GuardError(here, f"{key} is \"set\" but nothing is stored here to keep: send the {key} itself")
        elif isinstance(value, dict):
            _restore(value, stored_dict.get(key), here)
        elif isinstance(value, list):
            _restore_list(value, stored_dict.get(key), here)
    kept += [k for k in stored_dict if SECRET_FILE.search(k) and body.get(k) == stored_dict[k]]
    if kept:
        for key in DESTINATION:
            if body.get(key, _MISSING) != stored_dict.get(key, _MISSING):
                raise GuardError(f"{where}.{key}", f"{key} changed while the stored {', '.join(kept)} stays: a "
                                                   f"stored secret never follows a new address over HTTP; send the "
                                                   f"secret itself with the new {key}")


def _restore_list(body: list[Any], stored: Any, where: str) -> None:
    stored_list = stored if isinstance(stored, list) else []
    for index, item in enumerate(body):
        positional = stored_list[index] if index < len(stored_list) else None
        if isinstance(item, dict):
            same = [s for s in stored_list if isinstance(s, dict) and _plain(s) == _plain(item)]
            counterpart = positional if positional in same else same[0] if same else positional
            _restore(item, counterpart, f"{where}.{index}")
        elif isinstance(item, list):
            _restore_list(item, positional, f"{where}.{index}")


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not is_secret(k)}


def _strings(data: Any, where: str, key: str) -> Iterator[tuple[str, str, str]]:
    """(where, key, value) of every string; a list's items carry the list's key."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _strings(v, f"{where}.{k}", str(k))
    elif isinstance(data, list):
        for index, v in enumerate(data):
            yield from _strings(v, f"{where}.{index}", key)
    elif isinstance(data, str):
        yield where, key, data


def _strings_by_key(stored: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for _where, key, value in _strings(stored, "$", ""):
        found.setdefault(key, set()).add(value)
    return found
