"""Models: the registry of pulled weights and the causal-LM backends ragspec decodes with.

Kept import-free so `ragspec models list` does not pay for importing torch; import from the submodules:
`ragspec.models.loader.load_causal_lm`, `ragspec.models.registry.resolve_model`, `ragspec.models.base`.
"""
