"""Evaluation metrics (being written)."""
