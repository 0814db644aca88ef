// What the signed-in key may do: the route policy as it applies to its role, which GET /api/v1/me
// answers (POLICY in marketing_agents/domain/access.py: first match wins, no match is refused). Pages put
// a control in the DOM only when may() allows its request, so a role sees no control it cannot use.

import { currentWho } from "./session.js";

function matches(pattern, segments) {
  const parts = pattern.split("/").filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === "**") return true;
    if (i >= segments.length) return false;
    if (!parts[i].startsWith("{") && parts[i] !== segments[i]) return false;
  }
  return parts.length === segments.length;
}

export function may(method, path) {
  const who = currentWho();
  if (!who || !who.policy) return false;
  const segments = path.split("?")[0].split("/").filter(Boolean);
  const rule = who.policy.find((r) => (!r.methods || r.methods.includes(method)) && matches(r.pattern, segments));
  return Boolean(rule && rule.allowed);
}
