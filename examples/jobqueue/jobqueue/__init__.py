"""jobqueue: jobs accepted over HTTP, done by a worker, with Redis in between."""
