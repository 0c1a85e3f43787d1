"""Logging and tracing plumbing shared by every Orchid process (server, worker, scheduler)."""
