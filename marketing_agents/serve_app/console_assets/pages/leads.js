// Leads: GET /api/v1/leads with its filters, sort and order in the hash (#/leads?min_score=70), one
// page at a time through next_cursor.

import { get } from "../js/api.js";
import { h, replace, badge, fmtNum, table, field, select, errorRegion, showError, clearError, markFields, clearFields, when } from "../js/dom.js";

const STATUSES = ["triaged", "handing_off", "engaged", "in_conversation", "converted", "needs_review", "disqualified"];
const CATEGORIES = ["hot", "warm", "nurture", "disqualified"];
const FILTERS = ["status", "triage_category", "industry", "country", "min_score", "max_score", "created_after", "created_before", "sort", "order", "limit"];
const TIMES = ["created_after", "created_before"];

// datetime-local holds a local time without a zone; the API wants an instant with one.
function toInstant(local) {
  return local ? new Date(local).toISOString() : "";
}

function toLocal(instant) {
  const date = new Date(instant);
  if (!instant || Number.isNaN(date.getTime())) return "";
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function filterForm(query) {
  const value = (name) => query.get(name) || "";
  const input = (name, attrs = {}) => h("input", { name, value: value(name), ...attrs });
  const times = (name) => h("input", { name, type: "datetime-local", value: toLocal(value(name)) });
  return h("form", { class: "filters", novalidate: true, "aria-label": "Lead filters" },
    field("Status", select("status", [["", "any"], ...STATUSES.map((s) => [s, s])], value("status"))),
    field("Triage category", select("triage_category", [["", "any"], ...CATEGORIES.map((c) => [c, c])], value("triage_category"))),
    field("Industry", input("industry", { size: 12 })),
    field("Country", input("country", { size: 3, placeholder: "DE" })),
    // No min/max on the inputs: the API is the one judge of a filter, and its words are shown.
    field("Min score", input("min_score", { type: "number", step: "any", style: "width:6rem" })),
    field("Max score", input("max_score", { type: "number", step: "any", style: "width:6rem" })),
    field("Created after", times("created_after")),
    field("Created before", times("created_before")),
    field("Sort by", select("sort", [["created_at", "created_at"], ["lead_score", "lead_score"]], value("sort") || "created_at")),
    field("Order", select("order", [["desc", "desc"], ["asc", "asc"]], value("order") || "desc")),
    field("Per page", input("limit", { type: "number", style: "width:5rem", placeholder: "50" })),
    h("button", { type: "submit" }, "Apply filters"),
    h("a", { href: "#/leads", class: "muted" }, "Clear"));
}

function leadRows(items) {
  return items.map((lead) => [
    h("a", { href: `#/leads/${lead.id}`, "data-lead-id": lead.id }, `${lead.first_name} ${lead.last_name}`),
    lead.company, lead.industry, lead.country, badge(lead.status), badge(lead.triage_category),
    fmtNum(lead.lead_score), when(lead.created_at)]);
}

const LEAD_HEADERS = ["Lead", "Company", "Industry", "Country", "Status", "Category", "Score", "Created"];

export async function render(view, { query, live }) {
  const form = filterForm(query);
  const errors = errorRegion();
  const results = h("div", { id: "lead-results", "aria-live": "polite" });
  const fresh = h("p", { class: "notice", hidden: true });
  replace(view, h("h1", {}, "Leads"), form, errors, fresh, results);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const raw = form.elements[name].value.trim();
      const value = TIMES.includes(name) ? toInstant(raw) : raw;
      if (value) params.set(name, value);
    }
    const target = "#/leads" + (params.toString() ? "?" + params : "");
    if (location.hash === target) load(null, 1);
    else location.hash = target;
  });

  const params = Object.fromEntries(FILTERS.map((name) => [name, query.get(name)]).filter(([, v]) => v));
  let cursors = [null];  // the cursor of each page seen, to go back a page

  async function load(cursor, pageNumber) {
    clearError(errors);
    clearFields(form);
    fresh.hidden = true;
    try {
      const page = await get("/api/v1/leads", { ...params, cursor });
      cursors = cursors.slice(0, pageNumber);
      cursors[pageNumber] = page.next_cursor;
      const pager = h("div", { class: "pager" },
        pageNumber > 1 ? h("button", { type: "button", class: "secondary", onclick: () => load(cursors[pageNumber - 2], pageNumber - 1) }, "Previous page") : null,
        h("span", { class: "muted" }, `Page ${pageNumber} · ${page.items.length} leads · sorted by ${page.sort} ${page.order}`),
        page.next_cursor ? h("button", { type: "button", onclick: () => load(page.next_cursor, pageNumber + 1) }, "Next page") : null);
      replace(results, table(LEAD_HEADERS, leadRows(page.items), { numeric: [6] }), pager);
    } catch (error) {
      replace(results);
      showError(errors, error);
      markFields(form, error);
    }
  }

  load(null, 1);

  // New leads change the first page: offer it rather than move the table under the reader's eyes.
  let arrived = 0;
  const onEvent = (event) => {
    if (event.detail.type !== "lead.triaged") return;
    arrived += 1;
    replace(fresh, `${arrived} new lead${arrived > 1 ? "s" : ""} since this page was loaded. `,
      h("button", { type: "button", class: "secondary", onclick: () => { arrived = 0; load(null, 1); } }, "Show the first page"));
    fresh.hidden = false;
  };
  live.addEventListener("event", onEvent);
  return () => live.removeEventListener("event", onEvent);
}
