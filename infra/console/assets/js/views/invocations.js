// Invocations, newest first, filtered by trigger and subscription (by the API) and by status (here:
// the status list has no status filter, so pages of 250 are read until a page of matches is full).

import { call, eq, triggers, OPEN_STATES } from "../api.js";
import { h, replace, skeleton } from "../dom.js";
import { between, millis, stateBadge, timeEl } from "../format.js";

const PAGE = 25;
const FETCH = 250;
// SailPoint's status list reaches the newest 2,000 invocations (README: Limits).
const REACH = 2000;
const STATES = ["PENDING", "ACKNOWLEDGED", "COMPLETED", "FAILED", "TIMED_OUT"];

export async function render(main, route, app) {
  app.title("Invocations");
  const filters = {
    trigger: route.query.get("trigger") ?? "",
    subscription: route.query.get("subscription") ?? "",
    status: route.query.get("status") ?? "",
  };
  let page = Math.max(0, Number.parseInt(route.query.get("page") ?? "0", 10) || 0);

  const triggerSelect = h("select", { id: "inv-trigger" }, h("option", { value: "" }, "All triggers"));
  const subscriptionSelect = h("select", { id: "inv-subscription" }, h("option", { value: "" }, "All subscriptions"));
  const statusSelect = h("select", { id: "inv-status" }, h("option", { value: "" }, "Any status"),
    STATES.map((s) => h("option", { value: s, selected: s === filters.status }, s.replace("_", " ").toLowerCase().replace(/^./, (c) => c.toUpperCase()))));
  const refresh = h("button", { type: "button", class: "button" }, "Refresh");
  const body = h("tbody", {}, Array.from({ length: 8 }, skeletonRow));
  const pagerText = h("span", { "aria-live": "polite" }, "\u00a0");
  const newer = h("button", { type: "button", class: "button small", disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "button small", disabled: true }, "Older →");
  // The pager sits above the rows: a page shorter than its skeleton then moves nothing.
  const tableCard = h("div", { class: "card", id: "invocations" },
    h("div", { class: "pager" }, pagerText, h("div", { class: "actions" }, newer, older)),
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("caption", { class: "visually-hidden" }, "Invocations, newest first"),
      h("thead", {}, h("tr", {}, ["Status", "Created", "Trigger", "Subscription", "Type", "Took"].map((c) => h("th", { scope: "col" }, c)))),
      body)));

  replace(main,
    h("div", { class: "page-head" },
      h("div", {},
        h("h1", { tabindex: "-1" }, "Invocations"),
        h("p", { class: "lead" }, "Every event delivered to a subscription, newest first. Open one to see its attempts.")),
      refresh),
    h("div", { class: "toolbar", role: "search", "aria-label": "Filter invocations" },
      h("div", { class: "field" }, h("label", { for: "inv-trigger" }, "Trigger"), triggerSelect),
      h("div", { class: "field" }, h("label", { for: "inv-subscription" }, "Subscription"), subscriptionSelect),
      h("div", { class: "field" }, h("label", { for: "inv-status" }, "Status"), statusSelect)),
    tableCard);

  const go = (changes) => {
    const next = { ...filters, ...changes };
    const query = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== "" && v !== 0 && v !== "0"));
    app.navigate(`#/invocations${query.size ? `?${query}` : ""}`);
  };
  triggerSelect.addEventListener("change", () => go({ trigger: triggerSelect.value, page: 0 }));
  subscriptionSelect.addEventListener("change", () => go({ subscription: subscriptionSelect.value, page: 0 }));
  statusSelect.addEventListener("change", () => go({ status: statusSelect.value, page: 0 }));

  // The options fill in beside the list; a failure here leaves the selects with "All".
  Promise.all([triggers(), call("GET", "/trigger-subscriptions/v1", { signal: app.signal }).then((r) => r.data)])
    .then(([catalog, subscriptions]) => {
      for (const t of catalog) triggerSelect.append(h("option", { value: t.id, selected: t.id === filters.trigger }, t.name));
      const known = subscriptions.some((s) => s.id === filters.subscription);
      for (const s of subscriptions) subscriptionSelect.append(h("option", { value: s.id, selected: s.id === filters.subscription }, s.name));
      if (filters.subscription && !known) subscriptionSelect.append(h("option", { value: filters.subscription, selected: true }, `${filters.subscription.slice(0, 8)}… (deleted)`));
    })
    .catch(() => {});

  const serverFilter = [
    filters.trigger ? eq("triggerId", filters.trigger) : null,
    filters.subscription ? eq("subscriptionId", filters.subscription) : null,
  ].filter(Boolean).join(" and ") || null;

  // Matches read so far, in order; `exhausted` once the API has no more.
  let matches = [];
  let offset = 0;
  let exhausted = false;
  const reset = () => { matches = []; offset = 0; exhausted = false; };
  const fill = async (wanted) => {
    while (matches.length < wanted && !exhausted) {
      const limit = filters.status ? FETCH : Math.min(FETCH, Math.max(PAGE, wanted - matches.length));
      const { data } = await call("GET", "/trigger-invocations/v1/status", {
        query: { limit, offset, sorters: "-created", filters: serverFilter },
        signal: app.signal,
      });
      offset += data.length;
      exhausted = data.length < limit || offset >= REACH;
      matches.push(...data.filter((i) => !filters.status || i.status === filters.status));
    }
  };

  const show = async () => {
    try {
      await fill((page + 1) * PAGE + 1);
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(body, h("tr", {}, h("td", { colspan: "6" }, h("p", { class: "alert error", role: "alert" }, `Could not load invocations: ${error.message}`))));
      return;
    }
    const shown = matches.slice(page * PAGE, (page + 1) * PAGE);
    if (shown.length === 0 && page > 0) {
      page = 0;
      show();
      return;
    }
    if (shown.length === 0) {
      replace(body, h("tr", {}, h("td", { colspan: "6", style: "height:auto" }, emptyState(filters, go))));
      replace(pagerText, "\u00a0");
      body.dataset.signature = "";
    } else {
      // A refresh that changed nothing keeps the rows (and the keyboard focus in them).
      const signature = shown.map((i) => `${i.id}:${i.status}:${i.completed}`).join();
      if (signature !== body.dataset.signature) replace(body, shown.map(row));
      body.dataset.signature = signature;
      const more = matches.length > (page + 1) * PAGE;
      replace(pagerText, `${page * PAGE + 1}–${page * PAGE + shown.length}${exhausted && !more ? ` of ${matches.length}` : ""}`);
      newer.disabled = page === 0;
      older.disabled = !more;
    }
    if (shown.some((i) => OPEN_STATES.has(i.status))) scheduleRefresh();
  };

  let polling = null;
  const scheduleRefresh = () => {
    // Open invocations change on their own; the page follows them until they settle.
    polling ??= app.every(2000, () => { reset(); show(); });
  };

  newer.addEventListener("click", () => { page -= 1; go({ page }); });
  older.addEventListener("click", () => { page += 1; go({ page }); });
  refresh.addEventListener("click", () => { reset(); show(); });
  await show();
}

function skeletonRow() {
  return h("tr", { "aria-hidden": "true" }, ["60px", "70%", "80%", "60%", "40px", "50px"].map((w) => h("td", {}, skeleton(w))));
}

function row(i) {
  const took = between(i.created, i.completed);
  const href = `#/invocations/${encodeURIComponent(i.id)}`;
  const tr = h("tr", { class: "clickable", dataset: { invocation: i.id } },
    h("td", { "data-label": "Status" }, h("a", { href, "aria-label": `Invocation ${i.id}, ${i.status}` }, stateBadge(i.status))),
    h("td", { "data-label": "Created" }, timeEl(i.created)),
    h("td", { "data-label": "Trigger" }, h("span", { class: "truncate mono", title: i.triggerId }, i.triggerId)),
    h("td", { "data-label": "Subscription" }, h("span", { class: "truncate" }, i.subscriptionName)),
    h("td", { "data-label": "Type" }, h("span", { class: "badge plain" }, i.type === "TEST" ? "Test" : "Real time")),
    h("td", { "data-label": "Took" }, took === null ? h("span", { class: "hint" }, "open") : millis(took)));
  tr.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    window.location.hash = href;
  });
  return tr;
}

function emptyState(filters, go) {
  const filtered = filters.trigger || filters.subscription || filters.status;
  if (filtered) {
    const clear = h("button", { type: "button", class: "button" }, "Clear filters");
    clear.addEventListener("click", () => go({ trigger: "", subscription: "", status: "", page: 0 }));
    return h("div", { class: "empty" },
      h("h2", {}, "No invocations match these filters"),
      h("p", {}, "Finished invocations stay listable for 24 h (failed ones for 48 h); only the newest 2,000 are reachable."),
      clear);
  }
  return h("div", { class: "empty" },
    h("h2", {}, "No invocations yet"),
    h("p", {}, "An invocation is one event on its way to one subscription. Send a test from a subscription, or raise one with POST /trigger-invocations/v1/start."),
    h("a", { class: "button primary", href: "#/subscriptions" }, "Go to subscriptions"));
}
