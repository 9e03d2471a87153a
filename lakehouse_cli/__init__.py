"""The `lakehouse` command line: the composition root above lakehouse, jobs, models, serving."""
