"""Jobs: one module per job, each with run(spark, cfg, ...) -> report and main(argv) -> int."""
