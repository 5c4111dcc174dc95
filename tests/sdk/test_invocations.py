"""Invocations through the official SDK: a test invocation to a real receiver on 127.0.0.1,
completed through the SDK's own complete method with the secret the receiver got, and the status
list read back through the SDK's models."""

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sailpoint.triggers.models.complete_invocation import CompleteInvocation
from sailpoint.triggers.models.http_config import HttpConfig
from sailpoint.triggers.models.invocation import Invocation
from sailpoint.triggers.models.invocation_status import InvocationStatus
from sailpoint.triggers.models.subscription_post_request import SubscriptionPostRequest
from sailpoint.triggers.models.subscription_type import SubscriptionType
# Aliased so that pytest does not take it for a test class.
from sailpoint.triggers.models.test_invocation import TestInvocation as TestInvocationRequest

PRE_APPROVAL = "idn:access-request-pre-approval"


@pytest.fixture()
def receiver():
    """An ASYNC receiver as SailPoint's docs describe one: 200 {} now, complete later."""
    bodies = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            bodies.put(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()


def test_async_test_invocation_completed_through_the_sdk(api, receiver):
    url, bodies = receiver
    subscription = api.create_subscription_v1(
        SubscriptionPostRequest(
            name="Pre-approval bot",
            trigger_id=PRE_APPROVAL,
            type=SubscriptionType.HTTP,
            http_config=HttpConfig(url=url, http_dispatch_mode="ASYNC"),
        )
    )
    try:
        started = api.start_test_trigger_invocation_v1(
            TestInvocationRequest(trigger_id=PRE_APPROVAL, content_json={"workflowId": 1234})
        )
        assert len(started) == 1 and isinstance(started[0], Invocation)
        invocation = started[0]
        assert invocation.trigger_id == PRE_APPROVAL
        assert invocation.content_json == {"workflowId": 1234}

        delivered = bodies.get(timeout=20)
        metadata = delivered["_metadata"]
        assert metadata["invocationId"] == invocation.id
        assert metadata["responseMode"] == "async"
        assert metadata["secret"] == invocation.secret

        api.complete_trigger_invocation_v1(
            invocation.id,
            CompleteInvocation(
                secret=metadata["secret"],
                output={"approved": True, "comment": "approved by the bot", "approver": "bot"},
            ),
        )

        statuses = api.list_trigger_invocation_status_v1(
            filters=f'triggerId eq "{PRE_APPROVAL}"', sorters="-created"
        )
        assert all(isinstance(s, InvocationStatus) for s in statuses)
        [status] = [s for s in statuses if s.id == invocation.id]
        assert status.type.value == "TEST"
        assert status.subscription_id == subscription.id
        assert status.completed is not None
        assert status.start_invocation_input.content_json == {"workflowId": 1234}
        assert status.complete_invocation_input.output["approved"] is True
        assert status.complete_invocation_input.localized_error is None
    finally:
        api.delete_subscription_v1(subscription.id)


DYNAMIC_APPROVER = "idn:access-request-dynamic-approver"


def test_dynamic_approver_declines_with_the_sdks_empty_answer(api, receiver):
    """The SDK's AccessRequestDynamicApprovalResponse: "If there is none, send an empty value"
    for each field. A receiver that adds no approver answers so, built with the SDK's model."""
    from sailpoint.triggers.models.access_request_dynamic_approval_response import (
        AccessRequestDynamicApprovalResponse,
    )

    url, bodies = receiver
    subscription = api.create_subscription_v1(
        SubscriptionPostRequest(
            name="Approver picker",
            trigger_id=DYNAMIC_APPROVER,
            type=SubscriptionType.HTTP,
            http_config=HttpConfig(url=url, http_dispatch_mode="ASYNC"),
        )
    )
    try:
        [invocation] = api.start_test_trigger_invocation_v1(
            TestInvocationRequest(trigger_id=DYNAMIC_APPROVER, content_json={})
        )
        metadata = bodies.get(timeout=20)["_metadata"]
        none = AccessRequestDynamicApprovalResponse(id="", type="", name="")

        api.complete_trigger_invocation_v1(
            invocation.id,
            CompleteInvocation(secret=metadata["secret"], output=none.to_dict()),
        )

        [status] = [
            s
            for s in api.list_trigger_invocation_status_v1(
                filters=f'subscriptionId eq "{subscription.id}"'
            )
            if s.id == invocation.id
        ]
        assert status.complete_invocation_input.output == {"id": "", "type": "", "name": ""}
        assert status.complete_invocation_input.localized_error is None
    finally:
        api.delete_subscription_v1(subscription.id)
