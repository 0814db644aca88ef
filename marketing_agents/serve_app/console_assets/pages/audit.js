// The audit (admin): every write and who made it, newest first, a page at a time (before_id).

import { get } from "../js/api.js";
import { h, replace, table, field, errorRegion, showError, clearError, markFields, when } from "../js/dom.js";

export async function render(view, { query }) {
  const errors = errorRegion();
  const list = h("div", {});
  const keyInput = h("input", { name: "key_id", size: 38, value: query.get("key_id") || "", placeholder: "all keys", spellcheck: "false" });
  const form = h("form", { class: "filters", novalidate: true, "aria-label": "Audit filter" },
    field("Key id", keyInput), h("button", { type: "submit" }, "Show"));
  replace(view, h("h1", {}, "Audit"), form, errors, list);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = keyInput.value.trim();
    location.hash = "#/audit" + (value ? `?key_id=${encodeURIComponent(value)}` : "");
  });

  let starts = [null];  // the before_id each page seen started from
  async function load(beforeId, pageNumber) {
    clearError(errors);
    try {
      const { items } = await get("/api/v1/audit", { key_id: query.get("key_id"), limit: 50, before_id: beforeId });
      starts = starts.slice(0, pageNumber);
      starts[pageNumber - 1] = beforeId;
      const last = items[items.length - 1];
      replace(list,
        table(["Id", "At", "Key", "Method", "Path", "Status"],
          items.map((a) => [String(a.id), when(a.at), h("a", { href: `#/audit?key_id=${a.key_id}` }, h("code", {}, a.key_id.slice(0, 8))),
            a.method, h("code", {}, a.path), String(a.status)]), { numeric: [0, 5] }),
        h("div", { class: "pager" },
          pageNumber > 1 ? h("button", { type: "button", class: "secondary", onclick: () => load(starts[pageNumber - 2], pageNumber - 1) }, "Newer") : null,
          h("span", { class: "muted" }, `Page ${pageNumber}`),
          items.length === 50 && last ? h("button", { type: "button", onclick: () => load(last.id, pageNumber + 1) }, "Next page") : null));
    } catch (error) {
      showError(errors, error);
      markFields(form, error);
    }
  }
  await load(null, 1);
}
