"""Every write of engage. Each function is one transaction that checks its rule once,
records its Event(s) through engage.history and enqueues jobs only after commit."""
