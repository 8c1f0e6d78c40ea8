"""Methods that combine retrieval and speculation in their own way (RAPID, ...), each a thin wiring of
the shared parts: retrieval, the engine, proposers and acceptance rules."""
