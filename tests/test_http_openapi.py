"""The OpenAPI document is true: requests made from it get no 5xx and only documented answers."""

import json
import re
from urllib.parse import urlencode

import httpx
import jsonschema
import pytest
from http_server import Server, add_user, headers
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from importstate.http import ENDPOINTS, openapi_document

PASSWORD = "fuzz-pass"  # noqa: S105 - a made-up credential of the test server


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    db = tmp_path_factory.mktemp("openapi") / "importstate.db"
    people = {
        "admin": add_user(db, "admin", "run-import", "view-import-operations", password=PASSWORD),
        "runner": add_user(db, "runner", "run-import"),
        "viewer": add_user(db, "viewer", "view-import-operations"),
        "nobody": add_user(db, "nobody"),
    }
    with Server(db) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        document = client.get("/api/v1/openapi.json").json()
        yield client, document, people


def test_the_served_document_is_the_module_document(fuzzed):
    _, document, _ = fuzzed
    assert document == json.loads(json.dumps(openapi_document(10 * 1024 * 1024)))
    jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Operation"])


def test_every_endpoint_is_documented(fuzzed):
    _, document, _ = fuzzed
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item}
    served = {(e.method, f"/api/v1/{e.name}") for e in ENDPOINTS}
    served |= {("POST", "/api/v1/login"), ("GET", "/api/v1/openapi.json")}
    assert documented == served


def test_every_reference_names_a_component():
    document = openapi_document(1024)
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert referenced <= set(document["components"]["schemas"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def operations(document):
    return sorted((path, method, spec) for path, item in document["paths"].items()
                  for method, spec in item.items())


def from_schema(document, schema):  # noqa: PLR0911 - one return per kind of schema
    """Values valid against ``schema`` (the subset of JSON Schema the document uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(document, document["components"]["schemas"][name])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(document, option) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: from_schema(document, properties[name]) for name in sorted(required)},
            optional={name: from_schema(document, sub) for name, sub in properties.items()
                      if name not in required},
        )
    if kind == "array":
        return st.lists(from_schema(document, schema.get("items", {})),
                        min_size=schema.get("minItems", 0), max_size=5)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=20)
    simple = { "integer": st.integers(), "boolean": st.booleans(),
              "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
              "null": st.none()}
    return simple.get(kind, json_values)


def resolved(document, schema):
    """``schema`` with the document's components beside it, so its ``$ref`` resolve."""
    return {**schema, "components": document["components"]}


@st.composite
def requests(draw, document, people):
    path, method, spec = draw(st.sampled_from(operations(document)))
    # Mostly the admin, so that most requests get past authentication.
    who = draw(st.sampled_from(["admin", "admin", "admin", *people, "anonymous", "forged"]))
    sent = {}
    if who in people and path == "/api/v1/logout":
        who = "fresh login"  # logging out a shared token would lock the next examples out
    elif who in people:
        sent = headers(people[who])
    elif who == "forged":
        sent = {"X-User-Id": draw(st.text(st.characters(min_codepoint=33, max_codepoint=126))),
                "X-Auth-Token": draw(st.text(st.characters(min_codepoint=33, max_codepoint=126)))}
    content = b""
    body = spec.get("requestBody", {}).get("content", {})
    kind = draw(st.sampled_from(["schema", "json", "bytes"] if body else ["none", "bytes"]))
    if kind == "schema":
        media = draw(st.sampled_from(sorted(body)))
        value = draw(from_schema(document, body[media]["schema"]))
        if media == "application/x-www-form-urlencoded":
            content = urlencode(value).encode()
            sent["Content-Type"] = media
        else:
            content = json.dumps(value).encode()
    elif kind == "json":
        content = json.dumps(draw(json_values)).encode()
    elif kind == "bytes":
        content = draw(st.binary(max_size=64))
    return method.upper(), path, sent, content, spec, draw(queries(document, spec))


@st.composite
def queries(draw, document, spec):
    """Query parameters the operation takes, and now and then one it does not."""
    query = {}
    for parameter in spec.get("parameters", []):
        if parameter["required"] or draw(st.booleans()):
            query[parameter["name"]] = draw(from_schema(document, parameter["schema"]))
    if draw(st.integers(0, 9)) == 0:
        query[draw(st.sampled_from(["x", "operationId", "limit"]))] = draw(st.text(max_size=8))
    return query


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_responses_match_the_document(fuzzed, data):
    client, document, people = fuzzed
    method, path, sent, content, spec, query = data.draw(requests(document, people))
    if path == "/api/v1/logout" and not sent:
        login = client.post("/api/v1/login", json={"user": "admin", "password": PASSWORD})
        sent = {"X-User-Id": login.json()["data"]["userId"],
                "X-Auth-Token": login.json()["data"]["authToken"]}
    response = client.request(method, path, headers=sent, content=content, params=query)
    event(f"{method} {path} → {response.status_code}")
    assert response.status_code < 500, response.text
    documented = spec["responses"]
    assert str(response.status_code) in documented, (response.status_code, response.text)
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    assert response.headers["content-type"] == "application/json"
    jsonschema.validate(response.json(), resolved(document, schema),
                        cls=jsonschema.Draft202012Validator)
