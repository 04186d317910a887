from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discovery.lan import Lan


@pytest.fixture
async def lan(tmp_path: Path) -> AsyncIterator[Lan]:
    net = Lan(tmp_path)
    yield net
    await net.close()
