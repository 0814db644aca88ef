// Campaigns, newest first, a page at a time (offset paging, as GET /api/v1/campaigns gives it).

import { get } from "../js/api.js";
import { h, replace, badge, fmtNum, table, errorRegion, showError } from "../js/dom.js";

export async function render(view) {
  const errors = errorRegion();
  const list = h("div", {});
  replace(view, h("h1", {}, "Campaigns"), errors, list);

  async function load(offset) {
    try {
      const page = await get("/api/v1/campaigns", { limit: 50, offset });
      replace(list,
        table(["Campaign", "Status", "Channels", "Variants", "Budget", "Start", "End"],
          page.campaigns.map((c) => [h("a", { href: `#/campaigns/${c.id}` }, c.name), badge(c.status), c.channels.join(", "),
            (c.variants || []).join(", "), fmtNum(c.budget, 2), c.start_date, c.end_date || "—"]),
          { numeric: [4] }),
        h("div", { class: "pager" },
          offset > 0 ? h("button", { type: "button", class: "secondary", onclick: () => load(Math.max(0, offset - 50)) }, "Previous page") : null,
          page.next_offset !== null && page.next_offset !== undefined
            ? h("button", { type: "button", onclick: () => load(page.next_offset) }, "Next page") : null));
    } catch (error) {
      showError(errors, error);
    }
  }
  await load(0);
}
