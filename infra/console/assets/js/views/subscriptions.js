// Subscriptions: the list, with enable/disable in place, a test invocation watched until it
// settles, and delete behind a confirmation.

import { call, eq, triggers, OPEN_STATES } from "../api.js";
import { copyButton, h, replace, skeleton, uid } from "../dom.js";
import { stateBadge } from "../format.js";

export async function render(main, route, app) {
  app.title("Subscriptions");
  const triggerFilter = route.query.get("trigger") ?? "";
  const flash = app.takeFlash();
  const filterSelect = h("select", { id: "sub-trigger-filter" }, h("option", { value: "" }, "All triggers"));
  const body = h("tbody", {}, Array.from({ length: 4 }, skeletonRow));
  const table = h("table", { class: "data", id: "subscriptions-table" },
    h("caption", { class: "visually-hidden" }, "Subscriptions"),
    h("thead", {}, h("tr", {},
      ["Name", "Trigger", "Target", "Mode", "Enabled", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    body);
  const list = h("div", { class: "card" }, h("div", { class: "table-wrap" }, table));
  const watch = h("section", { class: "watch", "aria-live": "polite", id: "test-watch" });

  replace(main,
    h("div", { class: "page-head" },
      h("div", {},
        h("h1", { tabindex: "-1" }, "Subscriptions"),
        h("p", { class: "lead" }, "Where each trigger's events go: your webhooks and EventBridge buses.")),
      h("a", { class: "button primary", href: `#/subscriptions/new${triggerFilter ? `?trigger=${encodeURIComponent(triggerFilter)}` : ""}` }, "New subscription")),
    flash ? flashPanel(flash) : null,
    watch,
    h("div", { class: "toolbar" },
      h("div", { class: "field" }, h("label", { for: "sub-trigger-filter" }, "Trigger"), filterSelect)),
    list);

  let catalog;
  let subscriptions;
  try {
    [catalog, subscriptions] = await Promise.all([
      triggers(),
      call("GET", "/trigger-subscriptions/v1", {
        query: { filters: triggerFilter ? eq("triggerId", triggerFilter) : null, sorters: "triggerName" },
        signal: app.signal,
      }).then((r) => r.data),
    ]);
  } catch (error) {
    if (error.name === "AbortError") return;
    replace(list, h("div", { class: "card-body" }, h("p", { class: "alert error", role: "alert" }, `Could not load subscriptions: ${error.message}`)));
    return;
  }
  for (const t of catalog) filterSelect.append(h("option", { value: t.id, selected: t.id === triggerFilter }, t.name));
  filterSelect.addEventListener("change", () => {
    app.navigate(filterSelect.value ? `#/subscriptions?trigger=${encodeURIComponent(filterSelect.value)}` : "#/subscriptions");
  });

  if (subscriptions.length === 0) {
    replace(list, emptyState(triggerFilter, catalog));
    return;
  }
  const byId = new Map(catalog.map((t) => [t.id, t]));
  replace(body, subscriptions.map((s) => row(s, byId.get(s.triggerId), { app, watch, list, body })));
}

function skeletonRow() {
  return h("tr", { "aria-hidden": "true" }, ["40%", "60%", "70%", "30%", "20%", "50%"].map((w) => h("td", {}, skeleton(w))));
}

function flashPanel(flash) {
  if (flash.signingSecret) {
    const field = h("input", { type: "text", readonly: true, value: flash.signingSecret, id: "signing-secret", "aria-label": "Signing secret" });
    return h("section", { class: "alert success", role: "status", style: "margin-bottom:16px" },
      h("h2", {}, `Created “${flash.name}”`),
      h("p", {}, "Its signing secret verifies the webhook-signature header of every delivery. Copy it now: it is not shown again."),
      h("div", { class: "secret-box" }, field, copyButton(flash.signingSecret)));
  }
  return h("p", { class: "alert success", role: "status", style: "margin-bottom:16px" }, flash.text);
}

function emptyState(triggerFilter, catalog) {
  const name = catalog.find((t) => t.id === triggerFilter)?.name;
  return h("div", { class: "empty" },
    h("h2", {}, name ? `No subscriptions to ${name}` : "No subscriptions yet"),
    h("p", {}, "A subscription sends a trigger's events to your service: an HTTP webhook or an EventBridge bus, with an optional JSONPath filter."),
    h("a", { class: "button primary", href: `#/subscriptions/new${triggerFilter ? `?trigger=${encodeURIComponent(triggerFilter)}` : ""}` },
      "Create a subscription"));
}

function target(s) {
  if (s.type === "EVENTBRIDGE") {
    const c = s.eventBridgeConfig ?? {};
    return [h("span", { class: "cell-main" }, "EventBridge"), h("span", { class: "cell-sub" }, `${c.awsAccount ?? "?"} · ${c.awsRegion ?? "?"}`)];
  }
  return h("span", { class: "truncate mono", title: s.httpConfig?.url }, s.httpConfig?.url ?? "—");
}

function row(s, trigger, view) {
  const error = h("p", { class: "inline-error", role: "alert", hidden: true });
  const toggle = h("button", {
    type: "button", role: "switch", class: "switch", "aria-checked": String(s.enabled),
    "aria-label": `Enabled: ${s.name}`,
  });
  const toggleText = h("span", { class: "hint" }, s.enabled ? "On" : "Off");
  toggle.addEventListener("click", async () => {
    const enabled = toggle.getAttribute("aria-checked") !== "true";
    toggle.disabled = true;
    error.hidden = true;
    try {
      const { data } = await call("PATCH", `/trigger-subscriptions/v1/${encodeURIComponent(s.id)}`, {
        body: [{ op: "replace", path: "/enabled", value: enabled }],
        contentType: "application/json-patch+json",
      });
      toggle.setAttribute("aria-checked", String(data.enabled));
      toggleText.textContent = data.enabled ? "On" : "Off";
    } catch (failure) {
      error.textContent = `Not changed: ${failure.message}`;
      error.hidden = false;
    } finally {
      toggle.disabled = false;
    }
  });
  const testButton = h("button", { type: "button", class: "button small" }, "Send test");
  testButton.addEventListener("click", () => openTestDialog(s, trigger, view));
  const deleteButton = h("button", { type: "button", class: "button small danger" }, "Delete");
  deleteButton.addEventListener("click", () => openDeleteDialog(s, tr, view));
  const tr = h("tr", { dataset: { subscription: s.id } },
    h("td", { "data-label": "Name", class: "name-cell" },
      h("div", {},
        h("a", { class: "cell-main", href: `#/subscriptions/${encodeURIComponent(s.id)}` }, s.name),
        s.description ? h("div", { class: "cell-sub" }, s.description) : null)),
    h("td", { "data-label": "Trigger" },
      h("div", {}, h("div", {}, s.triggerName ?? trigger?.name ?? s.triggerId), h("div", { class: "cell-sub mono" }, s.triggerId))),
    h("td", { "data-label": "Target" }, h("div", {}, target(s))),
    h("td", { "data-label": "Mode" }, s.type === "EVENTBRIDGE" ? "ASYNC" : (s.httpConfig?.httpDispatchMode ?? "—")),
    h("td", { "data-label": "Enabled" }, h("div", { class: "switch-cell" }, toggle, toggleText)),
    h("td", { "data-label": "Actions" },
      h("div", {}, h("div", { class: "actions" },
        h("a", { class: "button small", href: `#/subscriptions/${encodeURIComponent(s.id)}` }, "Edit"),
        testButton,
        h("a", { class: "button small ghost", href: `#/invocations?subscription=${encodeURIComponent(s.id)}`, "aria-label": `Invocations of ${s.name}` }, "History"),
        deleteButton), error)));
  return tr;
}

/** A modal form: `fields` inside, a primary action that may fail with a message shown in place. */
function dialog(title, fields, actionText, action, danger = false) {
  const titleId = uid("dialog-title");
  const error = h("div", { class: "alert error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: `button ${danger ? "danger solid" : "primary"}` }, actionText);
  const cancel = h("button", { type: "button", class: "button" }, "Cancel");
  const form = h("form", { method: "dialog", novalidate: true },
    h("h2", { id: titleId }, title), fields, error, h("div", { class: "actions" }, cancel, submit));
  const el = h("dialog", { "aria-labelledby": titleId }, form);
  cancel.addEventListener("click", () => el.close());
  el.addEventListener("close", () => el.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      await action();
      el.close();
    } catch (failure) {
      if (failure?.show) failure.show();
      else {
        replace(error, failure.message);
        error.hidden = false;
      }
    } finally {
      submit.disabled = false;
    }
  });
  document.body.append(el);
  el.showModal();
  return el;
}

function openDeleteDialog(s, tr, view) {
  dialog(`Delete “${s.name}”?`,
    h("p", {}, "Deliveries to it stop at once. Its invocations stay listable until retention removes them. This cannot be undone."),
    "Delete subscription",
    async () => {
      await call("DELETE", `/trigger-subscriptions/v1/${encodeURIComponent(s.id)}`);
      tr.remove();
      if (!view.body.children.length) view.app.navigate(window.location.hash, { text: `Deleted “${s.name}”.` });
      else replace(view.watch, h("p", { class: "alert success", role: "status" }, `Deleted “${s.name}”.`));
    },
    true);
}

function openTestDialog(s, trigger, view) {
  const inputId = uid("test-input");
  const errorId = uid("test-input-error");
  const input = h("textarea", { id: inputId, rows: "12", spellcheck: "false", "aria-describedby": errorId },
    JSON.stringify(trigger?.exampleInput ?? {}, null, 2));
  const inputError = h("p", { class: "field-error", id: errorId, hidden: true });
  const showInputError = (text) => {
    inputError.textContent = text;
    inputError.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  dialog(`Send a test to “${s.name}”`,
    h("div", { class: "field" },
      h("label", { for: inputId }, "Input"),
      h("p", { class: "hint" }, "The trigger's example, as SailPoint sends for a test. Edit it to try other payloads; tests skip the filter and reach disabled subscriptions too."),
      input, inputError),
    "Send test",
    async () => {
      let parsed;
      try {
        parsed = JSON.parse(input.value);
      } catch (error) {
        throw { show: () => showInputError(`Not JSON: ${error.message}`) };
      }
      let response;
      try {
        response = await call("POST", "/trigger-invocations/v1/test", {
          body: { triggerId: s.triggerId, input: parsed, contentJson: {}, subscriptionIds: [s.id] },
        });
      } catch (failure) {
        const named = failure.forField?.("input") ?? [];
        if (named.length) throw { show: () => showInputError(named.map((m) => m.full).join("; ")) };
        throw failure;
      }
      watchTest(s, response.data ?? [], view);
    });
}

/** Shows each test invocation's state, polled until it settles, with a link to its detail. */
function watchTest(s, invocations, view) {
  if (invocations.length === 0) {
    replace(view.watch, h("p", { class: "alert info", role: "status" }, `The test reached no subscription of ${s.triggerId}.`));
    return;
  }
  const items = invocations.map((invocation) => {
    const state = h("span", {}, stateBadge("PENDING"));
    const detail = h("span", { class: "hint" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Waiting for the first attempt…");
    const li = h("li", { dataset: { invocation: invocation.id } },
      state,
      h("a", { href: `#/invocations/${encodeURIComponent(invocation.id)}` }, "Open invocation ", h("code", {}, invocation.id.slice(0, 8))),
      detail);
    return { id: invocation.id, state, detail, li, done: false };
  });
  replace(view.watch, h("div", { class: "alert info" },
    h("h2", {}, `Test sent to “${s.name}”`),
    h("ul", {}, items.map((i) => i.li))));
  let busy = false;
  const poll = async () => {
    if (busy) return;
    busy = true;
    try {
      await pollOnce();
    } finally {
      busy = false;
    }
  };
  const pollOnce = async () => {
    for (const item of items.filter((i) => !i.done)) {
      try {
        const { data } = await call("GET", `/trigger-invocations/v1/${encodeURIComponent(item.id)}/status`, { signal: view.app.signal });
        replace(item.state, stateBadge(data.status));
        const last = data.attempts?.at(-1);
        const settled = !OPEN_STATES.has(data.status);
        // ACKNOWLEDGED waits for the subscriber's callback, which may take until the deadline.
        item.done = settled || data.status === "ACKNOWLEDGED";
        replace(item.detail, last
          ? `${data.attempts.length} attempt${data.attempts.length === 1 ? "" : "s"}; last: ${last.statusCode ?? "no answer"}${last.error ? ` (${last.error})` : ""}`
          : [h("span", { class: "spinner", "aria-hidden": "true" }), " Waiting for the first attempt…"]);
      } catch (failure) {
        if (failure.name === "AbortError") return;
        replace(item.detail, h("span", { class: "inline-error" }, failure.message));
        item.done = true;
      }
    }
    if (items.every((i) => i.done)) stop();
  };
  const stop = view.app.every(700, poll);
  poll();
}
