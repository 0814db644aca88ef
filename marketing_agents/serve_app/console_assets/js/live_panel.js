// The live panel: the newest event first, each naming its lead and linking to the lead's page.

import { h, fmtNum } from "./dom.js";

const KEEP = 100;

function summary(type, p) {
  if (type === "lead.triaged") {
    return [h("span", { class: `badge ${p.triage_category}` }, p.triage_category), ` ${fmtNum(p.lead_score)} → ${p.status}`,
      p.route_to ? `, route ${p.route_to}` : ""];
  }
  if (type === "lead.rescored") return `${fmtNum(p.lead_score_before)} → ${fmtNum(p.lead_score)} (${p.triage_category})`;
  if (type.startsWith("handoff.")) return [p.to_agent || "", p.quality !== undefined ? `, quality ${fmtNum(p.quality, 2)}` : ""];
  if (type === "review.decided") return `${p.decision}${p.queue ? " (" + p.queue + ")" : ""} by ${p.decided_by || "?"}`;
  if (type.startsWith("review.")) return p.queue || p.held_by_name || "";
  if (type === "interaction.recorded") return `${p.type} → ${p.status}`;
  return "";
}

function renderEvent(frame) {
  const p = frame.payload || {};
  const lead = p.lead_id ? h("a", { href: `#/leads/${p.lead_id}` }, "lead " + p.lead_id.slice(0, 8)) : null;
  return h("li", { "data-event-id": frame.id, "data-type": frame.type, "data-lead-id": p.lead_id || null },
    h("span", { class: "type" }, frame.type), " ", lead, h("br"),
    h("span", {}, summary(frame.type, p)), " ",
    h("time", { class: "muted", datetime: frame.ts }, new Date(frame.ts).toLocaleTimeString()));
}

export function showEvent(list, frame) {
  list.prepend(renderEvent(frame));
  while (list.children.length > KEEP) list.lastElementChild.remove();
}
