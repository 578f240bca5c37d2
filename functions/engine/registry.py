"""The resource registry: one declaration per FHIR resource type.

A declaration says everything the engine needs to serve a type: its data class
(which KMS encryption context and which rows of the authorization table apply),
where it lives (its compartment: in a patient's chart, or on its own), its search
parameters with their FHIR type and what indexes them, extra validation rules,
write guards and the events it emits. The repository, the use cases, the routes
and the CapabilityStatement are generic over declarations; adding a type is
adding a declaration (functions/engine/types.py) - nothing is copied.

FHIR model classes are named, not imported: validation loads a type's model
the first time a body of that type is written, so cold start does not grow with
the number of types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from functions.engine.values import Extract, normalize_reference

if TYPE_CHECKING:
    from events.envelope import DomainEvent
    from functions.common.caller import Caller
    from functions.common.errors import Issue
    from models.resources import Stored
    from models.uow import UnitOfWork


class ParamType(StrEnum):
    STRING = "string"
    TOKEN = "token"  # noqa: S105  (a FHIR search parameter type)
    DATE = "date"
    REFERENCE = "reference"
    QUANTITY = "quantity"


SPEC = "http://hl7.org/fhir/SearchParameter/"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    extract: Extract
    definition: str  # R4's canonical SearchParameter URL
    documentation: str = ""
    entry: bool = False  # indexed tenant-wide: gets a search entry (gsi1), so it can lead
    targets: tuple[str, ...] = ()  # reference: the types it may point at
    sortable: bool = False  # `_sort` may name it (date parameters)
    # A string parameter whose values are among another (entry) parameter's, e.g.
    # family within name: it leads with that parameter's token and filters on its own.
    via: str | None = None


@dataclass(frozen=True)
class Compartment:
    """The resource belongs to a patient's chart: `element` holds the reference to
    the Patient (e.g. `subject`, `patient`), `params` are the search parameters
    that name it (a search by one of them is a Query on the chart)."""

    element: str
    params: tuple[str, ...]
    target: str = "Patient"  # the type whose chart holds the resource
    # The element references resources of the chart rather than the patient itself
    # (Provenance.target): their compound ids name the patient, who must be one.
    through: bool = False

    def named_in(self, body: dict[str, Any]) -> str | None:
        """The id of the patient a body's `element` references, or None."""
        ref = body.get(self.element)
        text = ref.get("reference") if isinstance(ref, dict) else None
        return self.patient_in(text) if isinstance(text, str) else None

    def patient_in(self, reference: str, bare_id: bool = False) -> str | None:
        """The id of the patient a reference names (`bare_id`: a plain id counts, as
        in a search value), or None when it names none."""
        ref = normalize_reference(reference, self.target if bare_id else None)
        kind, _, rid = (ref or "").partition("/")
        return rid if kind == self.target else None


@dataclass(frozen=True)
class StateMachine:
    """A status element whose changes follow a table, checked inside the write's own
    transaction: the current item keeps a keyed MAC of its status (per resource, so
    equal statuses of two resources are unlinkable, and never in clear), and an
    update is conditional on the stored MAC being one of the statuses allowed to
    become the new one. One round trip, no read; a refused change is a 409.

    `transitions[s]`: the statuses a resource in `s` may take (itself included when
    it may be edited without a change of status). `initial`: the statuses a create
    may have. `deletable`: the statuses in which it may be deleted."""

    element: str
    transitions: dict[str, frozenset[str]]
    initial: frozenset[str]
    deletable: frozenset[str]

    @property
    def statuses(self) -> list[str]:
        return list(self.transitions)

    def predecessors(self, to: str) -> frozenset[str]:
        return frozenset(s for s, targets in self.transitions.items() if to in targets)

    def operation(self, name: str, start: frozenset[str], to: str) -> OperationStep:
        """A change only a workflow operation makes (e.g. `$sign`: preliminary ->
        final), outside the table a plain update follows."""
        return OperationStep(name, start, to)


@dataclass(frozen=True)
class OperationStep:
    name: str
    start: frozenset[str]  # statuses the operation may start from
    to: str


@dataclass(frozen=True)
class CheckedReference:
    """References at `path` to a `target` resource this server holds must name a
    live one of the caller's organisation: checked in the write's own transaction
    (a ConditionCheck each), like the Patient of a chart resource."""

    path: str  # dotted, e.g. "participant.individual"
    target: str  # e.g. "Practitioner"


@dataclass(frozen=True)
class Variant:
    """A separately stored class of a FHIR type (e.g. psychotherapy notes among
    DocumentReferences): its own declaration (storage name, data class, key range,
    search tokens, policy rows), served on the FHIR type's routes. The variant's ids
    carry `marker` after the patient (`<patient>.<marker><ulid>`), so a read by id
    goes straight to its range; `selects(body)` says whether a body belongs to it
    and `named(params)` whether a search asks for it. A caller the variant's own
    policy row does not admit gets 404, never 403: its existence is not disclosed."""

    of: str  # the FHIR type, e.g. "DocumentReference"
    marker: str  # one letter, see models/keys.py
    selects: Callable[[dict[str, Any]], bool]
    named: Callable[[dict[str, list[str]]], bool]


@dataclass(frozen=True)
class ChartEntry:
    """What a resource puts in its patient's chart (docs/adr/0008): a small sealed
    summary under `C#<key>`, or None to take its entry away (resolved, stopped)."""

    key: str  # e.g. "1#Condition#<id>"; models/chart.py builds the sort key
    summary: dict[str, Any] | None


def owner_key(owner_type: str) -> str:
    """`0#<Type>`: the chart owner's own entry (its demographics)."""
    return f"0#{owner_type}"


def active_key(resource_type: str, resource_id: str = "") -> str:
    """`1#<Type>#<id>`: an active item of the chart (without an id: the type's prefix)."""
    return f"1#{resource_type}#{resource_id}"


@dataclass(frozen=True)
class Operation:
    """A workflow operation on the type (`$sign`, `$chart`, ...), for the
    CapabilityStatement; its route lives with its workflow."""

    name: str  # without the "$"
    documentation: str
    instance: bool = True  # on /T/{id}; False: on /T

    @property
    def definition(self) -> str:
        return f"https://emr.example/fhir/OperationDefinition/{self.name}"


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


Rules = Callable[[dict[str, Any]], list["Issue"]]
# A write guard sees the stored version (None on create) and the new body (None on
# delete) and raises an ApiError to refuse the change (e.g. "locked once signed").
Guard = Callable[["Stored | None", "dict[str, Any] | None"], None]
EventFactory = Callable[[Change, dict[str, Any]], "DomainEvent"]
# What a version puts in the chart: (resource id, body or None when deleted) -> entries.
ChartView = Callable[[str, "dict[str, Any] | None"], list[ChartEntry]]
# Writes staged with a create or update of the type, in its own transaction (e.g. a
# questionnaire response's score and safety flag); may read first. A companion that
# takes a chart ring's slot makes the transaction fail as `counter` when another
# writer took it first: the engine then runs the whole write again (a few times).
Companions = Callable[["UnitOfWork", "Caller", "Stored", Change], None]
# A check before a create or update that needs the caller or reads (e.g. duplicate
# therapy against the patient's active orders): (caller, stored or None, new body);
# raises an ApiError to refuse. An update of a type with one reads the current
# version first, as with guards.
Precheck = Callable[["Caller", "Stored | None", dict[str, Any]], None]


@dataclass(frozen=True)
class ResourceType:
    name: str
    data_class: str
    source: str  # event source: emr.<workflow>
    compartment: Compartment | None  # None: the resource belongs to no patient
    is_patient: bool = False  # the Patient type itself: its own chart
    params: tuple[SearchParam, ...] = ()
    rules: Rules | None = None
    guards: tuple[Guard, ...] = ()
    states: StateMachine | None = None
    references: tuple[CheckedReference, ...] = ()
    events: EventFactory | None = None
    chart: ChartView | None = None
    companions: Companions | None = None
    precheck: Precheck | None = None
    variant: Variant | None = None
    operations: tuple[Operation, ...] = ()
    routed: bool = True  # False: served by a workflow's own routes only
    documentation: str = ""
    profile: str = ""
    max_entries: int = 90  # a write must fit one transaction (100 items)
    interactions: tuple[str, ...] = (
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "create",
        "search-type",
    )
    _by_name: dict[str, SearchParam] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({p.name: p for p in self.params})

    def param(self, name: str) -> SearchParam | None:
        return self._by_name.get(name)

    @property
    def in_chart(self) -> bool:
        return self.is_patient or self.compartment is not None

    @property
    def fhir_type(self) -> str:
        """The FHIR resourceType of its bodies (a variant's is the type it belongs to)."""
        return self.variant.of if self.variant is not None else self.name


_REGISTRY: dict[str, ResourceType] = {}


def register(declaration: ResourceType) -> ResourceType:
    if declaration.name in _REGISTRY:
        raise ValueError(f"{declaration.name} is declared twice")
    _REGISTRY[declaration.name] = declaration
    return declaration


def _load() -> None:
    if not _REGISTRY:
        import functions.engine.types  # noqa: F401  (registers every declaration)


def get(name: str) -> ResourceType | None:
    _load()
    return _REGISTRY.get(name)


def require(name: str) -> ResourceType:
    found = get(name)
    if found is None:
        raise KeyError(name)
    return found


def all_types() -> list[ResourceType]:
    """Every declaration, variants included."""
    _load()
    return list(_REGISTRY.values())


def fhir_types() -> list[ResourceType]:
    """The declarations served on their own FHIR routes (no variants)."""
    return [d for d in all_types() if d.variant is None and d.routed]


def chart_owner() -> ResourceType:
    """The type whose resources own the charts (the Patient)."""
    return next(d for d in all_types() if d.is_patient)


def variants_of(fhir_type: str) -> list[ResourceType]:
    return [d for d in all_types() if d.variant is not None and d.variant.of == fhir_type]


def for_id(decl: ResourceType, resource_id: str) -> ResourceType:
    """The declaration that stores `resource_id` among `decl`'s FHIR type."""
    from models import keys

    marker = keys.marker_of(resource_id)
    for v in variants_of(decl.fhir_type) if marker else ():
        if v.variant is not None and v.variant.marker == marker:
            return v
    return decl


def for_body(decl: ResourceType, body: dict[str, Any]) -> ResourceType:
    for v in variants_of(decl.fhir_type):
        if v.variant is not None and v.variant.selects(body):
            return v
    return decl


def for_search(decl: ResourceType, params: dict[str, list[str]]) -> ResourceType:
    for v in variants_of(decl.fhir_type):
        if v.variant is not None and v.variant.named(params):
            return v
    return decl
