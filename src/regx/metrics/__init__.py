"""Metrics computed from predicted probabilities, labels and embeddings."""
