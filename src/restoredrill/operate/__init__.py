"""Operating the suite: list, doctor, the disk-space preflight, notifications, the CI matrix and its merged
report, the pre-migration rehearsal and live progress. One module per job; each reuses the engine."""
