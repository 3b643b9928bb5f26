"""The models: MoSARe (``mosare``), its components, ablations and baselines; the registry of trainable models
(``specs``, torch-free: planning reads it) and the factory that builds one by name (``factory``).

Kept free of torch itself, so importing ``mosare.model.specs`` while planning loads no torch.
May import ``mosare.core`` only.
"""
