// Review queues: every queue with its open leads and oldest wait (#/reviews), and one queue's leads,
// oldest first, a page at a time (#/reviews/<name>), each of which can be reviewed here.

import { get } from "../js/api.js";
import { h, replace, badge, fmtNum, table, errorRegion, showError, when } from "../js/dom.js";
import { may } from "../js/access.js";
import { reviewPanel } from "../js/review_panel.js";

async function renderQueues(view) {
  const errors = errorRegion();
  const body = h("div", {});
  replace(view, h("h1", {}, "Review queues"),
    h("p", { class: "muted" }, "Leads the routing rules hold for a person: possible duplicates (HumanReview), large accounts, regulated industries."),
    errors, body);
  try {
    const { items } = await get("/api/v1/review-queues");
    replace(body, table(["Queue", "Open", "Capacity", "Oldest waiting since"],
      items.map((q) => [h("a", { href: `#/reviews/${encodeURIComponent(q.name)}` }, q.name), String(q.open),
        q.capacity === null ? "unlimited" : String(q.capacity), when(q.oldest_waiting_at)]),
      { numeric: [1, 2] }));
  } catch (error) {
    showError(errors, error);
  }
}

async function renderQueue(view, name, live) {
  const errors = errorRegion();
  const list = h("div", { "aria-live": "polite" });
  const reviewing = h("div", {});
  const canReview = may("POST", "/api/v1/leads/{id}/review") || may("POST", "/api/v1/leads/{id}/claim");
  replace(view, h("p", {}, h("a", { href: "#/reviews" }, "← All queues")), h("h1", {}, `Queue ${name}`), errors, list, reviewing);
  const path = `/api/v1/review-queues/${encodeURIComponent(name)}/leads`;

  function open(lead) {
    const label = `${lead.first_name} ${lead.last_name}`;
    replace(reviewing, reviewPanel({ id: lead.id, name: label }, { queue: name, waiting_since: lead.updated_at, claim: null },
      { onDecided: () => list.querySelector(`tr[data-lead-id="${lead.id}"]`)?.remove() }));
    reviewing.querySelector("h2").scrollIntoView({ block: "nearest" });
  }

  let cursors = [null];
  async function load(cursor, pageNumber) {
    try {
      const page = await get(path, { cursor, limit: 25 });
      cursors = cursors.slice(0, pageNumber);
      cursors[pageNumber] = page.next_cursor;
      const headers = ["Lead", "Company", "Category", "Score", "Created", ...(canReview ? ["Review"] : [])];
      const rows = page.items.map((lead) => [
        h("a", { href: `#/leads/${lead.id}` }, `${lead.first_name} ${lead.last_name}`), lead.company,
        badge(lead.triage_category), fmtNum(lead.lead_score), when(lead.created_at),
        ...(canReview ? [h("button", { type: "button", class: "secondary open-review", "aria-label": `Review ${lead.first_name} ${lead.last_name}`, onclick: () => open(lead) }, "Review")] : [])]);
      const rendered = table(headers, rows, { numeric: [3] });
      rendered.querySelectorAll("tbody tr").forEach((tr, i) => { if (page.items[i]) tr.dataset.leadId = page.items[i].id; });
      replace(list, rendered, h("div", { class: "pager" },
        pageNumber > 1 ? h("button", { type: "button", class: "secondary", onclick: () => load(cursors[pageNumber - 2], pageNumber - 1) }, "Previous page") : null,
        h("span", { class: "muted" }, `Page ${pageNumber}, oldest first`),
        page.next_cursor ? h("button", { type: "button", onclick: () => load(page.next_cursor, pageNumber + 1) }, "Next page") : null));
    } catch (error) {
      showError(errors, error);
    }
  }
  load(null, 1);

  // Someone else's decision or a new duplicate changes the queue: the first page is read again.
  const onEvent = (event) => {
    const type = event.detail.type;
    if (type === "review.decided" || (type === "lead.triaged" && event.detail.payload.route_to === name)) load(null, 1);
  };
  live.addEventListener("event", onEvent);
  return () => live.removeEventListener("event", onEvent);
}

export function render(view, { params, live }) {
  return params.queue ? renderQueue(view, params.queue, live) : renderQueues(view);
}
