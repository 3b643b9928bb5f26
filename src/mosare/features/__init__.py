"""Per-slide and per-patient features: patch encoders (registry ``encoder_specs``, plugins in ``encoder_plugins/``),
patch embedding, per-slide Gaussian mixtures (``gmm``, ``gmm_em``, ``gmm_store``, ``slide_gmm``), report encoding
(``reports``, ``report_cleaning``) and RNA expression (``expression``).

May import ``mosare.core`` and ``mosare.slides``.
"""
