// Shared by the brand console and the shopper page: API calls, tokens, DOM and formatting.
// Everything the API returns is put on the page with textContent, never as HTML.

export const numberFormat = new Intl.NumberFormat();
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A number with the user's thousands separators. */
export function fmtNumber(n) {
  return n === null || n === undefined ? "—" : numberFormat.format(n);
}

/** A <time> element showing an RFC 3339 instant in the user's locale and time zone. */
export function fmtDate(iso) {
  if (!iso) return text("—");
  const when = new Date(iso);
  return el("time", { datetime: iso, title: when.toISOString() }, dateFormat.format(when));
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

/** One line for the user: the problem's detail, and the first validation errors. */
export function problemText(problem) {
  let message = problem.detail && problem.detail !== problem.title
    ? `${problem.title}: ${problem.detail}`
    : problem.title;
  if (Array.isArray(problem.errors) && problem.errors.length) {
    const parts = problem.errors.slice(0, 3).map((e) => {
      const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body").join(".") : "";
      return where ? `${where}: ${e.msg}` : e.msg;
    });
    message += ` (${parts.join("; ")})`;
  }
  return message;
}

/** Saves a response body as a file (the browser cannot add a bearer header to a link). */
export async function download(response, fallbackName) {
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
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
