// Builds elements from data without innerHTML, so nothing the API returns is ever parsed as
// markup (names, descriptions and payloads come from whoever created them).

/**
 * h("a", {href: "#/x", class: "link", onclick: fn}, "text", child, [more])
 * Attributes: `class`, `dataset`, `on<event>` handlers, booleans (true sets, false/null skips),
 * `text` for textContent; everything else is set as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    // Through the CSSOM: the page's CSP refuses style attributes, not styles set from script.
    else if (key === "style") el.style.cssText = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "selected") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A placeholder line of the given width, shaped like the text it stands for. */
export function skeleton(width = "60%", cls = "line") {
  return h("span", { class: `skeleton ${cls}`, style: `width:${width}`, "aria-hidden": "true" });
}

let ids = 0;
/** A fresh element id, for label/aria pairings. */
export function uid(prefix = "id") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** Pretty-printed JSON in a scrollable, focusable, named region (keyboard users can scroll it). */
export function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: "0", role: "region", "aria-label": label }, JSON.stringify(value, null, 2));
}

/** Copies text, with the button saying so for a moment. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "button small" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

/** A path segment of a console address; a trigger id's colon stays readable (`#/triggers/idn:x`). */
export function segment(value) {
  return encodeURIComponent(value).replaceAll("%3A", ":");
}
