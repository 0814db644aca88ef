// One lead: who, its triage with every score factor, routing, handoffs with their quality, the
// engagement plan and its touchpoints, the review it waits for, its profile and its timeline.

import { get } from "../js/api.js";
import { h, append, replace, badge, fmtDate, fmtNum, fmtPct, facts, table, errorRegion, showError, when } from "../js/dom.js";
import { may } from "../js/access.js";
import { planView } from "../js/plan.js";
import { reviewPanel } from "../js/review_panel.js";
import { lineChart, barChart } from "../js/charts.js";

function consentText(consent) {
  const given = Object.entries(consent || {}).filter(([, yes]) => yes).map(([channel]) => channel);
  return given.length ? given.join(", ") : "none";
}

function triageView(triage) {
  const e = triage.enrichment;
  return h("section", { class: "card", "aria-labelledby": "triage-h" },
    h("h2", { id: "triage-h" }, "Triage"),
    h("div", { class: "grid2" },
      facts([
        ["Lead score", h("strong", { class: "lead-score" }, fmtNum(triage.lead_score))],
        ["Category", badge(triage.triage_category)],
        ["Fit score", fmtNum(triage.fit_score)],
        ["Engagement score", fmtNum(triage.engagement_score)],
        ["Scoring model", h("code", {}, triage.scoring_model)],
        ["Model probability", triage.model_probability === null ? "—" : fmtPct(triage.model_probability)],
        ["Triaged", fmtDate(triage.triaged_at)],
      ]),
      facts([
        ["Routed to", triage.route_to || "nobody"],
        ["Routing rule", triage.routing_rule || "—"],
        ["Reason", triage.reason],
        e ? ["Region", `${e.region} (${e.timezone})`] : null,
        e ? ["Company size band", e.company_size_band] : null,
        e ? ["Email domain", `${e.email_domain} (${e.email_domain_type})`] : null,
        e && e.duplicate_of ? ["Possible duplicate of", h("a", { href: `#/leads/${e.duplicate_of}` }, e.duplicate_of)] : null,
      ])),
    h("h3", {}, "Score factors"),
    table(["Factor", "Points", "Explanation"], triage.factors.map((f) => [f.name, fmtNum(f.points), f.explanation]), { numeric: [1] }));
}

function handoffsView(handoffs) {
  return h("section", { class: "card", "aria-labelledby": "handoffs-h" },
    h("h2", { id: "handoffs-h" }, "Handoffs"),
    table(["Created", "To", "Status", "Quality", "Completeness / freshness / consistency", "Reason and problems"],
      handoffs.map((ho) => [when(ho.created_at), ho.to_agent, badge(ho.status), fmtNum(ho.quality.score, 2),
        [ho.quality.completeness, ho.quality.freshness, ho.quality.consistency].map((v) => fmtNum(v, 2)).join(" / "),
        [ho.reason, ...ho.quality.problems.map((p) => [h("br"), "· " + p])]]),
      { numeric: [3] }));
}

function profileView(profile) {
  const history = profile.behaviour.score_history;
  const channels = Object.entries(profile.behaviour.engagement_by_channel);
  const rfm = profile.rfm;
  return h("section", { class: "card", "aria-labelledby": "profile-h" },
    h("h2", { id: "profile-h" }, "Profile"),
    facts([
      ["Last activity", fmtDate(profile.behaviour.last_activity_at)],
      ["RFM", rfm ? `${rfm.rfm_segment} (R${rfm.r_score} F${rfm.f_score} M${rfm.m_score}, as of ${rfm.as_of})` : "no purchase yet"],
    ]),
    history.length > 1
      ? lineChart("Score history", [{ name: "lead_score", points: history.map((p) => [new Date(p.at).getTime(), p.lead_score]) }],
        { xTime: true, yMin: 0, yMax: 100, yLabel: "lead_score" })
      : h("p", { class: "muted" }, history.length ? `One score so far: ${fmtNum(history[0].lead_score)} at ${fmtDate(history[0].at)}.` : "No score history yet."),
    channels.length
      ? barChart("Engagements by channel", channels.map(([label, value]) => ({ label, value })))
      : h("p", { class: "muted" }, "No engagement counted yet."));
}

// What happened to the lead, newest first: its history (what each agent and person did, and why,
// rescorings included), touchpoints sent, and its interactions (personal data: for the roles that may
// read them).
function timelineView(detail, interactions) {
  const entries = [];
  for (const t of detail.engagement_plan ? detail.engagement_plan.touchpoints : []) {
    if (t.status === "sent") entries.push([t.scheduled_at, "touchpoint sent", `${t.channel} · ${t.template}`]);
  }
  for (const item of detail.history || []) entries.push([item.at, `${item.action} (${item.actor})`, item.reason || ""]);
  for (const row of interactions ? interactions.items : []) {
    entries.push([row.occurred_at, `interaction: ${row.type}`, [row.channel, row.value ? `value ${row.value}` : null].filter(Boolean).join(" · ")]);
  }
  entries.sort((a, b) => new Date(b[0]) - new Date(a[0]));
  return h("section", { class: "card", "aria-labelledby": "timeline-h" },
    h("h2", { id: "timeline-h" }, "Timeline"),
    interactions ? null : h("p", { class: "muted" }, "Interactions are listed for the roles that may read them (operator, admin)."),
    table(["When", "What", "Detail"], entries.map(([at, what, detail]) => [when(at), what, detail])));
}

export async function render(view, { params }) {
  const id = params.id;
  const errors = errorRegion();
  const heading = h("h1", {}, "Lead");
  replace(view, h("p", {}, h("a", { href: "#/leads" }, "← Leads")), heading, errors);
  let detail;
  try {
    detail = await get(`/api/v1/leads/${id}`);
  } catch (error) {
    showError(errors, error);
    // A duplicate merged away answers 404 naming the lead it went into.
    if (error.details && error.details.merged_into) {
      errors.append(h("p", {}, h("a", { href: `#/leads/${error.details.merged_into}` }, "Open the lead it was merged into")));
    }
    return;
  }
  const lead = detail.lead;
  const name = `${lead.first_name} ${lead.last_name}`;
  heading.textContent = name;
  const [profile, interactions] = await Promise.all([
    get(`/api/v1/leads/${id}/profile`).catch((error) => { showError(errors, error); return null; }),
    may("GET", `/api/v1/leads/${id}/interactions`)
      ? get(`/api/v1/leads/${id}/interactions`, { limit: 200 }).catch((error) => { showError(errors, error); return null; })
      : null,
  ]);

  append(view,
    h("p", {}, `${lead.job_title} at ${lead.company} · `, h("span", { class: "lead-status" }, badge(lead.status))),
    h("section", { class: "card", "aria-labelledby": "who-h" },
      h("h2", { id: "who-h" }, "Lead"),
      facts([
        ["Email", lead.email], ["Industry", lead.industry], ["Company size", fmtNum(lead.company_size, 0)],
        ["Country", lead.country], ["Source", lead.source], ["Consent", consentText(lead.consent)],
        ["External id", lead.external_id || "—"], ["Campaign", lead.campaign_id || "—"], ["Created", fmtDate(lead.created_at)],
        ["Lead id", h("code", {}, lead.id)],
      ])),
    detail.review ? reviewPanel({ id: lead.id, name }, detail.review, { onDecided: () => render(view, { params }) }) : null,
    triageView(detail.triage),
    handoffsView(detail.handoffs),
    h("section", { class: "card", "aria-labelledby": "plan-h" }, h("h2", { id: "plan-h" }, "Engagement plan"), planView(detail.engagement_plan)),
    profile ? profileView(profile) : null,
    timelineView(detail, interactions));
}
