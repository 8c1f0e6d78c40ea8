"""Retrieval-augmented answers: prompts with numbered sources, the answer pipeline, per-store datastores."""
