// Sign-in: the API token, checked against the API once and then kept in sessionStorage, so it
// lives as long as this tab and is never written to disk or sent anywhere but this origin.

import { call, token } from "../api.js";
import { h, replace } from "../dom.js";

export function render(main, { message, onSignedIn }, app) {
  app.title("Sign in");
  const input = h("input", {
    type: "password", id: "token", name: "token", autocomplete: "off", spellcheck: "false",
    required: true, "aria-describedby": "token-hint token-error",
  });
  const error = h("p", { class: "field-error", id: "token-error", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Continue");
  const form = h("form", { novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "token" }, "API token"),
      input,
      h("p", { class: "hint", id: "token-hint" },
        "The bearer token this Triggerline accepts: the one it printed at start, or ",
        h("code", {}, "TRIGGERLINE_API_TOKEN"), ". It is kept for this tab only."),
      error),
    h("div", { class: "actions" }, submit));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    error.hidden = true;
    input.removeAttribute("aria-invalid");
    if (!value) {
      showError("Enter the API token.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Checking…";
    try {
      await call("GET", "/triggers/v1", { query: { limit: 1 }, tokenOverride: value });
      token.set(value);
      onSignedIn();
    } catch (failure) {
      showError(failure.status === 401
        ? `The API refused this token: ${failure.message}.`
        : failure.message);
    } finally {
      submit.disabled = false;
      submit.textContent = "Continue";
    }
  });

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  replace(main,
    h("section", { class: "sign-in card", "aria-labelledby": "sign-in-title" },
      h("div", { class: "card-body stack" },
        h("h1", { id: "sign-in-title", tabindex: "-1" }, "Sign in to the console"),
        message ? h("p", { class: "alert info", role: "status" }, message) : null,
        h("p", { class: "hint" },
          "The console uses the same API as curl and the SDKs, with the same token."),
        form)));
  input.focus();
}
