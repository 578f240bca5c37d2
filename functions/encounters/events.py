"""`EncounterFinished`, staged with the version that makes an encounter finished.

An encounter becomes finished when it is created finished (documented afterwards)
or updated to finished from another status. A correction of an encounter that is
already finished keeps it finished and emits nothing new: billing counts one
finished visit per encounter. The version before an update is its history item
(immutable), and the write is conditional on that version being the current one,
so what is read here is exactly what the transaction replaces: one GetItem, on
updates to finished only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.engine.registry import Change

if TYPE_CHECKING:
    from functions.common.caller import Caller
    from models.resources import Stored
    from models.uow import UnitOfWork

FINISHED = "finished"


def _status(stored: Stored | None) -> str | None:
    status = (stored.resource or {}).get("status") if stored is not None else None
    return status if isinstance(status, str) else None


def became_finished(stored: Stored, change: Change) -> bool:
    """Whether this version is the one that made the encounter finished."""
    if change is Change.DELETED or _status(stored) != FINISHED:
        return False
    if change is Change.CREATED or stored.version <= 1:
        return True
    from models import resources

    return _status(resources.read_version(stored.address, stored.version - 1)) != FINISHED


def stage_finished(uow: UnitOfWork, caller: Caller, stored: Stored, change: Change) -> None:
    """Companion of the Encounter declaration (functions/engine/types.py)."""
    if not became_finished(stored, change) or stored.address.patient_id is None:
        return
    from events import outbox  # pydantic: with the first finished encounter only
    from events.encounters import EncounterFinished

    outbox.stage(
        uow,
        EncounterFinished(
            tenant=caller.tenant,
            actor=caller.actor,
            request_id=caller.request_id,
            encounter_id=stored.address.resource_id,
            patient_id=stored.address.patient_id,
            encounter_version=stored.version,
        ),
    )
