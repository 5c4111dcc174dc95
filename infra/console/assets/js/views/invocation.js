// One invocation: its state, times and deadline, every attempt as a timeline, its input and
// output; a FAILED one can be replayed (the retry route), and an open one is followed until it
// settles.

import { call, trigger as findTrigger, OPEN_STATES } from "../api.js";
import { copyButton, h, jsonBlock, replace, segment, skeleton } from "../dom.js";
import { dateTime, millis, outcomeBadge, relative, stateBadge, stateTone } from "../format.js";

export async function render(main, route, app) {
  const id = route.parts[1];
  app.title(`Invocation ${id.slice(0, 8)}`);
  const heading = h("h1", { tabindex: "-1" }, "Invocation");
  const badge = h("span", { id: "invocation-status", style: "display:inline-flex;min-width:96px" }, skeleton("80px"));
  const content = h("div", {}, detailSkeleton());
  replace(main,
    h("div", { class: "page-head" },
      h("div", {},
        h("a", { href: "#/invocations", class: "hint" }, "← Invocations"),
        h("div", { class: "actions" }, heading, badge),
        h("p", { class: "lead actions" }, h("code", {}, id), copyButton(id, "Copy id")))),
    content);

  let polling = null;
  let last = null;
  const load = async () => {
    let data;
    try {
      ({ data } = await call("GET", `/trigger-invocations/v1/${encodeURIComponent(id)}/status`, { signal: app.signal }));
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 404) {
        replace(badge);
        replace(content, h("div", { class: "card" }, h("div", { class: "card-body empty" },
          h("h2", {}, "No such invocation"),
          h("p", {}, "It may never have existed, or retention removed it (finished invocations stay 24 h, failed ones 48 h)."),
          h("a", { class: "button", href: "#/invocations" }, "All invocations"))));
      } else {
        replace(content, h("p", { class: "alert error", role: "alert" }, `Could not load the invocation: ${error.message}`));
      }
      return;
    }
    const signature = JSON.stringify(data);
    if (signature !== last) {
      last = signature;
      replace(badge, stateBadge(data.status));
      const t = await findTrigger(data.triggerId).catch(() => null);
      replace(content, detail(data, t, { replay }));
    }
    if (OPEN_STATES.has(data.status)) polling ??= app.every(1000, load);
    else if (polling) {
      polling();
      polling = null;
    }
  };

  const replay = async (button, message) => {
    button.disabled = true;
    replace(message, h("span", { class: "spinner", "aria-hidden": "true" }), " Replaying…");
    message.className = "hint";
    try {
      await call("POST", `/trigger-invocations/v1/${encodeURIComponent(id)}/retry`);
      replace(message, "Replayed: delivering again with the same id (receivers dedupe on webhook-id).");
      await load();
    } catch (error) {
      if (error.name === "AbortError") return;
      message.className = "inline-error";
      replace(message, `Not replayed: ${error.messages?.map((m) => m.full ?? m.text).join("; ") ?? error.message}`);
      button.disabled = false;
    }
  };

  await load();
}

function detailSkeleton() {
  return h("div", { "aria-hidden": "true", class: "stack" },
    h("div", { class: "card" }, h("div", { class: "card-body" }, skeleton("100%"), skeleton("100%"), skeleton("70%"))),
    h("div", { class: "card" }, h("div", { class: "card-body" }, skeleton("40%"), skeleton("100%", "block"))));
}

function fact(label, ...value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, ...value));
}

function deadlineText(i) {
  if (!i.deadline) return "None";
  const passed = new Date(i.deadline).getTime() < Date.now();
  return [h("time", { datetime: i.deadline }, dateTime(i.deadline)), h("div", { class: "hint" },
    OPEN_STATES.has(i.status) ? (passed ? "passed; the sweep times it out" : relative(i.deadline)) : relative(i.deadline))];
}

function detail(i, trigger, { replay }) {
  const output = i.completeInvocationInput?.output;
  const localizedError = i.completeInvocationInput?.localizedError;
  const replayButton = h("button", { type: "button", class: "button primary", id: "replay" }, "Replay");
  const replayMessage = h("p", { class: "hint", role: "status", id: "replay-message" });
  replayButton.addEventListener("click", () => replay(replayButton, replayMessage));
  return h("div", { class: "stack" },
    h("section", { class: "card", "aria-label": "Summary" }, h("div", { class: "card-body stack" },
      h("dl", { class: "facts" },
        fact("Trigger", h("a", { href: `#/triggers/${segment(i.triggerId)}` }, trigger?.name ?? i.triggerId), h("div", { class: "hint mono" }, i.triggerId)),
        fact("Subscription", h("a", { href: `#/subscriptions/${encodeURIComponent(i.subscriptionId)}` }, i.subscriptionName)),
        fact("Type", i.type === "TEST" ? "Test" : "Real time", i.responseMode ? h("div", { class: "hint" }, `${i.responseMode} response`) : null),
        fact("Attempts", String(i.attempts?.length ?? 0)),
        fact("Created", h("time", { datetime: i.created }, dateTime(i.created))),
        fact("Completed", i.completed ? h("time", { datetime: i.completed }, dateTime(i.completed)) : h("span", { class: "hint" }, "not yet")),
        fact("Deadline", ...[deadlineText(i)].flat()),
        fact("Took", i.completed ? millis(new Date(i.completed) - new Date(i.created)) : "—")),
      i.status === "FAILED"
        ? h("div", { class: "actions" }, replayButton,
          h("span", { class: "hint" }, "Delivers it again to the same subscription, with a fresh deadline."), replayMessage)
        : replayMessage)),
    h("section", { class: "card", "aria-labelledby": "timeline-title" }, h("div", { class: "card-body" },
      h("h2", { id: "timeline-title", style: "margin-bottom:14px" }, "Timeline"),
      timeline(i, localizedError))),
    h("div", { class: "two-col" },
      h("section", { class: "card", "aria-labelledby": "input-title" }, h("div", { class: "card-body" },
        h("h2", { id: "input-title", style: "margin-bottom:10px" }, "Input"),
        jsonBlock(i.startInvocationInput?.input ?? {}, "Input JSON"),
        i.startInvocationInput?.contentJson && Object.keys(i.startInvocationInput.contentJson).length
          ? h("details", {}, h("summary", {}, "contentJson"), jsonBlock(i.startInvocationInput.contentJson, "contentJson"))
          : null)),
      h("section", { class: "card", "aria-labelledby": "output-title" }, h("div", { class: "card-body" },
        h("h2", { id: "output-title", style: "margin-bottom:10px" }, "Output"),
        localizedError ? h("p", { class: "alert error", style: "margin-bottom:10px" }, localizedError.message) : null,
        output !== undefined && output !== null
          ? jsonBlock(output, "Output JSON")
          : h("p", { class: "hint" }, i.completeInvocationInput === null && !OPEN_STATES.has(i.status)
            ? "None: fire-and-forget deliveries have no output."
            : OPEN_STATES.has(i.status) ? "Not yet: the subscriber has not answered." : "No output.")))));
}

function timeline(i, localizedError) {
  const items = [
    h("li", {}, h("span", { class: "dot" }),
      h("div", { class: "what" }, "Created"),
      h("div", { class: "when" }, dateTime(i.created))),
  ];
  (i.attempts ?? []).forEach((a, n) => {
    const tone = a.outcome === "failed" ? "err" : a.outcome === "completed" ? "ok" : "info";
    items.push(h("li", { class: "attempt", dataset: { outcome: a.outcome } }, h("span", { class: `dot ${tone}` }),
      h("div", { class: "what" }, `Attempt ${n + 1}`, outcomeBadge(a.outcome),
        a.statusCode ? h("span", { class: "badge plain mono" }, `HTTP ${a.statusCode}`) : h("span", { class: "badge plain" }, "no answer")),
      h("div", { class: "when" }, dateTime(a.startedAt)),
      h("div", { class: "meta" }, `${a.target ?? ""} · answered in ${millis(a.durationMs)} · started ${millis(new Date(a.startedAt) - new Date(i.created))} after creation`),
      a.error ? h("div", { class: "error" }, a.error) : null));
  });
  if (OPEN_STATES.has(i.status)) {
    items.push(h("li", {}, h("span", { class: "dot info" }),
      h("div", { class: "what" }, h("span", { class: "spinner", "aria-hidden": "true" }),
        i.status === "ACKNOWLEDGED" ? "Waiting for the subscriber's callback" : "Waiting for delivery"),
      i.deadline ? h("div", { class: "when" }, `until ${dateTime(i.deadline)}`) : null));
  } else {
    const text = { COMPLETED: "Completed", FAILED: "Failed", TIMED_OUT: "Timed out" }[i.status] ?? i.status;
    items.push(h("li", {}, h("span", { class: `dot ${stateTone(i.status)}` }),
      h("div", { class: "what" }, text),
      h("div", { class: "when" }, dateTime(i.completed)),
      localizedError ? h("div", { class: "error" }, localizedError.message) : null));
  }
  return h("ol", { class: "timeline", id: "timeline" }, items);
}
