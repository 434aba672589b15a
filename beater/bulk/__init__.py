"""The engine's bulk API, written through: what the engine stored is matched and published too."""
