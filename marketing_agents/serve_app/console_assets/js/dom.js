// Building the DOM and showing values and errors the same way on every page.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  appendAll(el, children);
  return el;
}

export function append(el, ...children) {
  return appendAll(el, children);
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}

// Short enough for a table cell: the year only when it is not this one, a 24-hour clock.
export function fmtDate(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: date.getFullYear() === new Date().getFullYear() ? undefined : "numeric",
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
}

// A date in a table cell: kept on one line, with the exact instant for machines.
export function when(value) {
  return value ? h("time", { datetime: value }, fmtDate(value)) : "—";
}

export function fmtNum(value, digits = 1) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : String(value);
}

export function fmtPct(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return (Number(value) * 100).toFixed(digits) + " %";
}

// tone: the class that colours it, the value itself unless told (statuses and categories have their own).
export function badge(value, tone = value) {
  return value ? h("span", { class: `badge ${tone}` }, value) : "—";
}

export function table(headers, rows, { caption, numeric = [] } = {}) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((name, i) =>
        h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, name)))),
      h("tbody", {}, rows.length
        ? rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", { class: numeric.includes(i) ? "num" : null }, cell))))
        : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "nothing yet")))));
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

// An error region that screen readers announce; errors shows it in the API's own words.
export function errorRegion() {
  return h("div", { class: "error", role: "alert", "aria-live": "assertive" });
}

export function showError(region, error) {
  const fields = error.fieldErrors || [];
  replace(region,
    h("p", {}, h("strong", {}, error.message), " ", error.code ? h("span", { class: "code" }, `(${error.code})`) : null),
    fields.length ? h("ul", {}, fields.map((f) => h("li", {}, h("code", {}, f.field), ": ", f.message))) : null,
    error.status === 503 || error.status === 429
      ? h("p", {}, error.retryAfter ? `The API asks to try again in ${error.retryAfter} s (Retry-After).` : "Try again shortly.")
      : null);
}

export function clearError(region) {
  replace(region);
}

// Field errors next to their inputs too: an entry's field is the parameter or body path ("min_score",
// "rows.1.clicks"); the input carries that name.
export function markFields(form, error) {
  clearFields(form);
  for (const entry of error.fieldErrors || []) {
    const input = form.querySelector(`[name="${CSS.escape(entry.field)}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const note = h("span", { class: "field-error", id: `${input.id}-error` }, entry.message);
    input.setAttribute("aria-describedby", note.id);
    input.insertAdjacentElement("afterend", note);
  }
}

export function clearFields(form) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelectorAll("[aria-invalid]").forEach((el) => { el.removeAttribute("aria-invalid"); el.removeAttribute("aria-describedby"); });
}

// Runs an action from a button: disabled while it runs, its error shown in region.
export async function act(button, region, action) {
  button.disabled = true;
  clearError(region);
  try {
    return await action();
  } catch (error) {
    showError(region, error);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

let ids = 0;
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled input in a filter or form row.
export function field(label, input) {
  if (!input.id) input.id = uid(input.name || "field");
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)));
}
