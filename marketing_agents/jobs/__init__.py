"""Entry points for `ray job submit`: batch scoring, training, consolidation."""
