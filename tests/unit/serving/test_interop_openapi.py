"""The 4A services' OpenAPI document: its own file, every service with its row schema and
catalogued errors (no Spark: the route table over stand-ins)."""

from __future__ import annotations

from serving.interop.services import SERVICES
from serving.openapi import openapi_schemas


def test_every_4a_service_is_documented_with_its_schema_and_errors() -> None:
    doc = openapi_schemas()["interop-4a"]
    assert doc["servers"] == [{"url": "/interop/4a"}]
    paths = doc["paths"]
    assert {f"/{s.path}" for s in SERVICES} | {"/documents", "/documents/{code}"} == set(paths)
    schemas = doc["components"]["schemas"]
    for s in SERVICES:
        op = paths[f"/{s.path}"]["get"]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/Answer_{s.model.__name__}_"}
        assert set(s.model.model_fields) == set(schemas[s.model.__name__]["properties"])
        assert "LH-SEC-005" in op["responses"]["401"]["description"]
        assert "LH-IOP-001" in op["responses"]["403"]["description"]
        assert op["security"] == [{"session": []}]
    document = paths["/documents/{code}"]["get"]["responses"]
    assert "application/xml" in document["200"]["content"]
    assert "LH-IOP-003" in document["404"]["description"]
