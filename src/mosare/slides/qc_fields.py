"""The slide QC metrics' names and meanings (``mosare.slides.qc_metrics`` computes them; the cohort table reads them).

Kept apart from ``mosare.slides.qc_metrics`` so the cohort stages read the names without its image libraries.
"""

# Grey level below which a tissue pixel counts as dark: 0.15 of white, HistoQC's dark-tissue threshold. Stained
# nuclei sit above it; a fold doubles the optical density (squares the light let through) and pushes them below.
DARK_GREY = 38

# Every metric in the patch store's ``qc`` dict, with its meaning (the slide_qc.tsv columns, in order).
QC_METRICS: dict[str, str] = {
    "tissue_area_mm2": "tissue area after the fine pass (mm²)",
    "n_pieces": "separate tissue pieces kept",
    "n_patches": "patches kept",
    "patch_coverage": "share of the tissue inside kept patches",
    "ink_fraction": "share of stained area classed as pen ink or near-black",
    "unreadable_fraction": "share of the slide that could not be decoded",
    "sharpness": "variance of the Laplacian of grey on tissue at the fine pass (higher = sharper)",
    "brightness": "mean grey on tissue (0-255)",
    "contrast": "standard deviation of grey on tissue",
    "od_hematoxylin": "mean hematoxylin optical density on tissue (rgb2hed)",
    "od_eosin": "mean eosin optical density on tissue (rgb2hed)",
    "stain_h_r": "Macenko hematoxylin vector, red OD component",
    "stain_h_g": "Macenko hematoxylin vector, green OD component",
    "stain_h_b": "Macenko hematoxylin vector, blue OD component",
    "stain_e_r": "Macenko eosin vector, red OD component",
    "stain_e_g": "Macenko eosin vector, green OD component",
    "stain_e_b": "Macenko eosin vector, blue OD component",
    "dark_fraction": f"share of tissue with grey below {DARK_GREY} (folds, dark areas)",
}
