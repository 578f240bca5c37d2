"""Routes of the plans workflow (its operations beside the engine's FHIR routes)."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
