"""The real `triggerline` binary, a real receiver and Debian's headless Chromium for the console suite.

The binary comes from $TRIGGERLINE_BIN, else target/debug/triggerline (built by scripts/test); the
browser from $TRIGGERLINE_CHROMIUM, else /usr/bin/chromium (.ci/run installs it with apt).
"""

import json
import os
import pathlib
import queue
import secrets
import shutil
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from triggerline_process import running  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN_KEY = "triggerline.console.token"

# Assertions poll the page until they hold or this passes (Playwright's default is 5 s, short for
# a loaded CI runner); a page that never gets there still fails.
expect.set_options(timeout=20_000)


class Triggerline:
    """A running server: its base URL and token, and a small JSON client for arranging and checking."""

    def __init__(self, base_url, token):
        self.base_url = base_url
        self.token = token

    def call(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return json.loads(text) if text else None


@pytest.fixture(scope="session")
def triggerline():
    """A triggerline with an empty database that gives up after one attempt, so a 500 FAILs."""
    token = secrets.token_urlsafe(24)
    with running(token, "--max-attempts", "1") as base_url:
        yield Triggerline(base_url, token)


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers from a script (then 200) and records each request."""

    def __init__(self):
        self.requests = queue.Queue()
        self.script = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.put({"headers": dict(self.headers), "body": body, "answered": status})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/triggerline"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, *statuses):
        self.script.extend(statuses)

    def next(self):
        return self.requests.get(timeout=20)


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="session")
def browser():
    executable = os.environ.get("TRIGGERLINE_CHROMIUM", "/usr/bin/chromium")
    assert shutil.which(executable), (
        f"no Chromium at {executable}: `apt-get install -y chromium` (.ci/run does), "
        "or set TRIGGERLINE_CHROMIUM"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def console(browser, triggerline):
    """A factory of pages at a viewport size, signed in through sessionStorage as the sign-in form does."""
    contexts = []

    def open_page(width=1280, height=800, signed_in=True):
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="light")
        context.set_default_timeout(20_000)
        if signed_in:
            context.add_init_script(
                f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(triggerline.token)})"
            )
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # CSP refusals and script errors; a refused API call (an expected 400) is the browser's
        # "Failed to load resource" and is what some tests provoke.
        page.on(
            "console",
            lambda m: m.type == "error"
            and "Failed to load resource" not in m.text
            and errors.append(m.text),
        )
        page.console_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()

