"""Model plugins: each module registers trainable models with ``mosare.model.specs.register_model``."""
