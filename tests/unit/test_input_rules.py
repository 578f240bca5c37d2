"""The input rules of docs/input-validation.md, one function at a time (no server)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from functions.common import http
from functions.common.errors import Invalid, UnsupportedMediaType
from functions.common.http import MAX_JSON_DEPTH, json_body_issues, read_json_body
from functions.engine import registry, search
from functions.engine.search import parse_count, whole_number
from functions.engine.service import parse_before_version as _before
from functions.engine.service import parse_if_match
from functions.patients import validation
from functions.patients.validation import narrative_problem, validate_patient

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'


def _patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Rule", "given": ["Unit"]}],
        "birthDate": "1980-02-29",
        **extra,
    }


def _expressions(exc: pytest.ExceptionInfo[Invalid]) -> list[str]:
    return [e for issue in exc.value.issues for e in issue.expression]


# --- numbers in parameters and headers (point 6) ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("000000012", 12), ("999999999", 999_999_999)],
)
def test_whole_numbers_are_ascii_digits(text, value):
    assert whole_number(text) == value


@pytest.mark.parametrize(
    "text", ["", " 1", "1 ", "+1", "-1", "1.0", "1e3", "\u00b2", "\u0663", "\uff11", "1" * 10, None]
)
def test_anything_else_is_not_a_whole_number(text):
    assert whole_number(text) is None


def test_superscript_two_is_a_digit_to_python_but_not_a_number():
    assert "\u00b2".isdigit()
    with pytest.raises(ValueError):
        int("\u00b2")
    with pytest.raises(Invalid) as exc:
        parse_count("\u00b2", "Patient.search")
    assert _expressions(exc) == ["Patient.search._count"]


@pytest.mark.parametrize("value", ["\u0663", "\u00b2", "-1", "x", "1" * 30])
def test_parse_count_refuses(value):
    with pytest.raises(Invalid):
        parse_count(value, "Patient.search")


def test_parse_count_caps_what_is_over_the_page_limit():
    assert parse_count("0", "Patient.search") == 0
    assert parse_count("101", "Patient.search") == search.MAX_COUNT


def parse_before_version(value: str | None) -> int | None:
    return _before(registry.require("Patient"), value)


def parse_query(params: dict[str, list[str]]) -> search.Query:
    return search.parse(registry.require("Patient"), params)


def test_before_version():
    assert parse_before_version(None) is None
    assert parse_before_version("12") == 12
    for bad in ("", "0", "\u00b2", "\u0663", "x", "1" * 10):
        with pytest.raises(Invalid) as exc:
            parse_before_version(bad)
        assert _expressions(exc) == ["Patient.history._before_version"]


@pytest.mark.parametrize(("header", "version"), [('W/"3"', 3), ('"4"', 4), ("5", 5)])
def test_if_match_accepts_versions(header, version):
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ['W/"\u00b2"', 'W/"\u0663"', 'W/"-1"', "W/x", 'W/"1e3"'])
def test_if_match_refuses_everything_else(header):
    with pytest.raises(Invalid) as exc:
        parse_if_match(header)
    assert _expressions(exc) == ["If-Match"]


# --- search dates (point 7) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2001-02-30", "2001-02-29", "1900-02-29", "2001-13", "2001-00", "2001-01-00", "0000",
     "0000-06", "\u0662\u0660\u0660\u0661", "2001-1-1", "20011"],
)  # fmt: skip
def test_search_refuses_impossible_dates(value):
    with pytest.raises(Invalid) as exc:
        parse_query({"birthdate": [value]})
    assert _expressions(exc) == ["Patient.search.birthdate"]


@pytest.mark.parametrize("value", ["2000-02-29", "0001", "9999-12-31", "eq1970-01"])
def test_search_accepts_real_dates(value):
    assert parse_query({"birthdate": [value]}).criteria[0].name == "birthdate"


# --- the JSON reader (points 6 and 7) ---------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_cached_settings(monkeypatch):
    """The API settings are read once per process: a unit test must not be the one
    that reads them (before the stack fixture has set the environment)."""
    monkeypatch.setattr(http, "api_settings", lambda: SimpleNamespace(max_body_bytes=256 * 1024))


def _request(body: bytes | str, content_type: str = "application/fhir+json") -> Any:
    return SimpleNamespace(
        headers={"content-type": content_type},
        raw_body=body,
        context={"resourcePath": "/fhir/R4/Patient/{patient_id}"},
    )


def _read(body: bytes | str, content_type: str = "application/fhir+json") -> dict[str, Any]:
    return read_json_body(_request(body, content_type))


def test_a_plain_body_is_read():
    assert _read(json.dumps(_patient()).encode()) == _patient()


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ('{"a": 1, "a": 2}', "Patient.a"),
        ('{"a": {"b": 1, "c": 2, "b": 1}}', "Patient.a.b"),
        ('{"a": [{"b": 1}, {"b": 1, "b": 1}]}', "Patient.a[1].b"),
        ('{"a": ' + "9" * 5000 + "}", "Patient.a"),
        ('{"a": [' + "1" * 33 + "]}", "Patient.a[0]"),
        ('{"a": 1e999}', "Patient.a"),
        ('{"a": -1e999}', "Patient.a"),
        ('{"a": NaN}', "Patient.a"),
        ('{"a": -Infinity}', "Patient.a"),
        ('{"a": "\\udc00"}', "Patient.a"),
        ('{"a": {"\\ud800": 1}}', "Patient.a"),
        ('{"a": ' + "[" * 100 + "]" * 100 + "}", "Patient.a"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "Patient.a"),
        ('{"a": ' + '{"b":' * 5000 + "1" + "}" * 5000 + "}", "Patient.a"),
    ],
)
def test_the_reader_refuses_and_names_the_element(text, expression):
    with pytest.raises(Invalid) as exc:
        _read(text.encode())
    assert _expressions(exc) == [expression]
    assert len(str(exc.value)) < 200


def test_nesting_up_to_the_limit_is_read():
    depth = MAX_JSON_DEPTH - 1  # the body object is level 1
    _read(('{"a": ' + "[" * depth + "]" * depth + "}").encode())
    with pytest.raises(Invalid):
        _read(('{"a": ' + "[" * (depth + 1) + "]" * (depth + 1) + "}").encode())


def test_numbers_within_the_limit_are_read():
    body = _read(b'{"i": -2147483648, "d": 0.000000000000000000000000000001, "e": 1e300}')
    assert body == {"i": -2147483648, "d": 1e-30, "e": 1e300}


def test_duplicate_issues_are_bounded():
    text = "{" + ", ".join(f'"k{n}": {{"x": 1, "x": 2}}' for n in range(100)) + "}"
    with pytest.raises(Invalid) as exc:
        _read(text.encode())
    assert len(exc.value.issues) == 20


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32-le", "latin-1", "cp1252"])
def test_the_reader_wants_utf8(encoding):
    text = json.dumps(_patient(address=[{"city": "Zürich"}]), ensure_ascii=False)
    with pytest.raises(Invalid) as exc:
        _read(text.encode(encoding))
    assert exc.value.issues[0].diagnostics == "The body is not UTF-8 text."


def test_a_byte_order_mark_is_ignored():
    assert _read(b"\xef\xbb\xbf" + json.dumps(_patient()).encode()) == _patient()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+json; charset=latin1",
        "application/json;charset=utf-16",
        'application/fhir+json; charset="us-ascii"',
        "text/plain",
        "",
    ],
)
def test_media_types_and_charsets(content_type):
    with pytest.raises(UnsupportedMediaType) as exc:
        _read(b"{}", content_type)
    assert exc.value.issues[0].expression == ["Content-Type"]


def test_json_body_issues_is_iterative():
    deep: Any = "leaf"
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    issues = json_body_issues({"x": deep}, "Patient")
    assert [i.expression for i in issues] == [["Patient.x"]]


# --- Patient rules (point 7) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expression"),
    [
        ({"active": 1}, "Patient.active"),
        ({"active": "true"}, "Patient.active"),
        ({"multipleBirthInteger": True}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": 2.0}, "Patient.multipleBirthInteger"),
        ({"multipleBirthBoolean": 0}, "Patient.multipleBirthBoolean"),
        ({"photo": [{"size": False}]}, "Patient.photo[0].size"),
        (
            {"extension": [{"url": "http://x.org/e", "valueDecimal": True}]},
            "Patient.extension[0].valueDecimal",
        ),
    ],
)
def test_json_types_are_checked_both_ways(extra, expression):
    with pytest.raises(Invalid) as exc:
        validate_patient(_patient(**extra), path_id=None)
    assert expression in _expressions(exc)


@pytest.mark.parametrize(
    "extra",
    [
        {"active": True},
        {"multipleBirthInteger": 2},
        {"extension": [{"url": "http://x.org/e", "valueDecimal": 2}]},
        {"extension": [{"url": "http://x.org/e", "valueDecimal": 2.50}]},
        {"address": [{"text": "line one\r\n\tline two"}]},
    ],
)
def test_proper_json_types_pass(extra):
    validate_patient(_patient(**extra), path_id=None)


@pytest.mark.parametrize(
    "char", ["\x00", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x9b", "\u202a", "\u202e", "\u2066",
             "\u2069"],
)  # fmt: skip
def test_control_and_bidi_characters_are_refused(char):
    with pytest.raises(Invalid) as exc:
        validate_patient(
            _patient(telecom=[{"system": "phone", "value": f"1{char}2"}]), path_id=None
        )
    assert _expressions(exc) == ["Patient.telecom[0].value"]
    assert char not in str(exc.value)


@pytest.mark.parametrize(
    ("birth", "refused"),
    [
        ("2026", False),
        ("2026-03", False),
        ("2026-03-15", False),
        ("2026-03-16", True),
        ("2026-04", True),
        ("2027", True),
        ("1900-01-01", False),
    ],
)
def test_birth_date_is_compared_to_today_at_its_precision(monkeypatch, birth, refused):
    monkeypatch.setattr(validation, "today_utc", lambda: "2026-03-15")
    if refused:
        with pytest.raises(Invalid) as exc:
            validate_patient(_patient(birthDate=birth), path_id=None)
        assert _expressions(exc) == ["Patient.birthDate"]
    else:
        validate_patient(_patient(birthDate=birth), path_id=None)


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("deceasedDateTime", "2001-02-29T10:00:00Z"),
        ("deceasedDateTime", "2001-02-28T10:60:00Z"),
        ("deceasedDateTime", "0000-01-01"),
        ("birthDate", "2001-02-29"),
        ("birthDate", "0000"),
    ],
)
def test_other_dates_must_be_real(element, value):
    with pytest.raises(Invalid) as exc:
        validate_patient(_patient(**{element: value}), path_id=None)
    assert _expressions(exc) == [f"Patient.{element}"]


def test_validation_bounds_depth_itself():
    nested: dict[str, Any] = {"url": "http://x.org/leaf", "valueString": "x"}
    for _ in range(400):
        nested = {"url": "http://x.org/e", "extension": [nested]}
    with pytest.raises(Invalid) as exc:
        validate_patient(_patient(extension=[nested]), path_id=None)
    assert _expressions(exc) == ["Patient.extension"]


def test_many_issues_are_bounded():
    names = [{"family": 7} for _ in range(500)]
    with pytest.raises(Invalid) as exc:
        validate_patient(_patient(name=names), path_id=None)
    assert len(exc.value.issues) == 21
    assert exc.value.issues[-1].severity == "information"


# --- narratives (point 8) ---------------------------------------------------------------------

SAFE = [
    XHTML + "plain</div>",
    XHTML + "<p>a &amp; b &lt; c &#xe9; &#160;</p></div>",
    XHTML + '<table><tr><td colspan="2">x</td></tr></table></div>',
    XHTML + "<table><col/><tr><td>x</td></tr></table></div>",
    XHTML + '<a href="https://e.org/?a=1&amp;b=2">x</a><a href="#f">y</a><a name="f"/></div>',
    XHTML + '<a href="mailto:x@e.org">m</a><img src="http://e.org/i.png" alt=""/></div>',
    XHTML + '<span style="color:red;border: 1px solid black;">x</span></div>',
    XHTML + "<pre>\n\nkeeps\n  spacing</pre></div>",
    XHTML + "<p>line<br/>break</p><hr/><p/></div>",
    " " + XHTML + "surrounding whitespace</div>\n",
    XHTML + "<p title=\"a &quot;b&quot; &lt;c&gt; 'd'\">x\u00a0y \"q\" 's' &#x2019;</p></div>",
    XHTML
    + "<table>\n  <caption>c</caption>\n  <tr><td>x</td></tr>\n  <tr><td>y</td></tr>\n</table>"
    + "</div>",
    XHTML
    + "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>x</td></tr></tbody></table></div>",
    XHTML + '<ol start="3"><li value="3">x</li></ol><dl><dt>t</dt><dd>d</dd></dl></div>',
    # The shapes of the specification's examples and of HAPI's generated narratives:
    XHTML
    + "\n  <table>\n    <tbody>\n      <tr>\n        <td>Name</td>\n        <td>Peter James \n"
    + "          <b>Chalmers</b> (&quot;Jim&quot;)\n        </td>\n      </tr>\n    </tbody>\n"
    + "  </table>\n</div>",
    XHTML
    + '<div class="hapiHeaderText">Ana <b>RIVERA </b></div><table class="hapiPropertyTable">'
    + "<tbody><tr><td>Identifier</td><td>MRN-1</td></tr><tr><td>Date of birth</td><td><span>"
    + "02 April 1988</span></td></tr></tbody></table></div>",
]
UNSAFE = [
    XHTML + '<a href="jav&#x61;script:x">x</a></div>',
    XHTML + '<a href="&#x20;javascript:x">x</a></div>',
    XHTML + '<a href="java&#x0A;script:x">x</a></div>',
    XHTML + '<a href="JAVASCRIPT:x">x</a></div>',
    XHTML + '<a href="https:x" onmouseover="x">x</a></div>',
    XHTML + '<a href="/relative">x</a></div>',
    XHTML + '<a href="tel:123">x</a></div>',
    XHTML + '<img src="#x" onerror="x"/></div>',
    XHTML + '<img src="https://e.org/i.png" srcset="javascript:x"/></div>',
    XHTML + '<span style="color: red; background: url(https://e.org/x)">x</span></div>',
    XHTML + '<span style="width: expression(alert(1))">x</span></div>',
    XHTML + '<span style="color:r\\65 d">x</span></div>',
    XHTML + "<br>text</br></div>",
    XHTML + "<table><tr>text in a row</tr></table></div>",
    XHTML + "<a><a>nested links</a></a></div>",
    XHTML + "<textarea>x</textarea></div>",
    XHTML + "<B>upper case</B></div>",
    XHTML + ("<b>" * 70) + ("</b>" * 70) + "</div>",
    XHTML + '<p xmlns:on="urn:x" on:click="x">x</p></div>',
    '<?xml version="1.0"?>' + XHTML + "x</div>",
    XHTML + "<!-- a comment --></div>",
    XHTML + "<?php echo 1 ?></div>",
    '<!DOCTYPE div SYSTEM "https://e.org/x.dtd">' + XHTML + "x</div>",
    '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>' + XHTML + "&b;</div>",
]


@pytest.mark.parametrize("div", SAFE)
def test_safe_narratives_pass(div):
    assert narrative_problem(div) is None


@pytest.mark.parametrize("div", UNSAFE)
def test_unsafe_narratives_are_refused(div):
    assert narrative_problem(div)


@pytest.mark.parametrize(
    "div",
    [
        XHTML + '<a href="jav&#x61;script:x">x</a></div>',
        XHTML + '<a href="java&#x09;script:x">x</a></div>',
        XHTML + '<a href="https://e.org" onclick="x">x</a></div>',
        XHTML + '<img src="data:image/png;base64,AAAA"/></div>',
        XHTML + '<span style="position: fixed">x</span></div>',
        XHTML + '<span style="POSITION: fixed">x</span></div>',
        XHTML + '<p onClick="alert(1)">x</p></div>',
        XHTML + '<a HREF="javascript:x">x</a></div>',
    ],
)
def test_the_sanitizer_decides_attributes_urls_and_styles(div):
    """These pass every structural check: only nh3 with FHIR's rules refuses them."""
    assert narrative_problem(div) == validation.NARRATIVE_RULE


@pytest.mark.parametrize(
    "div",
    [
        XHTML + "<br>text</br></div>",
        XHTML + "<table><tr>text in a row</tr></table></div>",
        XHTML + "<a><a>nested links</a></a></div>",
        XHTML + "<p><div>block in a paragraph</div></p></div>",
    ],
)
def test_xhtml_that_html_reads_differently_is_refused(div):
    assert "structure changes when read as HTML" in str(narrative_problem(div))


def test_a_refused_narrative_is_named_not_echoed():
    secret = "Zq" + "8" * 8
    div = XHTML + f'<a href="javascript:x">{secret}</a></div>'
    with pytest.raises(Invalid) as exc:
        validate_patient(_patient(text={"status": "generated", "div": div}), path_id=None)
    assert _expressions(exc) == ["Patient.text.div"]
    assert secret not in str(exc.value)
