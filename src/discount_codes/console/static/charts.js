// The console's two charts, drawn by uPlot (MIT, shipped in this folder with its licence:
// no CDN, nothing inline, so the page's strict CSP holds). Each chart has a text summary
// beside it for screen readers and for anyone who would rather read.
import uPlot from "./uPlot.esm.js";
import { el, fmtNumber } from "./common.js";

const HOUR = 3600;
const DAY = 86400;
const MAX_POINTS = 24 * 62; // two months of hours

const COLOURS = { claimed: "#0b5cad", redeemed: "#116329", total: "#57606a", low: "#a40e26", rate: "#116329", latency: "#7d4e00" };

/** Buckets from the first one to now, zeros where the API left a bucket out. */
export function fillBuckets(items, bucket, now = Date.now()) {
  const step = bucket === "day" ? DAY : HOUR;
  const byStart = new Map(items.map((i) => [Math.floor(new Date(i.start).getTime() / 1000), i]));
  const xs = [];
  const rows = [];
  if (!items.length) return { xs, rows };
  const first = Math.min(...byStart.keys());
  const last = Math.max(Math.max(...byStart.keys()), Math.floor(now / 1000 / step) * step);
  const start = Math.max(first, last - step * (MAX_POINTS - 1));
  for (let t = start; t <= last; t += step) {
    xs.push(t);
    rows.push(byStart.get(t) || null);
  }
  return { xs, rows };
}

/** The x axis in the user's locale: times of day, and the date where a day starts. */
function timeAxis(bucket) {
  const hm = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dm = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  return {
    values: (u, splits) =>
      splits.map((t) => {
        const d = new Date(t * 1000);
        return bucket === "day" || (d.getHours() === 0 && d.getMinutes() === 0) ? dm.format(d) : hm.format(d);
      }),
  };
}

/** Half a bucket either side of the data, so one bar is a bar and not a line across years. */
function xScale(bucket, xs) {
  const half = (bucket === "day" ? DAY : HOUR) / 2;
  return { time: true, auto: false, range: [xs[0] - half, xs[xs.length - 1] + half] };
}

function width(container) {
  return Math.max(280, Math.floor(container.getBoundingClientRect().width || 600));
}

/** Keeps a chart as wide as its box (a phone turned, a window resized). */
function fit(plot, container) {
  const observer = new ResizeObserver(() => plot.setSize({ width: width(container), height: plot.height }));
  observer.observe(container);
  return () => {
    observer.disconnect();
    plot.destroy();
  };
}

function hline(u, value, scale, colour) {
  if (value === null || value === undefined) return null;
  const y = Math.round(u.valToPos(value, scale, true));
  if (!Number.isFinite(y) || y < u.bbox.top || y > u.bbox.top + u.bbox.height) return null;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2 * uPlot.pxRatio;
  ctx.setLineDash([6 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
  ctx.beginPath();
  ctx.moveTo(u.bbox.left, y);
  ctx.lineTo(u.bbox.left + u.bbox.width, y);
  ctx.stroke();
  ctx.restore();
  return u.valToPos(value, scale); // CSS pixels from the top of the plotting area
}

const MARK_HEIGHT = 14;

/**
 * The lines' names as text over the drawing, each just above its line and pushed down
 * below the one before when two lines are close ("All 200,010 codes" and "Low-stock
 * alert" on a big campaign): they never overlap.
 */
function placeMarks(u, marks) {
  for (const old of u.over.querySelectorAll(".chart-mark")) old.remove();
  let bottom = -Infinity;
  const shown = marks.filter((m) => m.y !== null).sort((a, b) => a.y - b.y);
  for (const m of shown) {
    const top = Math.max(m.y - MARK_HEIGHT - 2, bottom + 1, 0);
    const label = el("span", { class: "chart-mark", dataset: { mark: m.key } }, m.label);
    label.style.top = `${top}px`;
    label.style.color = m.colour;
    u.over.append(label);
    bottom = top + MARK_HEIGHT;
  }
}

/** Day buckets get one label per day (not a time scale's hours, all named by their date). */
function daySplits(xs, plotWidth) {
  const room = Math.max(1, Math.floor(plotWidth / 70));
  const every = Math.max(1, Math.ceil(xs.length / room));
  return () => xs.filter((_, i) => i % every === 0);
}

/**
 * Claims per hour or day (bars), the running total claimed (line, right axis) against the
 * campaign's total codes and its low-stock point, and redemptions once the API sends them.
 * Answers {node, summary, destroy}.
 */
export function claimsChart(container, activity, campaign) {
  const { xs, rows } = fillBuckets(activity.items, activity.bucket);
  const claimed = rows.map((r) => (r ? r.claimed : 0));
  const hasRedeemed = activity.items.some((i) => typeof i.redeemed === "number");
  const redeemed = rows.map((r) => (r && typeof r.redeemed === "number" ? r.redeemed : 0));
  let sum = 0;
  const cumulative = claimed.map((n) => (sum += n));
  const total = campaign.codes_total;
  const lowAt = campaign.low_stock_threshold === null ? null : Math.max(total - campaign.low_stock_threshold, 0);

  const series = [
    {},
    {
      label: activity.bucket === "day" ? "Claimed per day" : "Claimed per hour",
      scale: "n",
      stroke: COLOURS.claimed,
      fill: "rgba(11, 92, 173, 0.35)",
      paths: uPlot.paths.bars({ size: [0.7, 40] }),
      points: { show: false },
    },
    { label: "Claimed so far", scale: "sum", stroke: COLOURS.total, width: 2, points: { show: xs.length < 3 } },
  ];
  const data = [xs, claimed, cumulative];
  if (hasRedeemed) {
    series.push({
      label: activity.bucket === "day" ? "Redeemed per day" : "Redeemed per hour",
      scale: "n",
      stroke: COLOURS.redeemed,
      width: 2,
      points: { show: false },
    });
    data.push(redeemed);
  }
  const sumMax = Math.max(total, sum, 1);
  const opts = {
    width: width(container),
    height: 240,
    series,
    scales: {
      x: xScale(activity.bucket, xs),
      n: { range: (u, min, max) => [0, Math.max(max, 1) * 1.15] },
      sum: { range: () => [0, sumMax * 1.08] },
    },
    axes: [
      activity.bucket === "day" ? { ...timeAxis("day"), splits: daySplits(xs, width(container) - 120) } : timeAxis(activity.bucket),
      { scale: "n", label: "Claims", size: 56 },
      { scale: "sum", side: 1, label: "Claimed so far", size: 64, grid: { show: false } },
    ],
    legend: { live: false },
    hooks: {
      draw: [
        (u) => {
          const marks = [{ key: "total", y: hline(u, total, "sum", COLOURS.total), colour: COLOURS.total, label: `All ${fmtNumber(total)} codes` }];
          if (lowAt !== null && total > 0) {
            marks.push({ key: "low", y: hline(u, lowAt, "sum", COLOURS.low), colour: COLOURS.low, label: "Low-stock alert" });
          }
          placeMarks(u, marks);
        },
      ],
    },
  };
  const plot = new uPlot(opts, data, container);
  plot.root.setAttribute("aria-hidden", "true");
  let busiest = -1;
  claimed.forEach((n, i) => {
    if (busiest < 0 || n > claimed[busiest]) busiest = i;
  });
  const when = (t) =>
    new Intl.DateTimeFormat(undefined, activity.bucket === "day" ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" }).format(new Date(t * 1000));
  const parts = [`${fmtNumber(sum)} codes claimed of ${fmtNumber(total)}.`];
  if (busiest >= 0 && claimed[busiest] > 0) {
    parts.push(`Busiest ${activity.bucket}: ${when(xs[busiest])}, ${fmtNumber(claimed[busiest])} claims.`);
  }
  if (hasRedeemed) parts.push(`${fmtNumber(redeemed.reduce((a, b) => a + b, 0))} redeemed.`);
  return { summary: parts.join(" "), destroy: fit(plot, container), plot };
}

/** Success rate (line, left axis, %) and average latency (line, right axis, ms) per bucket. */
export function deliveriesChart(container, stats) {
  const { xs, rows } = fillBuckets(stats.items, stats.bucket);
  const rate = rows.map((r) => (r && r.attempts ? (100 * r.succeeded) / r.attempts : null));
  const latency = rows.map((r) => (r && r.attempts ? r.avg_duration_ms : null));
  const opts = {
    width: width(container),
    height: 200,
    series: [
      {},
      { label: "Attempts that succeeded (%)", scale: "pct", stroke: COLOURS.rate, width: 2, spanGaps: false, points: { size: 6 } },
      { label: "Average time to answer (ms)", scale: "ms", stroke: COLOURS.latency, width: 2, dash: [6, 4], spanGaps: false, points: { size: 6 } },
    ],
    scales: { x: xScale(stats.bucket, xs), pct: { range: () => [0, 105] }, ms: { range: (u, min, max) => [0, Math.max(max || 0, 10) * 1.2] } },
    legend: { live: false },
    axes: [stats.bucket === "day" ? { ...timeAxis("day"), splits: daySplits(xs, width(container) - 120) } : timeAxis(stats.bucket), { scale: "pct", label: "Success %", size: 56 }, { scale: "ms", side: 1, label: "ms", size: 56, grid: { show: false } }],
  };
  const plot = new uPlot(opts, [xs, rate, latency], container);
  plot.root.setAttribute("aria-hidden", "true");
  const attempts = stats.items.reduce((a, i) => a + i.attempts, 0);
  const ok = stats.items.reduce((a, i) => a + i.succeeded, 0);
  const slowest = stats.items.reduce((a, i) => Math.max(a, i.max_duration_ms), 0);
  const avg = attempts ? stats.items.reduce((a, i) => a + i.avg_duration_ms * i.attempts, 0) / attempts : 0;
  const pct = attempts ? Math.round((100 * ok) / attempts) : 0;
  const summary = attempts
    ? `${fmtNumber(ok)} of ${fmtNumber(attempts)} attempts succeeded (${pct}%); answers took ${fmtNumber(Math.round(avg))} ms on average, ${fmtNumber(slowest)} ms at most.`
    : "No attempts yet.";
  return { summary, destroy: fit(plot, container), plot };
}

/** A chart's frame: a heading, the drawing, and its summary in words. */
export function chartFrame(id, title) {
  const drawing = el("div", { class: "chart", id: `${id}-drawing` });
  const summary = el("p", { class: "chart-summary", id: `${id}-summary`, "aria-live": "polite" });
  const node = el("figure", { class: "chart-frame", id, "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-summary` }, el("figcaption", { id: `${id}-title` }, title), drawing, summary);
  return { node, drawing, summary };
}
