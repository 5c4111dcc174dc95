// How times, durations and states read in the console.

import { h } from "./dom.js";

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function dateTime(iso) {
  return iso ? absolute.format(new Date(iso)) : "—";
}

/** "3 min ago", "in 59 min". */
export function relative(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relativeFormat.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

/** A time shown relative, with the exact time on hover and for screen readers. */
export function timeEl(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: dateTime(iso) }, relative(iso));
}

export function millis(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

export function between(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return new Date(endIso).getTime() - new Date(startIso).getTime();
}

const STATE_TONE = {
  COMPLETED: "ok",
  FAILED: "err",
  TIMED_OUT: "warn",
  PENDING: "info",
  ACKNOWLEDGED: "info",
};

const STATE_TEXT = {
  COMPLETED: "Completed",
  FAILED: "Failed",
  TIMED_OUT: "Timed out",
  PENDING: "Pending",
  ACKNOWLEDGED: "Acknowledged",
};

export function stateTone(state) {
  return STATE_TONE[state] ?? "";
}

export function stateBadge(state) {
  return h("span", { class: `badge ${stateTone(state)}`, dataset: { state } }, STATE_TEXT[state] ?? state);
}

export function triggerTypeBadge(type) {
  return type === "REQUEST_RESPONSE"
    ? h("span", { class: "badge accent plain", title: "The subscriber answers; its output decides" }, "Request / response")
    : h("span", { class: "badge plain", title: "Delivered; no answer expected" }, "Fire and forget");
}

const OUTCOME = {
  completed: ["ok", "Delivered"],
  acknowledged: ["info", "Acknowledged"],
  failed: ["err", "Failed"],
};

export function outcomeBadge(outcome) {
  const [tone, text] = OUTCOME[outcome] ?? ["", outcome];
  return h("span", { class: `badge ${tone}` }, text);
}

export function pluralize(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
