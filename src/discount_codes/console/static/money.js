// Money and discounts as people read and type them: "15% off", "€10.00 off orders from
// €50.00", an amount typed as "12,50", and the discount a till should apply. Amounts stay
// decimal strings (as the API sends them); sums are done in whole minor units (BigInt),
// never in floating point.

/** The currency's minor units (EUR 2, JPY 0, KWD 3), as the browser knows them. */
export function minorUnits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "€12.50" in the user's locale; the bare number and the code when the currency is unknown. */
export function fmtMoney(money) {
  if (!money) return "—";
  try {
    const digits = minorUnits(money.currency);
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency: money.currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(Number(money.value));
  } catch {
    return `${money.value} ${money.currency}`;
  }
}

function fmtPercent(value) {
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 }).format(Number(value))}%`;
}

/** "15% off", "€10.00 off orders from €50.00"; null when the campaign has no discount. */
export function discountText(discount) {
  if (!discount) return null;
  const off = discount.type === "percentage" ? `${fmtPercent(discount.value)} off` : `${fmtMoney(discount)} off`;
  const minimum = discount.minimum_order;
  return minimum ? `${off} orders from ${fmtMoney(minimum)}` : off;
}

/** The currency a discount is tied to (a fixed amount's or its minimum order's), if any. */
export function discountCurrency(discount) {
  if (!discount) return "";
  return discount.currency || discount.minimum_order?.currency || "";
}

/**
 * An amount as typed at a till, as the API's decimal string: "12,50" and "12.50" are the
 * same, and so are "1.234,50", "1,234.50" and "1 234,50" (the last separator is the
 * decimal one when two kinds are used). Answers null when it is not an amount.
 */
export function normaliseAmount(typed) {
  let s = String(typed || "").replace(/[\s\u00a0\u202f']/g, "");
  if (!s) return null;
  const lastComma = s.lastIndexOf(",");
  const lastDot = s.lastIndexOf(".");
  if (lastComma >= 0 && lastDot >= 0) {
    const decimal = lastComma > lastDot ? "," : ".";
    const thousands = decimal === "," ? "." : ",";
    s = s.split(thousands).join("").replace(decimal, ".");
  } else if (lastComma >= 0) {
    // One comma is a decimal comma ("12,50"); several are thousands ("1,234,567").
    s = s.split(",").length > 2 ? s.split(",").join("") : s.replace(",", ".");
  } else if (s.split(".").length > 2) {
    s = s.split(".").join("");
  }
  return /^\d+(\.\d+)?$/.test(s) ? s : null;
}

/** A decimal string as a whole number of `digits` decimals (rounded half-even if longer). */
function scaled(value, digits) {
  const [whole, frac = ""] = String(value).split(".");
  const kept = BigInt(whole + frac.padEnd(digits, "0").slice(0, digits));
  const rest = frac.slice(digits);
  if (!rest || /^0*$/.test(rest)) return kept;
  const half = "5".padEnd(rest.length, "0");
  if (rest > half) return kept + 1n;
  if (rest < half) return kept;
  return kept % 2n === 0n ? kept : kept + 1n;
}

function unscaled(n, digits) {
  const s = n.toString().padStart(digits + 1, "0");
  return digits ? `${s.slice(0, -digits)}.${s.slice(-digits)}` : s;
}

/** n / d rounded half-even, both BigInt and positive. */
function divideHalfEven(n, d) {
  const q = n / d;
  const r = n % d;
  if (r * 2n > d) return q + 1n;
  if (r * 2n < d) return q;
  return q % 2n === 0n ? q : q + 1n;
}

/**
 * What the till should take off an order of `amount` ({value, currency}), as the service
 * works it out: a percentage rounded half-even to the currency's minor unit, or the fixed
 * amount capped at the order. Answers {due: {value, currency}} or {below: minimum} when
 * the order is under the campaign's minimum, or {otherCurrency: true}; null when unknown.
 */
export function discountFor(discount, amount) {
  if (!discount || !amount || !amount.value || !amount.currency) return null;
  const currency = amount.currency;
  const tied = discountCurrency(discount);
  if (tied && tied !== currency) return { otherCurrency: true, currency: tied };
  const digits = minorUnits(currency);
  const order = scaled(amount.value, digits);
  const minimum = discount.minimum_order;
  if (minimum && order < scaled(minimum.value, digits)) return { below: minimum };
  let due;
  if (discount.type === "percentage") {
    const [, frac = ""] = String(discount.value).split(".");
    const pct = scaled(discount.value, frac.length);
    due = divideHalfEven(order * pct, 100n * 10n ** BigInt(frac.length));
  } else {
    due = scaled(discount.value, digits);
    if (due > order) due = order;
  }
  return { due: { value: unscaled(due, digits), currency } };
}
