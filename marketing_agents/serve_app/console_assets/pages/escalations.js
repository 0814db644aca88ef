// Escalations: what the optimizer asks a person to look at, oldest first; deciders acknowledge them.

import { get, post } from "../js/api.js";
import { h, replace, badge, fmtDate, fmtNum, table, field, select, errorRegion, showError, act, uid, when } from "../js/dom.js";
import { may } from "../js/access.js";

export async function render(view, { query }) {
  const status = query.get("status") || "open";
  const errors = errorRegion();
  const list = h("div", {});
  const filter = select("status", [["open", "open"], ["acknowledged", "acknowledged"], ["all", "all"]], status);
  filter.addEventListener("change", () => { location.hash = `#/escalations?status=${filter.value}`; });
  replace(view, h("h1", {}, "Escalations"), h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, field("Show", filter)), errors, list);

  async function load() {
    try {
      const { escalations } = await get("/api/v1/escalations", { status, limit: 200 });
      replace(list, table(["Opened", "Kind", "Campaign", "Arm", "Observed", "Threshold", "Message", "Status", "Acknowledge"],
        escalations.map((e) => {
          const path = `/api/v1/escalations/${e.id}/acknowledge`;
          let control = e.acknowledged_at ? `${e.acknowledged_by} at ${fmtDate(e.acknowledged_at)}${e.note ? ": " + e.note : ""}` : "—";
          if (e.status === "open" && may("POST", path)) {
            const rowErrors = errorRegion();
            const note = h("input", { name: "note", id: uid("note"), size: 14, "aria-label": `Note for acknowledging: ${e.message}` });
            const button = h("button", { type: "button", class: "acknowledge", "data-escalation-id": e.id,
              onclick: () => act(button, rowErrors, async () => { await post(path, note.value.trim() ? { note: note.value.trim() } : {}); await load(); }) },
            "Acknowledge");
            control = [h("div", { class: "row" }, note, button), rowErrors];
          }
          return [when(e.created_at), e.kind, h("a", { href: `#/campaigns/${e.campaign_id}` }, "campaign"), e.arm || "—",
            fmtNum(e.observed, 3), fmtNum(e.threshold, 3), e.message, badge(e.status), control];
        }), { numeric: [4, 5] }));
    } catch (error) {
      showError(errors, error);
    }
  }
  await load();
}
