import pytest

from devstack.host.routing import Router, RouteTemplate, RouteTemplateError


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/items", "/api/items", {}),
        ("api/items", "/API/Items/", {}),
        ("api/items/{id}", "/api/items/42", {"id": "42"}),
        ("api/items/{id}", "/api/items", None),
        ("api/items/{id}", "/api/items/42/more", None),
        ("api/greet/{name?}", "/api/greet", {}),
        ("api/greet/{name?}", "/api/greet/ada", {"name": "ada"}),
        ("api/lang/{code=en}", "/api/lang", {"code": "en"}),
        ("api/files/{*path}", "/api/files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("api/files/{*path}", "/api/files", {}),
        ("api/files/{name}.{ext}", "/api/files/report.final.pdf", {"name": "report.final", "ext": "pdf"}),
        ("", "/", {}),
        ("{*all}", "/anything/at/all", {"all": "anything/at/all"}),
    ],
)
def test_template_matching(template, path, expected):
    assert RouteTemplate(template).match(path) == expected


@pytest.mark.parametrize(
    ("constraint", "accepted", "rejected"),
    [
        ("int", ["0", "-7", "2147483647"], ["2147483648", "1.5", "x"]),
        ("long", ["9223372036854775807"], ["9223372036854775808"]),
        ("guid", ["3f2504e0-4f89-11d3-9a0c-0305e82c3301", "3F2504E04F8911D39A0C0305E82C3301"], ["3f2504e0", "g" * 32]),
        ("alpha", ["abcXYZ"], ["abc1", "a-b"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        ("double", ["1.5", "-2e3", "7"], ["1.2.3", "e"]),
        ("min(10)", ["10", "99"], ["9", "ten"]),
        ("range(1,3)", ["1", "3"], ["0", "4"]),
        ("length(2)", ["ab"], ["a", "abc"]),
        ("length(2,3)", ["ab", "abc"], ["a", "abcd"]),
        ("maxlength(2)", ["ab"], ["abc"]),
        ("regex(^a\\d+$)", ["a12", "A1"], ["b12", "a"]),
    ],
)
def test_constraints(constraint, accepted, rejected):
    template = RouteTemplate(f"v/{{value:{constraint}}}")

    assert all(template.match(f"/v/{value}") == {"value": value} for value in accepted)
    assert all(template.match(f"/v/{value}") is None for value in rejected)


def test_doubled_braces_in_a_regex_constraint_are_quantifiers():
    template = RouteTemplate(r"codes/{code:regex(^\d{{3}}$)}")

    assert template.match("/codes/123") == {"code": "123"}
    assert template.match("/codes/1234") is None


@pytest.mark.parametrize(
    "template",
    [
        "a//b",
        "a/{id",
        "a/id}",
        "a/{id:unknown}",
        "a/{id}/{id}",
        "a/{*rest}/b",
        "a/{opt?}/b",
        "a/{x}{y}",
        "a/{x?}.txt",
        "a/{1abc}",
        "a/{n:range(1)}",
    ],
)
def test_invalid_templates_are_rejected(template):
    with pytest.raises(RouteTemplateError):
        RouteTemplate(template)


def _router(*routes):
    router = Router()
    for template, methods, name in routes:
        router.add(RouteTemplate(template), methods, name)
    return router


def test_more_specific_routes_win_whatever_the_registration_order():
    router = _router(
        ("api/{*rest}", None, "catch-all"),
        ("api/{name}", None, "parameter"),
        ("api/{id:int}", None, "constrained"),
        ("api/items", None, "literal"),
    )

    assert router.resolve("/api/items", "GET").target == "literal"
    assert router.resolve("/api/7", "GET").target == "constrained"
    assert router.resolve("/api/seven", "GET").target == "parameter"
    assert router.resolve("/api/a/b", "GET").target == "catch-all"


def test_method_mismatch_reports_the_allowed_methods_and_no_match_reports_none():
    router = _router(("api/items", frozenset({"POST"}), "create"), ("api/items", frozenset({"PUT"}), "replace"))

    resolution = router.resolve("/api/items", "GET")
    assert resolution.target is None
    assert resolution.allowed_methods == {"POST", "PUT"}
    assert router.resolve("/api/items", "put").target == "replace"
    assert router.resolve("/api/other", "GET").allowed_methods == frozenset()


def test_a_route_without_methods_accepts_any_method():
    router = _router(("api/any", None, "any"))

    assert router.resolve("/api/any", "PATCH").target == "any"
