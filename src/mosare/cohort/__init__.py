"""A cohort assembled from its stores: the cohort table (``table``), the slide QC table (``slide_qc_table``) and the
whole cohort read into memory for training (``data``).

May import ``mosare.core``, ``mosare.slides`` and ``mosare.features``.
"""
