// The trigger catalog: every trigger beside the chosen one's input and output, each as a field
// table read from its JSON Schema, its example, and the schema itself.

import { triggers } from "../api.js";
import { h, jsonBlock, replace, segment, skeleton } from "../dom.js";
import { triggerTypeBadge } from "../format.js";

// The list's search text outlives a view: choosing a trigger re-renders the page.
let needle = "";

export async function render(main, route, app) {
  const selected = route.parts[1] ?? null;
  app.title("Triggers");
  const list = h("ul", { "aria-label": "Triggers", id: "trigger-list" },
    Array.from({ length: 10 }, () => h("li", {}, h("a", { "aria-hidden": "true" }, skeleton("70%"), skeleton("50%")))));
  const search = h("input", {
    type: "search", placeholder: "Filter by name or id", "aria-label": "Filter triggers", "aria-controls": "trigger-list",
  });
  const detail = h("section", { class: "detail", "aria-live": "polite" }, detailSkeleton());
  replace(main,
    h("div", { class: "page-head" },
      h("div", {},
        h("h1", { tabindex: "-1" }, "Triggers"),
        h("p", { class: "lead" }, "The events Triggerline delivers. Pick one to see what a subscriber receives and answers."))),
    h("div", { class: "split", dataset: { detail: String(Boolean(selected)) } },
      h("nav", { class: "master card", "aria-label": "Trigger catalog" },
        h("div", { class: "search" }, search),
        list),
      detail));

  let catalog;
  try {
    catalog = await triggers();
  } catch (error) {
    replace(detail, h("div", { class: "alert error", role: "alert" }, `Could not load the catalog: ${error.message}`));
    replace(list);
    return;
  }
  if (app.signal.aborted) return;

  const items = catalog.map((t) => {
    const link = h("a", { href: `#/triggers/${segment(t.id)}`, "aria-current": t.id === selected ? "true" : null },
      h("span", { class: "name" }, h("span", {}, t.name),
        t.type === "REQUEST_RESPONSE" ? h("span", { class: "badge accent plain", title: "Request / response" }, "R/R") : null),
      h("span", { class: "id" }, t.id));
    return { trigger: t, li: h("li", {}, link) };
  });
  replace(list, items.map((i) => i.li));
  const narrow = () => {
    needle = search.value;
    const wanted = needle.trim().toLowerCase();
    for (const { trigger, li } of items) {
      li.hidden = wanted !== "" && !`${trigger.name} ${trigger.id}`.toLowerCase().includes(wanted);
    }
  };
  search.value = needle;
  search.addEventListener("input", narrow);
  narrow();
  list.querySelector("[aria-current='true']")?.scrollIntoView({ block: "nearest" });

  if (!selected) {
    replace(detail, h("div", { class: "card placeholder-detail" },
      h("div", { class: "card-body empty" },
        h("h2", {}, `${catalog.length} triggers`),
        h("p", {}, "Fire-and-forget triggers tell a subscriber something happened. Request/response triggers wait for the subscriber's answer (the output) before the product goes on."),
        h("p", {}, "Choose one on the left to see its fields and an example."))));
    return;
  }
  const chosen = catalog.find((t) => t.id === selected);
  if (!chosen) {
    replace(detail, h("div", { class: "card" }, h("div", { class: "card-body empty" },
      h("h2", {}, "No such trigger"),
      h("p", {}, `The catalog has no trigger with the id ${selected}.`),
      h("a", { class: "button", href: "#/triggers" }, "All triggers"))));
    return;
  }
  app.title(chosen.name);
  replace(detail, triggerDetail(chosen));
}

function detailSkeleton() {
  return h("div", { class: "card", "aria-hidden": "true" }, h("div", { class: "card-body" },
    skeleton("40%"), skeleton("25%"), h("div", { style: "height:16px" }), skeleton("90%"), skeleton("80%"),
    h("div", { style: "height:24px" }), skeleton("100%", "block"), h("div", { style: "height:16px" }), skeleton("100%", "block")));
}

function triggerDetail(t) {
  const rr = t.type === "REQUEST_RESPONSE";
  return h("article", { class: "card", "aria-labelledby": "trigger-title" },
    h("div", { class: "card-body" },
      h("div", { class: "detail-head" },
        h("div", { class: "title" },
          h("a", { href: "#/triggers", class: "hint back-link" }, "← All triggers"),
          h("h2", { id: "trigger-title", style: "font-size:1.3rem" }, t.name),
          h("div", { class: "row" }, h("code", {}, t.id), triggerTypeBadge(t.type))),
        h("div", { class: "actions" },
          h("a", { class: "button", href: `#/invocations?trigger=${encodeURIComponent(t.id)}` }, "Invocations"),
          h("a", { class: "button primary", href: `#/subscriptions/new?trigger=${encodeURIComponent(t.id)}` }, "Subscribe"))),
      h("p", { class: "description" }, t.description),
      schemaSection("Input", "What every subscriber receives (with a _metadata object added).", t.inputSchema, t.exampleInput, "input"),
      rr
        ? schemaSection("Output", "What the subscriber answers, checked against this schema.", t.outputSchema, t.exampleOutput, "output")
        : h("section", { class: "section" }, h("h2", {}, "Output"),
          h("p", { class: "hint" }, "None: a fire-and-forget delivery is complete when the subscriber answers with any 2xx."))));
}

function schemaSection(title, hint, schemaText, example, slug) {
  let schema = null;
  try {
    schema = typeof schemaText === "string" ? JSON.parse(schemaText) : schemaText;
  } catch {
    schema = null;
  }
  const fields = schema ? flatten(schema) : [];
  return h("section", { class: "section", "aria-labelledby": `${slug}-title`, id: `${slug}-section` },
    h("h2", { id: `${slug}-title` }, title),
    h("p", { class: "hint", style: "margin-bottom:10px" }, hint),
    h("div", { class: "schema-grid" },
      h("div", {},
        h("h3", { style: "margin-bottom:6px" }, "Fields"),
        fields.length
          ? h("div", { class: "table-wrap" }, h("table", { class: "fields" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Description"))),
            h("tbody", {}, fields.map((f) => h("tr", {},
              h("td", { style: `padding-left:${8 + f.depth * 14}px` }, f.name, f.required ? h("span", { class: "req", title: "required" }, "required") : null),
              h("td", {}, h("span", { class: "type" }, f.type), f.enum ? h("div", { class: "enum" }, f.enum.join(" | ")) : null),
              h("td", {}, f.description ?? ""))))))
          : h("p", { class: "hint" }, "Any JSON object."),
        schema ? h("details", {}, h("summary", {}, "JSON Schema"), jsonBlock(schema, `${title} JSON Schema`)) : null),
      h("div", {},
        h("h3", { style: "margin-bottom:6px" }, "Example"),
        example === undefined || example === null ? h("p", { class: "hint" }, "No example.") : jsonBlock(example, `Example ${slug}`))));
}

/** The schema's properties as rows (`requestedFor[].id`), refs resolved, at most 4 levels deep. */
function flatten(root) {
  const rows = [];
  const resolve = (node, seen) => {
    let current = node;
    while (current && current.$ref) {
      if (seen.has(current.$ref)) return { ...current, cyclic: true };
      seen = new Set(seen).add(current.$ref);
      const path = current.$ref.replace(/^#\//, "").split("/");
      current = path.reduce((n, key) => n?.[key], root);
    }
    return current ?? {};
  };
  const typeOf = (node) => {
    const type = Array.isArray(node.type) ? node.type.filter((x) => x !== "null").join(" | ") + (node.type.includes("null") ? "?" : "") : node.type;
    return type ?? (node.properties ? "object" : "any");
  };
  const walk = (node, depth, seen) => {
    const resolved = resolve(node, seen);
    const required = new Set(resolved.required ?? []);
    for (const [name, raw] of Object.entries(resolved.properties ?? {})) {
      const child = resolve(raw, seen);
      const type = typeOf(child);
      const items = child.items ? resolve(child.items, seen) : null;
      rows.push({
        name, depth, required: required.has(name),
        type: items ? `${typeOf(items)}[]` : type,
        enum: child.enum ?? items?.enum ?? null,
        description: raw.description ?? child.description ?? null,
      });
      if (depth < 3 && !child.cyclic) {
        if (child.properties) walk(child, depth + 1, seen);
        else if (items?.properties) walk(items, depth + 1, seen);
      }
    }
  };
  walk(root, 0, new Set());
  return rows;
}
