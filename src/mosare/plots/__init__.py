"""QC and result figures, one submodule per stage (tissue, gmm, training)."""
