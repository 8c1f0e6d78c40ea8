"""ragspec: retrieval-augmented speculative generation.

Answers questions over your documents with an LLM and uses retrieval twice: to ground the answer and to
draft tokens that the target model verifies many at a time.
"""

__version__ = "0.1.0"
