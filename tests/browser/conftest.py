"""The browser tier's page on the session's router (fixtures: tests/browser_page.py)."""

from __future__ import annotations

import pytest

from tests.browser_page import LiveView
from tests.real_stack import RouterHandle


@pytest.fixture
def live_view(browser_context, router: RouterHandle) -> LiveView:
    return LiveView(browser_context.new_page(), router.port)
