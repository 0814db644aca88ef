// Hash routes (#/leads, #/leads/<id>, ...) to page modules, loaded only when first visited. The hash
// holds where the person is and a page's filters, never the key.

import { h } from "./dom.js";
import { may } from "./access.js";

// [pattern, module, the read the page needs]; ":name" captures one segment.
const ROUTES = [
  ["/leads", "../pages/leads.js", "/api/v1/leads"],
  ["/leads/:id", "../pages/lead.js", "/api/v1/leads/{id}"],
  ["/reviews", "../pages/reviews.js", "/api/v1/review-queues"],
  ["/reviews/:queue", "../pages/reviews.js", "/api/v1/review-queues/{name}/leads"],
  ["/campaigns", "../pages/campaigns.js", "/api/v1/campaigns"],
  ["/campaigns/:id", "../pages/campaign.js", "/api/v1/campaigns/{id}"],
  ["/escalations", "../pages/escalations.js", "/api/v1/escalations"],
  ["/models", "../pages/models.js", "/api/v1/models"],
  ["/system", "../pages/system.js", "/api/v1/system/status"],
  ["/keys", "../pages/keys.js", "/api/v1/keys"],
  ["/audit", "../pages/audit.js", "/api/v1/audit"],
];

export const HOME = "#/leads";

function parse(hash) {
  const [path, search] = hash.replace(/^#/, "").split("?");
  return { path: path || "/", query: new URLSearchParams(search || "") };
}

function match(path) {
  const segments = path.split("/").filter(Boolean);
  for (const [pattern, module, read] of ROUTES) {
    const parts = pattern.split("/").filter(Boolean);
    if (parts.length !== segments.length) continue;
    const params = {};
    if (parts.every((part, i) => part.startsWith(":") ? (params[part.slice(1)] = decodeURIComponent(segments[i])) : part === segments[i])) {
      return { module, read, params };
    }
  }
  return null;
}

export class Router {
  constructor(main, context) {
    this.main = main;
    this.context = context;
    this.cleanup = null;
    this.visits = 0;
    this.onChange = () => this.show();
  }

  start() {
    window.addEventListener("hashchange", this.onChange);
    this.show();
  }

  stop() {
    window.removeEventListener("hashchange", this.onChange);
    this.dispose();
    this.main.replaceChildren();
  }

  dispose() {
    if (this.cleanup) this.cleanup();
    this.cleanup = null;
  }

  async show() {
    const { path, query } = parse(location.hash);
    const route = match(path);
    if (!route || !may("GET", route.read)) {
      location.replace(HOME);
      return;
    }
    this.dispose();
    // A fresh view per visit: a slow page that finishes after the person moved on writes into a
    // detached view, not over the next page.
    const view = h("div", { class: "view" });
    this.main.replaceChildren(view);
    this.context.onNavigate(path);
    const page = await import(route.module);
    if (!view.isConnected) return;
    const cleanup = await page.render(view, { params: route.params, query, ...this.context });
    if (!view.isConnected) {
      if (cleanup) cleanup();
      return;
    }
    this.cleanup = cleanup || null;
    const heading = view.querySelector("h1");
    if (heading) document.title = `${heading.textContent} · marketing-agents console`;
    // After moving to another page (not on the first), the keyboard and screen readers start at its content.
    if (this.visits++ > 0) this.main.focus({ preventScroll: true });
  }
}
