// API keys (admin): who holds which role, a new key (its secret shown once, here), revoking one.

import { get, post, del } from "../js/api.js";
import { h, replace, badge, table, field, select, errorRegion, showError, clearError, markFields, clearFields, act, when } from "../js/dom.js";

const ROLES = ["viewer", "service", "operator", "admin"];

export async function render(view) {
  const errors = errorRegion();
  const created = h("div", { "aria-live": "polite" });
  const list = h("div", {});
  const form = h("form", { class: "filters new-key", novalidate: true, "aria-label": "New API key" },
    field("Name", h("input", { name: "name", size: 20, required: true })),
    field("Role", select("role", ROLES.map((r) => [r, r]), "viewer")),
    field("Requests per minute (optional)", h("input", { name: "rate_limit_per_minute", type: "number", style: "width:7rem" })),
    h("button", { type: "submit" }, "Create key"));
  replace(view, h("h1", {}, "API keys"), h("h2", {}, "New key"), form, created, errors, h("h2", {}, "Keys"), list);

  async function load() {
    try {
      const { items } = await get("/api/v1/keys");
      replace(list, table(["Name", "Role", "Prefix", "Limit / min", "Created", "Revoked", "Revoke"],
        items.map((k) => {
          let control = "—";
          if (!k.revoked_at) {
            const button = h("button", { type: "button", class: "danger revoke", "aria-label": `Revoke ${k.name}` }, "Revoke");
            button.addEventListener("click", () => act(button, errors, async () => { await del(`/api/v1/keys/${k.id}`); await load(); }));
            control = button;
          }
          return [k.name, badge(k.role, "role"), h("code", {}, k.prefix), k.rate_limit_per_minute ?? "default", when(k.created_at),
            when(k.revoked_at), control];
        })));
    } catch (error) {
      showError(errors, error);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFields(form);
    const body = { name: form.elements.name.value.trim(), role: form.elements.role.value };
    const limit = form.elements.rate_limit_per_minute.value.trim();
    if (limit) body.rate_limit_per_minute = Number(limit);
    act(event.submitter, errors, async () => {
      try {
        const key = await post("/api/v1/keys", body);
        clearError(errors);
        form.reset();
        replace(created, h("div", { class: "secret" },
          h("p", {}, h("strong", {}, `Key "${key.name}" (${key.role}) created.`), " Its secret is shown only now: store it before leaving this page."),
          h("label", { for: "new-secret" }, "Secret"), " ",
          h("input", { id: "new-secret", class: "mono", readonly: true, size: 52, value: key.key })));
        await load();
      } catch (error) {
        markFields(form, error);
        throw error;
      }
    });
  });

  await load();
  // The secret must not outlive the page that showed it.
  return () => replace(created);
}
