"""Provider adapters (pure translation functions) and the registry of model-string prefixes."""
