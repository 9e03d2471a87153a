"""Silver transforms: bronze records -> the conformed, coded clinical model."""
