// The Events page's Delivery column: each event's outcome at each webhook endpoint (the API's
// webhook-deliveries), summed up so that one endpoint's success never hides another's
// failure: "Delivered to 2 of 5 endpoints; 3 failing" is red, not a green "Delivered".
import { clear, el, fmtDate, plural } from "./common.js";

const enc = encodeURIComponent;
/** The API takes at most this many event ids a call. */
const IDS_PER_CALL = 100;
/** Endpoints read for their names: a brand with more has the rest shown by id. */
const MAX_ENDPOINT_PAGES = 4;

/** The brand's endpoints: to name them, and to tell an event still pending from one only in the pull feed. */
export async function readEndpoints(call, brand) {
  const endpoints = [];
  let cursor = null;
  for (let page = 0; page < MAX_ENDPOINT_PAGES; page++) {
    const q = cursor ? `&cursor=${enc(cursor)}` : "";
    const r = await call(`/v1/brands/${enc(brand)}/webhook-endpoints?limit=50${q}`);
    if (!r.ok) return null;
    endpoints.push(...r.data.items);
    cursor = r.data.next_cursor;
    if (!cursor) break;
  }
  return endpoints;
}

/** Event id -> its items (one per endpoint it is owed to), or null when the API said no. */
export async function readOutcomes(call, brand, eventIds) {
  const byEvent = new Map();
  for (let i = 0; i < eventIds.length; i += IDS_PER_CALL) {
    const q = eventIds
      .slice(i, i + IDS_PER_CALL)
      .map((id) => `event_id=${enc(id)}`)
      .join("&");
    const r = await call(`/v1/brands/${enc(brand)}/webhook-deliveries?${q}`);
    if (!r.ok) return null;
    for (const item of r.data.items) {
      if (!byEvent.has(item.event_id)) byEvent.set(item.event_id, []);
      byEvent.get(item.event_id).push(item);
    }
  }
  return byEvent;
}

/** One event at one endpoint, in words: what a brand needs to know to act on it. */
function outcome(item) {
  const answer = item.last_status_code !== null ? `HTTP ${item.last_status_code}` : null;
  const why = item.last_error || answer || "no answer";
  const tries = plural(item.attempts, "attempt", "attempts");
  if (item.status === "succeeded") {
    return { state: "delivered", label: `Delivered · ${answer || "OK"}`, kind: "badge-active", detail: [] };
  }
  if (item.status === "failed") {
    return { state: "failed", label: `Failed · ${why}`, kind: "badge-ended", detail: [`given up after ${tries}`] };
  }
  const next = item.next_attempt_at ? ["next attempt ", fmtDate(item.next_attempt_at, { relative: true })] : [];
  if (item.attempts > 0) {
    return { state: "failing", label: `Failing · ${why}`, kind: "badge-ended", detail: [tries, next] };
  }
  return { state: "pending", label: "Pending", kind: "badge-paused", detail: [next.length ? next : "being sent"] };
}

/** The event's line: green only when every endpoint it is owed to has it. */
function summary(outcomes) {
  const n = outcomes.length;
  const count = (state) => outcomes.filter((o) => o.state === state).length;
  if (n === 1) return { state: outcomes[0].state, label: outcomes[0].label, kind: outcomes[0].kind };
  const delivered = count("delivered");
  if (delivered === n) return { state: "delivered", label: `Delivered to all ${n} endpoints`, kind: "badge-active" };
  const rest = [];
  const failing = count("failing");
  const failed = count("failed");
  const pending = count("pending");
  if (failing) rest.push(`${failing} failing`);
  if (failed) rest.push(`${failed} given up`);
  if (pending) rest.push(`${pending} pending`);
  const bad = failing + failed > 0;
  return {
    state: bad ? "failing" : "pending",
    label: `Delivered to ${delivered} of ${n} endpoints; ${rest.join(", ")}`,
    kind: bad ? "badge-ended" : "badge-paused",
  };
}

function joined(parts) {
  const out = [];
  for (const part of parts.filter((p) => (Array.isArray(p) ? p.length : p))) {
    if (out.length) out.push(" · ");
    out.push(...[part].flat());
  }
  return out;
}

/**
 * The Delivery cell of one event row. `paint(event, items, endpoints)` redraws it in place,
 * keeping the per-endpoint list open or closed as the user left it (closed by itself only
 * while every endpoint has the event).
 */
export function deliveryCell(cell) {
  const badge = el("span", { class: "badge" });
  const single = el("span", { class: "outcome-detail" });
  const list = el("ul", { class: "outcome-endpoints" });
  const toggle = el("summary", {}, "Per endpoint");
  const details = el("details", { class: "outcome-list", hidden: true }, toggle, list);
  let chosen = false; // the user opened or closed the list: leave it so
  toggle.addEventListener("click", () => (chosen = true));
  const td = cell("Delivery", el("div", { class: "outcome" }, badge, single, details));
  let key = "";

  const paint = (event, items, endpoints) => {
    const names = new Map(endpoints.map((e) => [e.id, e.description || e.url]));
    // Relative times ("in 5 minutes") are redrawn now and then, the rest when it changes.
    const now = JSON.stringify([items || null, [...names], Math.floor(Date.now() / 30000)]);
    if (now === key) return;
    key = now;
    clear(single);
    clear(list);
    if (!items || !items.length) {
      // Only endpoints enabled when the event was recorded, and wanting its type, get it.
      const wanted = endpoints.filter(
        (e) =>
          e.enabled &&
          (!e.event_types || e.event_types.includes(event.type)) &&
          new Date(e.created_at) <= new Date(event.timestamp),
      );
      badge.className = "badge badge-paused";
      badge.dataset.outcome = wanted.length ? "pending" : "pull-feed";
      badge.textContent = wanted.length ? "Pending" : "Pull feed only";
      details.hidden = true;
      return;
    }
    const outcomes = items.map(outcome);
    const total = summary(outcomes);
    badge.className = `badge ${total.kind}`;
    badge.dataset.outcome = total.state;
    badge.textContent = total.label;
    if (items.length === 1) {
      details.hidden = true;
      const detail = joined(outcomes[0].detail);
      if (detail.length) single.append(" · ", ...detail);
      return;
    }
    items.forEach((item, i) => {
      const o = outcomes[i];
      const detail = joined(o.detail);
      list.append(
        el(
          "li",
          { dataset: { endpointId: item.endpoint_id, outcome: o.state } },
          el("span", { class: `badge ${o.kind}` }, o.label),
          " ",
          el("code", { class: "url" }, names.get(item.endpoint_id) || `endpoint ${item.endpoint_id}`),
          detail.length ? el("span", { class: "muted" }, " · ", ...detail) : null,
        ),
      );
    });
    toggle.textContent = `Per endpoint (${items.length})`;
    details.hidden = false;
    if (!chosen) details.open = total.state !== "delivered";
  };
  return { td, paint };
}
