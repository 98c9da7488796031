// The brand console: campaigns, code generation, claims, webhooks and the event feed, all
// through the public /v1 API with the brand staff's bearer token (kept in sessionStorage).
import {
  api,
  append,
  clear,
  copyButton,
  download,
  el,
  field,
  fmtDate,
  fmtNumber,
  problemText,
  store,
  tokenClaims,
  tokenExpired,
  wireSkipLink,
} from "./common.js";

const TOKEN_KEY = "dc.brandToken";
const BRAND_KEY = "dc.brand";
const BATCH_KEY = "dc.batch."; // + campaign id: a batch still being followed
const EVENT_TYPES = [
  "discount_code.claimed",
  "code_batch.completed",
  "campaign.codes_low",
  "campaign.codes_exhausted",
  "contact_consent.withdrawn",
];
const enc = encodeURIComponent;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const sessionBox = document.getElementById("session");
const toastBox = document.getElementById("toast");

let config = { dev: false };
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

function statusBadge(status) {
  return el("span", { class: `badge badge-${status}` }, status);
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
  if (!claims) return "This is not a JWT (three base64url parts separated by dots).";
  if (tokenExpired(claims)) return "This token has expired.";
  if (!Array.isArray(claims.brands) || !claims.brands.length) {
    return "This token administers no brand (it has no `brands` claim): it is a shopper's token.";
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
        "A JWT from the marketplace's identity service whose `brands` claim lists your brand.",
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
    toast(`“${r.data.name}” is now ${r.data.status}.`);
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
      cell("Status", statusBadge(c.status)),
      cell("Available", el("span", { class: "num" }, fmtNumber(c.codes_available))),
      cell("Claimed", el("span", { class: "num" }, fmtNumber(c.codes_claimed))),
      cell("Total", el("span", { class: "num" }, fmtNumber(c.codes_total))),
      cell("Created", fmtDate(c.created_at)),
      cell("Actions", statusActions(c, fill, error)),
    );
  };
  fill(campaign);
  return row;
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

  const name = el("input", { type: "text", name: "name", required: true, maxlength: 200 });
  const description = el("textarea", { name: "description", rows: 2, maxlength: 5000 });
  const terms = el("textarea", { name: "terms", rows: 2, maxlength: 20000 });
  const threshold = el("input", { type: "number", name: "low_stock_threshold", min: 0, step: 1, inputmode: "numeric" });
  const endsAt = el("input", { type: "datetime-local", name: "ends_at" });
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
        const json = { name: name.value.trim(), status: paused.checked ? "paused" : "active" };
        if (description.value.trim()) json.description = description.value.trim();
        if (terms.value.trim()) json.terms = terms.value.trim();
        if (threshold.value !== "") json.low_stock_threshold = Number(threshold.value);
        if (endsAt.value) json.ends_at = new Date(endsAt.value).toISOString();
        busy(submit, true);
        const r = await call(`/v1/brands/${enc(brand)}/campaigns`, { method: "POST", json });
        busy(submit, false);
        if (!r.ok) return showError(formError, r.problem);
        toast(`Campaign “${r.data.name}” created.`);
        location.hash = `#/campaigns/${enc(r.data.id)}`;
      },
    },
    el("h2", { id: "new-campaign-title" }, "New campaign"),
    el(
      "div",
      { class: "grid" },
      field("Campaign name", name),
      field("Low-stock alert at", threshold, "Codes left when the brand is told stock is low (optional)."),
      field("Description", description),
      field("Terms shown to shoppers", terms),
      field("Ends at (your time)", endsAt, "Optional; shoppers cannot claim after it."),
    ),
    el("div", { class: "check" }, paused, el("label", { for: paused.id }, "Start paused (load codes before shoppers can claim)")),
    formError,
    submit,
  );

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
        ["Name", "Status", "Available", "Claimed", "Total", "Created", "Actions"],
        body,
      ),
      empty,
      more,
    ),
  );
  load();
}

function statsList(campaign) {
  const items = [
    ["Available", el("span", { class: "num", id: "stat-available" }, fmtNumber(campaign.codes_available))],
    ["Claimed", el("span", { class: "num", id: "stat-claimed" }, fmtNumber(campaign.codes_claimed))],
    ["Total codes", el("span", { class: "num", id: "stat-total" }, fmtNumber(campaign.codes_total))],
    ["Status", statusBadge(campaign.status)],
    ["Low-stock alert at", campaign.low_stock_threshold === null ? "—" : fmtNumber(campaign.low_stock_threshold)],
    ["Starts", fmtDate(campaign.starts_at)],
    ["Ends", fmtDate(campaign.ends_at)],
    ["Created", fmtDate(campaign.created_at)],
  ];
  return el(
    "dl",
    { class: "stats" },
    items.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))),
  );
}

async function campaignView(signal, id) {
  const r = await call(`/v1/campaigns/${enc(id)}`);
  if (signal.aborted) return;
  const back = el("p", {}, el("a", { href: "#/campaigns" }, "← All campaigns"));
  // A staff token of another brand may read an active campaign as a shopper would; the
  // console shows only the brand's own campaigns.
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
  const description = el("p", { class: "lead" }, campaign.description || "");
  const stats = el("div");
  const actionsError = errorBox();
  const actions = el("div");
  const refresh = (c) => {
    campaign = c;
    title.textContent = c.name;
    clear(stats).append(statsList(c));
    clear(actions).append(statusActions(c, refresh, actionsError));
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
    el("section", { "aria-labelledby": "stats-title" }, el("h2", { id: "stats-title", class: "visually-hidden" }, "Counts"), stats),
    generateSection(signal, campaign, () => reload()),
    codesSection(campaign, () => reload()),
    claimsSection(signal, campaign),
  );

  async function reload() {
    const again = await call(`/v1/campaigns/${enc(campaign.id)}`);
    if (!signal.aborted && again.ok) refresh(again.data);
  }
  every(3000, reload, signal);
}

function generateSection(signal, campaign, onDone) {
  const count = el("input", { type: "number", name: "count", min: 1, max: 1000000, step: 1, required: true, inputmode: "numeric", value: "1000" });
  const prefix = el("input", { type: "text", name: "prefix", maxlength: 12, pattern: "[A-Z0-9]{0,12}", autocapitalize: "characters", spellcheck: "false", autocomplete: "off" });
  const length = el("input", { type: "number", name: "length", min: 8, max: 24, step: 1, value: "12", inputmode: "numeric" });
  const error = errorBox();
  const submit = el("button", { type: "submit" }, "Generate codes");
  const bar = el("progress", { id: "batch-progress", max: 1, value: 0 });
  const barText = el("p", { id: "batch-progress-text", class: "num" });
  const announce = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
  const progress = el(
    "div",
    { class: "progress", hidden: true },
    el("label", { for: "batch-progress" }, "Generating codes"),
    bar,
    barText,
  );

  const show = (batch) => {
    progress.hidden = false;
    bar.max = Math.max(batch.requested, 1);
    bar.value = batch.generated;
    const pct = Math.floor((batch.generated * 100) / Math.max(batch.requested, 1));
    bar.setAttribute("aria-valuetext", `${pct}%`);
    barText.textContent = `${fmtNumber(batch.generated)} of ${fmtNumber(batch.requested)} codes (${pct}%)`;
    progress.dataset.status = batch.status;
    if (batch.status === "completed") {
      barText.textContent += " · done";
      announce.textContent = `Done: ${fmtNumber(batch.generated)} codes generated.`;
    } else if (batch.status === "failed") {
      showError(error, `The batch failed: ${batch.error || "unknown error"}.`);
      announce.textContent = "The batch failed.";
    }
  };

  const follow = async (batch) => {
    show(batch);
    busy(submit, batch.status === "pending" || batch.status === "running");
    if (batch.status === "completed" || batch.status === "failed") {
      store.remove(BATCH_KEY + campaign.id);
      onDone();
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
      "aria-labelledby": "generate-title",
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(error);
        const json = { count: Number(count.value), length: Number(length.value || 12) };
        if (prefix.value) json.prefix = prefix.value.toUpperCase();
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
          return showError(error, r.problem);
        }
        follow(r.data);
      },
    },
    el("h2", { id: "generate-title" }, "Generate codes"),
    el(
      "div",
      { class: "grid grid-3" },
      field("How many codes", count),
      field("Prefix", prefix, "Optional: A–Z and 0–9, up to 12, e.g. SPRING."),
      field("Random symbols", length, "8 to 24; 12 symbols are 60 bits."),
    ),
    error,
    submit,
    progress,
    announce,
  );
  const running = store.get(BATCH_KEY + campaign.id);
  if (running) {
    call(`/v1/code-batches/${enc(running)}`).then((r) => {
      if (!signal.aborted && r.ok) follow(r.data);
      else if (!r.ok) store.remove(BATCH_KEY + campaign.id);
    });
  }
  return form;
}

function codesSection(campaign, onImported) {
  const downloadError = errorBox();
  const downloadStatus = el("span", { class: "muted", role: "status" });
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
    const size = await download(r.response, `codes-${campaign.id}.csv`);
    busy(downloadButton, false);
    downloadStatus.textContent = `Saved (${fmtNumber(Math.ceil(size / 1024))} KB).`;
  });

  const file = el("input", { type: "file", name: "file", accept: ".csv,.txt,text/csv,text/plain" });
  const pasted = el("textarea", { name: "codes", rows: 4, spellcheck: "false", autocomplete: "off" });
  const importError = errorBox();
  const result = el("div", { class: "result", role: "status" });
  const submit = el("button", { type: "submit" }, "Import codes");
  const form = el(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        hideError(importError);
        clear(result);
        const chosen = file.files && file.files[0];
        if (!chosen && !pasted.value.trim()) return showError(importError, "Choose a file or paste codes first.");
        const isCsv = chosen && (chosen.type === "text/csv" || chosen.name.toLowerCase().endsWith(".csv"));
        busy(submit, true);
        const r = await call(`/v1/campaigns/${enc(campaign.id)}/code-imports`, {
          method: "POST",
          body: chosen || pasted.value,
          headers: { "Content-Type": isCsv ? "text/csv" : "text/plain" },
        });
        busy(submit, false);
        if (!r.ok) return showError(importError, r.problem);
        const { imported, duplicates, rejected } = r.data;
        append(
          result,
          el(
            "p",
            {},
            `Imported ${fmtNumber(imported)} codes; ${fmtNumber(duplicates)} already known; `,
            `${fmtNumber(rejected.length)} lines rejected.`,
          ),
          rejected.length
            ? el("ul", { class: "rejected" }, rejected.slice(0, 50).map((x) => el("li", {}, `Line ${fmtNumber(x.line)}: ${x.reason}`)))
            : null,
        );
        form.reset();
        onImported();
      },
    },
    el("h3", {}, "Import the shop's own codes"),
    el("div", { class: "grid" }, field("CSV or text file, one code per line", file), field("Or paste codes, one per line", pasted)),
    importError,
    submit,
    result,
  );
  return el(
    "section",
    { class: "card", "aria-labelledby": "codes-title" },
    el("h2", { id: "codes-title" }, "Codes"),
    el("div", { class: "toolbar" }, downloadButton, downloadStatus),
    downloadError,
    form,
  );
}

function claimRow(claim) {
  const consent = claim.consent_withdrawn
    ? el("span", { class: "badge badge-ended" }, "Withdrawn ", claim.consent_withdrawn_at ? fmtDate(claim.consent_withdrawn_at) : "")
    : el("span", { class: "badge badge-active" }, "Shared");
  return el(
    "tr",
    { dataset: { claimId: claim.id } },
    cell("Claimed", fmtDate(claim.claimed_at)),
    cell("Code", el("code", {}, claim.code)),
    cell("Shopper", claim.user_id),
    cell("E-mail", claim.shared_contact?.email || "—"),
    cell("Name", claim.shared_contact?.name || "—"),
    cell("Consent", consent),
  );
}

function claimsSection(signal, campaign) {
  const body = el("tbody", { id: "claims-body" });
  const error = errorBox();
  const empty = el("p", { class: "muted" }, "No claims yet.");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Load older claims");
  const live = el("input", { type: "checkbox", id: "claims-live", checked: true });
  const seen = new Set();
  let cursor = null;
  let loadedFirst = false;

  const add = (items, where) => {
    const fresh = items.filter((c) => !seen.has(c.id));
    fresh.forEach((c) => seen.add(c.id));
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
    const size = await download(r.response, `claims-${campaign.id}.csv`);
    busy(csv, false);
    csvStatus.textContent = `Saved (${fmtNumber(Math.ceil(size / 1024))} KB).`;
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
    table("Claims, newest first", ["Claimed", "Code", "Shopper", "E-mail", "Name", "Consent"], body),
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

function deliveriesPanel(endpoint) {
  const body = el("tbody");
  const error = errorBox();
  const empty = el("p", { class: "muted", hidden: true }, "No delivery attempts yet.");
  const refresh = el("button", { type: "button", class: "secondary" }, "Refresh");
  const load = async () => {
    busy(refresh, true);
    const r = await call(`/v1/webhook-endpoints/${enc(endpoint.id)}/deliveries?limit=100`);
    busy(refresh, false);
    if (!r.ok) return showError(error, r.problem);
    hideError(error);
    clear(body);
    for (const a of r.data.items) {
      const good = a.status_code !== null && a.status_code >= 200 && a.status_code < 300;
      body.append(
        el(
          "tr",
          { dataset: { eventId: a.event_id } },
          cell("At", fmtDate(a.at)),
          cell("Event", el("code", { title: a.event_id }, a.event_id)),
          cell("Attempt", fmtNumber(a.attempt)),
          cell(
            "Result",
            el("span", { class: `badge ${good ? "badge-active" : "badge-ended"}` }, a.status_code !== null ? `HTTP ${a.status_code}` : "No answer"),
            a.error && !good ? ` ${a.error}` : "",
          ),
          cell("Duration", `${fmtNumber(a.duration_ms)} ms`),
          cell("Next attempt", a.next_attempt_at ? fmtDate(a.next_attempt_at) : good ? "—" : "None (given up)"),
        ),
      );
    }
    empty.hidden = r.data.items.length > 0;
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
        replayStatus.textContent = `Queued ${fmtNumber(r.data.replayed)} events for delivery again.`;
        setTimeout(load, 1500);
      },
    },
    field("Resend events since (your time)", since),
    replayButton,
  );
  const panel = el(
    "div",
    { class: "deliveries" },
    el("div", { class: "toolbar" }, el("h3", {}, `Deliveries to ${endpoint.url}`), refresh),
    error,
    table("Delivery attempts, newest first", ["At", "Event", "Attempt", "Result", "Duration", "Next attempt"], body),
    empty,
    replay,
    replayError,
    replayStatus,
  );
  load();
  return { panel, load };
}

function endpointRow(endpoint, secret, error) {
  const row = el("tr", { dataset: { endpointId: endpoint.id } });
  const detailRow = el("tr", { class: "detail-row", hidden: true });
  const detailCell = el("td", { colspan: 6 });
  detailRow.append(detailCell);
  let deliveries = null;
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
    const showDeliveries = el("button", { type: "button", class: "secondary", "aria-expanded": String(!detailRow.hidden), "aria-label": `Deliveries to ${e.url}` }, "Deliveries");
    showDeliveries.addEventListener("click", () => {
      detailRow.hidden = !detailRow.hidden;
      showDeliveries.setAttribute("aria-expanded", String(!detailRow.hidden));
      if (!detailRow.hidden) {
        if (!deliveries) {
          deliveries = deliveriesPanel(e);
          detailCell.append(deliveries.panel);
        } else deliveries.load();
      }
    });
    append(
      row,
      cell("URL", el("code", { class: "url" }, e.url)),
      cell("Description", e.description || "—"),
      cell("Events", e.event_types ? e.event_types.join(", ") : "All"),
      cell(
        "State",
        el("span", { class: `badge ${e.enabled ? "badge-active" : "badge-paused"}` }, e.enabled ? "Enabled" : "Disabled"),
        e.disabled_reason && !e.enabled ? ` ${e.disabled_reason}` : "",
      ),
      cell("Created", fmtDate(e.created_at)),
      cell(
        "Actions",
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "secondary", onclick: toggle, "aria-label": `${e.enabled ? "Disable" : "Enable"} ${e.url}` }, e.enabled ? "Disable" : "Enable"),
          el("button", { type: "button", class: "secondary", onclick: rotate, "aria-label": `Rotate the secret of ${e.url}` }, "Rotate secret"),
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
  const types = EVENT_TYPES.map((t) => el("input", { type: "checkbox", name: "event_types", value: t, id: `type-${t.replace(/\W/g, "-")}` }));
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
        const json = { url: url.value.trim() };
        if (description.value.trim()) json.description = description.value.trim();
        const chosen = types.filter((t) => t.checked).map((t) => t.value);
        if (chosen.length) json.event_types = chosen;
        busy(submit, true);
        const r = await call(`/v1/brands/${enc(brand)}/webhook-endpoints`, { method: "POST", json });
        busy(submit, false);
        if (!r.ok) return showError(formError, r.problem);
        form.reset();
        body.prepend(...endpointRow(r.data, secret, listError));
        empty.hidden = true;
        secret.show(r.data, false);
      },
    },
    el("h2", { id: "new-endpoint-title" }, "Add a webhook endpoint"),
    el("div", { class: "grid" }, field("Endpoint URL", url, "https only; the service refuses private and loopback hosts."), field("Description", description)),
    el(
      "fieldset",
      {},
      el("legend", {}, "Events to send (none ticked: all of them)"),
      types.map((t) => el("div", { class: "check" }, t, el("label", { for: t.id }, t.value))),
    ),
    formError,
    submit,
  );

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
  const rows = new Map(); // event id -> {event, deliveryCell}
  let endpoints = [];
  let after = null;
  let total = 0;
  let caughtUp = false;

  const deliveryText = (event, attempts) => {
    if (!attempts || !attempts.length) {
      // Only endpoints that existed when the event was recorded, and want its type, get it.
      const wanted = endpoints.filter(
        (e) =>
          (!e.event_types || e.event_types.includes(event.type)) &&
          new Date(e.created_at) <= new Date(event.timestamp),
      );
      return wanted.length ? ["Pending", "badge-paused"] : ["Pull feed only", "badge-paused"];
    }
    if (attempts.some((a) => a.status_code >= 200 && a.status_code < 300)) {
      const ok = attempts.find((a) => a.status_code >= 200 && a.status_code < 300);
      return [`Delivered · HTTP ${ok.status_code}`, "badge-active"];
    }
    const last = attempts[0];
    const why = last.status_code !== null ? `HTTP ${last.status_code}` : last.error || "failed";
    return [last.next_attempt_at ? `Retrying · ${why}` : `Failed · ${why}`, "badge-ended"];
  };

  const attemptsByEvent = new Map();
  const paintDelivery = (id) => {
    const row = rows.get(id);
    if (!row) return;
    const [label, kind] = deliveryText(row.event, attemptsByEvent.get(id));
    clear(row.deliveryCell).append(el("span", { class: `badge ${kind}` }, label));
    const next = (attemptsByEvent.get(id) || [])[0]?.next_attempt_at;
    if (next && kind === "badge-ended") row.deliveryCell.append(" next ", fmtDate(next));
  };

  const addEvents = (items) => {
    for (const event of items) {
      const deliveryCell = cell("Delivery");
      const tr = el(
        "tr",
        { dataset: { eventId: event.id, type: event.type } },
        cell("Time", fmtDate(event.timestamp)),
        cell("Type", el("code", {}, event.type)),
        cell("What", describe(event, names)),
        deliveryCell,
      );
      rows.set(event.id, { event, deliveryCell });
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
    const r = await call(`/v1/brands/${enc(brand)}/webhook-endpoints?limit=20`);
    if (!r.ok || signal.aborted) return;
    endpoints = r.data.items;
    attemptsByEvent.clear();
    for (const endpoint of endpoints) {
      const d = await call(`/v1/webhook-endpoints/${enc(endpoint.id)}/deliveries?limit=200`);
      if (!d.ok || signal.aborted) continue;
      for (const a of d.data.items) {
        if (!attemptsByEvent.has(a.event_id)) attemptsByEvent.set(a.event_id, []);
        attemptsByEvent.get(a.event_id).push(a);
      }
    }
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
