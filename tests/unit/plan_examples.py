"""Valid plan bodies for tests: a treatment plan, a safety plan and a goal.

Each function returns a fresh copy, so a test may change it. The texts are made up
for tests and belong to no one.
"""

from __future__ import annotations

from typing import Any

from functions.plans.rules import CATEGORY_SYSTEM, REVIEW_DATE_URL, SECTION_SYSTEM

PATIENT = "Patient/example-1"
GOAL_ID = "goal-1"

SAFETY_PLAN_WORDS = {
    "warning-signs": "Not sleeping, staying in my room, thinking nothing will change.",
    "internal-coping": "Go for a walk, play guitar, take a shower.",
    "social-distraction": "Go to the coffee shop on Main Street; visit my cousin.",
    "help-contacts": "My sister (phone in my contacts); my friend from work.",
    "professional-contacts": "My therapist at the clinic during office hours; "
    "call or text 988 (Suicide & Crisis Lifeline) any time; or go to the emergency room.",
    "environment-safety": "Medicines kept by my sister; no firearms at home.",
}


def _category(kind: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY_SYSTEM, "code": kind}]}]


def treatment_plan() -> dict[str, Any]:
    """A treatment plan: one goal, two interventions, a review date after the start."""
    return {
        "resourceType": "CarePlan",
        "extension": [{"url": REVIEW_DATE_URL, "valueDate": "2026-06-01"}],
        "status": "active",
        "intent": "plan",
        "category": _category("treatment-plan"),
        "title": "Treatment plan",
        "subject": {"reference": PATIENT},
        "period": {"start": "2026-03-01"},
        "goal": [{"reference": f"Goal/{GOAL_ID}"}],
        "activity": [
            {
                "detail": {
                    "code": {"text": "Cognitive behavioral therapy, weekly"},
                    "status": "in-progress",
                }
            },
            {"detail": {"description": "Daily mood log", "status": "not-started"}},
        ],
    }


def safety_plan() -> dict[str, Any]:
    """A safety plan: the six Stanley-Brown sections in order, no review date."""
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": _category("safety-plan"),
        "title": "Safety plan",
        "subject": {"reference": PATIENT},
        "period": {"start": "2026-03-01"},
        "activity": [
            {
                "detail": {
                    "code": {"coding": [{"system": SECTION_SYSTEM, "code": code}]},
                    "status": "in-progress",
                    "description": words,
                }
            }
            for code, words in SAFETY_PLAN_WORDS.items()
        ],
    }


def goal() -> dict[str, Any]:
    """A goal with a measured target due after its start."""
    return {
        "resourceType": "Goal",
        "id": GOAL_ID,
        "lifecycleStatus": "active",
        "description": {"text": "Fewer depressive symptoms"},
        "subject": {"reference": PATIENT},
        "startDate": "2026-03-01",
        "target": [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "detailQuantity": {"value": 10, "comparator": "<"},
                "dueDate": "2026-06-01",
            }
        ],
    }
