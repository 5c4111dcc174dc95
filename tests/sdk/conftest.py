"""Starts the real `triggerline` binary on a free loopback port for the SDK tests.

The binary comes from $TRIGGERLINE_BIN, else target/debug/triggerline (built by scripts/test;
tests/support/triggerline_process.py starts it).
"""

import pathlib
import secrets
import sys

import pytest

from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.triggers.api.triggers_api import TriggersApi
from sailpoint.triggers.api_client import ApiClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from triggerline_process import running  # noqa: E402


@pytest.fixture(scope="session")
def triggerline():
    """(base_url, token) of a running triggerline with an empty database."""
    token = secrets.token_urlsafe(24)
    with running(token) as base_url:
        yield base_url, token


@pytest.fixture()
def api(triggerline):
    """The SDK's TriggersApi, configured as a user would: base URL and a bearer token."""
    base_url, token = triggerline
    params = ConfigurationParams()
    params.base_url = base_url
    params.access_token = token
    return TriggersApi(ApiClient(Configuration(params)))
