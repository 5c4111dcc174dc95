"""Starts the real `triggerline` binary on a free loopback port for the SDK tests.

The binary comes from $TRIGGERLINE_BIN, else target/debug/triggerline (built by scripts/test).
"""

import os
import pathlib
import secrets
import subprocess
import tempfile

import pytest

from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.triggers.api.triggers_api import TriggersApi
from sailpoint.triggers.api_client import ApiClient

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def triggerline():
    """(base_url, token) of a running triggerline with an empty database."""
    binary = os.environ.get("TRIGGERLINE_BIN", str(ROOT / "target" / "debug" / "triggerline"))
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            env={**os.environ, "TRIGGERLINE_API_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            base_url = None
            for line in proc.stdout:
                if line.startswith("triggerline listening on "):
                    base_url = line.removeprefix("triggerline listening on ").strip()
                    break
            assert base_url, "triggerline exited before it was listening"
            yield base_url, token
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture()
def api(triggerline):
    """The SDK's TriggersApi, configured as a user would: base URL and a bearer token."""
    base_url, token = triggerline
    params = ConfigurationParams()
    params.base_url = base_url
    params.access_token = token
    return TriggersApi(ApiClient(Configuration(params)))
