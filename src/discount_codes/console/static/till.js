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
  tokenClaims,
  tokenExpired,
} from "./common.js";
import { discountCurrency, discountFor, discountText, fmtMoney, normaliseAmount } from "./money.js";

const TOKEN_KEY = "dc.tillToken";
const CONSOLE_TOKEN_KEY = "dc.brandToken"; // the brand console's, in the same tab
const brandId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
const main = document.getElementById("main");
const sessionBox = document.getElementById("session");

// What the cashier reads when a code cannot be used now (the lookup's `reason`).
const REASONS = {
  "not-claimed": "Not valid: this code was never handed out to a shopper.",
  "already-redeemed": "Already used: do not apply the discount again.",
  "code-held": "On hold for another order being paid: use it only once that payment is cancelled.",
  "code-expired": "Expired: this campaign's codes can no longer be redeemed.",
};
// What the cashier reads for a problem answer; the service's own detail follows.
const PROBLEMS = {
  "code-not-found": "No such code for this brand. Check what the shopper typed.",
  "code-not-claimed": REASONS["not-claimed"],
  "code-already-redeemed": "Not redeemed: this code was already used with another order.",
  "code-held": "Not redeemed: another order is being paid with this code.",
  "code-expired": REASONS["code-expired"],
  "minimum-order-not-met": "Not redeemed: the order is below the campaign's minimum.",
  "validation-failed": "That is not a code, or the order is not valid.",
  forbidden: `This token does not administer ${brandId}.`,
  unauthenticated: "Your sign-in has expired: sign in again.",
};

let config = { dev: false };

/** A till's token must administer its brand. */
function administers(claims) {
  return (claims.brands || []).includes(brandId);
}

/**
 * The till's own token, else the brand console's from the same tab when it administers
 * this brand: staff who open the till from the console are already signed in.
 */
function currentToken() {
  const own = storedToken(TOKEN_KEY, administers);
  if (own) return own;
  const token = store.get(CONSOLE_TOKEN_KEY);
  const claims = token ? tokenClaims(token) : null;
  return claims && !tokenExpired(claims) && administers(claims) ? { token, claims } : null;
}

/** Signs the tab out: the till's token and the console's one it may be using. */
function signOut() {
  store.remove(TOKEN_KEY);
  if (currentToken()) store.remove(CONSOLE_TOKEN_KEY);
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
  const state = { who, typed: "", input, message, result, done: null };

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
          state.done = null;
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
      el("p", { class: "verdict", "data-tone": "bad", "data-redeemable": "false" }, headline),
      el("p", { class: "detail muted" }, problemText(problem)),
    ),
  );
}

// The badge's colour says whether the cashier may go on: a code just redeemed here is good news.
const STATUS_BADGE = { available: "badge-paused", claimed: "badge-active", held: "badge-paused", redeemed: "badge-ended" };

/** What the code is worth, as the cashier says it to the shopper. */
function worth(campaign) {
  const text = discountText(campaign?.discount);
  return text || "No discount set: see the campaign's terms.";
}

function showCode(state, view) {
  const { result } = state;
  clear(result);
  // This till just redeemed it: the redemption on screen is the cashier's own order.
  const mine = view.redemption && state.done && state.done.id === view.redemption.id ? state.done : null;
  result.dataset.status = view.status;
  result.dataset.reason = view.reason || "";
  result.dataset.outcome = mine ? (view.redemption.status === "held" ? "held-now" : "redeemed-now") : "";
  let verdict;
  let tone;
  if (mine && view.redemption.status === "held") {
    verdict = `On hold for order ${view.redemption.order_id} until the payment is done.`;
    tone = "ok";
  } else if (mine) {
    verdict = `Redeemed with order ${view.redemption.order_id}.`;
    tone = "ok";
  } else if (view.redeemable) {
    verdict = "Valid: redeem it with the order.";
    tone = "ok";
  } else {
    verdict = REASONS[view.reason] || "This code cannot be redeemed now.";
    tone = "bad";
  }
  const badge = mine ? "badge-active" : STATUS_BADGE[view.status] || "";
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", {}, "Code"),
    el("dd", { class: "mono", id: "till-code" }, view.code),
    el("dt", {}, "Campaign"),
    el("dd", { id: "till-campaign" }, view.campaign?.name || "—"),
    el("dt", {}, "Discount"),
    el("dd", { id: "till-worth" }, worth(view.campaign)),
    el("dt", {}, "Status"),
    el("dd", {}, el("span", { class: `badge ${badge}`, id: "till-status" }, view.status)),
    el("dt", {}, "Handed out"),
    el("dd", {}, view.claimed_at ? fmtDate(view.claimed_at) : "never"),
  );
  const redemption = view.redemption;
  if (redemption) {
    const when = redemption.redeemed_at || redemption.expires_at;
    append(
      facts,
      el("dt", {}, redemption.status === "held" ? "On hold" : "Redeemed"),
      el(
        "dd",
        {},
        redemption.status === "held" ? "until " : "",
        when ? fmtDate(when) : "",
        " with order ",
        el("strong", { id: "till-order" }, redemption.order_id),
      ),
    );
    if (redemption.amount) append(facts, el("dt", {}, "Order amount"), el("dd", {}, fmtMoney(redemption.amount)));
  }
  const card = el("div", { class: mine ? "outcome outcome-ok" : "" });
  card.append(el("p", { class: "verdict", id: "till-verdict", "data-tone": tone, "data-redeemable": String(view.redeemable) }, verdict));
  const due = mine ? mine.discount_amount || redemption.discount_amount : null;
  if (due) card.append(el("p", { class: "due", id: "till-due" }, `Take ${fmtMoney(due)} off the order.`));
  else if (mine) card.append(el("p", { class: "due", id: "till-due" }, `Apply the discount: ${worth(view.campaign)}`));
  card.append(facts);
  if (view.redeemable) card.append(redeemForm(state, view));
  if (redemption) card.append(afterwards(state, redemption, Boolean(mine)));
  append(result, card);
}

/** The amount field's text as the API's {value, currency}; null when none was typed. */
function typedAmount(value, currency, discount) {
  const raw = value.value.trim();
  if (!raw) return null;
  const normal = normaliseAmount(raw);
  const code = (currency.value.trim() || discountCurrency(discount)).toUpperCase();
  return { value: normal, currency: code, typed: raw };
}

function redeemForm(state, view) {
  const discount = view.campaign?.discount || null;
  const order = el("input", { type: "text", id: "order-id", name: "order_id", required: true, maxlength: 128, autocomplete: "off" });
  const value = el("input", { type: "text", id: "amount-value", name: "amount_value", inputmode: "decimal", autocomplete: "off", placeholder: "59.90" });
  const currency = el("input", {
    type: "text",
    id: "amount-currency",
    name: "amount_currency",
    maxlength: 3,
    autocomplete: "off",
    placeholder: "EUR",
    value: discountCurrency(discount),
  });
  const preview = el("p", { class: "due-preview", id: "till-preview", role: "status" });
  const button = el("button", { type: "submit", id: "redeem" }, "Redeem");
  // The discount to apply, worked out as the amount is typed (the service's answer wins).
  const showPreview = () => {
    preview.textContent = "";
    const amount = typedAmount(value, currency, discount);
    if (!amount) return;
    if (!amount.value) return (preview.textContent = "Type the amount as digits, e.g. 59.90 or 59,90.");
    if (!discount) return;
    if (!/^[A-Z]{3}$/.test(amount.currency)) return (preview.textContent = "Type the currency too, e.g. EUR.");
    const outcome = discountFor(discount, amount);
    if (!outcome) return;
    if (outcome.otherCurrency) preview.textContent = `This campaign's discount is in ${outcome.currency}.`;
    else if (outcome.below) preview.textContent = `Below the minimum order of ${fmtMoney(outcome.below)}: no discount.`;
    else preview.textContent = `Discount to apply: ${fmtMoney(outcome.due)}.`;
  };
  value.addEventListener("input", showPreview);
  currency.addEventListener("input", showPreview);
  return el(
    "form",
    {
      class: "redeem",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { order_id: order.value.trim() };
        const amount = typedAmount(value, currency, discount);
        if (amount) {
          if (!amount.value) {
            state.message.textContent = `“${amount.typed}” is not an amount: type it as digits, e.g. 59.90 or 59,90.`;
            value.focus();
            return;
          }
          body.amount = { value: amount.value, currency: amount.currency };
        }
        button.disabled = true;
        const r = await api(`${codeUrl(view.code)}/redemptions`, { token: state.who.token, method: "POST", json: body });
        button.disabled = false;
        if (r.status === 401) return signOut();
        if (r.ok) {
          state.done = r.data;
          state.message.textContent = "";
          await lookUp(state);
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
      el("legend", {}, "Order amount (optional: the discount to apply is worked out)"),
      el("div", { class: "amount" }, field("Value", value), field("Currency", currency)),
      preview,
    ),
    button,
  );
}

/**
 * After a redemption: the next shopper, and the reversal for a cancelled order. Reversing
 * is a normal step, not a warning: it is never red.
 */
function afterwards(state, redemption, mine) {
  const bar = el("div", { class: "toolbar" });
  if (mine) {
    bar.append(
      el(
        "button",
        {
          type: "button",
          id: "next-code",
          onclick: () => {
            state.done = null;
            clear(state.result);
            state.message.textContent = "";
            state.input.value = "";
            state.input.focus();
          },
        },
        "Next code",
      ),
    );
  }
  bar.append(
    el(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "reverse",
        onclick: async (event) => {
          if (!confirm(`Reverse the redemption of order ${redemption.order_id}? The code can then be redeemed again.`)) return;
          event.target.disabled = true;
          const r = await api(`/v1/redemptions/${encodeURIComponent(redemption.id)}`, {
            token: state.who.token,
            method: "DELETE",
          });
          if (r.status === 401) return signOut();
          state.done = null;
          await lookUp(state);
          state.message.textContent = r.ok
            ? `Reversed: order ${redemption.order_id} no longer uses this code.`
            : problemText(r.problem);
        },
      },
      redemption.status === "held" ? "Release the hold (payment cancelled)" : "Reverse redemption (order cancelled)",
    ),
  );
  return bar;
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
