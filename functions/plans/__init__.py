"""Treatment plans and safety plans: CarePlan and Goal rules (kinds, sections, review date)."""
