// The shopper demo page: a logged-in shopper agrees to share contact details and gets a code,
// or is told exactly why there is none. Calls POST /v1/campaigns/{id}/claims like a shop would.
import {
  api,
  append,
  clear,
  copyButton,
  el,
  field,
  fmtDate,
  problemText,
  randomId,
  slugOf,
  store,
  tokenClaims,
  tokenExpired,
  wireSkipLink,
} from "./common.js";

const TOKEN_KEY = "dc.shopperToken";
const campaignId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
const main = document.getElementById("main");
const sessionBox = document.getElementById("session");

// What a shopper reads for each problem the claim can answer; the service's own detail follows.
const REASONS = {
  "codes-exhausted": "Sorry, there are no codes left: every code of this campaign has been handed out.",
  "campaign-not-active": "This campaign is not open right now.",
  "campaign-ended": "This campaign has ended.",
  "consent-required": "Tick the box to share your contact details: the brand gives codes in exchange.",
  "not-found": "There is no such campaign.",
  unauthenticated: "Your sign-in has expired: sign in again.",
};

let config = { dev: false };

function currentToken() {
  const token = store.get(TOKEN_KEY);
  const claims = token ? tokenClaims(token) : null;
  if (!claims || tokenExpired(claims)) {
    store.remove(TOKEN_KEY);
    return null;
  }
  return { token, claims };
}

function renderSession(who) {
  clear(sessionBox);
  if (!who) return;
  const { claims } = who;
  append(
    sessionBox,
    el("span", {}, "Signed in as ", el("strong", {}, claims.name || claims.email || claims.sub)),
    " ",
    el(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          store.remove(TOKEN_KEY);
          render();
        },
      },
      "Sign out",
    ),
  );
}

function signIn() {
  document.title = "Sign in · Get your code";
  const parts = [el("h1", { tabindex: "-1" }, "Sign in to get your code")];
  if (config.dev) {
    const name = el("input", { type: "text", name: "name", required: true, autocomplete: "name", maxlength: 200, value: "Ada Lovelace" });
    const email = el("input", { type: "email", name: "email", required: true, autocomplete: "email", maxlength: 320, value: `ada.${randomId()}@example.com` });
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const button = el("button", { type: "submit" }, "Sign in as a demo shopper");
    parts.push(
      el(
        "form",
        {
          class: "card",
          onsubmit: async (event) => {
            event.preventDefault();
            button.disabled = true;
            const r = await api("/console/dev-token", {
              method: "POST",
              json: { sub: `shopper-${randomId()}`, name: name.value.trim(), email: email.value.trim() },
            });
            button.disabled = false;
            if (!r.ok) {
              error.textContent = problemText(r.problem);
              error.hidden = false;
              return;
            }
            store.set(TOKEN_KEY, r.data.token);
            render(true);
          },
        },
        el("p", {}, "Dev mode: the marketplace's login is simulated with a token for a new shopper."),
        field("Your name", name),
        field("Your e-mail", email),
        error,
        button,
      ),
    );
  }
  const pasted = el("textarea", { name: "token", rows: 3, required: true, spellcheck: "false", autocomplete: "off" });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  parts.push(
    el(
      "form",
      {
        class: "card",
        onsubmit: (event) => {
          event.preventDefault();
          const claims = tokenClaims(pasted.value.trim());
          if (!claims || tokenExpired(claims)) {
            error.textContent = "This is not a valid, unexpired token.";
            error.hidden = false;
            return;
          }
          store.set(TOKEN_KEY, pasted.value.trim());
          render(true);
        },
      },
      field("Or paste a shopper token", pasted, "A JWT from the marketplace's login."),
      error,
      el("button", { type: "submit", class: "secondary" }, "Use this token"),
    ),
  );
  append(main, ...parts);
}

function showCode(result, claim, again) {
  clear(result);
  result.dataset.outcome = "code";
  const code = el("p", { class: "code", id: "your-code" }, claim.code);
  append(
    result,
    el("h2", {}, again ? "You already have a code" : "Your code"),
    code,
    el("div", { class: "toolbar" }, ...copyButton("Copy code", () => claim.code)),
    el(
      "p",
      { class: "muted" },
      again ? "You got it on " : "Claimed on ",
      fmtDate(claim.claimed_at),
      ". One code per shopper per campaign.",
    ),
  );
}

/** The service writes instants as RFC 3339; the shopper reads them in their own locale. */
function localiseDates(message) {
  return message.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/g, (iso) =>
    fmtDate(iso).textContent,
  );
}

function showReason(result, problem) {
  clear(result);
  const slug = slugOf(problem);
  result.dataset.outcome = "problem";
  result.dataset.reason = slug;
  const headline = REASONS[slug] || problem.title || "Something went wrong.";
  append(
    result,
    el("h2", {}, "No code"),
    el("p", { class: "reason" }, headline),
    problem.detail && problem.detail !== headline && slug !== "consent-required"
      ? el("p", { class: "detail" }, localiseDates(problem.detail))
      : null,
  );
}

async function claimView(who) {
  const r = await api(`/v1/campaigns/${encodeURIComponent(campaignId)}`, { token: who.token });
  if (r.status === 401) {
    store.remove(TOKEN_KEY);
    return render();
  }
  const campaign = r.ok ? r.data : null;
  document.title = `${campaign ? campaign.name : "Get your code"} · Get your code`;
  const brand = campaign ? campaign.brand_id : "the brand running this campaign";
  const email = who.claims.email;
  const name = who.claims.name;
  const sharing =
    email || name
      ? `my e-mail address${email ? ` (${email})` : ""} and name${name ? ` (${name})` : ""}`
      : "the e-mail address and name of my account";

  const consent = el("input", { type: "checkbox", id: "consent", name: "share_contact", "aria-describedby": "consent-note" });
  const button = el("button", { type: "submit", id: "get-code" }, "Get your code");
  const result = el("div", { id: "result", class: "result", "aria-live": "polite" });
  const form = el(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!consent.checked) {
          showReason(result, { type: "/problems/consent-required", title: REASONS["consent-required"] });
          consent.focus();
          return;
        }
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        const c = await api(`/v1/campaigns/${encodeURIComponent(campaignId)}/claims`, {
          token: who.token,
          method: "POST",
          json: { share_contact: true },
        });
        button.disabled = false;
        button.setAttribute("aria-busy", "false");
        if (c.ok) showCode(result, c.data, c.status === 200);
        else showReason(result, c.problem);
      },
    },
    el(
      "div",
      { class: "check consent" },
      consent,
      el("label", { for: "consent" }, `Share ${sharing} with ${brand} in exchange for a discount code.`),
    ),
    el("p", { class: "hint", id: "consent-note" }, "You can withdraw this later from your account; the code stays yours."),
    button,
  );

  append(
    main,
    el("h1", { tabindex: "-1", id: "campaign-name" }, campaign ? campaign.name : "Get your code"),
    campaign && campaign.description ? el("p", { class: "lead" }, campaign.description) : null,
    campaign && campaign.ends_at ? el("p", { class: "muted" }, "Until ", fmtDate(campaign.ends_at)) : null,
    campaign && campaign.terms
      ? el("details", {}, el("summary", {}, "Terms"), el("p", { class: "terms" }, campaign.terms))
      : null,
    form,
    result,
  );
}

function render(focus = false) {
  clear(main);
  const who = currentToken();
  renderSession(who);
  const done = who ? claimView(who) : (signIn(), Promise.resolve());
  if (focus) {
    done.then(() => main.querySelector("h1")?.focus());
  }
}

async function boot() {
  wireSkipLink();
  const r = await api("/console/config");
  if (r.ok) config = r.data;
  render();
}

boot();
