"""Events of the notes workflow beyond the generic `<type>.created/updated/deleted`
(catalogue: events/README.md): a note was signed, a note was co-signed.

Ids and codes only: never the note's text, title or any header field.
"""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class NoteSignatureEvent(DomainEvent):
    resource_type: str  # DocumentReference or PsychotherapyNote (the stored declaration)
    note_id: str
    patient_id: str
    note_version: int  # the signed (or co-signed) version
    provenance_id: str  # the Provenance that records the signature
    signer_id: str  # Practitioner id of the signer (author or verifier)
    encounter_id: str | None = None  # the note's context.encounter, when it names one


class NoteSigned(NoteSignatureEvent):
    """The author signed: the note is final; a trainee's note awaits co-signature."""

    source: ClassVar[str] = "emr.notes"
    detail_type: ClassVar[str] = "note.signed"
    awaiting_cosign: bool = False
    supervisor_id: str | None = None  # Practitioner id, when awaiting co-signature


class NoteCosigned(NoteSignatureEvent):
    """The trainee's supervisor co-signed: the note counts as final."""

    source: ClassVar[str] = "emr.notes"
    detail_type: ClassVar[str] = "note.cosigned"
