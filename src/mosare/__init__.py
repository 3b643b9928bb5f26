"""mosare-pipeline: whole-slide images, RNA-seq and reports to a missing-modality-robust subtype classifier."""

__version__ = "0.1.0"
