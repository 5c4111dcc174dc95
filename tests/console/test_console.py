"""The web console in headless Chromium against the real binary and a real receiver: what a person
sees and does, from the sign-in through create -> test -> inspect -> replay, at 1280x800 and at a
phone's 390 px. Screenshots of the main pages go to target/console/ (CI artifacts)."""

import json
import os
import pathlib
import shutil
import urllib.parse

from playwright.sync_api import expect

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHOTS = ROOT / "target" / "console"

IDENTITY_CREATED = "idn:identity-created"
MAIN_PAGES = ["#/triggers", f"#/triggers/{IDENTITY_CREATED}", "#/subscriptions", "#/subscriptions/new", "#/invocations"]


def screenshot(page, name):
    """The viewport as a person sees it, for CI artifacts and the README."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_console(page, triggerline, route=""):
    page.goto(f"{triggerline.base_url}/console/{route}")


def subscribe(triggerline, url, name="Receiver"):
    return triggerline.call(
        "POST",
        "/trigger-subscriptions/v1",
        {"name": name, "triggerId": IDENTITY_CREATED, "type": "HTTP",
         "httpConfig": {"url": url, "httpDispatchMode": "SYNC"}},
    )


def delete_all_subscriptions(triggerline):
    for s in triggerline.call("GET", "/trigger-subscriptions/v1"):
        triggerline.call("DELETE", f"/trigger-subscriptions/v1/{s['id']}")


def test_sign_in_refuses_a_wrong_token_beside_the_field_and_keeps_the_right_one(console, triggerline):
    page = console(signed_in=False)
    page.goto(f"{triggerline.base_url}/console")

    expect(page).to_have_url(f"{triggerline.base_url}/console/")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Continue").click()

    error = page.locator("#token-error")
    expect(error).to_contain_text("invalid bearer token")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")

    # Keyboard only: the field has focus after the error; type, Enter.
    page.keyboard.press("Control+A")
    page.keyboard.type(triggerline.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Triggers", level=1)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('triggerline.console.token')") == triggerline.token

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('triggerline.console.token')") is None
    assert page.console_errors == []


def test_catalog_shows_each_trigger_with_its_schemas_and_example(console, triggerline):
    catalog = triggerline.call("GET", "/triggers/v1")
    page = console()
    open_console(page, triggerline, "#/triggers")

    links = page.locator("#trigger-list a[href^='#/triggers/']")
    expect(links).to_have_count(len(catalog))
    page.get_by_label("Filter triggers").fill("identity created")
    expect(page.locator("#trigger-list li:visible")).to_have_count(1)
    page.locator("#trigger-list li:visible a").click()

    expect(page).to_have_url(f"{triggerline.base_url}/console/#/triggers/{IDENTITY_CREATED}")
    detail = page.locator(".detail")
    expect(detail.get_by_role("heading", name="Identity Created")).to_be_visible()
    expect(detail).to_contain_text("Fire and forget")
    inputs = page.locator("#input-section")
    expect(inputs.locator("table.fields")).to_contain_text("identity")
    example = next(t for t in catalog if t["id"] == IDENTITY_CREATED)["exampleInput"]
    expect(inputs.get_by_label("Example input")).to_contain_text(example["identity"]["name"])
    screenshot(page, "catalog")

    # A request/response trigger also shows what its subscriber answers.
    page.get_by_label("Filter triggers").fill("idn:access-request-dynamic-approver")
    page.locator("#trigger-list li:visible a").click()
    outputs = page.locator("#output-section")
    expect(outputs.locator("table.fields")).to_contain_text("GOVERNANCE_GROUP")
    expect(outputs.get_by_label("Example output")).to_contain_text("Adam Adams")
    assert page.console_errors == []


def test_create_test_inspect_and_replay_a_failed_invocation(console, triggerline, receiver):
    delete_all_subscriptions(triggerline)
    page = console()
    open_console(page, triggerline, "#/subscriptions")
    expect(page.get_by_role("heading", name="No subscriptions yet")).to_be_visible()
    screenshot(page, "subscriptions-empty")

    # The editor: the filter is tested live against the trigger's example, then pasted JSON.
    page.get_by_role("link", name="Create a subscription").click()
    expect(page.get_by_role("heading", name="New subscription", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill("HR onboarding")
    page.get_by_label("Trigger", exact=True).select_option(IDENTITY_CREATED)
    result = page.locator("#filter-result")
    expect(result).to_contain_text("No filter: every event")

    page.get_by_label("JSONPath filter (optional)").fill('$[?($.identity.type == "MACHINE")]')
    expect(result).to_have_attribute("data-result", "warn")
    expect(result).to_contain_text("Selects nothing in the example input")
    page.get_by_label("JSONPath filter (optional)").fill("$[?(")
    expect(result).to_have_attribute("data-result", "err")
    expect(result).to_contain_text("Not valid JSONPath")
    page.get_by_label("JSONPath filter (optional)").fill('$[?($.identity.type == "IDENTITY")]')
    expect(result).to_have_attribute("data-result", "ok")
    expect(result).to_contain_text("Matches the example input")

    page.get_by_label("JSON I paste").check()
    sample = page.get_by_label("Sample input (JSON)")
    sample.fill("{not json")
    expect(page.locator("#filter-sample-error")).to_contain_text("Not JSON")
    sample.fill(json.dumps({"identity": {"type": "SERVICE"}}))
    expect(result).to_have_attribute("data-result", "warn")
    expect(result).to_contain_text("Selects nothing in the pasted input")
    page.get_by_label("the trigger's example input").check()
    expect(result).to_have_attribute("data-result", "ok")

    # The API's message lands beside the field it names, and nothing is created.
    page.get_by_label("URL", exact=True).fill("ftp://files.example.com/drop")
    screenshot(page, "subscription-editor")
    page.get_by_role("button", name="Create subscription").click()
    url_error = page.locator("#sub-url-error")
    expect(url_error).to_contain_text("must be an http or https URL")
    expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    assert "sub-url-error" in page.get_by_label("URL", exact=True).get_attribute("aria-describedby")
    assert triggerline.call("GET", "/trigger-subscriptions/v1") == []

    page.get_by_label("URL", exact=True).fill(receiver.url)
    page.get_by_role("button", name="Create subscription").click()

    # Created: back on the list, with the signing secret shown this once.
    expect(page.get_by_role("heading", name="Created “HR onboarding”")).to_be_visible()
    assert page.locator("#signing-secret").input_value().startswith("whsec_")
    [created] = triggerline.call("GET", "/trigger-subscriptions/v1")
    assert created["filter"] == '$[?($.identity.type == "IDENTITY")]'
    assert created["httpConfig"]["url"] == receiver.url
    row = page.locator(f"tr[data-subscription='{created['id']}']")
    expect(row).to_contain_text("HR onboarding")
    expect(row).to_contain_text(IDENTITY_CREATED)

    # Disable and enable in place; the API agrees each time.
    switch = row.get_by_role("switch")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    assert triggerline.call("GET", "/trigger-subscriptions/v1")[0]["enabled"] is False
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    assert triggerline.call("GET", "/trigger-subscriptions/v1")[0]["enabled"] is True
    screenshot(page, "subscriptions")

    # A test invocation, watched until it settles: the receiver answers 500 once, so it FAILs.
    receiver.answer(500)
    row.get_by_role("button", name="Send test").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Input")).to_contain_text("Michael Michaels")
    dialog.get_by_role("button", name="Send test").click()
    watch = page.locator("#test-watch")
    expect(watch.locator("[data-state='FAILED']")).to_be_visible()
    expect(watch).to_contain_text("subscriber answered 500")
    first = receiver.next()
    assert first["answered"] == 500
    invocation_id = first["body"]["_metadata"]["invocationId"]

    # Inspect it: one failed attempt on the timeline, the input, no output.
    watch.get_by_role("link", name="Open invocation").click()
    expect(page).to_have_url(f"{triggerline.base_url}/console/#/invocations/{invocation_id}")
    expect(page.locator("#invocation-status [data-state='FAILED']")).to_be_visible()
    attempts = page.locator("#timeline .attempt")
    expect(attempts).to_have_count(1)
    expect(attempts.nth(0)).to_contain_text("HTTP 500")
    expect(attempts.nth(0)).to_contain_text("subscriber answered 500")
    expect(page.get_by_label("Input JSON")).to_contain_text("Michael Michaels")

    # Replay: delivered again under the same id, and the page follows it to COMPLETED.
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("#invocation-status [data-state='COMPLETED']")).to_be_visible()
    expect(attempts).to_have_count(2)
    expect(attempts.nth(1)).to_contain_text("HTTP 200")
    expect(attempts.nth(1)).to_have_attribute("data-outcome", "completed")
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    second = receiver.next()
    assert second["answered"] == 200
    assert second["headers"]["webhook-id"] == first["headers"]["webhook-id"] == invocation_id
    screenshot(page, "invocation-detail")
    # The README's picture is refreshed on request only, so a test run leaves the tree clean.
    if os.environ.get("TRIGGERLINE_UPDATE_DOCS") == "1":
        shutil.copyfile(SHOTS / "invocation-detail.png", ROOT / "docs" / "console.png")

    # The list, newest first, filtered by status (here) and by subscription (by the API).
    page.get_by_role("link", name="← Invocations").click()
    listed = page.locator(f"tr[data-invocation='{invocation_id}']")
    expect(listed.locator("[data-state='COMPLETED']")).to_be_visible()
    screenshot(page, "invocations")
    page.get_by_label("Status").select_option("FAILED")
    expect(page.get_by_role("heading", name="No invocations match these filters")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(listed).to_be_visible()
    page.get_by_label("Subscription").select_option(created["id"])
    expect(page).to_have_url(f"{triggerline.base_url}/console/#/invocations?subscription={created['id']}")
    expect(page.locator("tr[data-invocation]")).to_have_count(1)

    # Edit: the form comes back filled; a new name is saved with PUT.
    page.get_by_role("link", name="Subscriptions").click()
    page.locator(f"tr[data-subscription='{created['id']}']").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("URL", exact=True)).to_have_value(receiver.url)
    expect(page.get_by_label("JSONPath filter (optional)")).to_have_value('$[?($.identity.type == "IDENTITY")]')
    page.get_by_label("Name", exact=True).fill("HR onboarding (v2)")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved “HR onboarding (v2)”.")).to_be_visible()
    assert triggerline.call("GET", "/trigger-subscriptions/v1")[0]["name"] == "HR onboarding (v2)"

    # Delete behind a confirmation; the empty state comes back.
    page.locator(f"tr[data-subscription='{created['id']}']").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete subscription").click()
    expect(page.get_by_role("heading", name="No subscriptions yet")).to_be_visible()
    assert triggerline.call("GET", "/trigger-subscriptions/v1") == []
    assert page.console_errors == []


def test_invocations_list_shows_a_useful_empty_state_for_an_unknown_trigger(console, triggerline):
    page = console()
    open_console(page, triggerline, "#/invocations?trigger=" + urllib.parse.quote("idn:saved-search-complete"))

    expect(page.get_by_role("heading", name="No invocations match these filters")).to_be_visible()
    expect(page.get_by_role("button", name="Clear filters")).to_be_visible()
    assert page.console_errors == []


def test_pages_load_without_layout_shift(console, triggerline, receiver):
    subscription = subscribe(triggerline, receiver.url, name="Layout check")
    try:
        for _ in range(3):
            triggerline.call("POST", "/trigger-invocations/v1/test", {"triggerId": IDENTITY_CREATED, "contentJson": {}})
        page = console()
        page.add_init_script(
            """
            window.__shift = 0;
            new PerformanceObserver((list) => {
              for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__shift += entry.value;
            }).observe({ type: "layout-shift", buffered: true });
            """
        )
        for route, ready in [
            ("#/invocations", "tr[data-invocation]"),
            ("#/subscriptions", "tr[data-subscription]"),
            (f"#/triggers/{IDENTITY_CREATED}", "#input-section"),
        ]:
            open_console(page, triggerline, route)
            page.locator(ready).first.wait_for()
            shift = page.evaluate("window.__shift")
            # 0.1 is the "good" Cumulative Layout Shift bound; skeletons keep these near zero.
            assert shift < 0.02, f"{route}: layout shift {shift}"
    finally:
        triggerline.call("DELETE", f"/trigger-subscriptions/v1/{subscription['id']}")


def test_every_page_fits_a_phone_without_sideways_scrolling(console, triggerline, receiver):
    subscription = subscribe(triggerline, receiver.url, name="Phone check")
    try:
        [started] = triggerline.call("POST", "/trigger-invocations/v1/test", {"triggerId": IDENTITY_CREATED, "contentJson": {}})
        receiver.next()
        page = console(width=390, height=844)
        for route in MAIN_PAGES + [f"#/subscriptions/{subscription['id']}", f"#/invocations/{started['id']}"]:
            open_console(page, triggerline, route)
            page.locator("main h1").first.wait_for()
            page.locator(".skeleton").first.wait_for(state="detached")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{route} is {width} px wide at a 390 px viewport"
        expect(page.locator("#invocation-status [data-state='COMPLETED']")).to_be_visible()
        screenshot(page, "phone-invocation-detail")
        open_console(page, triggerline, "#/subscriptions")
        expect(page.locator(f"tr[data-subscription='{subscription['id']}']")).to_be_visible()
        screenshot(page, "phone-subscriptions")
        assert page.console_errors == []
    finally:
        triggerline.call("DELETE", f"/trigger-subscriptions/v1/{subscription['id']}")


def test_the_main_navigation_works_from_the_keyboard(console, triggerline):
    page = console()
    open_console(page, triggerline, "#/triggers")
    expect(page.get_by_role("heading", name="Triggers", level=1)).to_be_visible()

    page.keyboard.press("Tab")
    expect(page.locator("#skip-link")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Subscriptions", exact=True)).to_be_focused()
    page.keyboard.press("Enter")

    heading = page.get_by_role("heading", name="Subscriptions", level=1)
    expect(heading).to_be_focused()
    expect(page.get_by_role("link", name="Subscriptions", exact=True)).to_have_attribute("aria-current", "page")
    assert page.console_errors == []


def test_an_action_that_fails_says_why_in_its_row(console, triggerline, receiver):
    subscription = subscribe(triggerline, receiver.url, name="Deleted elsewhere")
    page = console()
    open_console(page, triggerline, "#/subscriptions")
    row = page.locator(f"tr[data-subscription='{subscription['id']}']")
    expect(row).to_be_visible()

    triggerline.call("DELETE", f"/trigger-subscriptions/v1/{subscription['id']}")
    row.get_by_role("switch").click()

    expect(row.get_by_role("alert")).to_contain_text("Not changed:")
    expect(row.get_by_role("alert")).to_contain_text(subscription["id"])
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")


def test_a_token_the_api_refuses_sends_the_person_back_to_sign_in(console, triggerline):
    page = console(signed_in=False)
    page.context.add_init_script("sessionStorage.setItem('triggerline.console.token', 'stale-token')")
    open_console(page, triggerline, "#/invocations")

    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("The API refused the token")
    assert page.evaluate("sessionStorage.getItem('triggerline.console.token')") is None
