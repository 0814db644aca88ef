"""The agents' judgment as plain classes: triage, handoff orchestration, engagement, lead intake."""
