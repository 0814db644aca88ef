// Reviewing one lead held in a queue: claim it, decide (engage, reassign, disqualify, merge) with a
// note, and see the outcome. The controls exist only for the roles that may use them.

import { post, del, get } from "./api.js";
import { h, replace, facts, fmtDate, errorRegion, clearError, markFields, clearFields, act, uid } from "./dom.js";
import { may } from "./access.js";
import { planView } from "./plan.js";

const DECISIONS = [
  ["engage", "Engage: hand it to the engagement agent"],
  ["reassign", "Reassign to another queue"],
  ["disqualify", "Disqualify"],
  ["merge", "Merge into another lead"],
];

function claimText(claim) {
  if (!claim) return "Not claimed.";
  return `Claimed by ${claim.held_by_name || claim.held_by} until ${fmtDate(claim.expires_at)}.`;
}

function outcomeView(outcome) {
  return h("div", { class: "notice outcome", "data-decision": outcome.decision },
    h("p", {}, h("strong", {}, `Decision recorded: ${outcome.decision}`), ` — the lead is now ${outcome.status}.`),
    facts([
      outcome.queue ? ["Queue", outcome.queue] : null,
      outcome.merged_into ? ["Merged into", h("a", { href: `#/leads/${outcome.merged_into}` }, outcome.merged_into)] : null,
      ["Decided by", outcome.decided_by],
      ["At", fmtDate(outcome.decided_at)],
      outcome.note ? ["Note", outcome.note] : null,
    ]),
    outcome.engagement_plan ? [h("h3", {}, "Engagement plan"), planView(outcome.engagement_plan)] : null);
}

async function queueNames() {
  try {
    return (await get("/api/v1/review-queues")).items.map((q) => q.name);
  } catch {
    return [];  // the queue input then takes a typed name; the API judges it
  }
}

/** lead: {id, name}; review: LeadDetail.review or null; onDecided(outcome) after a decision. */
export function reviewPanel(lead, review, { onDecided } = {}) {
  const claimPath = `/api/v1/leads/${lead.id}/claim`;
  const reviewPath = `/api/v1/leads/${lead.id}/review`;
  const errors = errorRegion();
  const outcome = h("div", { "aria-live": "polite" });
  const status = h("p", { class: "claim-status" }, claimText(review && review.claim));
  const panel = h("section", { class: "card review-panel", "aria-label": `Review of ${lead.name}`, "data-lead-id": lead.id },
    h("h2", {}, `Review: ${lead.name}`),
    review ? h("p", { class: "muted" }, `Waiting in ${review.queue} since ${fmtDate(review.waiting_since)}.`) : null,
    status);

  if (may("POST", claimPath)) {
    const claim = h("button", { type: "button", class: "claim" }, "Claim");
    const release = h("button", { type: "button", class: "secondary release" }, "Release claim");
    claim.addEventListener("click", () => act(claim, errors, async () => {
      status.textContent = claimText(await post(claimPath));
    }));
    release.addEventListener("click", () => act(release, errors, async () => {
      await del(claimPath);
      status.textContent = claimText(null);
    }));
    panel.append(h("div", { class: "row" }, claim, release));
  }

  if (may("POST", reviewPath)) panel.append(decisionForm(lead, reviewPath, errors, outcome, onDecided));
  panel.append(errors, outcome);
  return panel;
}

function decisionForm(lead, reviewPath, errors, outcome, onDecided) {
  const group = uid("decision");
  const queue = h("select", { name: "queue", id: uid("queue") }, h("option", { value: "" }, "choose a queue"));
  const into = h("input", { name: "into", id: uid("into"), size: 38, placeholder: "the lead id to merge into", spellcheck: "false" });
  const note = h("textarea", { name: "note", id: uid("note"), rows: 2, cols: 40 });
  const queueField = h("div", { class: "field", hidden: true }, h("label", { for: queue.id }, "Queue"), queue);
  const intoField = h("div", { class: "field", hidden: true }, h("label", { for: into.id }, "Merge into lead"), into);
  const submit = h("button", { type: "submit" }, "Record decision");
  const form = h("form", { class: "stack decision-form", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Decision"),
      DECISIONS.map(([value, text], i) => {
        const id = `${group}-${value}`;
        return h("div", {}, h("input", { type: "radio", name: "decision", id, value, checked: i === 0 }), " ", h("label", { for: id }, text));
      })),
    queueField, intoField,
    h("div", { class: "field" }, h("label", { for: note.id }, "Note (optional)"), note),
    h("div", {}, submit));

  queueNames().then((names) => queue.append(...names.map((name) => h("option", { value: name }, name))));
  form.addEventListener("change", () => {
    const decision = form.elements.decision.value;
    queueField.hidden = decision !== "reassign";
    intoField.hidden = decision !== "merge";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFields(form);
    const decision = form.elements.decision.value;
    const body = { decision };
    if (decision === "reassign") body.queue = queue.value;
    if (decision === "merge") body.into = into.value.trim();
    if (note.value.trim()) body.note = note.value.trim();
    act(submit, errors, async () => {
      try {
        const decided = await post(reviewPath, body);
        clearError(errors);
        form.remove();
        replace(outcome, outcomeView(decided));
        if (onDecided) onDecided(decided);
      } catch (error) {
        markFields(form, error);
        throw error;
      }
    });
  });
  return form;
}
