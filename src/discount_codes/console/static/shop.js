// The shopper demo page: a logged-in shopper agrees to share contact details and gets a code,
// or is told exactly why there is none. Calls POST /v1/campaigns/{id}/claims like a shop would.
import {
  api,
  append,
  atOrOn,
  clear,
  copyButton,
  devTokenForm,
  el,
  field,
  fmtDate,
  pageConfig,
  pastedTokenForm,
  randomId,
  slugOf,
  store,
  storedToken,
} from "./common.js";
import { discountText } from "./money.js";

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

const SAID_IN_FULL = new Set(["consent-required", "codes-exhausted", "campaign-ended", "not-found"]);
// After these answers there is nothing left to ask the shopper: the form goes.
const FINAL = new Set(["codes-exhausted", "campaign-ended", "campaign-not-active"]);

let config = { dev: false };

function currentToken() {
  return storedToken(TOKEN_KEY);
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
    parts.push(
      devTokenForm({
        key: TOKEN_KEY,
        intro: "Dev mode: the marketplace's login is simulated with a token for a new shopper.",
        label: "Sign in as a demo shopper",
        claims: () => ({ sub: `shopper-${randomId()}`, name: name.value.trim(), email: email.value.trim() }),
        fields: [field("Your name", name), field("Your e-mail", email)],
        done: () => render(true),
      }),
    );
  }
  parts.push(
    pastedTokenForm({
      key: TOKEN_KEY,
      label: "Or paste a shopper token",
      hint: "A JWT from the marketplace's login.",
      done: () => render(true),
    }),
  );
  append(main, ...parts);
}

function showCode(result, claim, again, focus = false) {
  clear(result);
  result.dataset.outcome = "code";
  const code = el("p", { class: "code", id: "your-code" }, claim.code);
  const title = el("h2", { tabindex: "-1", id: "result-title" }, again ? "You already have a code" : "Your code");
  append(
    result,
    title,
    code,
    el("div", { class: "toolbar" }, ...copyButton("Copy code", () => claim.code)),
    el(
      "p",
      { class: "muted" },
      ...(again ? ["You got it ", ...atOrOn(claim.claimed_at)] : ["Claimed ", fmtDate(claim.claimed_at, { relative: true })]),
      ". One code per shopper per campaign.",
    ),
  );
  // The answer replaces the button that was focused: take the keyboard to it.
  if (focus) title.focus();
}

/** The service writes instants as RFC 3339; the shopper reads them in their own locale. */
function localiseDates(message) {
  return message.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/g, (iso) =>
    fmtDate(iso).textContent,
  );
}

function showReason(result, problem, focus = false) {
  clear(result);
  const slug = slugOf(problem);
  result.dataset.outcome = "problem";
  result.dataset.reason = slug;
  const headline = REASONS[slug] || problem.title || "Something went wrong.";
  const title = el("h2", { tabindex: "-1", id: "result-title" }, "No code");
  append(
    result,
    title,
    el("p", { class: "reason" }, headline),
    // The service's detail only where it adds something (a date); one message otherwise.
    problem.detail && problem.detail !== headline && !SAID_IN_FULL.has(slug)
      ? el("p", { class: "detail" }, localiseDates(problem.detail))
      : null,
  );
  if (focus) title.focus();
}

/** The shopper's claim on this campaign, if any: a reload must not forget the code. */
async function existingClaim(who) {
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const r = await api(`/v1/me/claims?limit=200${q}`, { token: who.token });
    if (!r.ok) return null;
    const mine = r.data.items.find((c) => c.campaign_id === campaignId);
    if (mine) return mine;
    cursor = r.data.next_cursor;
    if (!cursor) return null;
  }
  return null;
}

/** Why this campaign hands out no code right now, before the shopper consents to anything. */
function closedReason(campaign) {
  if (campaign.status === "ended") {
    return { slug: "campaign-ended", text: "This campaign has ended: it no longer hands out codes." };
  }
  if (campaign.status === "paused") {
    return { slug: "campaign-not-active", text: "This campaign is paused: no codes are handed out right now. Try again later." };
  }
  if (campaign.starts_at && new Date(campaign.starts_at) > new Date()) {
    const [word, when] = atOrOn(campaign.starts_at);
    return { slug: "campaign-not-active", text: `This campaign opens ${word}${when.textContent}.` };
  }
  // Said before the shopper is asked to share anything (the campaign tells shoppers only
  // whether codes are left, not how many).
  if (campaign.codes_left === false) {
    return { slug: "codes-exhausted", text: REASONS["codes-exhausted"] };
  }
  return null;
}

async function claimView(who) {
  const [r, claim] = await Promise.all([
    api(`/v1/campaigns/${encodeURIComponent(campaignId)}`, { token: who.token }),
    existingClaim(who),
  ]);
  if (r.status === 401) {
    store.remove(TOKEN_KEY);
    return render();
  }
  if (!r.ok) {
    document.title = "No such campaign · Get your code";
    const result = el("div", { id: "result", class: "result", "aria-live": "polite" });
    append(main, el("h1", { tabindex: "-1", id: "campaign-name" }, "No such campaign"), result);
    showReason(result, r.status === 404 ? { type: "/problems/not-found", title: REASONS["not-found"] } : r.problem);
    return;
  }
  const campaign = r.data;
  document.title = `${campaign.name} · Get your code`;
  const brand = campaign.brand_id;
  const result = el("div", { id: "result", class: "result", "aria-live": "polite" });
  const offer = discountText(campaign.discount);
  const header = [
    el("h1", { tabindex: "-1", id: "campaign-name" }, campaign.name),
    el("p", { class: "muted", id: "campaign-brand" }, "From ", el("strong", {}, brand)),
    offer ? el("p", { class: "offer", id: "campaign-offer" }, offer) : null,
    campaign.description ? el("p", { class: "lead" }, campaign.description) : null,
  ];
  // The terms stay with the code: a shopper who reloads still reads what the code is for.
  const terms = campaign.terms
    ? el("details", { id: "campaign-terms" }, el("summary", {}, "Terms"), el("p", { class: "terms" }, campaign.terms))
    : null;

  if (claim) {
    append(main, ...header, result, terms);
    showCode(result, claim, true);
    return;
  }
  const closed = closedReason(campaign);
  if (closed) {
    append(
      main,
      ...header,
      el("p", { class: `state state-${campaign.status}`, id: "campaign-state", dataset: { state: closed.slug } }, closed.text),
    );
    return;
  }

  const email = who.claims.email;
  const name = who.claims.name;
  const sharing =
    email || name
      ? `my e-mail address${email ? ` (${email})` : ""} and name${name ? ` (${name})` : ""}`
      : "the e-mail address and name of my account";

  const consent = el("input", { type: "checkbox", id: "consent", name: "share_contact", "aria-describedby": "consent-note" });
  const button = el("button", { type: "submit", id: "get-code" }, "Get your code");
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
        if (c.ok) {
          form.remove(); // the code is the shopper's now: nothing left to ask
          showCode(result, c.data, c.status === 200, true);
          return;
        }
        if (FINAL.has(slugOf(c.problem))) form.remove();
        showReason(result, c.problem, true);
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
    ...header,
    campaign.ends_at ? el("p", { class: "muted" }, "Until ", fmtDate(campaign.ends_at)) : null,
    terms,
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
  config = await pageConfig();
  render();
}

boot();
