"""Everything drawn or summarised for people: figures (``plots``), cohort-level figures (``cohort_figures``), the
HTML report's picture selections and the end-of-run summary.

The top stage layer: may import any layer below; only ``mosare.config`` sits above it.
"""
