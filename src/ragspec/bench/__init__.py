"""Benchmarks: generation speed against Hugging Face's own generation, verification cost, retrieval."""
