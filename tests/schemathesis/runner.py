"""Runs schemathesis over every operation of Triggerline's OpenAPI document, against the real
`triggerline` binary ($TRIGGERLINE_BIN, else target/debug/triggerline; tests/support) on SQLite in a temp data
dir with a fixed API token. The document is read from the running server (`GET /openapi.json`).

Checks: no 5xx, status codes, content types, response headers and bodies as documented. Bounded
by examples per operation and a time budget (--max-time) so that it takes at most ~3 minutes on
2 cores. Subscriptions' webhook URLs are redirected to a receiver on 127.0.0.1 (hooks.py), so
nothing leaves the machine. Exits with schemathesis's status.

Knobs (environment): TRIGGERLINE_SCHEMATHESIS_EXAMPLES (examples per operation, 12),
TRIGGERLINE_SCHEMATHESIS_MAX_TIME (seconds, 150), TRIGGERLINE_SCHEMATHESIS_SEED (16). The JUnit
report and the server's log land in target/schemathesis/.

Usage: tests/schemathesis/run [extra schemathesis arguments] (makes the venv, then runs this)
"""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from triggerline_process import running  # noqa: E402

TOKEN = "schemathesis-token"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


class Receiver(http.server.BaseHTTPRequestHandler):
    """Every delivery gets 200 `{}` (a FIRE_AND_FORGET delivery, an ASYNC acknowledgement)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"{}"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The server gave up on the delivery (its deadline, or shutting down): nothing to say.
            pass

    def log_message(self, *args):
        pass


def deliveries_off_loopback(base_url: str, sink: str) -> list[str]:
    """Attempt targets of the run's invocations other than the receiver (its host, with or
    without the port) or an event bus (which the local backend writes to a file): proof that
    hooks.py kept every delivery on loopback."""

    def get(path):
        request = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    escaped, checked = set(), 0
    for offset in range(0, 2000, 250):
        page = get(f"/trigger-invocations/v1/status?limit=250&offset={offset}")
        for invocation in page:
            for attempt in get(f"/trigger-invocations/v1/{invocation['id']}/status")["attempts"]:
                checked += 1
                target = attempt["target"]
                # `(deleted)`: the subscription was gone before the delivery, so none was made.
                if target not in (sink, "127.0.0.1", "(deleted)") and not target.startswith("eventbridge:"):
                    escaped.add(target)
        if len(page) < 250:
            break
    if not escaped:
        print(f"schemathesis: {checked} delivery attempts, all to {sink} or an event bus")
    return sorted(escaped)


def main() -> int:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    report_dir = ROOT / "target" / "schemathesis"
    report_dir.mkdir(parents=True, exist_ok=True)
    # A short synchronous wait: a synchronous start against a slow subscriber answers 542 in a
    # second instead of holding a worker for 25.
    try:
        with open(report_dir / "server.log", "w") as log, \
                running(TOKEN, "--sync-wait", "PT1S", stderr=log) as base_url:
            command = [
                str(pathlib.Path(sys.executable).parent / "schemathesis"),
                "--config-file", str(HERE / "schemathesis.toml"),
                "run",
                f"{base_url}/openapi.json",
                "--url", base_url,
                "--header", f"Authorization: Bearer {TOKEN}",
                "--checks", CHECKS,
                "--max-examples", os.environ.get("TRIGGERLINE_SCHEMATHESIS_EXAMPLES", "12"),
                "--max-time", os.environ.get("TRIGGERLINE_SCHEMATHESIS_MAX_TIME", "150"),
                "--workers", "2",
                "--seed", os.environ.get("TRIGGERLINE_SCHEMATHESIS_SEED", "16"),
                "--report", "junit",
                "--report-dir", str(report_dir),
                *sys.argv[1:],
            ]
            env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": "hooks",
                "PYTHONPATH": str(HERE),
                "TRIGGERLINE_SCHEMATHESIS_SINK": sink,
            }
            # Schemathesis keeps its replay store in `.schemathesis/` of its working directory:
            # under target/, not in the work tree.
            status = subprocess.run(command, env=env, cwd=report_dir).returncode
            escaped = deliveries_off_loopback(base_url, f"127.0.0.1:{receiver.server_address[1]}")
            if escaped:
                print(f"schemathesis: deliveries went past the loopback receiver: {escaped}",
                      file=sys.stderr)
                return 1
            return status
    except RuntimeError as e:
        print(f"schemathesis: {e}", file=sys.stderr)
        return 1
    finally:
        receiver.shutdown()


if __name__ == "__main__":
    sys.exit(main())
