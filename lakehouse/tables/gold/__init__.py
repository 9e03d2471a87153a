"""Gold: the OMOP CDM v5.4 tables (``omop``) and their id registry."""
