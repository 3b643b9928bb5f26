"""Whole-slide images to patches: the one slide reader (``reader``), tissue detection (``tissue`` and its plugins in
``tissue_plugins/``), patch geometry and grid, the tiling stage (``tiling``) and slide quality metrics
(``qc_metrics``, ``qc_fields``).

May import ``mosare.core`` only.
"""
