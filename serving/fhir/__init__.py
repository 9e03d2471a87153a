"""FHIR R4 read API over silver (docs/fhir.md): resources, search, ``$everything``."""
