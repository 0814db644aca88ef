"""Store adapters, one per real backend, and the embedded servers used by default."""
