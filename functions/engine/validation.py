"""FHIR resource bodies of any type validated with `fhir.resources` (R4B models),
plus the rules that hold for every type: resourceType, ids, characters, nesting,
JSON types, narrative, server-managed meta. Each type adds its own rules (a
`Rules` function). Errors name the element as a FHIRPath expression rooted at the
resource type and never echo the submitted value (it may be PHI).

The R4B model of a type is imported by name on its first use, never at import
time: the cold start does not grow with the number of types.

Every rule and limit is listed in docs/input-validation.md."""

from __future__ import annotations

import datetime
import functools
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from functions.common import json_walk
from functions.common.errors import Invalid, Issue

if TYPE_CHECKING:
    import nh3

Rules = Callable[[dict[str, Any]], list[Issue]]  # a type's own rules, on the submitted body

SERVER_META = ("versionId", "lastUpdated")  # set by the server; tags, labels, profiles kept
MAX_ISSUES = 20  # issues listed in one OperationOutcome
# C0 controls but TAB, LF, CR; DEL and C1 controls; bidirectional embeddings,
# overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_CHOICE_NAMES = re.compile(r"\['[A-Za-z]+'(?:, '[A-Za-z]+')*\]")

# --- narrative (FHIR R4 2.6 xhtml datatype) ---------------------------------------------------
XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_NARRATIVE_DEPTH = 64  # elements nested in text.div
# The basic HTML formatting elements FHIR allows in a narrative.
# fmt: off
NARRATIVE_TAGS = frozenset({
    "a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var",
})
# fmt: on
VOID_TAGS = frozenset({"br", "hr", "img", "col"})
_CELL = {"colspan", "rowspan", "align", "valign", "headers", "scope", "abbr"}
_COLUMN = {"span", "width", "align", "valign"}
NARRATIVE_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"id", "class", "title", "lang", "xml:lang", "style"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "table": {"border", "cellpadding", "cellspacing", "width", "summary"},
    "td": _CELL,
    "th": _CELL,
    "col": _COLUMN,
    "colgroup": _COLUMN,
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})  # and `#` fragments
IMAGE_SCHEMES = frozenset({"http", "https"})  # and `#` references to contained images
# fmt: off
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-weight", "font-style", "font-size", "text-align",
    "text-decoration", "vertical-align", "white-space", "list-style-type", "border",
    "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "padding",
    "padding-top", "padding-right", "padding-bottom", "padding-left", "margin", "margin-top",
    "margin-right", "margin-bottom", "margin-left", "width", "height",
})
# fmt: on
_ACTIVE_CSS = re.compile(r"\\|url\(|expression\(|image-set\(|@|/\*", re.IGNORECASE)
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f]+")  # what browsers skip in URLs, and spaces
NARRATIVE_RULE = (
    'The narrative must be well-formed XHTML: one <div xmlns="http://www.w3.org/1999/xhtml"> '
    "holding only basic HTML formatting elements, without scripts, style elements, forms, "
    "event handlers, comments or links other than http, https, mailto and #fragments."
)


def validate_resource(
    resource_type: str, body: dict[str, Any], *, path_id: str | None, rules: Rules | None = None
) -> dict[str, Any]:
    """Return the resource to store (its id and server-managed meta removed) or
    raise 400. `path_id`: the id in the URL of an update, None on create (a
    client's id is then ignored). `rules(body)`: the type's own rules, run after
    the generic ones. An unknown `resource_type` is a ValueError."""
    model = model_class(resource_type)
    root = resource_type
    if body.get("resourceType") != resource_type:
        message = f"resourceType must be '{resource_type}'."
        raise Invalid(Issue("invalid", message, [f"{root}.resourceType"]))
    if path_id is not None and body.get("id") != path_id:
        message = "The body's id must equal the id in the URL."
        raise Invalid(Issue("invalid", message, [f"{root}.id"]))
    issues = _structure_issues(body, root)
    if issues:
        raise Invalid(_bounded(issues, root))
    canonical = _canonical(model, body, root)
    issues = _json_type_issues(body, canonical, root) + _narrative_issues(body, root)
    issues.extend(rules(body) if rules else [])
    if issues:
        raise Invalid(_bounded(issues, root))
    clean = {k: v for k, v in canonical.items() if k != "id"}
    meta = {k: v for k, v in (clean.pop("meta", None) or {}).items() if k not in SERVER_META}
    return {**clean, "meta": meta} if meta else clean


@functools.cache
def model_class(resource_type: str) -> type[Any]:
    """The R4B model of `resource_type` (`fhir.resources.R4B.<type lower-cased>`),
    imported on first use and kept. ValueError if it is no FHIR resource type."""
    if not _TYPE_NAME.fullmatch(resource_type):
        raise ValueError(f"Not a FHIR resource type name: {resource_type!r}")
    from fhir.resources.R4B.resource import Resource  # heavy: only on write paths

    try:
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    except ImportError:
        raise ValueError(f"Unknown FHIR R4B resource type: {resource_type!r}") from None
    model = getattr(module, resource_type, None)
    if not (isinstance(model, type) and issubclass(model, Resource)):
        raise ValueError(f"Unknown FHIR R4B resource type: {resource_type!r}")
    return model


def today_utc() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def future_date_issue(
    value: str | None, expression: str, *, today: str | None = None
) -> Issue | None:
    """An issue if the FHIR date or dateTime `value` is after `today` (default: today
    in UTC). A date is compared at its own precision (`2026` is not in the future at
    any time in 2026); a dateTime with a time is compared by its date in UTC."""
    if not value:
        return None
    today = today or today_utc()
    date = str(value)[:10]  # YYYY, YYYY-MM or YYYY-MM-DD
    if "T" in str(value):
        try:
            instant = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            instant = None  # the models check formats; compare the date part
        if instant is not None and instant.tzinfo is not None:
            date = instant.astimezone(datetime.UTC).date().isoformat()
    if date <= today[: len(date)]:
        return None
    element = expression.partition(".")[2] or expression
    return Issue("value", f"{element} may not be in the future.", [expression])


def _canonical(model: type[Any], body: dict[str, Any], root: str) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        resource = model.model_validate(body)
    except ValidationError as exc:
        raise Invalid(_bounded([_issue(e, root) for e in exc.errors()], root)) from None
    except RecursionError:  # the depth bound makes this unreachable; never a 500 if not
        raise Invalid(Issue("structure", "The resource is nested too deeply.", [root])) from None
    canonical: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True, by_alias=True)
    return canonical


# --- model errors -----------------------------------------------------------------------------


def _expression(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path


def _issue(error: Mapping[str, Any], root: str) -> Issue:
    kind = error.get("type", "")
    expression = _expression(root, tuple(error.get("loc", ())))
    message = str(error.get("msg", "Invalid value.")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return Issue("structure", "Unknown element.", [expression])
    if kind in ("missing", "model_field_validation.missing"):
        return Issue("required", "Missing required element.", [expression])
    choice = _CHOICE_NAMES.search(message)
    if choice:  # a choice element ([x]): none or several of its types given
        name = _choice_name(re.findall(r"'([A-Za-z]+)'", choice.group(0)))
        expression += f".{name}[x]" if name else ""
        code = "required" if message.startswith("Expect any of") else "value"
        return Issue(code, message, [expression])
    return Issue("value", message, [expression])


def _choice_name(names: list[str]) -> str:
    """`value` for valueBoolean, valueQuantity, ...: the longest prefix all share
    that each follows with a capital (the start of its type's name)."""
    end = min(len(n) for n in names) - 1
    while end > 0 and not all(n[end].isupper() and n[:end] == names[0][:end] for n in names):
        end -= 1
    return names[0][:end]


def _bounded(issues: list[Issue], root: str) -> list[Issue]:
    if len(issues) <= MAX_ISSUES:
        return issues
    more = Issue("too-costly", "Further issues are not listed.", [root], "information")
    return [*issues[:MAX_ISSUES], more]


# --- the walk over the submitted JSON ---------------------------------------------------------


def _characters_ok(node: Any) -> bool:
    return not isinstance(node, str) or not FORBIDDEN_CHARACTERS.search(node)


def _character_issues(node: Any, path: str) -> list[Issue]:
    if _characters_ok(node):
        return []
    message = (
        "Control characters (other than tab, line feed and carriage return) and "
        "bidirectional override or isolate characters are not allowed."
    )
    return [Issue("value", message, [path])]


def _structure_issues(body: dict[str, Any], root: str) -> list[Issue]:
    """Nesting depth and string characters, in the shared iterative walk (no
    recursion, so no depth can overflow the stack before the models see the body).
    One issue more than listed is collected, so `_bounded` can say there are more."""
    if json_walk.clean(body, lambda text: not FORBIDDEN_CHARACTERS.search(text)):
        return []
    return json_walk.issues(body, root, _character_issues, MAX_ISSUES + 1)


def _primitive_issue(given: Any, canonical: Any, path: str) -> Issue | None:
    """bool is an int in Python: booleans and numbers are told apart both ways."""
    if isinstance(canonical, bool):
        ok, kind = isinstance(given, bool), "boolean (true or false)"
    elif isinstance(canonical, int):
        ok, kind = isinstance(given, int) and not isinstance(given, bool), "integer"
    elif isinstance(canonical, float):
        ok, kind = isinstance(given, int | float) and not isinstance(given, bool), "number"
    elif isinstance(canonical, str):
        ok, kind = isinstance(given, str), "string"
    else:
        return None
    return None if ok else Issue("value", f"Must be a JSON {kind}.", [path])


def _path(root: str, trail: tuple[Any, ...] | None) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return root + "".join(reversed(parts))


def _json_type_issues(given: Any, canonical: Any, path: str) -> list[Issue]:
    """The models coerce lax input ("yes" -> true, 1 -> true, true -> 1, "5" -> 5,
    12.0 -> 12); FHIR JSON does not. Report every primitive whose JSON type differs
    from the canonical (model) form. Iterative: the depth is bounded but never trusted;
    paths (linked (parent, key) pairs) are written out only for what is reported."""
    issues: list[Issue] = []
    stack: list[tuple[Any, Any, Any]] = [(given, canonical, None)]
    while stack:
        a, b, trail = stack.pop()
        if isinstance(a, dict) and isinstance(b, dict):
            stack.extend((v, b[k], (trail, k)) for k, v in a.items() if k in b)
        elif isinstance(a, list) and isinstance(b, list):
            stack.extend((x, y, (trail, n)) for n, (x, y) in enumerate(zip(a, b, strict=False)))
        elif issue := _primitive_issue(a, b, ""):
            issue.expression = [_path(path, trail)]
            issues.append(issue)
    return sorted(issues, key=lambda i: i.expression)


# --- narrative --------------------------------------------------------------------------------


def _narrative_issues(body: dict[str, Any], root: str) -> list[Issue]:
    text = body.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    if div is None:
        return []
    problem = narrative_problem(div) if isinstance(div, str) else NARRATIVE_RULE
    return [Issue("value", problem, [f"{root}.text.div"])] if problem else []


class _Unsafe(Exception):
    """The narrative breaks a rule checked while it is serialized."""


@dataclass
class _HtmlForm:
    """The narrative written out as HTML, and what it uses: the attribute names,
    URL schemes and style properties a sanitizer that removes nothing must allow."""

    html: str = ""
    attributes: set[str] = field(default_factory=set)
    schemes: set[str] = field(default_factory=set)
    properties: set[str] = field(default_factory=set)


def narrative_problem(div: str) -> str | None:
    """Why `div` is not an acceptable FHIR narrative, or None.

    The rule is refuse, never rewrite. The div must be well-formed XHTML (the XML
    parser also decodes character references, so `jav&#x61;script:` is seen as
    what it is). Written out as HTML, it must read back as the same tree through
    an HTML parser (html5ever, inside nh3), so a browser sees what was checked.
    Then the sanitizer configured with FHIR's narrative rules must produce the
    same output as one configured to keep everything the div uses: the two are
    the same parser's serialization of the same tree, so they differ exactly
    when the rules remove something."""
    if "<!" in div or "<?" in div:
        # No DOCTYPE means no entity can be declared, so none can be expanded.
        return "The narrative may not hold comments, CDATA, DOCTYPEs or processing instructions."
    try:
        root = ElementTree.fromstring(div)  # noqa: S314 - no DTD reaches the parser (above)
    except ElementTree.ParseError:
        return "The narrative must be well-formed XHTML (every element closed, XML entities only)."
    if root.tag != f"{{{XHTML_NS}}}div":
        return 'The narrative must be one <div xmlns="http://www.w3.org/1999/xhtml"> element.'
    try:
        form = _html_form(root)
    except _Unsafe as exc:
        return str(exc)
    if _permissive(form, styles=False).clean(form.html) != form.html:
        return (
            "The narrative's structure changes when read as HTML (for example a block "
            "element inside <p>, text directly inside a table, or nested links)."
        )
    if _sanitizer().clean(form.html) != _permissive(form, styles=True).clean(form.html):
        return NARRATIVE_RULE
    return None


def _tag_name(element: ElementTree.Element) -> str:
    namespace, _, name = str(element.tag)[1:].partition("}")
    if not str(element.tag).startswith("{") or namespace != XHTML_NS:
        raise _Unsafe("Every narrative element must be in the XHTML namespace.")
    if name not in NARRATIVE_TAGS:
        raise _Unsafe(NARRATIVE_RULE)
    return name


def _escape_text(text: str) -> str:
    """As html5ever (nh3's serializer) escapes text."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\xa0", "&nbsp;")


def _escape_attribute(value: str) -> str:
    return _escape_text(value).replace('"', "&quot;")


def _attributes(element: ElementTree.Element, form: _HtmlForm) -> str:
    out = []
    for name, value in element.attrib.items():
        if name == XML_LANG:
            name = "xml:lang"
        elif name.startswith("{"):
            raise _Unsafe("Narrative attributes from other namespaces are not allowed.")
        key = name.lower()  # HTML reads onClick as onclick
        form.attributes.add(key)
        if key in ("href", "src"):
            scheme, colon, _ = _URL_IGNORED.sub("", value).lower().partition(":")
            form.schemes.update([scheme] if colon else [])
        if key == "style":
            form.properties.update(d.partition(":")[0].strip() for d in value.split(";"))
        out.append(f' {key}="{_escape_attribute(value)}"')
    return "".join(out)


# Rows and columns directly in a table: HTML parsers wrap them as <tbody>, <colgroup>.
_IMPLIED_WRAPPER = {"tr": "tbody", "col": "colgroup"}


def _html_children(element: ElementTree.Element, name: str, depth: int) -> list[Any]:
    """What to write inside `element`, in order: child elements (with the wrapper
    an HTML parser would imply for rows and columns of a table) and closing tags."""
    items: list[Any] = []
    wrapper = None
    for child in element:
        child_name = str(child.tag).rpartition("}")[2] if name == "table" else ""
        implied = _IMPLIED_WRAPPER.get(child_name)
        if implied != wrapper:
            items.extend([f"</{wrapper}>"] if wrapper else [])
            items.extend([f"<{implied}>"] if implied else [])
            wrapper = implied
        items.append((child, depth + 1))
    items.extend([f"</{wrapper}>"] if wrapper else [])
    return items


def _html_form(root: ElementTree.Element) -> _HtmlForm:
    """The parsed XHTML written out as HTML the way html5ever writes it, iteratively
    (empty elements closed the HTML way, the root's namespace declaration dropped,
    newlines that open a <pre>, which HTML drops, left out)."""
    form = _HtmlForm()
    out: list[str] = []
    stack: list[Any] = [(root, 1)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        element, depth = item
        if depth > MAX_NARRATIVE_DEPTH:
            raise _Unsafe(f"The narrative nests elements more than {MAX_NARRATIVE_DEPTH} deep.")
        name = _tag_name(element)
        out.append(f"<{name}{_attributes(element, form)}>")
        text = element.text or ""
        text = text.lstrip("\n") if name == "pre" else text
        if depth > 1:
            stack.append(_escape_text(element.tail or ""))
        if name not in VOID_TAGS or len(element) or text:
            stack.append(f"</{name}>")
        stack.extend(reversed(_html_children(element, name, depth)))
        stack.append(_escape_text(text))
    form.html = "".join(out)
    return form


def _allowed_url(value: str, schemes: frozenset[str]) -> bool:
    url = _URL_IGNORED.sub("", value).lower()
    scheme, colon, _ = url.partition(":")
    return url.startswith("#") or (bool(colon) and scheme in schemes)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return value if _allowed_url(value, LINK_SCHEMES) else None
    if attribute == "src":
        return value if _allowed_url(value, IMAGE_SCHEMES) else None
    if attribute == "style" and _ACTIVE_CSS.search(value):
        return None
    return value


def _fragment_only(url: str) -> str | None:
    return url if url.startswith("#") else None


@functools.lru_cache(maxsize=1)
def _sanitizer() -> nh3.Cleaner:
    """FHIR's narrative rules (R4 2.6, xhtml) as an nh3 (ammonia) configuration."""
    import nh3  # loaded with the first narrative only (about 1 ms)

    return nh3.Cleaner(
        tags=set(NARRATIVE_TAGS),
        attributes={tag: set(names) for tag, names in NARRATIVE_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        strip_comments=True,
        link_rel=None,
        url_schemes=set(LINK_SCHEMES),
        url_relative=_fragment_only,
        filter_style_properties=set(STYLE_PROPERTIES),
    )


def _permissive(form: _HtmlForm, *, styles: bool) -> nh3.Cleaner:
    """A cleaner that keeps everything `form` holds (same parser, same serializer);
    `styles`: write style attributes the way the narrative rules' cleaner does."""
    import nh3

    properties = form.properties | STYLE_PROPERTIES if styles else None
    return nh3.Cleaner(
        tags=set(NARRATIVE_TAGS) | set(_IMPLIED_WRAPPER.values()),
        clean_content_tags=set(),
        attributes={"*": form.attributes},
        strip_comments=True,
        link_rel=None,
        url_schemes=form.schemes,
        filter_style_properties=properties,
    )
