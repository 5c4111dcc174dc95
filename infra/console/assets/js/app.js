// The console's shell: a hash router (#/triggers, #/subscriptions/new, #/invocations/<id>, …),
// the sign-in gate, and the lifetime of each view (its polls and requests end when it is left).

import { token, onUnauthorized } from "./api.js";
import * as triggersView from "./views/triggers.js";
import * as subscriptionsView from "./views/subscriptions.js";
import * as editorView from "./views/editor.js";
import * as invocationsView from "./views/invocations.js";
import * as invocationView from "./views/invocation.js";
import * as tokenView from "./views/token.js";

const main = document.getElementById("main");
const signOut = document.getElementById("sign-out");

/** Parses `#/a/b?x=1` into `{parts: ["a", "b"], query: URLSearchParams}`. */
function parse(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?", 2);
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search) };
}

function pick(route) {
  const [section, id] = route.parts;
  switch (section) {
    case "triggers":
      return ["triggers", triggersView];
    case "subscriptions":
      return ["subscriptions", id ? editorView : subscriptionsView];
    case "invocations":
      return ["invocations", id ? invocationView : invocationsView];
    default:
      return null;
  }
}

let current = null; // {controller, timers}
let firstRender = true;
let flash = null;

/** What a view gets: its abort signal, timers that stop when it is left, navigation, one-time messages. */
function context(controller, timers) {
  return {
    signal: controller.signal,
    navigate(hash, message = null) {
      flash = message;
      if (window.location.hash === hash) show();
      else window.location.hash = hash;
    },
    /** Updates the address without re-rendering (filters kept in the URL). */
    replaceHash(hash) {
      history.replaceState(null, "", hash);
    },
    takeFlash() {
      const message = flash;
      flash = null;
      return message;
    },
    every(ms, fn) {
      const id = setInterval(() => { if (!controller.signal.aborted) fn(); }, ms);
      timers.push(id);
      return () => clearInterval(id);
    },
    title(text) {
      document.title = `${text} · Triggerline`;
    },
    refused(message) {
      showSignIn(message);
    },
  };
}

function leave() {
  if (!current) return;
  current.controller.abort();
  current.timers.forEach(clearInterval);
  current = null;
}

function markNav(section) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showSignIn(message = null) {
  leave();
  token.clear();
  signOut.hidden = true;
  markNav(null);
  const controller = new AbortController();
  current = { controller, timers: [] };
  tokenView.render(main, { message, onSignedIn: () => show() }, context(controller, current.timers));
}

async function show() {
  if (!token.get()) {
    showSignIn();
    return;
  }
  const route = parse(window.location.hash);
  const chosen = pick(route);
  if (!chosen) {
    window.location.replace("#/triggers");
    return;
  }
  leave();
  const [section, view] = chosen;
  signOut.hidden = false;
  markNav(section);
  const controller = new AbortController();
  current = { controller, timers: [] };
  const ctx = context(controller, current.timers);
  const rendering = view.render(main, route, ctx);
  if (!firstRender) {
    // Screen reader and keyboard users land on the new page's heading, not on the old link.
    main.querySelector("h1")?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
  firstRender = false;
  try {
    await rendering;
  } catch (error) {
    if (error?.name !== "AbortError") console.error(error);
  }
}

onUnauthorized((error) => showSignIn(`The API refused the token: ${error.message}. Enter it again.`));

signOut.addEventListener("click", () => showSignIn("Signed out. The token was removed from this tab."));

document.getElementById("skip-link").addEventListener("click", (event) => {
  // The default would put "#main" into the address, which the router reads as a page.
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", show);
show();
