"""The real `triggerline` binary on a free loopback port, for the Python suites (the official
SDK, the console in Chromium, schemathesis).

The binary comes from $TRIGGERLINE_BIN, else target/debug/triggerline (built by scripts/test). It
runs on SQLite in a fresh temp data dir with the given API token, and the server prints its
address once it listens, so nothing here waits on a timer.
"""

import contextlib
import os
import pathlib
import subprocess
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parents[2]
READY = "triggerline listening on "


def binary():
    return os.environ.get("TRIGGERLINE_BIN", str(ROOT / "target" / "debug" / "triggerline"))


@contextlib.contextmanager
def running(token, *flags, stderr=subprocess.DEVNULL):
    """Yields the base URL of a triggerline started with `flags`; stops it (SIGTERM) on exit."""
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen(
            [binary(), "--listen", "127.0.0.1:0", "--data-dir", data_dir, *flags],
            env={**os.environ, "TRIGGERLINE_API_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            base_url = None
            for line in proc.stdout:
                if line.startswith(READY):
                    base_url = line.removeprefix(READY).strip()
                    break
            if not base_url:
                raise RuntimeError(f"{binary()} exited before it was listening")
            # Keep draining stdout, so that the server never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            yield base_url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
