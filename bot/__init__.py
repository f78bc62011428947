"""Application wiring, the command line, channel adapters, scheduler and outbox."""
