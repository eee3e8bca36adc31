"""The durable job queue: specs, the SQL store, and the dispatcher that feeds Ray Jobs."""
