// System status: Ray nodes, each Serve deployment's replicas, each store's health.

import { get } from "../js/api.js";
import { h, replace, badge, fmtNum, facts, table, errorRegion, showError } from "../js/dom.js";

export async function render(view) {
  const errors = errorRegion();
  const body = h("div", {});
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  replace(view, h("div", { class: "row" }, h("h1", {}, "System status"), refresh), errors, body);

  async function load() {
    refresh.disabled = true;
    try {
      const s = await get("/api/v1/system/status");
      replace(body,
        h("section", { class: "card" }, facts([
          ["Status", badge(s.status, s.status === "ok" ? "ok" : "bad")], ["Version", s.version],
          ["Application", `${s.application} (${s.application_status})`]])),
        h("h2", {}, "Nodes"),
        table(["Node", "Address", "Head", "Alive", "CPU", "Memory (GiB)"],
          s.nodes.map((n) => [h("code", {}, n.node_id.slice(0, 12)), n.address, n.is_head ? "head" : "worker", n.alive ? "alive" : "dead",
            fmtNum(n.resources.CPU), fmtNum((n.resources.memory || 0) / 2 ** 30)]), { numeric: [4, 5] }),
        h("h2", {}, "Deployments"),
        table(["Deployment", "Status", "Running replicas", "Replica states", "Message"],
          s.deployments.map((d) => [d.name, badge(d.status, d.status === "HEALTHY" ? "ok" : "bad"), String(d.running_replicas),
            Object.entries(d.replica_states).map(([state, n]) => `${state}: ${n}`).join(", "), d.message || "—"]), { numeric: [2] }),
        h("h2", {}, "Stores"),
        table(["Store", "Healthy", "Target", "Latency (ms)", "Error"],
          s.stores.map((st) => [st.name, badge(st.healthy ? "healthy" : "unhealthy", st.healthy ? "ok" : "bad"), h("code", {}, st.target), fmtNum(st.latency_ms, 2), st.error || "—"]),
          { numeric: [3] }));
    } catch (error) {
      showError(errors, error);
    } finally {
      refresh.disabled = false;
    }
  }
  refresh.addEventListener("click", load);
  await load();
}
