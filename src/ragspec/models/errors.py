"""The one error type of the model registry.

User mistakes (an unknown name, a model that is not pulled, a failed download, a corrupt file) are
reported as a `ModelError` whose message is one readable line, so the CLI can print it without a
traceback. It subclasses `ValueError` so callers that already catch bad input keep working.
"""

from __future__ import annotations


class ModelError(ValueError):
    """A model could not be resolved, pulled or converted; the message is a single line for the user."""
