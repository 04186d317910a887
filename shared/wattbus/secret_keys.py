"""Which config keys hold a secret: the one name rule the setup API masks by (http-api's
setup_guard.py) and a bridge's form is checked against (bridge/form.py), so a form's secret input
can only land in a key that is never shown back."""

from __future__ import annotations

import re

SECRET_WORDS = r"(password|passwd|passphrase|token|secret|psk|api_key|apikey)"
SECRET_NAME = re.compile(rf"(^|_){SECRET_WORDS}$", re.IGNORECASE)
SECRET_FILE = re.compile(rf"(^|_){SECRET_WORDS}_files?$", re.IGNORECASE)


def is_secret(key: str) -> bool:
    """A key holding a secret value, by its name (the last part of a dotted "vars.api_key")."""
    return bool(SECRET_NAME.search(key.rsplit(".", 1)[-1]))
