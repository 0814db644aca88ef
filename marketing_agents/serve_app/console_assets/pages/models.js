// Scoring models: every registered version with its hold-out metrics and a gains chart; deciders
// promote a version or roll back to the one active before.

import { get, post } from "../js/api.js";
import { h, replace, badge, fmtDate, fmtNum, fmtPct, facts, table, errorRegion, showError, act } from "../js/dom.js";
import { may } from "../js/access.js";
import { lineChart } from "../js/charts.js";

// x: the top k % of leads by score; y: the share of all converters among them. Contacting at random
// captures k % of them: the diagonal.
function gainsChart(versions) {
  const measured = versions.filter((v) => v.metrics && Object.keys(v.metrics.capture_at_pct).length);
  if (!measured.length) return h("p", { class: "muted" }, "No version has capture_at_pct in its metrics: no gains chart.");
  const series = measured.map((v) => ({
    name: v.version + (v.active ? " (active)" : ""),
    // Every converter is among all the leads: the curve ends at (100 %, 100 %).
    points: [[0, 0], ...Object.entries(v.metrics.capture_at_pct).map(([pct, share]) => [Number(pct), share]).sort((a, b) => a[0] - b[0]), [100, 1]],
  }));
  series.push({ name: "random", points: [[0, 0], [100, 1]], dashed: true, color: "#8a94a3" });
  return lineChart("Gains: share of converters captured in the top k % of leads", series,
    { xMin: 0, xMax: 100, yMin: 0, yMax: 1, xFormat: (v) => `${Math.round(v)} %`, yFormat: (v) => `${Math.round(v * 100)} %`,
      xLabel: "top k % of leads by score", yLabel: "converters captured" });
}

export async function render(view) {
  const errors = errorRegion();
  const notice = h("p", { class: "notice", role: "status", hidden: true });
  const body = h("div", {});
  replace(view, h("h1", {}, "Scoring models"), notice, errors, body);

  function announce(change) {
    notice.textContent = change.changed === false
      ? `${change.active} was already active.`
      : `${change.action === "promote" ? "Promoted" : "Rolled back to"} ${change.active} (before: ${change.previous || "none"}).`;
    notice.hidden = false;
  }

  async function load() {
    try {
      const models = await get("/api/v1/models");
      const rollback = h("button", { type: "button", class: "secondary rollback-model" }, `Roll back to ${models.history[models.history.length - 1] || "the previous version"}`);
      rollback.addEventListener("click", () => act(rollback, errors, async () => { announce(await post("/api/v1/models/rollback")); await load(); }));
      const rows = models.versions.map((v) => {
        const path = `/api/v1/models/${encodeURIComponent(v.version)}/promote`;
        let control = v.active ? badge("active", "ok") : "—";
        if (!v.active && may("POST", path)) {
          const button = h("button", { type: "button", class: "promote", "data-version": v.version, "aria-label": `Promote ${v.version}` }, "Promote");
          button.addEventListener("click", () => act(button, errors, async () => { announce(await post(path)); await load(); }));
          control = button;
        }
        const m = v.metrics || {};
        return [h("code", {}, v.version), fmtDate(v.registered_at), `${v.model_kind || "—"}, ${v.synthetic ? "synthetic data" : "your data"}`,
          fmtNum(m.roc_auc, 3), fmtNum(m.pr_auc, 3), fmtNum(m.brier, 3), fmtPct(m.base_rate),
          fmtNum(m.n_rows, 0), m.lift_at_pct && m.lift_at_pct["10"] !== undefined ? fmtNum(m.lift_at_pct["10"], 2) : "—", control];
      });
      replace(body,
        h("section", { class: "card" },
          facts([["Active version", h("code", { class: "active-version" }, models.active || "none (rules only)")],
            ["Earlier active versions", models.history.length ? models.history.join(" → ") : "none"]]),
          models.history.length && may("POST", "/api/v1/models/rollback") ? h("p", {}, rollback) : null),
        table(["Version", "Registered", "Kind", "ROC AUC", "PR AUC", "Brier", "Base rate", "Rows", "Lift at 10 %", "Active"],
          rows, { numeric: [3, 4, 5, 6, 7, 8] }),
        gainsChart(models.versions));
    } catch (error) {
      showError(errors, error);
    }
  }
  await load();
}
