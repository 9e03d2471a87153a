"""The terminology service's tables (layer ``vocab``): OMOP-shaped, versioned by edition."""
