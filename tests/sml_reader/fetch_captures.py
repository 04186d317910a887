"""Clone the libsml-testing corpus of real SML dumps (no licence, so not committed) for test_captures.py.

    python -m tests.sml_reader.fetch_captures      # -> tests/sml_reader/data/external/libsml-testing
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

URL = "https://github.com/devZer0/libsml-testing.git"
TARGET = Path(__file__).parent / "data" / "external" / "libsml-testing"


def main() -> int:
    if TARGET.exists():
        print(f"{TARGET} exists; `git -C {TARGET} pull` updates it")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.call(["git", "clone", "--depth", "1", URL, str(TARGET)])


if __name__ == "__main__":
    sys.exit(main())
