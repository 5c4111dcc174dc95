"""The official SailPoint Python SDK (sailpoint 2.1.72, module sailpoint.triggers) against a
running triggerline: every call goes through the SDK's own methods and models, so a response the
SDK cannot parse fails the test."""

import json

import pytest

from sailpoint.triggers.exceptions import ApiException
from sailpoint.triggers.models.bearer_token_auth_config import BearerTokenAuthConfig
from sailpoint.triggers.models.event_bridge_config import EventBridgeConfig
from sailpoint.triggers.models.http_config import HttpConfig
from sailpoint.triggers.models.subscription import Subscription
from sailpoint.triggers.models.subscription_patch_request_inner import SubscriptionPatchRequestInner
from sailpoint.triggers.models.subscription_patch_request_inner_value import (
    SubscriptionPatchRequestInnerValue,
)
from sailpoint.triggers.models.subscription_post_request import SubscriptionPostRequest
from sailpoint.triggers.models.subscription_put_request import SubscriptionPutRequest
from sailpoint.triggers.models.subscription_type import SubscriptionType
from sailpoint.triggers.models.trigger import Trigger
from sailpoint.triggers.models.validate_filter_input_dto import ValidateFilterInputDto


def test_list_triggers_raw_then_through_the_models(api):
    # The SDK's own list_triggers_v1 cannot parse a faithful catalog (its exampleInput oneOf matches
    # several models for most triggers, triggers.md §3.1), so read the raw list and parse the
    # triggers whose example the SDK's oneOf can tell apart.
    response = api.list_triggers_v1_without_preload_content()
    assert response.status == 200
    triggers = json.loads(response.data)
    assert len(triggers) == 24
    uniquely_parsable = {
        "idn:access-request-post-approval",
        "idn:account-uncorrelated",
        "idn:identity-attributes-changed",
        "idn:post-provisioning",
        "idn:saved-search-complete",
        "idn:source-created",
        "idn:source-deleted",
        "idn:source-updated",
        "idn:va-cluster-status-change",
    }
    parsed = [Trigger.from_dict(t) for t in triggers if t["id"] in uniquely_parsable]
    assert {t.id for t in parsed} == uniquely_parsable
    assert all(t.type.value == "FIRE_AND_FORGET" for t in parsed)


def test_list_triggers_filtered_to_one_the_sdk_can_parse(api):
    triggers = api.list_triggers_v1(filters='id eq "idn:source-created"', count=True)
    assert [t.id for t in triggers] == ["idn:source-created"]
    assert triggers[0].name == "Source Created"


def test_total_count_header_reads_as_against_sailpoint(api):
    # The SDK hands response headers to users as a plain, case-sensitive dict (ApiResponse is
    # pydantic, so urllib3's case-insensitive dict is copied into a dict): a header is found only
    # under the exact name the server sent, and users write SailPoint's `X-Total-Count`.
    response = api.list_triggers_v1_with_http_info(
        filters='id eq "idn:source-created"', count=True
    )
    assert response.status_code == 200
    assert type(response.headers) is dict
    assert response.headers.get("X-Total-Count") == "1"
    assert response.headers.get("Content-Type") == "application/json"
    assert "x-total-count" not in response.headers


def test_subscription_lifecycle(api):
    created = api.create_subscription_v1(
        SubscriptionPostRequest(
            name="Notify on new identities",
            trigger_id="idn:identity-created",
            type=SubscriptionType.HTTP,
            http_config=HttpConfig(
                url="https://hooks.example.test/identity",
                http_dispatch_mode="ASYNC",
                http_authentication_type="BEARER_TOKEN",
                bearer_token_auth_config=BearerTokenAuthConfig(bearer_token="s3cret"),
            ),
            filter='$[?($.identity.type == "IDENTITY")]',
        )
    )
    assert isinstance(created, Subscription)
    assert created.trigger_name == "Identity Created"
    assert created.response_deadline == "PT1H"
    assert created.enabled is True
    assert created.http_config.bearer_token_auth_config.bearer_token is None

    listed = api.list_subscriptions_v1(filters=f'id eq "{created.id}"')
    assert [s.id for s in listed] == [created.id]

    updated = api.update_subscription_v1(
        created.id,
        SubscriptionPutRequest(
            name="Identities to EventBridge",
            type="EVENTBRIDGE",
            event_bridge_config=EventBridgeConfig(aws_account="123456789012", aws_region="us-west-1"),
            response_deadline="PT30M",
        ),
    )
    assert updated.type == SubscriptionType.EVENTBRIDGE
    assert updated.event_bridge_config.aws_region == "us-west-1"
    assert updated.http_config is None
    assert updated.response_deadline == "PT30M"

    patched = api.patch_subscription_v1(
        created.id,
        [
            # The SDK cannot send a JSON boolean here; Triggerline takes "false" for /enabled.
            SubscriptionPatchRequestInner(
                op="replace", path="/enabled", value=SubscriptionPatchRequestInnerValue("false")
            ),
            SubscriptionPatchRequestInner(
                op="add", path="/description", value=SubscriptionPatchRequestInnerValue("patched")
            ),
        ],
    )
    assert patched.enabled is False
    assert patched.description == "patched"

    api.delete_subscription_v1(created.id)
    assert api.list_subscriptions_v1(filters=f'id eq "{created.id}"') == []
    with pytest.raises(ApiException) as missing:
        api.delete_subscription_v1(created.id)
    assert missing.value.status == 404


def test_validate_filter(api):
    answer = api.test_subscription_filter_v1(
        ValidateFilterInputDto(
            input={"identity": {"type": "IDENTITY"}},
            filter='$[?($.identity.type == "IDENTITY")]',
        )
    )
    assert (answer.is_valid, answer.is_valid_json_path, answer.is_path_exist) == (True, True, True)
    answer = api.test_subscription_filter_v1(
        ValidateFilterInputDto(input={"a": 1}, filter="$[?(")
    )
    assert (answer.is_valid, answer.is_valid_json_path) == (False, False)


def test_bad_input_is_an_error_response_dto(api):
    with pytest.raises(ApiException) as refused:
        api.create_subscription_v1(
            SubscriptionPostRequest(name="n", trigger_id="idn:nope", type=SubscriptionType.HTTP)
        )
    assert refused.value.status == 400
    body = json.loads(refused.value.body)
    assert body["messages"][0]["text"].startswith("triggerId")


def test_status_list_parses(api):
    statuses = api.list_trigger_invocation_status_v1(limit=10, count=True)
    assert isinstance(statuses, list)
