// An engagement plan as the lead page and a review's outcome show it: its sequence, why, and each
// touchpoint with its delivery status.

import { h, badge, fmtDate, facts, table, when } from "./dom.js";

export function planView(plan) {
  if (!plan) return h("p", { class: "muted" }, "No engagement plan: the lead was disqualified or is held for review.");
  return h("div", { class: "plan", "data-plan-id": plan.id },
    facts([
      ["Sequence", plan.sequence],
      ["Rationale", plan.rationale],
      plan.arm ? ["Campaign arm", plan.arm] : null,
      ["Planned", fmtDate(plan.created_at)],
    ]),
    h("h3", {}, `Touchpoints (${plan.touchpoints.length})`),
    table(["Step", "Channel", "Template", "Subject", "Scheduled", "Status"],
      plan.touchpoints.map((t) => [String(t.step), t.channel, t.template, t.subject || "—", when(t.scheduled_at), badge(t.status)]),
      { caption: "touchpoints", numeric: [0] }));
}
