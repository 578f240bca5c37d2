"""What a plan puts in its patient's chart (docs/adr/0008): an active plan is an
entry `1#CarePlan#<id>`; any other status takes it away.

The summary is the plan's header (functions/plans/rules.py `summary`). A safety
plan's entry also carries its six sections, each cut to SECTION_CHARS characters:
in a crisis the clinician who opens the chart needs the warning signs, the coping
steps and whom to call at a glance, not one read further away. The entry is
sealed under the plan's own data class and shown only to the roles that may read
CarePlans (the `$chart` route checks each entry against the policy).
"""

from __future__ import annotations

from typing import Any

from functions.engine.registry import ChartEntry, active_key
from functions.plans.rules import SAFETY_PLAN, safety_plan_sections, summary

SECTION_CHARS = 200
SHOWN = "active"
DRAFT = "draft"


def chart_summary(plan_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The header of a plan, and for a safety plan its sections (cut short)."""
    found: dict[str, Any] = {"resourceType": "CarePlan", "id": plan_id, **summary(body)}
    if found["kind"] == SAFETY_PLAN:
        found["sections"] = {
            code: text[:SECTION_CHARS] for code, text in safety_plan_sections(body).items()
        }
    return found


def chart_entries(plan_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    """The plan's entry while it is active, removed when it ends (or is deleted). A
    draft never had one (no status leads back to draft): nothing to write."""
    key = active_key("CarePlan", plan_id)
    if body is not None and body.get("status") == DRAFT:
        return []
    if body is not None and body.get("status") == SHOWN:
        return [ChartEntry(key, chart_summary(plan_id, body))]
    return [ChartEntry(key, None)]
