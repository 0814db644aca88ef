"""Scoring models: features, training, evaluation, the model registry and explanations."""
