// The subscription editor (#/subscriptions/new, #/subscriptions/<id>): one form for create and
// replace, the filter tested live against the trigger's example or pasted JSON, and every
// message of the API shown beside the field it names.

import { call, eq, splitField, triggers } from "../api.js";
import { h, jsonBlock, replace, skeleton } from "../dom.js";

export async function render(main, route, app) {
  const id = route.parts[1];
  const creating = id === "new";
  app.title(creating ? "New subscription" : "Edit subscription");
  const heading = h("h1", { tabindex: "-1" }, creating ? "New subscription" : "Edit subscription");
  const holder = h("div", {}, formSkeleton());
  replace(main,
    h("div", { class: "page-head" },
      h("div", {},
        h("a", { href: "#/subscriptions", class: "hint" }, "← Subscriptions"),
        heading)),
    holder);

  let catalog;
  let existing = null;
  try {
    const loads = [triggers()];
    if (!creating) {
      loads.push(call("GET", "/trigger-subscriptions/v1", { query: { filters: eq("id", id) }, signal: app.signal }).then((r) => r.data[0] ?? null));
    }
    [catalog, existing] = await Promise.all(loads);
  } catch (error) {
    if (error.name === "AbortError") return;
    replace(holder, h("p", { class: "alert error", role: "alert" }, `Could not load: ${error.message}`));
    return;
  }
  if (!creating && !existing) {
    replace(holder, h("div", { class: "card" }, h("div", { class: "card-body empty" },
      h("h2", {}, "No such subscription"),
      h("p", {}, `There is no subscription ${id}; it may have been deleted.`),
      h("a", { class: "button", href: "#/subscriptions" }, "All subscriptions"))));
    return;
  }
  if (existing) {
    heading.textContent = `Edit “${existing.name}”`;
    app.title(existing.name);
  }
  replace(holder, editor({ catalog, existing, preset: route.query.get("trigger"), app }));
}

function formSkeleton() {
  return h("div", { class: "editor", "aria-hidden": "true" },
    h("div", { class: "card" }, h("div", { class: "card-body stack" },
      ...Array.from({ length: 6 }, () => h("div", {}, skeleton("20%"), skeleton("100%", "line tall"))))),
    h("div", { class: "card" }, h("div", { class: "card-body" }, skeleton("50%"), skeleton("100%", "block"))));
}

/** A labelled control with its hint and the place its errors go. */
function field(label, control, { hint = null, wide = false } = {}) {
  const errorId = `${control.id}-error`;
  const hintId = hint ? `${control.id}-hint` : null;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h("div", { class: `field${wide ? " wide" : ""}` },
    h("label", { for: control.id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errorId, hidden: true }));
}

function input(id, apiField, attrs = {}) {
  return h("input", { type: "text", id, name: id, dataset: { field: apiField }, spellcheck: "false", ...attrs });
}

function select(id, apiField, options, value) {
  return h("select", { id, name: id, dataset: { field: apiField } },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

function editor({ catalog, existing, preset, app }) {
  const s = existing ?? {};
  const http = s.httpConfig ?? {};
  const eb = s.eventBridgeConfig ?? {};
  const triggerId = s.triggerId ?? (catalog.some((t) => t.id === preset) ? preset : catalog[0]?.id);
  const storedAuth = existing ? http.httpAuthenticationType ?? "NO_AUTH" : null;

  const name = input("sub-name", "name", { value: s.name ?? "", required: true, autocomplete: "off" });
  const description = input("sub-description", "description", { value: s.description ?? "" });
  const trigger = select("sub-trigger", "triggerId", catalog.map((t) => [t.id, `${t.name} (${t.id})`]), triggerId);
  if (existing) trigger.disabled = true;
  const typeHttp = h("input", { type: "radio", name: "sub-type", value: "HTTP", id: "sub-type-http", dataset: { field: "type" }, checked: (s.type ?? "HTTP") === "HTTP" });
  const typeEb = h("input", { type: "radio", name: "sub-type", value: "EVENTBRIDGE", id: "sub-type-eb", checked: s.type === "EVENTBRIDGE" });
  const url = input("sub-url", "httpConfig.url", { type: "url", value: http.url ?? "", placeholder: "https://example.com/hooks/triggerline", inputmode: "url" });
  const mode = select("sub-mode", "httpConfig.httpDispatchMode",
    [["SYNC", "SYNC: answers with the output"], ["ASYNC", "ASYNC: acknowledges, completes via callback"], ["DYNAMIC", "DYNAMIC: either, per answer"]],
    http.httpDispatchMode ?? "SYNC");
  const auth = select("sub-auth", "httpConfig.httpAuthenticationType",
    [["NO_AUTH", "None"], ["BASIC_AUTH", "Basic (user name and password)"], ["BEARER_TOKEN", "Bearer token"]],
    http.httpAuthenticationType ?? "NO_AUTH");
  const keep = (kind) => (existing && storedAuth === kind ? "Stored; leave blank to keep it" : "");
  const userName = input("sub-user", "httpConfig.basicAuthConfig.userName", { value: http.basicAuthConfig?.userName ?? "", autocomplete: "off" });
  const password = input("sub-password", "httpConfig.basicAuthConfig.password", { type: "password", autocomplete: "new-password", placeholder: keep("BASIC_AUTH") });
  const bearer = input("sub-bearer", "httpConfig.bearerTokenAuthConfig.bearerToken", { type: "password", autocomplete: "new-password", placeholder: keep("BEARER_TOKEN") });
  const account = input("sub-account", "eventBridgeConfig.awsAccount", { value: eb.awsAccount ?? "", inputmode: "numeric", placeholder: "123456789012" });
  const region = input("sub-region", "eventBridgeConfig.awsRegion", { value: eb.awsRegion ?? "", placeholder: "us-east-1" });
  const deadline = input("sub-deadline", "responseDeadline", { value: s.responseDeadline ?? "PT1H" });
  const enabled = h("input", { type: "checkbox", id: "sub-enabled", dataset: { field: "enabled" }, checked: s.enabled ?? true });
  const filter = h("textarea", { id: "sub-filter", dataset: { field: "filter" }, rows: "3", spellcheck: "false", placeholder: "$[?($.identity.type == \"IDENTITY\")]" }, s.filter ?? "");

  const basicFields = h("div", { class: "form-grid wide" },
    field("User name", userName), field("Password", password, { hint: keep("BASIC_AUTH") || null }));
  const bearerFields = h("div", { class: "wide" }, field("Bearer token", bearer, { hint: keep("BEARER_TOKEN") || "Sent as Authorization: Bearer …" }));
  const modeHint = h("span", {});
  const httpSet = h("fieldset", { class: "form-grid" },
    h("legend", {}, "Webhook"),
    field("URL", url, { wide: true, hint: "Triggerline POSTs each event here, signed with Standard Webhooks headers." }),
    field("Dispatch mode", mode, { hint: modeHint }),
    field("Authentication", auth),
    basicFields, bearerFields);
  const ebSet = h("fieldset", { class: "form-grid" },
    h("legend", {}, "EventBridge"),
    field("AWS account", account, { hint: "12 digits." }),
    field("Region", region),
    h("p", { class: "hint wide" }, "Events are put on that account's bus; EventBridge subscriptions are ASYNC (the event carries the callback URL and secret)."));

  const sync = () => {
    const isHttp = typeHttp.checked;
    httpSet.hidden = !isHttp;
    ebSet.hidden = isHttp;
    basicFields.hidden = auth.value !== "BASIC_AUTH";
    bearerFields.hidden = auth.value !== "BEARER_TOKEN";
    const t = catalog.find((x) => x.id === trigger.value);
    replace(modeHint, t?.type === "FIRE_AND_FORGET"
      ? "A fire-and-forget trigger needs no answer: any 2xx completes the delivery, whatever the mode."
      : "How the subscriber answers this request/response trigger.");
  };
  [typeHttp, typeEb, auth, trigger].forEach((el) => el.addEventListener("change", sync));
  sync();

  const tester = filterTester({ filter, trigger, catalog, app });
  trigger.addEventListener("change", tester.run);

  const summary = h("div", { class: "alert error", role: "alert", hidden: true, tabindex: "-1", id: "form-errors" });
  const save = h("button", { type: "submit", class: "button primary" }, existing ? "Save changes" : "Create subscription");
  const form = h("form", { class: "card", novalidate: true, "aria-label": existing ? "Edit subscription" : "New subscription" },
    h("div", { class: "card-body stack" },
      summary,
      h("div", { class: "form-grid" },
        field("Name", name),
        field("Trigger", trigger, { hint: existing ? "A subscription keeps its trigger; create another for a different one." : null }),
        field("Description", description, { wide: true })),
      h("fieldset", {},
        h("legend", {}, "Delivered to"),
        h("div", { class: "choices", role: "radiogroup", "aria-label": "Subscription type" },
          h("label", {}, typeHttp, "HTTP webhook"),
          h("label", {}, typeEb, "AWS EventBridge"))),
      httpSet,
      ebSet,
      h("div", { class: "form-grid" },
        field("Response deadline", deadline, { hint: "ISO-8601 duration (PT1H, PT10M, P1D): how long an ASYNC subscriber has to complete." }),
        h("div", { class: "field" },
          h("span", { class: "label" }, "Status"),
          h("label", { class: "checkbox" }, enabled, "Enabled"),
          h("p", { class: "hint" }, "A disabled subscription receives test invocations only."),
          h("p", { class: "field-error", id: "sub-enabled-error", hidden: true }))),
      tester.fieldset,
      h("div", { class: "actions" }, save, h("a", { class: "button", href: "#/subscriptions" }, "Cancel"))));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, summary);
    const body = {
      name: name.value.trim(),
      description: description.value.trim() || null,
      type: typeHttp.checked ? "HTTP" : "EVENTBRIDGE",
      responseDeadline: deadline.value.trim(),
      enabled: enabled.checked,
      filter: filter.value.trim() || null,
    };
    if (!existing) body.triggerId = trigger.value;
    if (typeHttp.checked) {
      const config = {
        url: url.value.trim(),
        httpDispatchMode: mode.value,
        httpAuthenticationType: auth.value,
      };
      // A blank secret is left out: the API keeps the stored one (secrets are write-only).
      if (auth.value === "BASIC_AUTH") {
        config.basicAuthConfig = { userName: userName.value, password: password.value || null };
      } else if (auth.value === "BEARER_TOKEN") {
        config.bearerTokenAuthConfig = { bearerToken: bearer.value || null };
      }
      body.httpConfig = config;
    } else {
      body.eventBridgeConfig = { awsAccount: account.value.trim(), awsRegion: region.value.trim() };
    }
    save.disabled = true;
    save.textContent = existing ? "Saving…" : "Creating…";
    try {
      if (existing) {
        const { data } = await call("PUT", `/trigger-subscriptions/v1/${encodeURIComponent(existing.id)}`, { body });
        app.navigate("#/subscriptions", { text: `Saved “${data.name}”.` });
      } else {
        const { data } = await call("POST", "/trigger-subscriptions/v1", { body });
        app.navigate("#/subscriptions", { name: data.name, signingSecret: data.signingSecret });
      }
    } catch (failure) {
      showErrors(form, summary, failure);
    } finally {
      save.disabled = false;
      save.textContent = existing ? "Save changes" : "Create subscription";
    }
  });

  return h("div", { class: "editor" }, form, h("aside", { class: "side" }, tester.help));
}

function clearErrors(form, summary) {
  summary.hidden = true;
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
}

/** Puts each message beside the control of the field it names; the rest go to the summary. */
function showErrors(form, summary, failure) {
  const unplaced = [];
  let first = null;
  for (const message of failure.messages ?? [{ field: null, text: failure.message }]) {
    const control = message.field ? controlFor(form, message.field) : null;
    const error = control ? form.querySelector(`#${control.id}-error`) : null;
    if (!error) {
      unplaced.push(message.full || message.text);
      continue;
    }
    error.textContent = error.textContent ? `${error.textContent} ${message.text}` : message.text;
    error.hidden = false;
    control.setAttribute("aria-invalid", "true");
    first ??= control;
  }
  if (unplaced.length) {
    replace(summary,
      h("h3", {}, failure.status === 0 ? "Not saved" : "The API did not accept this"),
      h("ul", {}, unplaced.map((text) => h("li", {}, text))),
      failure.trackingId ? h("p", { class: "hint" }, `Tracking id ${failure.trackingId}`) : null);
    summary.hidden = false;
    summary.focus();
  } else {
    first?.focus();
  }
}

/** The visible control whose API field is `field` or the nearest field above it. */
function controlFor(form, field) {
  let name = field.replace(/\[\d+\]/g, "");
  while (name) {
    const control = [...form.querySelectorAll("[data-field]")].find((el) => el.dataset.field === name && !el.closest("[hidden]"));
    if (control) return control;
    name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
  }
  return null;
}

/** The filter field with its live check: against the trigger's example, or JSON pasted here. */
function filterTester({ filter, trigger, catalog, app }) {
  const useExample = h("input", { type: "radio", name: "filter-sample", value: "example", id: "filter-sample-example", checked: true });
  const usePasted = h("input", { type: "radio", name: "filter-sample", value: "pasted", id: "filter-sample-pasted" });
  const sample = h("textarea", { id: "filter-sample", rows: "8", spellcheck: "false", "aria-describedby": "filter-sample-error" });
  const sampleError = h("p", { class: "field-error", id: "filter-sample-error", hidden: true });
  const sampleField = h("div", { class: "field", hidden: true },
    h("label", { for: "filter-sample" }, "Sample input (JSON)"), sample, sampleError);
  const result = h("output", { class: "filter-result", id: "filter-result", for: "sub-filter filter-sample", "aria-live": "polite" });
  const example = h("div", {});

  const fieldset = h("fieldset", { class: "stack" },
    h("legend", {}, "Filter"),
    field("JSONPath filter (optional)", filter, {
      hint: "JSONPath as SailPoint documents it (Jayway). The event is delivered only when it selects something in the input.",
    }),
    h("div", { class: "choices", role: "radiogroup", "aria-label": "Test the filter against" },
      h("span", { class: "label" }, "Test against:"),
      h("label", {}, useExample, "the trigger's example input"),
      h("label", {}, usePasted, "JSON I paste")),
    sampleField,
    result);

  const help = h("div", { class: "card" }, h("div", { class: "card-body" },
    h("h2", { style: "margin-bottom:8px" }, "Example input"),
    h("p", { class: "hint", style: "margin-bottom:8px" }, "What this trigger sends; filters are tested against it unless you paste your own."),
    example));

  const showExample = () => {
    const t = catalog.find((x) => x.id === trigger.value);
    replace(example, jsonBlock(t?.exampleInput ?? {}, "Example input"));
    if (!sample.value.trim()) sample.placeholder = JSON.stringify(t?.exampleInput ?? {}, null, 2);
  };

  const show = (tone, text) => {
    result.className = `filter-result ${tone}`;
    result.dataset.result = tone || "none";
    result.textContent = text;
    result.removeAttribute("aria-busy");
  };

  let timer = null;
  let controller = null;
  const run = () => {
    clearTimeout(timer);
    showExample();
    sampleField.hidden = !usePasted.checked;
    timer = setTimeout(check, 250);
  };
  const check = async () => {
    controller?.abort();
    sampleError.hidden = true;
    sample.removeAttribute("aria-invalid");
    const expression = filter.value.trim();
    if (!expression) {
      show("", "No filter: every event of this trigger is delivered.");
      return;
    }
    let input = catalog.find((x) => x.id === trigger.value)?.exampleInput ?? {};
    if (usePasted.checked) {
      try {
        input = JSON.parse(sample.value);
      } catch (error) {
        sampleError.textContent = sample.value.trim() ? `Not JSON: ${error.message}` : "Paste a JSON input to test against.";
        sampleError.hidden = false;
        sample.setAttribute("aria-invalid", "true");
        show("", "Waiting for a JSON sample.");
        return;
      }
    }
    controller = new AbortController();
    app.signal.addEventListener("abort", () => controller.abort(), { once: true });
    result.setAttribute("aria-busy", "true");
    const against = usePasted.checked ? "the pasted input" : "the example input";
    try {
      const { data } = await call("POST", "/trigger-subscriptions/v1/validate-filter", {
        body: { input, filter: expression },
        signal: controller.signal,
      });
      if (data.isValid) show("ok", `✓ Matches ${against}: an event like it is delivered.`);
      else if (data.isValidJSONPath) show("warn", `Selects nothing in ${against}: an event like it is not delivered.`);
      else show("err", "✗ Not valid JSONPath. Check brackets, quotes and the leading $.");
    } catch (failure) {
      if (failure.name === "AbortError") return;
      show("err", `✗ ${failure.messages?.map((m) => splitField(m.full ?? m.text).text).join("; ") ?? failure.message}`);
    }
  };

  filter.addEventListener("input", run);
  sample.addEventListener("input", run);
  useExample.addEventListener("change", run);
  usePasted.addEventListener("change", run);
  // The first verdict comes at once, so the result box is never blank.
  showExample();
  check();
  return { fieldset, help, run };
}

