"""Unit-session plumbing: the outcome-coverage check runs after every other unit test."""

from __future__ import annotations

import pytest
from tests import support

COVERAGE_MODULE = "test_outcome_coverage.py"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Move the coverage check to the end and note which unit modules will run."""
    last = [item for item in items if item.path.name == COVERAGE_MODULE]
    items[:] = [item for item in items if item.path.name != COVERAGE_MODULE] + last
    support.COLLECTED_MODULES.update(item.path.name for item in items)
