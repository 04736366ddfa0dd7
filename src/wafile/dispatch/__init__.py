"""Work outside requests: the job queue's worker, its handlers, the retention sweep."""
