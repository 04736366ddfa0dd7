"""Work that runs outside a request: the retention sweeper (the job queue comes next)."""
