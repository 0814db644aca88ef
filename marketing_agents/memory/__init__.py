"""The four memory tiers (short-term, long-term, episodic, semantic), the unified memory manager and the consolidator."""
