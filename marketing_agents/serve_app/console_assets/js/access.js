// What the signed-in role may do: the routes the console calls, with the roles POLICY in
// marketing_agents/domain/access.py gives them (first match wins, no match is refused). Pages put a
// control in the DOM only when may() allows its request, so a role sees no control it cannot use.

import { currentWho } from "./session.js";

const ALL = ["admin", "operator", "service", "viewer"];
const WRITERS = ["admin", "operator", "service"];
const DECIDERS = ["admin", "operator"];
const ADMINS = ["admin"];
const READ = ["GET"];

const RULES = [
  [null, "/api/v1/keys/**", ADMINS],
  [READ, "/api/v1/audit", ADMINS],
  [READ, "/api/v1/me", ALL],
  [READ, "/api/v1/leads", ALL],
  [["POST"], "/api/v1/leads", WRITERS],
  [READ, "/api/v1/leads/{id}", ALL],
  [["PATCH"], "/api/v1/leads/{id}", WRITERS],
  [["DELETE"], "/api/v1/leads/{id}", ADMINS],
  [READ, "/api/v1/leads/{id}/profile", ALL],
  [READ, "/api/v1/leads/{id}/interactions", DECIDERS],
  [READ, "/api/v1/leads/{id}/export", DECIDERS],
  [["POST", "DELETE"], "/api/v1/leads/{id}/claim", DECIDERS],
  [["POST"], "/api/v1/leads/{id}/review", DECIDERS],
  [READ, "/api/v1/review-queues", ALL],
  [READ, "/api/v1/review-queues/{name}/leads", ALL],
  [READ, "/api/v1/campaigns", ALL],
  [READ, "/api/v1/campaigns/{id}", ALL],
  [READ, "/api/v1/campaigns/{id}/performance", ALL],
  [READ, "/api/v1/campaigns/{id}/optimizations", ALL],
  [["POST"], "/api/v1/optimizations/{id}/approve", DECIDERS],
  [["POST"], "/api/v1/optimizations/{id}/rollback", DECIDERS],
  [READ, "/api/v1/escalations", ALL],
  [["POST"], "/api/v1/escalations/{id}/acknowledge", DECIDERS],
  [READ, "/api/v1/models", ALL],
  [["POST", "PUT", "PATCH", "DELETE"], "/api/v1/models/**", DECIDERS],
  [READ, "/api/v1/system/status", ALL],
];

function matches(pattern, segments) {
  const parts = pattern.split("/").filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === "**") return true;
    if (i >= segments.length) return false;
    if (!parts[i].startsWith("{") && parts[i] !== segments[i]) return false;
  }
  return parts.length === segments.length;
}

function rolesFor(method, path) {
  const segments = path.split("?")[0].split("/").filter(Boolean);
  const rule = RULES.find(([methods, pattern]) => (!methods || methods.includes(method)) && matches(pattern, segments));
  return rule ? rule[2] : [];
}

export function may(method, path) {
  const who = currentWho();
  return Boolean(who) && rolesFor(method, path).includes(who.role);
}
