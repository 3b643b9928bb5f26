"""Foundations every stage shares: atomic files and zarr stores, the results layout, logs, the config schema and its
defaults, sample sheets, code fingerprints, the modality names, devices and thread counts.

Imports nothing else of ``mosare`` (checked by import-linter, ``pyproject.toml``).
"""
