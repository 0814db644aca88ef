// One campaign: its allocation, each arm's share over the optimizer's steps, client metrics and the
// system's observed counts per arm, and its optimizations, where a person approves a proposal or rolls
// an applied step back.

import { get, post } from "../js/api.js";
import { h, replace, badge, fmtDate, fmtNum, fmtPct, facts, table, errorRegion, showError, act, uid, when } from "../js/dom.js";
import { may } from "../js/access.js";
import { lineChart, barChart } from "../js/charts.js";

const armKey = (arm) => `${arm.variant}/${arm.channel}`;

function allocationView(detail) {
  const current = detail.allocation;
  if (!current) return h("p", { class: "muted" }, "No allocation yet: the campaign runs on an equal split until its first decision.");
  const { shares, paused } = current.allocation;
  return [
    barChart("Current allocation", Object.entries(shares).map(([label, value]) => ({ label: paused.includes(label) ? `${label} (paused)` : label, value })),
      { format: (v) => fmtPct(v), max: 1, caption: `updated ${fmtDate(current.updated_at)}` }),
  ];
}

// The share of each arm after every applied step, over the days of evidence the steps were made on
// (a decision's as_of; a rollback carries the day of the step it undid), from the first step's start.
function sharesOverTime(optimizations) {
  const applied = optimizations.filter((o) => o.applied_at).sort((a, b) => new Date(a.applied_at) - new Date(b.applied_at));
  if (!applied.length) return h("p", { class: "muted" }, "No optimization applied yet: no shares to follow over time.");
  const DAY = 86400000;
  const when = (o) => (o.decision.as_of ? Date.parse(o.decision.as_of + "T00:00:00Z") : Date.parse(o.applied_at));
  const arms = [...new Set(applied.flatMap((o) => Object.keys(o.decision.proposed.shares)))].sort();
  const start = applied[0];
  const series = arms.map((arm) => ({
    name: arm,
    points: [[when(start) - DAY, start.decision.previous.shares[arm] ?? 0],
      ...applied.map((o) => [when(o), o.decision.proposed.shares[arm] ?? 0])],
  }));
  return lineChart("Budget share per arm over the optimizer's steps", series,
    { xTime: true, yMin: 0, yMax: 1, yFormat: (v) => `${Math.round(v * 100)} %`, yLabel: "share",
      caption: "by the day of metrics each step was made on; the first point is the split before the first step" });
}

// One line per arm over the days: ``rows`` are the performance's daily rows, ``day`` and ``arm`` read a
// row's date and arm, ``value`` the figure drawn.
function perArmOverTime(title, rows, day, arm, value, options) {
  if (new Set((rows || []).map(day)).size < 2) return null;  // one day is no line: the tables and bars show it
  const byArm = new Map();
  for (const row of rows) {
    const points = byArm.get(arm(row)) || [];
    points.push([Date.parse(day(row) + "T00:00:00Z"), value(row)]);
    byArm.set(arm(row), points);
  }
  const series = [...byArm.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([name, points]) => ({ name, points: points.sort((a, b) => a[0] - b[0]) }));
  const highest = Math.max(...series.flatMap((one) => one.points.map(([, y]) => y)));
  return lineChart(title, series, { xTime: true, yMin: 0, yMax: Math.max(1, highest), ...options });
}

function clientMetricsView(performance) {
  const arms = performance.arms;
  if (!arms.length) return h("p", { class: "muted" }, "No client metrics posted yet (POST /api/v1/campaigns/{id}/metrics).");
  return [
    h("p", { class: "muted" }, `From ${performance.first_date} to ${performance.last_date}.`),
    table(["Arm", "Days", "Impressions", "Clicks", "Conversions", "Spend", "Revenue", "CTR", "CVR", "CPA", "ROAS", "ROI"],
      [...arms.map((a) => [armKey(a.arm), String(a.days), fmtNum(a.impressions, 0), fmtNum(a.clicks, 0), fmtNum(a.conversions, 0),
        fmtNum(a.spend, 2), fmtNum(a.revenue, 2), fmtPct(a.ctr, 2), fmtPct(a.cvr, 2), fmtNum(a.cpa, 2), fmtNum(a.roas, 2), fmtPct(a.roi)]),
      [h("strong", {}, "total"), "", fmtNum(performance.total.impressions, 0), fmtNum(performance.total.clicks, 0),
        fmtNum(performance.total.conversions, 0), fmtNum(performance.total.spend, 2), fmtNum(performance.total.revenue, 2),
        fmtPct(performance.total.ctr, 2), fmtPct(performance.total.cvr, 2), fmtNum(performance.total.cpa, 2), fmtNum(performance.total.roas, 2), fmtPct(performance.total.roi)]],
      { numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] }),
    perArmOverTime("Conversions per day, per arm (client metrics)", performance.days, (d) => d.metric_date,
      (d) => `${d.variant}/${d.channel}`, (d) => d.conversions, { yLabel: "conversions" }),
    barChart("Conversion rate per click (CVR)", arms.map((a) => ({ label: armKey(a.arm), value: a.cvr })), { format: (v) => fmtPct(v) }),
    barChart("Return on spend (ROI)", arms.map((a) => ({ label: armKey(a.arm), value: a.roi })), { format: (v) => fmtPct(v) }),
  ];
}

function observedView(performance) {
  const observed = performance.observed;
  if (!observed.arms.length) return h("p", { class: "muted" }, "Nothing observed yet: no lead of this campaign has come in.");
  return [
    h("p", { class: "muted" }, `Counted from the system's own leads, touchpoints and interactions; refreshed ${fmtDate(observed.refreshed_at)}.`),
    table(["Arm", "Leads", "Engaged", "Converted", "Touchpoints sent", "Opens", "Clicks", "Replies", "Conversions", "Revenue"],
      observed.arms.map((a) => [a.arm || "no arm", String(a.leads), String(a.leads_engaged), String(a.leads_converted), String(a.touchpoints_sent),
        String(a.opens), String(a.clicks), String(a.replies), String(a.conversions), fmtNum(a.revenue, 2)]),
      { numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9] }),
    perArmOverTime("Leads per capture day, per arm (observed)", performance.observed_days,
      (d) => d.cohort_date, (d) => d.arm || "no arm", (d) => d.leads, { yLabel: "leads" }),
    perArmOverTime("Converted leads per capture day, per arm (observed)", performance.observed_days,
      (d) => d.cohort_date, (d) => d.arm || "no arm", (d) => d.leads_converted, { yLabel: "converted" }),
    barChart("Leads per arm (observed)", observed.arms.map((a) => ({ label: a.arm || "no arm", value: a.leads })), { format: (v) => fmtNum(v, 0) }),
  ];
}

function optimizationsView(optimizations, refresh) {
  const rows = optimizations.map((o) => {
    const approvePath = `/api/v1/optimizations/${o.id}/approve`;
    const rollbackPath = `/api/v1/optimizations/${o.id}/rollback`;
    const errors = errorRegion();
    const controls = [];
    const decide = (label, kind, path, done) => {
      const note = h("input", { name: "note", id: uid("note"), size: 16, "aria-label": `Note for: ${label}` });
      const button = h("button", { type: "button", class: kind, "data-optimization-id": o.id,
        onclick: () => act(button, errors, async () => {
          const record = await post(path, note.value.trim() ? { note: note.value.trim() } : {});
          refresh(done(record));
        }) }, label);
      controls.push(h("div", { class: "row" }, note, button));
    };
    if (o.status === "proposed" && may("POST", approvePath)) {
      decide("Approve", "approve", approvePath, (r) => `Optimization ${r.id} approved: it is ${r.status}.`);
    }
    if (o.status === "applied" && !o.decision.is_rollback && may("POST", rollbackPath)) {
      decide("Roll back", "secondary rollback-optimization", rollbackPath, (r) => `Optimization ${o.id} rolled back by ${r.id}.`);
    }
    const escalations = o.escalations.map((e) => h("div", {}, badge(e.status), " ", e.message));
    const actions = o.decision.actions.filter((a) => a.action !== "keep").map((a) => h("div", {}, `${a.arm}: ${a.action} ${fmtPct(a.previous_share)} → ${fmtPct(a.new_share)}`));
    return [when(o.created_at), o.created_by, h("span", { class: "optimization-status", "data-optimization-id": o.id }, badge(o.status)),
      o.decision.as_of || "—", o.decision.is_rollback ? "rollback" : (actions.length ? actions : "no change"),
      escalations.length ? escalations : "—", controls.length ? [controls, errors] : errors];
  });
  return table(["Created", "By", "Status", "As of", "Actions", "Escalations", "Decision"], rows);
}

export async function render(view, { params }) {
  const id = params.id;
  const errors = errorRegion();
  const heading = h("h1", {}, "Campaign");
  const notice = h("p", { class: "notice", role: "status", hidden: true });
  const body = h("div", {});
  replace(view, h("p", {}, h("a", { href: "#/campaigns" }, "← Campaigns")), heading, notice, errors, body);

  async function load(message) {
    try {
      const [detail, performance, listed] = await Promise.all([
        get(`/api/v1/campaigns/${id}`), get(`/api/v1/campaigns/${id}/performance`), get(`/api/v1/campaigns/${id}/optimizations`, { limit: 50 }),
      ]);
      const c = detail.campaign;
      heading.textContent = c.name;
      if (message) { notice.textContent = message; notice.hidden = false; }
      replace(body,
        h("section", { class: "card", "aria-labelledby": "campaign-h" }, h("h2", { id: "campaign-h" }, "Campaign"),
          facts([["Status", badge(c.status)], ["Objective", c.objective || "—"], ["Channels", c.channels.join(", ")],
            ["Variants", (c.variants || []).join(", ")], ["Budget", fmtNum(c.budget, 2)], ["Runs", `${c.start_date} → ${c.end_date || "open"}`]])),
        h("section", { "aria-labelledby": "allocation-h" }, h("h2", { id: "allocation-h" }, "Allocation"), allocationView(detail), sharesOverTime(listed.optimizations)),
        h("section", { "aria-labelledby": "client-h" }, h("h2", { id: "client-h" }, "Client metrics per arm"), clientMetricsView(performance)),
        h("section", { "aria-labelledby": "observed-h" }, h("h2", { id: "observed-h" }, "Observed per arm"), observedView(performance)),
        h("section", { "aria-labelledby": "optimizations-h" }, h("h2", { id: "optimizations-h" }, "Optimizations"), optimizationsView(listed.optimizations, load)));
    } catch (error) {
      showError(errors, error);
    }
  }
  await load();
}
