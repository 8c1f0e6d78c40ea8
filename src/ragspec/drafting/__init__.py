"""Proposers: draft trees from retrieval (PLD, REST) and from draft language models."""
