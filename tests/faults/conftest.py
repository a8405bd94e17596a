from __future__ import annotations

import pytest

from tests.e2e.conftest import up  # noqa: F401 - the fixture, shared with e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
