// The brand console: campaigns, code generation, claims, webhooks and the event feed, all
// through the public /v1 API with the brand staff's bearer token (kept in sessionStorage).
import {
  api,
  append,
  clear,
  copyButton,
  download,
  el,
  eventLabel,
  field,
  fieldErrors,
  fmtBytes,
  fmtDate,
  fmtNumber,
  plural,
  problemText,
  slug,
  store,
  timeZone,
  tokenClaims,
  tokenExpired,
  wireSkipLink,
} from "./common.js";
import { chartFrame, claimsChart, deliveriesChart } from "./charts.js";
import { deliveryCell, readEndpoints, readOutcomes } from "./events.js";

const TOKEN_KEY = "dc.brandToken";
const BRAND_KEY = "dc.brand";
const BATCH_KEY = "dc.batch."; // + campaign id: a batch still being followed
const EVENT_TYPES = [
  "discount_code.claimed",
  "code_batch.completed",
  "campaign.codes_low",
  "campaign.codes_exhausted",
  "contact_consent.withdrawn",
  "discount_code.redeemed",
  "discount_code.redemption_reversed",
  "discount_code.hold_expired",
];
const enc = encodeURIComponent;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const sessionBox = document.getElementById("session");
const toastBox = document.getElementById("toast");

let config = { dev: false, webhook_loopback_urls: false, webhook_private_urls: false, max_batch_count: 1000000 };
let session = null; // {token, claims, brand}
let view = null; // AbortController of the page on screen: its timers stop when it goes
let signInMessage = "";

// --- plumbing ------------------------------------------------------------------------------

function toast(message) {
  toastBox.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (toastBox.textContent = ""), 6000);
}

/** The API with the session's token; a 401 ends the session and asks to sign in again. */
async function call(path, options = {}) {
  const result = await api(path, { token: session?.token, ...options });
  if (result.status === 401) {
    signOut("Your token has expired or is not valid: sign in again.");
  }
  return result;
}

/** Runs `fn` now and then every `ms` until the page goes (never two at once). */
function every(ms, fn, signal) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
    } finally {
      if (!signal.aborted) timer = setTimeout(tick, ms);
    }
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
}

function errorBox() {
  return el("p", { class: "error", role: "alert", hidden: true });
}

function showError(box, problemOrText) {
  box.textContent = typeof problemOrText === "string" ? problemOrText : problemText(problemOrText);
  box.hidden = false;
}

function hideError(box) {
  box.textContent = "";
  box.hidden = true;
}

/** A form's server error goes as soon as the person changes what it was about. */
function clearOnInput(form, ...boxes) {
  form.addEventListener("input", () => boxes.forEach(hideError));
  form.addEventListener("change", () => boxes.forEach(hideError));
}

/** Puts each validation error beside its field (by input name) and the rest in `box`. */
function showProblem(form, box, problem) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const placed = [];
  for (const e of fieldErrors(problem)) {
    const input = e.field ? form.querySelector(`[name="${e.field}"]`) : null;
    if (!input) continue;
    const id = `${input.id}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-errormessage", id);
    input.closest(".field")?.append(el("p", { class: "field-error", id }, `${e.label || "This field"} ${e.message}.`));
    placed.push(e);
  }
  showError(box, problem);
}

function clearFieldErrors(form) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

let focusHeading = false; // after an in-page navigation, focus goes to the new page's title

function heading(title) {
  document.title = `${title} · Brand console`;
  const h1 = el("h1", { tabindex: "-1" }, title);
  if (focusHeading) {
    focusHeading = false;
    requestAnimationFrame(() => h1.isConnected && h1.focus());
  }
  return h1;
}

const STATUS_WORDS = { active: "Active", paused: "Paused", ended: "Ended", scheduled: "Scheduled" };

/** An active campaign whose start is still ahead hands out nothing yet: "Scheduled". */
function shownStatus(c) {
  return c.status === "active" && c.starts_at && new Date(c.starts_at) > new Date() ? "scheduled" : c.status;
}

function statusBadge(c) {
  const status = shownStatus(c);
  const badge = el("span", { class: `badge badge-status badge-${status}`, dataset: { status } }, STATUS_WORDS[status] || status);
  if (status === "scheduled") badge.title = `Opens ${fmtDate(c.starts_at).textContent}`;
  return badge;
}

/** "Sold out" once every code is out, "Low stock" at the brand's alert threshold. */
function stockBadge(c) {
  if (c.codes_total > 0 && c.codes_available === 0) {
    return el("span", { class: "badge badge-ended badge-stock", dataset: { stock: "sold-out" } }, "Sold out");
  }
  if (c.low_stock_threshold !== null && c.codes_total > 0 && c.codes_available <= c.low_stock_threshold) {
    return el("span", { class: "badge badge-paused badge-stock", dataset: { stock: "low" } }, "Low stock");
  }
  return null;
}

function badges(c) {
  return el("span", { class: "badges" }, statusBadge(c), stockBadge(c));
}

/** A datetime-local value ("2026-12-01T10:30") for an instant, in the user's time zone. */
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function cell(label, ...content) {
  return el("td", { "data-label": label }, ...content);
}

function table(caption, headers, body) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "responsive" },
      el("caption", { class: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      body,
    ),
  );
}

function busy(button, isBusy) {
  button.disabled = isBusy;
  button.setAttribute("aria-busy", isBusy ? "true" : "false");
}

// --- session -------------------------------------------------------------------------------

function loadSession() {
  const token = store.get(TOKEN_KEY);
  if (!token) return null;
  const claims = tokenClaims(token);
  if (!claims || tokenExpired(claims)) {
    store.remove(TOKEN_KEY);
    signInMessage = "Your token has expired: sign in again.";
    return null;
  }
  const brands = Array.isArray(claims.brands) ? claims.brands.map(String) : [];
  if (!brands.length) {
    store.remove(TOKEN_KEY);
    return null;
  }
  let brand = store.get(BRAND_KEY);
  if (!brands.includes(brand)) brand = brands[0];
  return { token, claims, brand, brands };
}

function signOut(message = "") {
  store.remove(TOKEN_KEY);
  store.remove(BRAND_KEY);
  signInMessage = message;
  session = null;
  route();
}

function renderSession() {
  clear(sessionBox);
  nav.hidden = !session;
  const till = document.getElementById("nav-till");
  if (till && session) till.href = `/console/till/${enc(session.brand)}`;
  if (!session) return;
  const { claims, brands, brand } = session;
  let brandPart;
  if (brands.length > 1) {
    const select = el(
      "select",
      {
        id: "brand-select",
        onchange: (e) => {
          store.set(BRAND_KEY, e.target.value);
          if (location.hash === "#/campaigns") route();
          else location.hash = "#/campaigns";
        },
      },
      brands.map((b) => el("option", { value: b, selected: b === brand }, b)),
    );
    brandPart = el("span", {}, el("label", { for: "brand-select" }, "Brand "), select);
  } else {
    brandPart = el("span", {}, "Brand ", el("strong", { id: "current-brand" }, brand));
  }
  append(
    sessionBox,
    brandPart,
    el("span", { class: "muted" }, ` · ${claims.sub}`),
    claims.exp ? el("span", { class: "muted" }, " · until ", fmtDate(new Date(claims.exp * 1000).toISOString())) : null,
    " ",
    el("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out"),
  );
  const section = (location.hash.split("/")[1] || "campaigns");
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function useToken(token) {
  const claims = tokenClaims(token.trim());
  if (!claims) return "This is not a sign-in token: paste the whole token, it has two dots in it.";
  if (tokenExpired(claims)) return "This token has expired.";
  if (!Array.isArray(claims.brands) || !claims.brands.length) {
    return "This token does not administer any brand: it is a shopper's token. Use a brand staff token.";
  }
  store.set(TOKEN_KEY, token.trim());
  store.set(BRAND_KEY, String(claims.brands[0]));
  signInMessage = "";
  return null;
}

function signInView(signal) {
  const parts = [heading("Sign in")];
  parts.push(
    el(
      "p",
      {},
      "The console calls the discount-codes API with a brand staff token. It is kept in this ",
      "browser tab only and forgotten when the tab closes.",
    ),
  );
  if (signInMessage) parts.push(el("p", { class: "error", role: "alert" }, signInMessage));

  if (config.dev) {
    const brandInput = el("input", {
      type: "text",
      name: "brand",
      value: "demo-brand",
      required: true,
      pattern: "[A-Za-z0-9._:\\-]{1,128}",
      autocomplete: "off",
      spellcheck: "false",
    });
    const error = errorBox();
    const button = el("button", { type: "submit" }, "Mint a dev token");
    const form = el(
      "form",
      {
        class: "card",
        onsubmit: async (event) => {
          event.preventDefault();
          hideError(error);
          busy(button, true);
          const brand = brandInput.value.trim();
          const r = await api("/console/dev-token", {
            method: "POST",
            json: { sub: `console-${brand}`.slice(0, 255), brands: [brand] },
          });
          busy(button, false);
          if (!r.ok) return showError(error, r.problem);
          useToken(r.data.token);
          route();
        },
      },
      el("h2", {}, "Dev mode: mint a brand token"),
      field("Brand id", brandInput, "Tokens minted here are signed with the service's local dev key."),
      error,
      button,
    );
    parts.push(form);
  }

  const tokenInput = el("textarea", { name: "token", rows: 4, required: true, spellcheck: "false", autocomplete: "off" });
  const error = errorBox();
  parts.push(
    el(
      "form",
      {
        class: "card",
        onsubmit: async (event) => {
          event.preventDefault();
          hideError(error);
          const problem = useToken(tokenInput.value);
          if (problem) return showError(error, problem);
          route();
        },
      },
      el("h2", {}, "Paste a token"),
      field(
        "Bearer token",
        tokenInput,
        "A token from the marketplace's sign-in service that lists your brand among the brands you manage.",
      ),
      error,
      el("button", { type: "submit" }, "Use this token"),
    ),
  );
  append(main, ...parts);
}

// --- router --------------------------------------------------------------------------------

function route() {
  if (view) view.abort();
  view = new AbortController();
  const { signal } = view;
  session = loadSession();
  renderSession();
  clear(main);
  if (!session) return signInView(signal);
  const [, section = "campaigns", id] = (location.hash || "#/campaigns").split("/");
  if (section === "campaigns" && id) campaignView(signal, decodeURIComponent(id));
  else if (section === "webhooks") webhooksView(signal);
  else if (section === "events") eventsView(signal);
  else campaignsView(signal);
}

// --- campaigns -----------------------------------------------------------------------------

function statusActions(campaign, onChange, error) {
  const wrap = el("div", { class: "actions" });
  const change = async (status, button) => {
    if (status === "ended" && !confirm(`End “${campaign.name}”? Shoppers can no longer claim, and it cannot be undone.`)) {
      return;
    }
    busy(button, true);
    const r = await call(`/v1/campaigns/${enc(campaign.id)}`, { method: "PATCH", json: { status } });
    busy(button, false);
    if (!r.ok) return showError(error, r.problem);
    hideError(error);
    toast(`“${r.data.name}” is now ${STATUS_WORDS[r.data.status].toLowerCase()}.`);
    onChange(r.data);
  };
  const button = (label, status) => {
    const b = el("button", { type: "button", class: status === "ended" ? "danger" : "secondary", "aria-label": `${label} ${campaign.name}` }, label);
    b.addEventListener("click", () => change(status, b));
    return b;
  };
  if (campaign.status === "active") append(wrap, button("Pause", "paused"), button("End", "ended"));
  if (campaign.status === "paused") append(wrap, button("Resume", "active"), button("End", "ended"));
  return wrap;
}

function campaignRow(campaign, error) {
  const row = el("tr", { dataset: { campaignId: campaign.id } });
  const fill = (c) => {
    clear(row);
    append(
      row,
      cell("Name", el("a", { href: `#/campaigns/${enc(c.id)}` }, c.name)),
      cell("Status", badges(c)),
      cell("Available", el("span", { class: "num" }, fmtNumber(c.codes_available))),
      cell("Claimed", el("span", { class: "num" }, fmtNumber(c.codes_claimed))),
      cell("Redeemed", el("span", { class: "num" }, fmtNumber(c.codes_redeemed))),
      cell("Total", el("span", { class: "num" }, fmtNumber(c.codes_total))),
      cell("Created", fmtDate(c.created_at)),
      cell("Actions", statusActions(c, fill, error)),
    );
  };
  fill(campaign);
  return row;
}

/** The campaign's editable fields; `campaign` given: prefilled for editing. */
function campaignFields(campaign) {
  const name = el("input", { type: "text", name: "name", required: true, maxlength: 200, value: campaign?.name || "" });
  const description = el("textarea", { name: "description", rows: 2, maxlength: 5000 });
  description.value = campaign?.description || "";
  const terms = el("textarea", { name: "terms", rows: 2, maxlength: 20000 });
  terms.value = campaign?.terms || "";
  const threshold = el("input", {
    type: "number",
    name: "low_stock_threshold",
    min: 0,
    max: 1000000000,
    step: 1,
    inputmode: "numeric",
    value: campaign && campaign.low_stock_threshold !== null ? String(campaign.low_stock_threshold) : "",
  });
  const endsAt = el("input", { type: "datetime-local", name: "ends_at", value: localInput(campaign?.ends_at) });
  return { name, description, terms, threshold, endsAt };
}

/** What the form says, as the API's JSON; `before` given: only what changed. */
function campaignJson(f, before) {
  const now = {
    name: f.name.value.trim(),
    description: f.description.value.trim() || null,
    terms: f.terms.value.trim() || null,
    low_stock_threshold: f.threshold.value === "" ? null : Number(f.threshold.value),
    ends_at: f.endsAt.value ? new Date(f.endsAt.value).toISOString() : null,
  };
  if (!before) {
    return Object.fromEntries(Object.entries(now).filter(([, v]) => v !== null));
  }
  const changed = {};
  for (const [key, value] of Object.entries(now)) {
    const old = before[key] ?? null;
    const same = key === "ends_at" ? (old ? localInput(old) : "") === f.endsAt.value : old === value;
    if (!same) changed[key] = value;
  }
  return changed;
}

/** An end date before now is almost always a typo: ask before it ends the campaign. */
function endsInThePast(f) {
  return f.endsAt.value && new Date(f.endsAt.value) <= new Date();
}

function campaignsView(signal) {
  const brand = session.brand;
  const listError = errorBox();
  const body = el("tbody");
  const empty = el("p", { class: "muted", hidden: true }, "No campaigns yet: create the first one above.");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;

  const load = async () => {
    busy(more, true);
    const q = cursor ? `&cursor=${enc(cursor)}` : "";
    const r = await call(`/v1/brands/${enc(brand)}/campaigns?limit=50${q}`);
    busy(more, false);
    if (signal.aborted) return;
    if (!r.ok) return showError(listError, r.problem);
    for (const c of r.data.items) body.append(campaignRow(c, listError));
    cursor = r.data.next_cursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
  };
  more.addEventListener("click", load);

  const f = campaignFields(null);
  const paused = el("input", { type: "checkbox", name: "paused", id: "new-campaign-paused" });
  const formError = errorBox();
  const submit = el("button", { type: "submit" }, "Create campaign");
  const form = el(
    "form",
    {
      class: "card",
      "aria-labelledby": "new-campaign-title",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(formError);
        clearFieldErrors(form);
        if (endsInThePast(f)) {
          showProblem(form, formError, {
            title: "The end date is in the past",
            errors: [{ loc: ["body", "ends_at"], msg: "must be later than now" }],
          });
          // What is wrong is said beside the date; the box above the button only points to it.
          formError.textContent = "The end date is in the past.";
          return;
        }
        const json = { ...campaignJson(f, null), status: paused.checked ? "paused" : "active" };
        busy(submit, true);
        const r = await call(`/v1/brands/${enc(brand)}/campaigns`, { method: "POST", json });
        busy(submit, false);
        if (!r.ok) return showProblem(form, formError, r.problem);
        toast(`Campaign “${r.data.name}” created.`);
        location.hash = `#/campaigns/${enc(r.data.id)}`;
      },
    },
    el("h2", { id: "new-campaign-title" }, "New campaign"),
    el(
      "div",
      { class: "grid" },
      field("Campaign name", f.name),
      field("Low-stock alert at", f.threshold, "You are told when this few codes are left (optional)."),
      field("Description", f.description),
      field("Terms shown to shoppers", f.terms),
      field(`Ends at (your time, ${timeZone})`, f.endsAt, "Optional; shoppers cannot claim after it."),
    ),
    el("div", { class: "check" }, paused, el("label", { for: paused.id }, "Start paused (load codes before shoppers can claim)")),
    formError,
    submit,
  );
  clearOnInput(form, formError);

  append(
    main,
    heading("Campaigns"),
    form,
    el(
      "section",
      { "aria-labelledby": "campaign-list-title" },
      el("h2", { id: "campaign-list-title" }, "Your campaigns"),
      listError,
      table(
        "Campaigns, newest first",
        ["Name", "Status", "Available", "Claimed", "Redeemed", "Total", "Created", "Actions"],
        body,
      ),
      empty,
      more,
    ),
  );
  load();
}

function endsText(campaign) {
  if (campaign.ends_at) return fmtDate(campaign.ends_at);
  return campaign.status === "ended" ? "Ended by the brand" : "No end date";
}

function statsList(campaign) {
  const items = [
    ["Available", el("span", { class: "num", id: "stat-available" }, fmtNumber(campaign.codes_available))],
    ["Claimed", el("span", { class: "num", id: "stat-claimed" }, fmtNumber(campaign.codes_claimed))],
    ["Redeemed", el("span", { class: "num", id: "stat-redeemed" }, fmtNumber(campaign.codes_redeemed))],
    ["Total codes", el("span", { class: "num", id: "stat-total" }, fmtNumber(campaign.codes_total))],
    ["Status", badges(campaign)],
    ["Low-stock alert at", campaign.low_stock_threshold === null ? "None" : fmtNumber(campaign.low_stock_threshold)],
    ["Starts", campaign.starts_at ? fmtDate(campaign.starts_at) : "At creation"],
    ["Ends", el("span", { id: "stat-ends" }, endsText(campaign))],
    ["Created", fmtDate(campaign.created_at)],
  ];
  return el(
    "dl",
    { class: "stats" },
    items.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))),
  );
}

function editSection(campaign, onSaved) {
  const f = campaignFields(campaign);
  const error = errorBox();
  const submit = el("button", { type: "submit" }, "Save changes");
  const form = el(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(error);
        clearFieldErrors(form);
        const json = campaignJson(f, campaign);
        if (!Object.keys(json).length) return showError(error, "Nothing has changed.");
        if ("ends_at" in json && endsInThePast(f) && !confirm(`The end date is in the past: saving it ends “${campaign.name}” now, for good. Save it?`)) {
          return;
        }
        busy(submit, true);
        const r = await call(`/v1/campaigns/${enc(campaign.id)}`, { method: "PATCH", json });
        busy(submit, false);
        if (!r.ok) return showProblem(form, error, r.problem);
        toast(`“${r.data.name}” saved.`);
        details.open = false;
        onSaved(r.data);
      },
    },
    el(
      "div",
      { class: "grid" },
      field("Campaign name", f.name),
      field("Low-stock alert at", f.threshold, "Empty: no alert."),
      field("Description", f.description),
      field("Terms shown to shoppers", f.terms),
      field(`Ends at (your time, ${timeZone})`, f.endsAt, "Empty: no end date."),
    ),
    error,
    submit,
  );
  clearOnInput(form, error);
  const details = el("details", { class: "card edit", id: "edit-campaign" }, el("summary", {}, "Edit campaign"), form);
  return details;
}

function activitySection(signal, getCampaign) {
  const frame = chartFrame("claims-chart", "Claims over time");
  const bucketButtons = ["hour", "day"].map((b) =>
    el("button", { type: "button", class: "secondary", "aria-pressed": "false", dataset: { bucket: b } }, b === "hour" ? "By hour" : "By day"),
  );
  let bucket = null;
  let drawn = null;
  let lastKey = "";
  const draw = async (force = false) => {
    const campaign = getCampaign();
    if (!bucket) {
      const age = Date.now() - new Date(campaign.created_at).getTime();
      bucket = age > 3 * 86400 * 1000 ? "day" : "hour";
    }
    for (const b of bucketButtons) b.setAttribute("aria-pressed", String(b.dataset.bucket === bucket));
    // Asked again only when something it shows has changed (a claim, the stock, the hour).
    const hourNow = Math.floor(Date.now() / 3_600_000);
    const key = JSON.stringify([bucket, hourNow, campaign.codes_claimed, campaign.codes_total, campaign.low_stock_threshold]);
    if (!force && key === lastKey) return;
    lastKey = key;
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/activity?bucket=${bucket}`);
    if (signal.aborted) return;
    if (!r.ok) {
      lastKey = "";
      return;
    }
    if (drawn) drawn.destroy();
    clear(frame.drawing);
    if (!r.data.items.length) {
      drawn = null;
      frame.summary.textContent = "No claims yet: the chart fills in as shoppers get codes.";
      return;
    }
    drawn = claimsChart(frame.drawing, r.data, campaign);
    frame.summary.textContent = drawn.summary;
  };
  for (const b of bucketButtons) {
    b.addEventListener("click", () => {
      bucket = b.dataset.bucket;
      draw(true);
    });
  }
  signal.addEventListener("abort", () => drawn && drawn.destroy());
  return {
    node: el(
      "section",
      { class: "card", "aria-labelledby": "claims-chart-title" },
      el("div", { class: "toolbar" }, el("div", { role: "group", "aria-label": "Bucket size" }, ...bucketButtons)),
      frame.node,
    ),
    draw,
  };
}

async function campaignView(signal, id) {
  const r = await call(`/v1/campaigns/${enc(id)}`);
  if (signal.aborted) return;
  const back = el("p", {}, el("a", { href: "#/campaigns" }, "← All campaigns"));
  // A staff token of another brand may read a campaign's public face as a shopper would;
  // the console shows only the brand's own campaigns.
  if (!r.ok || r.data.brand_id !== session.brand || r.data.codes_total === undefined) {
    append(
      main,
      back,
      heading("Campaign not found"),
      el(
        "p",
        { class: "error", role: "alert" },
        r.ok || r.status === 404 || r.status === 403
          ? `No campaign with this id belongs to ${session.brand}.`
          : problemText(r.problem),
      ),
    );
    return;
  }
  let campaign = r.data;
  const title = heading(campaign.name);
  // (the sections below read `campaign` through closures: it is replaced on every refresh)
  const description = el("p", { class: "lead" }, campaign.description || "");
  const stats = el("div");
  const actionsError = errorBox();
  const actions = el("div");
  const edit = el("div");
  const closedNote = el("p", { class: "warning", id: "ended-note", hidden: true }, "This campaign has ended: it takes no more codes, and shoppers cannot claim.");
  const activity = activitySection(signal, () => campaign);
  const generate = generateSection(signal, campaign, () => reload());
  const codes = codesSection(campaign, () => reload());
  const refresh = (c) => {
    campaign = c;
    title.textContent = c.name;
    document.title = `${c.name} · Brand console`;
    description.textContent = c.description || "";
    clear(stats).append(statsList(c));
    clear(actions).append(statusActions(c, refresh, actionsError));
    const ended = c.status === "ended";
    // An ended campaign takes no codes: nothing on screen should offer to add some.
    generate.hidden = ended;
    codes.importForm.hidden = ended;
    closedNote.hidden = !ended;
    // The edit form is rebuilt from what the service says, unless someone is typing in it.
    if (ended) clear(edit);
    else if (!edit.querySelector("details")?.open) clear(edit).append(editSection(c, refresh));
    codes.setCampaign(c);
  };
  refresh(campaign);

  append(
    main,
    back,
    title,
    description,
    el(
      "div",
      { class: "toolbar" },
      actions,
      el("a", { href: `/console/shop/${enc(campaign.id)}`, target: "_blank", rel: "noopener", class: "button secondary" }, "Open the shopper page"),
    ),
    actionsError,
    closedNote,
    el("section", { "aria-labelledby": "stats-title" }, el("h2", { id: "stats-title", class: "visually-hidden" }, "Counts"), stats),
    activity.node,
    edit,
    generate,
    codes.node,
    claimsSection(signal, () => campaign),
  );

  async function reload() {
    const again = await call(`/v1/campaigns/${enc(campaign.id)}`);
    if (!signal.aborted && again.ok) {
      refresh(again.data);
      await activity.draw();
    }
  }
  every(3000, reload, signal);
}

function generateSection(signal, campaign, onProgress) {
  const max = config.max_batch_count || 1000000;
  const count = el("input", { type: "number", name: "count", min: 1, max, step: 1, required: true, inputmode: "numeric", placeholder: "1000" });
  const prefix = el("input", { type: "text", name: "prefix", maxlength: 12, pattern: "[A-Za-z0-9]{0,12}", autocapitalize: "characters", spellcheck: "false", autocomplete: "off" });
  const length = el("input", { type: "number", name: "length", min: 8, max: 24, step: 1, value: "12", inputmode: "numeric" });
  // The browser's own "Please match the requested format." says nothing of the format.
  prefix.addEventListener("input", () => {
    prefix.setCustomValidity("");
    if (prefix.validity.patternMismatch) prefix.setCustomValidity("A prefix is letters A–Z and digits only (no spaces or hyphens), up to 12.");
  });
  const error = errorBox();
  const submit = el("button", { type: "submit" }, "Generate codes");
  const bar = el("progress", { id: "batch-progress", max: 1, value: 0 });
  const barLabel = el("label", { for: "batch-progress", id: "batch-progress-label" }, "Generating codes…");
  const barText = el("p", { id: "batch-progress-text", class: "num" });
  const announce = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
  const progress = el("div", { class: "progress", hidden: true }, barLabel, bar, barText);
  const pastList = el("ul", { class: "batches", id: "past-batches" });
  const past = el("div", { hidden: true }, el("h3", {}, "Batches made so far"), pastList);
  // The campaign's batches from the API, newest first: what was already generated, by
  // anyone, before asking for more.
  const paintPast = async () => {
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/code-batches?limit=20`);
    if (!r.ok) return;
    clear(pastList);
    for (const b of r.data.items) {
      const when = b.completed_at || b.created_at;
      pastList.append(
        el("li", {}, `${fmtNumber(b.generated)} codes`, b.prefix ? ` with prefix ${b.prefix}` : "", " · ", fmtDate(when, { relative: true }), b.status === "failed" ? " · failed" : b.status !== "completed" ? ` · ${b.status}` : ""),
      );
    }
    past.hidden = r.data.items.length === 0;
  };
  const remember = () => {
    paintPast();
  };

  const show = (batch) => {
    progress.hidden = false;
    bar.max = Math.max(batch.requested, 1);
    bar.value = batch.generated;
    const pct = Math.floor((batch.generated * 100) / Math.max(batch.requested, 1));
    bar.setAttribute("aria-valuetext", `${pct}%`);
    barText.textContent = `${fmtNumber(batch.generated)} of ${fmtNumber(batch.requested)} codes (${pct}%)`;
    progress.dataset.status = batch.status;
    if (batch.status === "completed") {
      barLabel.textContent = `Generated ${plural(batch.generated, "code", "codes")}`;
      barText.textContent += " · done";
      announce.textContent = `Done: ${fmtNumber(batch.generated)} codes generated.`;
    } else if (batch.status === "failed") {
      barLabel.textContent = "The batch failed";
      showError(error, `The batch failed: ${batch.error || "unknown error"}.`);
      announce.textContent = "The batch failed.";
    } else {
      barLabel.textContent = "Generating codes…";
    }
  };

  let lastGenerated = -1;
  const follow = async (batch) => {
    show(batch);
    busy(submit, batch.status === "pending" || batch.status === "running");
    if (batch.generated !== lastGenerated) {
      lastGenerated = batch.generated;
      await onProgress(); // the counters at the top move with the bar
    }
    if (batch.status === "completed" || batch.status === "failed") {
      store.remove(BATCH_KEY + campaign.id);
      remember(batch);
      return;
    }
    store.set(BATCH_KEY + campaign.id, batch.id);
    await new Promise((resolve) => setTimeout(resolve, 400));
    if (signal.aborted) return;
    const r = await call(`/v1/code-batches/${enc(batch.id)}`);
    if (signal.aborted) return;
    if (!r.ok) {
      busy(submit, false);
      return showError(error, r.problem);
    }
    follow(r.data);
  };

  const form = el(
    "form",
    {
      class: "card",
      id: "generate",
      "aria-labelledby": "generate-title",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(error);
        clearFieldErrors(form);
        const json = { count: Number(count.value), length: Number(length.value || 12) };
        if (prefix.value) json.prefix = prefix.value.toUpperCase();
        if (json.count >= 10000 && !confirm(`Generate ${fmtNumber(json.count)} new codes for “${campaign.name}”?`)) return;
        busy(submit, true);
        announce.textContent = `Generating ${fmtNumber(json.count)} codes…`;
        // One key per click: a retried request cannot make a second batch.
        const r = await call(`/v1/campaigns/${enc(campaign.id)}/code-batches`, {
          method: "POST",
          json,
          headers: { "Idempotency-Key": crypto.randomUUID() },
        });
        if (!r.ok) {
          busy(submit, false);
          announce.textContent = "";
          return showProblem(form, error, r.problem);
        }
        // A second click must be a decision, not a leftover: the count is emptied, by a reset
        // (which also forgets that the person typed in it, so it is not outlined as an error).
        const kept = { prefix: prefix.value, length: length.value };
        form.reset();
        prefix.value = kept.prefix;
        length.value = kept.length;
        lastGenerated = -1;
        follow(r.data);
      },
    },
    el("h2", { id: "generate-title" }, "Generate codes"),
    el(
      "div",
      { class: "grid grid-3" },
      field("How many codes", count, `Up to ${fmtNumber(max)} at a time.`),
      field("Prefix", prefix, "Optional: letters and digits, up to 12, e.g. SPRING."),
      field("Random symbols", length, "8 to 24. Longer codes are harder to guess; 12 suits most campaigns."),
    ),
    error,
    submit,
    progress,
    announce,
    past,
  );
  clearOnInput(form, error);
  paintPast();
  const running = store.get(BATCH_KEY + campaign.id);
  if (running) {
    call(`/v1/code-batches/${enc(running)}`).then((r) => {
      if (!signal.aborted && r.ok) follow(r.data);
      else if (!r.ok) store.remove(BATCH_KEY + campaign.id);
    });
  }
  return form;
}

/** A code as the service compares them: case, hyphens and spaces aside, O as 0, I and L as 1. */
function sameCode(text) {
  return text.replace(/^"|"$/g, "").toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
}

/** A picture or other binary file chosen by mistake: its first bytes say so. */
async function looksBinary(file) {
  if (/^(image|audio|video)\//.test(file.type)) return true;
  const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
  return head.includes(0);
}

/** "codes-spring-sale-2026-12-01.csv": the campaign's name, not its id. */
function csvName(kind, campaign) {
  return `${kind}-${slug(campaign.name)}-${new Date().toISOString().slice(0, 10)}.csv`;
}

function codesSection(initial, onImported) {
  let campaign = initial;
  const downloadError = errorBox();
  const downloadStatus = el("span", { class: "muted", role: "status", id: "codes-download-status" });
  const downloadButton = el("button", { type: "button", class: "secondary" }, "Download codes CSV");
  downloadButton.addEventListener("click", async () => {
    hideError(downloadError);
    busy(downloadButton, true);
    downloadStatus.textContent = "Preparing…";
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/codes.csv`, { raw: true, headers: { Accept: "text/csv" } });
    if (!r.ok) {
      busy(downloadButton, false);
      downloadStatus.textContent = "";
      return showError(downloadError, r.problem);
    }
    const size = await download(r.response, csvName("codes", campaign), true);
    busy(downloadButton, false);
    downloadStatus.textContent = `Saved (${fmtBytes(size)}).`;
  });

  const file = el("input", { type: "file", name: "file", accept: ".csv,.txt,text/csv,text/plain" });
  const pasted = el("textarea", { name: "codes", rows: 4, spellcheck: "false", autocomplete: "off" });
  const importError = errorBox();
  const result = el("div", { class: "result", role: "status", id: "import-result" });
  const submit = el("button", { type: "submit" }, "Import codes");
  const form = el(
    "form",
    {
      id: "import",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(importError);
        clear(result);
        const chosen = file.files && file.files[0];
        if (!chosen && !pasted.value.trim()) return showError(importError, "Choose a file or paste codes first.");
        // Pasted text and .csv files are read as CSV (a `code` header column is used); .txt as lines.
        const isText = chosen && (chosen.type === "text/plain" || chosen.name.toLowerCase().endsWith(".txt"));
        if (chosen && (await looksBinary(chosen))) {
          return showError(importError, `“${chosen.name}” is not a text file: choose the CSV or text file of codes your shop exported.`);
        }
        busy(submit, true);
        const r = await call(`/v1/campaigns/${enc(campaign.id)}/code-imports`, {
          method: "POST",
          body: chosen || pasted.value,
          headers: { "Content-Type": isText ? "text/plain" : "text/csv" },
        });
        busy(submit, false);
        if (!r.ok) return showError(importError, r.problem);
        // The service tells codes the brand already had (duplicates) from lines repeating a
        // code of the same file (repeated).
        const { imported, duplicates: alreadyKnown, duplicate_codes: named = [], repeated_codes: again = [], rejected } = r.data;
        const known = [...new Set(named)];
        const repeatedCodes = new Set(again.map(sameCode));
        const parts = [`Imported ${plural(imported, "code", "codes")}.`];
        if (repeatedCodes.size) parts.push(`${plural(repeatedCodes.size, "code appears", "codes appear")} more than once in the file: each was taken once.`);
        if (alreadyKnown) parts.push(`${plural(alreadyKnown, "code was", "codes were")} already known to the brand and left as they are.`);
        if (rejected.length) parts.push(`${plural(rejected.length, "line was", "lines were")} not a code.`);
        append(
          result,
          el("p", {}, parts.join(" ")),
          known.length
            ? el(
                "div",
                {},
                el("p", { class: "muted" }, alreadyKnown > known.length ? `The first ${fmtNumber(known.length)} already known:` : "Already known:"),
                el("ul", { class: "duplicates" }, known.map((c) => el("li", {}, el("code", {}, c)))),
              )
            : null,
          rejected.length
            ? el("ul", { class: "rejected" }, rejected.slice(0, 50).map((x) => el("li", {}, `Line ${fmtNumber(x.line)}: ${x.reason}`)))
            : null,
        );
        form.reset();
        onImported();
      },
    },
    el("h3", {}, "Import the shop's own codes"),
    el(
      "div",
      { class: "grid" },
      field("CSV or text file", file, "One code per line, or a CSV with a “code” column (such as the download above)."),
      field("Or paste codes, one per line", pasted),
    ),
    importError,
    submit,
    result,
  );
  clearOnInput(form, importError);
  const node = el(
    "section",
    { class: "card", "aria-labelledby": "codes-title" },
    el("h2", { id: "codes-title" }, "Codes"),
    el("div", { class: "toolbar" }, downloadButton, downloadStatus),
    downloadError,
    form,
  );
  return { node, importForm: form, setCampaign: (c) => (campaign = c) };
}

function claimRow(claim) {
  const consent = claim.consent_withdrawn
    ? el("span", { class: "badge badge-ended" }, "Withdrawn ", claim.consent_withdrawn_at ? fmtDate(claim.consent_withdrawn_at) : "")
    : el("span", { class: "badge badge-active" }, "Shared");
  return el(
    "tr",
    { dataset: { claimId: claim.id } },
    cell("Claimed", fmtDate(claim.claimed_at, { relative: true })),
    cell("Code", el("code", { class: "code-value" }, claim.code)),
    cell("Shopper", claim.user_id),
    cell("E-mail", claim.shared_contact?.email || "—"),
    cell("Name", claim.shared_contact?.name || "—"),
    cell("Consent", consent),
    cell(
      "Redeemed",
      claim.redeemed_at
        ? el("span", { class: "badge badge-active", dataset: { redeemed: "yes" } }, "Redeemed ", fmtDate(claim.redeemed_at), claim.order_id ? ` · order ${claim.order_id}` : "")
        : el("span", { class: "muted", dataset: { redeemed: "no" } }, "Not yet"),
    ),
  );
}

function claimsSection(signal, getCampaign) {
  const campaign = getCampaign();
  const body = el("tbody", { id: "claims-body" });
  const error = errorBox();
  const empty = el("p", { class: "muted" }, "No claims yet.");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Load older claims");
  const live = el("input", { type: "checkbox", id: "claims-live", checked: true });
  const seen = new Map(); // claim id -> when it was redeemed ("" if not): a row is redrawn when that changes
  let cursor = null;
  let loadedFirst = false;

  const add = (items, where) => {
    for (const c of items) {
      if (seen.has(c.id) && seen.get(c.id) !== (c.redeemed_at || "")) {
        body.querySelector(`tr[data-claim-id="${CSS.escape(c.id)}"]`)?.replaceWith(claimRow(c));
        seen.set(c.id, c.redeemed_at || "");
      }
    }
    const fresh = items.filter((c) => !seen.has(c.id));
    fresh.forEach((c) => seen.set(c.id, c.redeemed_at || ""));
    const rows = fresh.map(claimRow);
    if (where === "top") body.prepend(...rows);
    else body.append(...rows);
    empty.hidden = seen.size > 0;
  };
  const loadOlder = async () => {
    busy(more, true);
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/claims?limit=50&cursor=${enc(cursor)}`);
    busy(more, false);
    if (!r.ok) return showError(error, r.problem);
    add(r.data.items, "bottom");
    cursor = r.data.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", loadOlder);
  const poll = async () => {
    if (loadedFirst && !live.checked) return;
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/claims?limit=50`);
    if (signal.aborted) return;
    if (!r.ok) return showError(error, r.problem);
    hideError(error);
    add(r.data.items, "top");
    if (!loadedFirst) {
      loadedFirst = true;
      cursor = r.data.next_cursor;
      more.hidden = !cursor;
    }
  };
  every(3000, poll, signal);

  const csvStatus = el("span", { class: "muted", role: "status" });
  const csv = el("button", { type: "button", class: "secondary" }, "Download claims CSV");
  csv.addEventListener("click", async () => {
    busy(csv, true);
    const r = await call(`/v1/campaigns/${enc(campaign.id)}/claims.csv`, { raw: true, headers: { Accept: "text/csv" } });
    if (!r.ok) {
      busy(csv, false);
      return showError(error, r.problem);
    }
    const size = await download(r.response, csvName("claims", getCampaign()), true);
    busy(csv, false);
    csvStatus.textContent = `Saved (${fmtBytes(size)}).`;
  });

  return el(
    "section",
    { class: "card", "aria-labelledby": "claims-title" },
    el("h2", { id: "claims-title" }, "Claims"),
    el(
      "div",
      { class: "toolbar" },
      csv,
      csvStatus,
      el("span", { class: "check" }, live, el("label", { for: live.id }, "Show new claims as they come")),
    ),
    error,
    el("p", { class: "muted tz-note" }, `Times in your time zone (${timeZone}).`),
    table("Claims, newest first", ["Claimed", "Code", "Shopper", "E-mail", "Name", "Consent", "Redeemed"], body),
    empty,
    more,
  );
}

// --- webhooks ------------------------------------------------------------------------------

function secretPanel() {
  const title = el("h2", { id: "secret-title", tabindex: "-1" }, "Signing secret");
  const what = el("p");
  const value = el("input", { type: "text", id: "secret-value", readonly: true, spellcheck: "false", class: "mono" });
  const panel = el(
    "section",
    { class: "card secret", id: "secret-panel", "aria-labelledby": "secret-title", hidden: true },
    title,
    what,
    el("p", { class: "warning" }, "Copy it now: it is shown only this once. Verify every delivery with it (Standard Webhooks)."),
    field("Secret", value),
    el("div", { class: "toolbar" }, ...copyButton("Copy secret", () => value.value, value)),
  );
  const done = el("button", { type: "button", class: "secondary" }, "I have saved it");
  done.addEventListener("click", () => hide());
  panel.append(done);
  const hide = () => {
    value.value = "";
    panel.hidden = true;
    for (const s of panel.querySelectorAll(".copy-status")) s.textContent = "";
  };
  return {
    panel,
    show(endpoint, rotated) {
      what.textContent = rotated
        ? `New secret for ${endpoint.url}. The previous one keeps signing beside it for 24 hours.`
        : `Secret for ${endpoint.url}.`;
      value.value = endpoint.secret;
      panel.hidden = false;
      title.focus();
    },
    hide,
  };
}

function attemptResult(a) {
  const good = a.status_code !== null && a.status_code >= 200 && a.status_code < 300;
  const label = a.status_code !== null ? `HTTP ${a.status_code}` : "No answer";
  return { good, label };
}

function deliveriesPanel(endpoint) {
  const body = el("tbody");
  const error = errorBox();
  const empty = el("p", { class: "muted", hidden: true }, "No delivery attempts yet.");
  const refresh = el("button", { type: "button", class: "secondary" }, "Refresh");
  const live = el("input", { type: "checkbox", id: `deliveries-live-${endpoint.id}`, checked: true });
  const frame = chartFrame(`deliveries-chart-${endpoint.id}`, "Success rate and answer time, per hour");
  let chart = null;
  let lastStats = "";
  let timer = null;

  const drawChart = async () => {
    const r = await call(`/v1/webhook-endpoints/${enc(endpoint.id)}/delivery-stats?bucket=hour`);
    if (!r.ok) return;
    const key = JSON.stringify(r.data);
    if (key === lastStats) return;
    lastStats = key;
    if (chart) chart.destroy();
    clear(frame.drawing);
    chart = null;
    if (!r.data.items.length) {
      frame.summary.textContent = "No attempts yet.";
      return;
    }
    chart = deliveriesChart(frame.drawing, r.data);
    frame.summary.textContent = chart.summary;
  };

  const load = async () => {
    busy(refresh, true);
    const r = await call(`/v1/webhook-endpoints/${enc(endpoint.id)}/deliveries?limit=100`);
    busy(refresh, false);
    if (!r.ok) return showError(error, r.problem);
    hideError(error);
    clear(body);
    // Oldest first, to tell a replay (the event went before) from the original.
    const items = r.data.items;
    const firstSeen = new Map();
    for (let i = items.length - 1; i >= 0; i--) {
      const a = items[i];
      if (!firstSeen.has(a.event_id)) firstSeen.set(a.event_id, { index: i, ok: false });
      const seen = firstSeen.get(a.event_id);
      a._replay = a.attempt === 1 && seen.index !== i;
      if (attemptResult(a).good) seen.ok = true;
    }
    for (const a of items) {
      const { good, label } = attemptResult(a);
      const what = el(
        "span",
        { class: "event-what" },
        el("span", { class: "event-label" }, a.event_type ? eventLabel(a.event_type) : "Event (no longer kept)"),
        a.code ? [" ", el("code", { class: "code-value" }, a.code)] : null,
      );
      const next = a.next_attempt_at
        ? fmtDate(a.next_attempt_at, { relative: true })
        : good
          ? "Not needed"
          : "None (given up)";
      body.append(
        el(
          "tr",
          { dataset: { eventId: a.event_id, replay: a._replay ? "true" : "false" } },
          cell("At", fmtDate(a.at, { relative: true })),
          cell("Event", what),
          cell("Attempt", a._replay ? el("span", { class: "badge badge-paused" }, "Replayed") : `${fmtNumber(a.attempt)}${a.attempt === 1 ? "st" : a.attempt === 2 ? "nd" : a.attempt === 3 ? "rd" : "th"}`),
          cell(
            "Result",
            el("span", { class: `badge ${good ? "badge-active" : "badge-ended"}` }, label),
            a.error && !good && a.error !== label ? ` ${a.error}` : "",
          ),
          cell("Took", `${fmtNumber(a.duration_ms)} ms`),
          cell("Next attempt", next),
        ),
      );
    }
    empty.hidden = items.length > 0;
    await drawChart();
  };
  const tick = async () => {
    clearTimeout(timer);
    if (!panel.isConnected) return;
    if (live.checked && !panel.closest("[hidden]")) await load();
    timer = setTimeout(tick, 3000);
  };
  refresh.addEventListener("click", load);

  const since = el("input", { type: "datetime-local", name: "since", required: true });
  const replayError = errorBox();
  const replayStatus = el("p", { role: "status" });
  const replayButton = el("button", { type: "submit" }, "Replay events");
  const replay = el(
    "form",
    {
      class: "inline-form",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(replayError);
        busy(replayButton, true);
        const r = await call(`/v1/webhook-endpoints/${enc(endpoint.id)}/replay`, {
          method: "POST",
          json: { since: new Date(since.value).toISOString() },
        });
        busy(replayButton, false);
        if (!r.ok) return showError(replayError, r.problem);
        replayStatus.textContent = `Queued ${plural(r.data.replayed, "event", "events")} for delivery again.`;
      },
    },
    field(`Resend events since (your time, ${timeZone})`, since),
    replayButton,
  );
  const panel = el(
    "div",
    { class: "deliveries" },
    el("div", { class: "toolbar" }, el("h3", {}, `Deliveries to ${endpoint.url}`), refresh, el("span", { class: "check" }, live, el("label", { for: live.id }, "Update every few seconds"))),
    frame.node,
    error,
    el("p", { class: "muted tz-note" }, `Times in your time zone (${timeZone}).`),
    table("Delivery attempts, newest first", ["At", "Event", "Attempt", "Result", "Took", "Next attempt"], body),
    empty,
    replay,
    replayError,
    replayStatus,
  );
  requestAnimationFrame(tick);
  return { panel, load };
}

function eventTypeBoxes(prefix, chosen) {
  return EVENT_TYPES.map((t) =>
    el("input", { type: "checkbox", name: "event_types", value: t, id: `${prefix}-${t.replace(/\W/g, "-")}`, checked: chosen ? chosen.includes(t) : false }),
  );
}

function eventTypeFieldset(boxes) {
  return el(
    "fieldset",
    {},
    el("legend", {}, "Events to send (none ticked: all of them)"),
    boxes.map((t) => el("div", { class: "check" }, t, el("label", { for: t.id }, eventLabel(t.value), " ", el("span", { class: "muted" }, `(${t.value})`)))),
  );
}

function urlHint() {
  if (config.webhook_private_urls) return "Any http or https address: this service is set to call private addresses too.";
  if (config.webhook_loopback_urls) {
    return "https, or in dev mode a receiver on this machine, such as http://127.0.0.1:8765/hook. Other private addresses are refused.";
  }
  return "https only; addresses on private networks are refused.";
}

/**
 * "Enabled" only while deliveries succeed: an endpoint whose attempts fail says so, since
 * when and with what error (the API's `health`), whatever its other endpoints do.
 */
function endpointState(e, why) {
  const h = e.health;
  if (!e.enabled || !h || h.status === "healthy" || h.status === "disabled") {
    const answer = h && h.last_status_code !== null ? `HTTP ${h.last_status_code}` : "answered";
    return el(
      "div",
      { class: "endpoint-state" },
      el("span", { class: `badge ${e.enabled ? "badge-active" : "badge-paused"}`, dataset: { health: e.enabled ? "healthy" : "disabled" } }, e.enabled ? "Enabled" : "Disabled"),
      why ? el("span", { class: "muted" }, ` ${why}`) : "",
      e.enabled && h && h.last_attempt_at ? el("span", { class: "health-detail muted" }, `Last delivery ${answer}, `, fmtDate(h.last_attempt_at, { relative: true })) : null,
    );
  }
  const label = h.status === "backed_off" ? "Failing · paused" : "Failing";
  return el(
    "div",
    { class: "endpoint-state" },
    el("span", { class: "badge badge-ended", dataset: { health: h.status } }, label),
    el(
      "span",
      { class: "health-detail" },
      "Since ",
      h.failing_since ? fmtDate(h.failing_since, { relative: true }) : "—",
      ` · ${plural(h.consecutive_failures, "failed attempt", "failed attempts")} in a row`,
      h.last_error ? ` · last error: ${h.last_error}` : "",
      h.backed_off_until ? [" · next try ", fmtDate(h.backed_off_until, { relative: true })] : "",
    ),
  );
}

function stateText(e) {
  if (e.enabled) return null;
  if (!e.disabled_reason || /^disabled by the brand$/i.test(e.disabled_reason)) return "by the brand";
  return e.disabled_reason.replace(/^disabled\s*/i, "");
}

function endpointEditor(e, onSaved, onDeleted) {
  const url = el("input", { type: "url", name: "url", required: true, maxlength: 2048, value: e.url, spellcheck: "false" });
  const description = el("input", { type: "text", name: "description", maxlength: 500, value: e.description || "" });
  const enabled = el("input", { type: "checkbox", name: "enabled", id: `edit-enabled-${e.id}`, checked: e.enabled });
  const boxes = eventTypeBoxes(`edit-${e.id}`, e.event_types);
  const error = errorBox();
  const save = el("button", { type: "submit" }, "Save endpoint");
  const remove = el("button", { type: "button", class: "danger", "aria-label": `Delete ${e.url}` }, "Delete endpoint");
  const form = el(
    "form",
    {
      class: "endpoint-edit",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(error);
        clearFieldErrors(form);
        const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
        const json = {};
        if (url.value.trim() !== e.url) json.url = url.value.trim();
        if ((description.value.trim() || null) !== (e.description || null)) json.description = description.value.trim() || null;
        if (enabled.checked !== e.enabled) json.enabled = enabled.checked;
        const before = (e.event_types || []).slice().sort().join(",");
        if (chosen.slice().sort().join(",") !== before) json.event_types = chosen.length ? chosen : null;
        if (!Object.keys(json).length) return showError(error, "Nothing has changed.");
        busy(save, true);
        const r = await call(`/v1/webhook-endpoints/${enc(e.id)}`, { method: "PATCH", json });
        busy(save, false);
        if (!r.ok) return showProblem(form, error, r.problem);
        toast(`${r.data.url} saved.`);
        onSaved(r.data);
      },
    },
    el("h3", {}, "Edit endpoint"),
    el("div", { class: "grid" }, field("Endpoint URL", url, urlHint()), field("Description", description)),
    eventTypeFieldset(boxes),
    el("div", { class: "check" }, enabled, el("label", { for: enabled.id }, "Enabled (send events to it)")),
    error,
    el("div", { class: "actions" }, save, remove),
  );
  clearOnInput(form, error);
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the endpoint ${e.url}? Its delivery history goes with it; events stay in the feed.`)) return;
    busy(remove, true);
    const r = await call(`/v1/webhook-endpoints/${enc(e.id)}`, { method: "DELETE" });
    busy(remove, false);
    if (!r.ok) return showError(error, r.problem);
    toast(`${e.url} deleted.`);
    onDeleted();
  });
  return form;
}

function endpointRow(endpoint, secret, error) {
  const row = el("tr", { dataset: { endpointId: endpoint.id } });
  const detailRow = el("tr", { class: "detail-row", hidden: true });
  const detailCell = el("td", { colspan: 6 });
  detailRow.append(detailCell);
  let deliveries = null;
  let shown = null; // "deliveries" | "edit"
  const fill = (e) => {
    endpoint = e;
    clear(row);
    const toggle = async () => {
      const body = { enabled: !e.enabled };
      const r = await call(`/v1/webhook-endpoints/${enc(e.id)}`, { method: "PATCH", json: body });
      if (!r.ok) return showError(error, r.problem);
      hideError(error);
      toast(`${r.data.url} is now ${r.data.enabled ? "enabled" : "disabled"}.`);
      fill(r.data);
    };
    const rotate = async () => {
      if (!confirm(`Rotate the secret of ${e.url}? The old secret keeps signing for 24 hours.`)) return;
      const r = await call(`/v1/webhook-endpoints/${enc(e.id)}/rotate-secret`, { method: "POST" });
      if (!r.ok) return showError(error, r.problem);
      hideError(error);
      secret.show(r.data, true);
    };
    const open = (what, button) => {
      const closing = !detailRow.hidden && shown === what;
      for (const b of row.querySelectorAll("[aria-expanded]")) b.setAttribute("aria-expanded", "false");
      if (closing) {
        detailRow.hidden = true;
        shown = null;
        return;
      }
      shown = what;
      detailRow.hidden = false;
      button.setAttribute("aria-expanded", "true");
      clear(detailCell);
      if (what === "deliveries") {
        deliveries = deliveriesPanel(e);
        detailCell.append(deliveries.panel);
      } else {
        detailCell.append(
          endpointEditor(
            e,
            (saved) => {
              detailRow.hidden = true;
              shown = null;
              fill(saved);
            },
            () => {
              row.remove();
              detailRow.remove();
            },
          ),
        );
        detailCell.querySelector("input")?.focus();
      }
    };
    const showDeliveries = el("button", { type: "button", class: "secondary", "aria-expanded": String(shown === "deliveries"), "aria-label": `Deliveries to ${e.url}` }, "Deliveries");
    showDeliveries.addEventListener("click", () => open("deliveries", showDeliveries));
    const edit = el("button", { type: "button", class: "secondary", "aria-expanded": String(shown === "edit"), "aria-label": `Edit ${e.url}` }, "Edit");
    edit.addEventListener("click", () => open("edit", edit));
    const why = stateText(e);
    append(
      row,
      cell("URL", el("code", { class: "url" }, e.url)),
      cell("Description", e.description || "—"),
      cell("Events", e.event_types ? e.event_types.map(eventLabel).join(", ") : "All events"),
      cell("State", endpointState(e, why)),
      cell("Created", fmtDate(e.created_at)),
      cell(
        "Actions",
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "secondary", onclick: toggle, "aria-label": `${e.enabled ? "Disable" : "Enable"} ${e.url}` }, e.enabled ? "Disable" : "Enable"),
          el("button", { type: "button", class: "secondary", onclick: rotate, "aria-label": `Rotate the secret of ${e.url}` }, "Rotate secret"),
          edit,
          showDeliveries,
        ),
      ),
    );
  };
  fill(endpoint);
  return [row, detailRow];
}

function webhooksView(signal) {
  const brand = session.brand;
  const secret = secretPanel();
  const listError = errorBox();
  const body = el("tbody");
  const empty = el("p", { class: "muted", hidden: true }, "No webhook endpoints: events wait in the pull feed.");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;
  const load = async () => {
    const q = cursor ? `&cursor=${enc(cursor)}` : "";
    const r = await call(`/v1/brands/${enc(brand)}/webhook-endpoints?limit=50${q}`);
    if (signal.aborted) return;
    if (!r.ok) return showError(listError, r.problem);
    for (const e of r.data.items) body.append(...endpointRow(e, secret, listError));
    cursor = r.data.next_cursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
  };
  more.addEventListener("click", load);

  const url = el("input", { type: "url", name: "url", required: true, maxlength: 2048, placeholder: "https://shop.example.com/hooks", autocomplete: "url", spellcheck: "false" });
  const description = el("input", { type: "text", name: "description", maxlength: 500 });
  const types = eventTypeBoxes("type", null);
  const formError = errorBox();
  const submit = el("button", { type: "submit" }, "Add endpoint");
  const form = el(
    "form",
    {
      class: "card",
      "aria-labelledby": "new-endpoint-title",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(formError);
        clearFieldErrors(form);
        const json = { url: url.value.trim() };
        if (description.value.trim()) json.description = description.value.trim();
        const chosen = types.filter((t) => t.checked).map((t) => t.value);
        if (chosen.length) json.event_types = chosen;
        busy(submit, true);
        const r = await call(`/v1/brands/${enc(brand)}/webhook-endpoints`, { method: "POST", json });
        busy(submit, false);
        if (!r.ok) return showProblem(form, formError, r.problem);
        form.reset();
        body.prepend(...endpointRow(r.data, secret, listError));
        empty.hidden = true;
        secret.show(r.data, false);
      },
    },
    el("h2", { id: "new-endpoint-title" }, "Add a webhook endpoint"),
    el("div", { class: "grid" }, field("Endpoint URL", url, urlHint()), field("Description", description)),
    eventTypeFieldset(types),
    formError,
    submit,
  );
  clearOnInput(form, formError);

  append(
    main,
    heading("Webhooks"),
    secret.panel,
    form,
    el(
      "section",
      { "aria-labelledby": "endpoints-title" },
      el("h2", { id: "endpoints-title" }, "Endpoints"),
      listError,
      table("Webhook endpoints", ["URL", "Description", "Events", "State", "Created", "Actions"], body),
      empty,
      more,
    ),
  );
  load();
}

// --- events --------------------------------------------------------------------------------

const MAX_EVENT_ROWS = 200;

function describe(event, names) {
  const d = event.data || {};
  const campaign = names.get(d.campaign_id) || d.campaign_id || "";
  switch (event.type) {
    case "discount_code.claimed":
      return `${d.code} to ${d.user?.name || d.user?.id || "a shopper"}${d.user?.email ? ` <${d.user.email}>` : ""} · ${campaign}`;
    case "code_batch.completed":
      return `${fmtNumber(d.generated)} codes generated · ${campaign}`;
    case "campaign.codes_low":
      return `${fmtNumber(d.available)} codes left (alert at ${fmtNumber(d.threshold)}) · ${campaign}`;
    case "campaign.codes_exhausted":
      return `No code left · ${campaign}`;
    case "contact_consent.withdrawn":
      return `${d.user_id} withdrew consent · ${campaign}`;
    case "discount_code.redeemed":
      return `${d.code} redeemed with order ${d.order_id} · ${campaign}`;
    case "discount_code.redemption_reversed":
      return `${d.code}: redemption with order ${d.order_id} reversed · ${campaign}`;
    default:
      return campaign;
  }
}

function eventsView(signal) {
  const brand = session.brand;
  const body = el("tbody", { id: "events-body" });
  const error = errorBox();
  const status = el("p", { class: "muted", role: "status" }, "Reading the feed…");
  const live = el("input", { type: "checkbox", id: "events-live", checked: true });
  const names = new Map();
  const rows = new Map(); // event id -> {event, delivery}
  let endpoints = [];
  let after = null;
  let total = 0;
  let caughtUp = false;

  let outcomes = new Map(); // event id -> its items, one per endpoint it is owed to
  const paintDelivery = (id) => {
    const row = rows.get(id);
    if (row) row.delivery.paint(row.event, outcomes.get(id), endpoints);
  };

  const addEvents = (items) => {
    for (const event of items) {
      const delivery = deliveryCell(cell);
      const tr = el(
        "tr",
        { dataset: { eventId: event.id, type: event.type } },
        cell("Time", fmtDate(event.timestamp, { relative: true })),
        cell("Type", el("span", { class: "event-label" }, eventLabel(event.type)), " ", el("code", { class: "muted event-type" }, event.type)),
        cell("What", describe(event, names)),
        delivery.td,
      );
      rows.set(event.id, { event, delivery });
      body.prepend(tr);
      paintDelivery(event.id);
    }
    while (body.children.length > MAX_EVENT_ROWS) {
      const last = body.lastElementChild;
      rows.delete(last.dataset.eventId);
      last.remove();
    }
  };

  const readFeed = async () => {
    // Oldest first: read on from the last id seen until the feed has nothing newer.
    for (let page = 0; page < 400 && !signal.aborted; page++) {
      const q = after ? `&after=${enc(after)}` : "";
      const r = await call(`/v1/brands/${enc(brand)}/events?limit=500${q}`);
      if (signal.aborted) return;
      if (!r.ok) return showError(error, r.problem);
      hideError(error);
      const items = r.data.items;
      if (items.length) {
        after = items[items.length - 1].id;
        total += items.length;
        addEvents(items.slice(-MAX_EVENT_ROWS));
      }
      if (!r.data.next_cursor) break;
    }
    caughtUp = true;
    status.textContent = `${fmtNumber(total)} events so far; showing the latest ${fmtNumber(Math.min(total, MAX_EVENT_ROWS))}.`;
  };

  const readDeliveries = async () => {
    const listed = await readEndpoints(call, brand);
    if (!listed || signal.aborted) return;
    endpoints = listed;
    // No endpoint, no delivery to ask about: the events stay in the pull feed.
    const read = rows.size && endpoints.length ? await readOutcomes(call, brand, [...rows.keys()]) : new Map();
    if (!read || signal.aborted) return;
    outcomes = read;
    for (const id of rows.keys()) paintDelivery(id);
  };

  const poll = async () => {
    if (caughtUp && !live.checked) return;
    await readFeed();
    await readDeliveries();
  };

  append(
    main,
    heading("Events"),
    el(
      "p",
      {},
      "Everything the brand is told, in order: the same events its webhooks receive. ",
      "New events appear as they happen.",
    ),
    el("div", { class: "toolbar" }, el("span", { class: "check" }, live, el("label", { for: live.id }, "Live (check every 2 seconds)")), status),
    error,
    table("The brand's events, newest first", ["Time", "Type", "What", "Delivery"], body),
  );

  (async () => {
    const r = await call(`/v1/brands/${enc(brand)}/campaigns?limit=200`);
    if (r.ok) for (const c of r.data.items) names.set(c.id, c.name);
    every(2000, poll, signal);
  })();
}

// --- start ---------------------------------------------------------------------------------

async function boot() {
  wireSkipLink();
  const r = await api("/console/config");
  if (r.ok) config = r.data;
  window.addEventListener("hashchange", () => {
    focusHeading = true;
    route();
  });
  route();
}

boot();
