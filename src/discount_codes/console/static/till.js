// The till: a brand's staff type the code a shopper shows, see whether it can be used,
// redeem it with the order, and reverse it when the order is cancelled. Calls the same
// /v1 redemption routes a shop's backend would, with a token of the brand's staff.
import {
  api,
  append,
  clear,
  devTokenForm,
  el,
  field,
  fmtDate,
  pageConfig,
  pastedTokenForm,
  problemText,
  randomId,
  slugOf,
  store,
  storedToken,
} from "./common.js";

const TOKEN_KEY = "dc.tillToken";
const brandId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
const main = document.getElementById("main");
const sessionBox = document.getElementById("session");

// What the cashier reads when a code cannot be used now (the lookup's `reason`).
const REASONS = {
  "not-claimed": "Not valid: this code was never handed out to a shopper.",
  "already-redeemed": "Already redeemed: see the order below.",
  "code-expired": "Expired: this campaign's codes can no longer be redeemed.",
};
// What the cashier reads for a problem answer; the service's own detail follows.
const PROBLEMS = {
  "code-not-found": "No such code for this brand. Check what the shopper typed.",
  "code-not-claimed": REASONS["not-claimed"],
  "code-already-redeemed": "Not redeemed: this code was already used with another order.",
  "code-expired": REASONS["code-expired"],
  "validation-failed": "That is not a code, or the order is not valid.",
  forbidden: `This token does not administer ${brandId}.`,
  unauthenticated: "Your sign-in has expired: sign in again.",
};

let config = { dev: false };

/** A till's token must administer its brand. */
function administers(claims) {
  return (claims.brands || []).includes(brandId);
}

function currentToken() {
  return storedToken(TOKEN_KEY, administers);
}

function signOut() {
  store.remove(TOKEN_KEY);
  render();
}

function renderSession(who) {
  clear(sessionBox);
  if (!who) return;
  append(
    sessionBox,
    el("span", {}, "Till of ", el("strong", { id: "till-brand" }, brandId), " · ", who.claims.sub),
    " ",
    el("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
}

function signIn() {
  document.title = `Sign in · Till · ${brandId}`;
  const parts = [el("h1", { tabindex: "-1" }, `Sign in to the till of ${brandId}`)];
  if (config.dev) {
    parts.push(
      devTokenForm({
        key: TOKEN_KEY,
        intro: `Dev mode: the marketplace's login is simulated with a token of ${brandId}'s staff.`,
        label: "Mint a dev token",
        claims: () => ({ sub: `till-${randomId()}`, brands: [brandId] }),
        done: () => render(true),
      }),
    );
  }
  parts.push(
    pastedTokenForm({
      key: TOKEN_KEY,
      label: "Or paste a staff token",
      hint: `A JWT whose brands include ${brandId}.`,
      fits: administers,
      misfit: `This token does not administer ${brandId}.`,
      done: () => render(true),
    }),
  );
  append(main, ...parts);
}

function codeUrl(typed) {
  return `/v1/brands/${encodeURIComponent(brandId)}/codes/${encodeURIComponent(typed)}`;
}

function tillView(who) {
  document.title = `Till · ${brandId}`;
  const input = el("input", {
    type: "text",
    id: "code",
    name: "code",
    required: true,
    maxlength: 128,
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
    placeholder: "e.g. SPRING-7KQ2-M9XD-4TRA",
  });
  const button = el("button", { type: "submit", id: "check-code" }, "Check code");
  const message = el("p", { id: "till-message", role: "status" });
  const result = el("div", { id: "till-result", class: "result", "aria-live": "polite" });
  const state = { who, typed: "", input, message, result };

  append(
    main,
    el("h1", { tabindex: "-1" }, `Till · ${brandId}`),
    el(
      "form",
      {
        class: "card till-code",
        onsubmit: async (event) => {
          event.preventDefault();
          state.typed = input.value.trim();
          if (!state.typed) return;
          message.textContent = "";
          button.disabled = true;
          await lookUp(state);
          button.disabled = false;
        },
      },
      field(
        "Code",
        input,
        "As the shopper typed it: case, hyphens and spaces do not matter, O reads as 0 and I or L as 1, and the prefix may be left out.",
      ),
      button,
    ),
    message,
    result,
  );
}

async function lookUp(state) {
  const r = await api(codeUrl(state.typed), { token: state.who.token });
  if (r.status === 401) return signOut();
  if (r.ok) showCode(state, r.data);
  else showProblem(state.result, r.problem);
}

function showProblem(result, problem) {
  clear(result);
  const slug = slugOf(problem);
  result.dataset.status = "problem";
  result.dataset.reason = slug;
  const headline = PROBLEMS[slug] || problem.title || "Something went wrong.";
  append(
    result,
    el(
      "div",
      {},
      el("p", { class: "verdict", "data-redeemable": "false" }, headline),
      el("p", { class: "detail muted" }, problemText(problem)),
    ),
  );
}

const STATUS_BADGE = { available: "badge-paused", claimed: "badge-active", redeemed: "badge-ended" };

function showCode(state, view) {
  const { result } = state;
  clear(result);
  result.dataset.status = view.status;
  result.dataset.reason = view.reason || "";
  const verdict = view.redeemable
    ? "Valid: redeem it with the order."
    : REASONS[view.reason] || "This code cannot be redeemed now.";
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", {}, "Code"),
    el("dd", { class: "mono", id: "till-code" }, view.code),
    el("dt", {}, "Status"),
    el("dd", {}, el("span", { class: `badge ${STATUS_BADGE[view.status] || ""}`, id: "till-status" }, view.status)),
    el("dt", {}, "Handed out"),
    el("dd", {}, view.claimed_at ? fmtDate(view.claimed_at) : "never"),
  );
  if (view.redemption) {
    append(
      facts,
      el("dt", {}, "Redeemed"),
      el("dd", {}, fmtDate(view.redemption.redeemed_at), " with order ", el("strong", { id: "till-order" }, view.redemption.order_id)),
    );
  }
  const card = el(
    "div",
    {},
    el("p", { class: "verdict", id: "till-verdict", "data-redeemable": String(view.redeemable) }, verdict),
    facts,
  );
  if (view.redeemable) card.append(redeemForm(state, view));
  if (view.redemption) card.append(reverseButton(state, view.redemption));
  append(result, card);
}

function redeemForm(state, view) {
  const order = el("input", { type: "text", id: "order-id", name: "order_id", required: true, maxlength: 128, autocomplete: "off" });
  const value = el("input", { type: "text", id: "amount-value", name: "amount_value", inputmode: "decimal", autocomplete: "off", placeholder: "59.90" });
  const currency = el("input", { type: "text", id: "amount-currency", name: "amount_currency", maxlength: 3, autocomplete: "off", placeholder: "EUR" });
  const button = el("button", { type: "submit", id: "redeem" }, "Redeem");
  return el(
    "form",
    {
      class: "redeem",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { order_id: order.value.trim() };
        if (value.value.trim() || currency.value.trim()) {
          body.amount = { value: value.value.trim(), currency: currency.value.trim().toUpperCase() };
        }
        button.disabled = true;
        const r = await api(`${codeUrl(view.code)}/redemptions`, { token: state.who.token, method: "POST", json: body });
        button.disabled = false;
        if (r.status === 401) return signOut();
        if (r.ok) {
          await lookUp(state);
          state.message.textContent = `Redeemed with order ${r.data.order_id}.`;
          return;
        }
        if (slugOf(r.problem) === "validation-failed") {
          state.message.textContent = problemText(r.problem);
          return;
        }
        await lookUp(state);
        state.message.textContent = PROBLEMS[slugOf(r.problem)] || problemText(r.problem);
      },
    },
    field("Order id", order, "Your shop's order number. Sending the same order again is safe."),
    el(
      "fieldset",
      {},
      el("legend", {}, "Amount (optional)"),
      el("div", { class: "amount" }, field("Value", value), field("Currency", currency)),
    ),
    button,
  );
}

function reverseButton(state, redemption) {
  return el(
    "div",
    { class: "toolbar" },
    el(
      "button",
      {
        type: "button",
        class: "danger",
        id: "reverse",
        onclick: async (event) => {
          if (!confirm(`Reverse the redemption of order ${redemption.order_id}? The code can then be redeemed again.`)) return;
          event.target.disabled = true;
          const r = await api(`/v1/redemptions/${encodeURIComponent(redemption.id)}`, {
            token: state.who.token,
            method: "DELETE",
          });
          if (r.status === 401) return signOut();
          await lookUp(state);
          state.message.textContent = r.ok
            ? `Reversed: order ${redemption.order_id} no longer uses this code.`
            : problemText(r.problem);
        },
      },
      "Reverse redemption (order cancelled)",
    ),
  );
}

function render(focus = false) {
  clear(main);
  const who = currentToken();
  renderSession(who);
  if (who) tillView(who);
  else signIn();
  if (focus) main.querySelector("h1")?.focus();
}

async function boot() {
  config = await pageConfig();
  render();
}

boot();
