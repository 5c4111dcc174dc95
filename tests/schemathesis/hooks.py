"""Schemathesis hooks for the Triggerline run (loaded through SCHEMATHESIS_HOOKS).

Generated subscriptions may carry any webhook URL; deliveries to them would leave the machine.
Right before every request, each string `url` in a body (a subscription's `httpConfig.url`, or a
JSON Patch value at or above it) is pointed at the run's own receiver on 127.0.0.1 instead, so
every delivery stays on loopback. Nothing else about the generated case changes.
"""

import os

import schemathesis

SINK = os.environ["TRIGGERLINE_SCHEMATHESIS_SINK"]


def _contain(value):
    if isinstance(value, dict):
        return {k: (SINK if k == "url" and isinstance(v, str) else _contain(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_contain(v) for v in value]
    return value


def _contain_patch(ops):
    contained = []
    for op in ops:
        if isinstance(op, dict) and isinstance(op.get("path"), str) and op["path"].rstrip("/").endswith("/url") \
                and isinstance(op.get("value"), str):
            op = {**op, "value": SINK}
        contained.append(_contain(op))
    return contained


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, list):
        case.body = _contain_patch(body)
    elif isinstance(body, dict):
        case.body = _contain(body)
