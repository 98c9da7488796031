// Shared by the brand console, the shopper page and the till: API calls, tokens, sign-in, DOM
// and formatting.
// Everything the API returns is put on the page with textContent, never as HTML.

export const numberFormat = new Intl.NumberFormat();
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** The user's time zone, named once beside a list instead of on every row. */
export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** A number with the user's thousands separators. */
export function fmtNumber(n) {
  return n === null || n === undefined ? "—" : numberFormat.format(n);
}

/** "3.4 MB", "12 KB", "512 bytes": a size as people say it. */
export function fmtBytes(n) {
  const one = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  if (n < 1000) return `${numberFormat.format(n)} bytes`;
  if (n < 1_000_000) return `${one.format(n / 1000)} KB`;
  if (n < 1_000_000_000) return `${one.format(n / 1_000_000)} MB`;
  return `${one.format(n / 1_000_000_000)} GB`;
}

/** "in 5 minutes", "3 hours ago": close instants read better relative to now. */
export function fmtRelative(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return relative.format(0, "second");
  if (abs < 45 * 60) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 22 * 3600) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/**
 * A <time> element for an RFC 3339 instant in the user's locale and time zone: today's as
 * a time of day, others with their date; `relative` says "5 minutes ago" when close. The
 * full date with its time zone is in the tooltip.
 */
export function fmtDate(iso, { relative: rel = false } = {}) {
  if (!iso) return text("—");
  const when = new Date(iso);
  const close = Math.abs(when.getTime() - Date.now()) < 22 * 3600 * 1000;
  const shown = rel && close ? fmtRelative(iso) : sameDay(when, new Date()) ? timeFormat.format(when) : dateFormat.format(when);
  return el("time", { datetime: iso, title: fullFormat.format(when) }, shown);
}

/**
 * "at 5:13 AM" today, "on Dec 5, 2026, 5:13 AM" another day: the preposition that goes with
 * what fmtDate shows, as [word, <time>].
 */
export function atOrOn(iso) {
  return [sameDay(new Date(iso), new Date()) ? "at " : "on ", fmtDate(iso)];
}

/** A file name from a campaign's name: "Spring sale" -> "spring-sale". */
export function slug(name) {
  const s = String(name || "")
    .replace(/ß/g, "ss")
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
  return s || "campaign";
}

/** "1 line", "3 lines". */
export function plural(n, one, many) {
  return `${fmtNumber(n)} ${n === 1 ? one : many}`;
}

/** What each event type means, in words. */
export const EVENT_LABELS = {
  "discount_code.claimed": "Code claimed",
  "code_batch.completed": "Codes generated",
  "campaign.codes_low": "Stock running low",
  "campaign.codes_exhausted": "Sold out",
  "contact_consent.withdrawn": "Consent withdrawn",
  "discount_code.redeemed": "Code redeemed",
  "discount_code.redemption_reversed": "Redemption reversed",
};

export function eventLabel(type) {
  return EVENT_LABELS[type] || type;
}

export function text(s) {
  return document.createTextNode(String(s));
}

/** el("button", {type: "button", onclick: f, class: "x"}, "Label", child, ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, ...children);
  return node;
}

export function append(node, ...children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : text(child));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** A labelled form field: the label is tied to the input by id. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  input.id = id;
  const parts = [el("label", { for: id }, label), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute("aria-describedby", hintId);
    parts.push(el("p", { class: "hint", id: hintId }, hint));
  }
  return el("div", { class: "field" }, ...parts);
}

// --- tokens ------------------------------------------------------------------------------

/** The payload of a JWT, for display only: the service verifies it on every call. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

export function tokenExpired(claims) {
  return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
}

export const store = {
  get(key) {
    return sessionStorage.getItem(key);
  },
  set(key, value) {
    sessionStorage.setItem(key, value);
  },
  remove(key) {
    sessionStorage.removeItem(key);
  },
};

/**
 * The token a page keeps under `key`, with its claims, while it reads as a JWT, has not
 * expired and `fits` the page (a till's must administer its brand); else it is forgotten
 * and the answer is null.
 */
export function storedToken(key, fits = () => true) {
  const token = store.get(key);
  const claims = token ? tokenClaims(token) : null;
  if (!claims || tokenExpired(claims) || !fits(claims)) {
    store.remove(key);
    return null;
  }
  return { token, claims };
}

/**
 * Dev mode's sign-in: the marketplace's login simulated by a token the service mints with
 * `claims()`, kept under `key`; then `done()`.
 */
export function devTokenForm({ key, intro, label, claims, fields = [], done }) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const button = el("button", { type: "submit" }, label);
  return el(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        button.disabled = true;
        const r = await api("/console/dev-token", { method: "POST", json: claims() });
        button.disabled = false;
        if (!r.ok) {
          error.textContent = problemText(r.problem);
          error.hidden = false;
          return;
        }
        store.set(key, r.data.token);
        done();
      },
    },
    el("p", {}, intro),
    ...fields,
    error,
    button,
  );
}

/**
 * "Or paste a token": keeps a pasted token under `key` when it reads as a JWT, has not
 * expired and `fits` the page (else `misfit` says why not); then `done()`.
 */
export function pastedTokenForm({ key, label, hint, fits = () => true, misfit = "", done }) {
  const pasted = el("textarea", { name: "token", rows: 3, required: true, spellcheck: "false", autocomplete: "off" });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const refuse = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  return el(
    "form",
    {
      class: "card",
      onsubmit: (event) => {
        event.preventDefault();
        const token = pasted.value.trim();
        const claims = tokenClaims(token);
        if (!claims || tokenExpired(claims)) return refuse("This is not a valid, unexpired token.");
        if (!fits(claims)) return refuse(misfit);
        store.set(key, token);
        done();
      },
    },
    field(label, pasted, hint),
    error,
    el("button", { type: "submit", class: "secondary" }, "Use this token"),
  );
}

// --- the API -----------------------------------------------------------------------------

/**
 * Calls the API. Answers {ok, status, data, problem, response}; a network failure is a
 * problem with status 0, so callers show one kind of error.
 */
export async function api(path, { token, method = "GET", json, body, headers = {}, raw } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    const problem = {
      type: "/problems/network",
      title: "The service cannot be reached",
      status: 0,
      detail: "Check that the service is running, then try again.",
    };
    return { ok: false, status: 0, data: null, problem, response: null };
  }
  if (raw && response.ok) return { ok: true, status: response.status, response };
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (response.ok) return { ok: true, status: response.status, data, problem: null, response };
  const problem =
    data && typeof data === "object" && data.title
      ? data
      : { type: "/problems/http-error", title: `HTTP ${response.status}`, status: response.status };
  return { ok: false, status: response.status, data, problem, response };
}

/** The stable slug of a problem (`/problems/codes-exhausted` -> `codes-exhausted`). */
export function slugOf(problem) {
  return String(problem?.type || "").split("/").pop();
}

// What people call the fields the API validates.
const FIELD_NAMES = {
  name: "Name",
  description: "Description",
  terms: "Terms",
  ends_at: "End date",
  starts_at: "Start date",
  low_stock_threshold: "Low-stock alert",
  count: "How many codes",
  length: "Random symbols",
  prefix: "Prefix",
  url: "Endpoint URL",
  event_types: "Events",
  since: "Since",
};

/** A validator's message in plain words ("String should have at least 1 character" -> "is required"). */
function plainMessage(msg) {
  let m;
  if (/at least 1 character/.test(msg) || /Field required/i.test(msg)) return "is required";
  if ((m = /at least (\d+) characters?/.exec(msg))) return `needs at least ${m[1]} characters`;
  if ((m = /at most (\d+) characters?/.exec(msg))) return `can be at most ${fmtNumber(Number(m[1]))} characters`;
  if ((m = /less than or equal to (\d+)/.exec(msg))) return `can be at most ${fmtNumber(Number(m[1]))}`;
  if ((m = /greater than or equal to (\d+)/.exec(msg))) return `must be at least ${fmtNumber(Number(m[1]))}`;
  if (/valid integer/.test(msg)) return "must be a whole number";
  if (/should match pattern/.test(msg)) return "has characters that are not allowed";
  if (/valid datetime|timezone|Timestamp/i.test(msg)) return "is not a valid date and time";
  return msg.replace(/^Value error, /, "").replace(/`/g, "");
}

/** The field each validation error is about, and its message in words. */
export function fieldErrors(problem) {
  if (!Array.isArray(problem?.errors)) return [];
  return problem.errors.map((e) => {
    const loc = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body" && typeof p === "string") : [];
    const key = loc[loc.length - 1] || "";
    return { field: key, label: FIELD_NAMES[key] || "", message: plainMessage(String(e.msg || "")) };
  });
}

/** One line for the user: the problem's detail, then what is wrong with which field. */
export function problemText(problem) {
  const detail = problem.detail && problem.detail !== problem.title ? problem.detail : "";
  const errors = fieldErrors(problem).filter((e) => e.message && e.message !== detail);
  if (errors.length) {
    const parts = errors.slice(0, 3).map((e) => (e.label ? `${e.label} ${e.message}` : e.message));
    const head = detail ? detail.replace(/[.:]$/, "") : "Please check the form";
    return `${head}: ${parts.join("; ")}.`;
  }
  return detail ? (/[.!?]$/.test(detail) ? detail : `${detail}.`) : problem.title;
}

/** Saves a response body as a file (the browser cannot add a bearer header to a link). */
export async function download(response, fallbackName, preferOurs = false) {
  const disposition = response.headers.get("content-disposition") || "";
  const match = preferOurs ? null : /filename="?([^";]+)"?/.exec(disposition);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: match ? match[1] : fallbackName, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return blob.size;
}

export async function copyText(value) {
  try {
    await navigator.clipboard.writeText(value);
    return true;
  } catch {
    return false;
  }
}

/** A button that copies `value()` and says so. */
export function copyButton(label, value, input) {
  const status = el("span", { class: "copy-status", role: "status" });
  const button = el(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async () => {
        const ok = await copyText(value());
        if (!ok && input) {
          input.focus();
          input.select();
        }
        status.textContent = ok ? "Copied" : "Press Ctrl+C (or ⌘C) to copy";
      },
    },
    label,
  );
  return [button, status];
}

export function randomId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the shopper page and the till do first: the skip link, then the console's settings. */
export async function pageConfig() {
  wireSkipLink();
  const r = await api("/console/config");
  return r.ok ? r.data : { dev: false };
}

/** The skip link moves focus without touching the URL's fragment (it holds the route). */
export function wireSkipLink() {
  const link = document.querySelector(".skip");
  const main = document.getElementById("main");
  if (!link || !main) return;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
}
