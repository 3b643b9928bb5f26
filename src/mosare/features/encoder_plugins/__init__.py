"""Encoder plugins: each module here registers one encoder with ``mosare.features.encoder_specs.register_encoder`` at import.

``mosare.features.encoder_specs.registered_specs()`` imports them all, at planning too, so keep torch and timm inside the
builder function. docs/architecture.md ("How to extend") walks through adding one.
"""
