"""Tissue detector plugins: each module registers one ``TissueDetector`` (``mosare.slides.tissue``)."""
