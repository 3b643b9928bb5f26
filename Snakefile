# mosare-pipeline: WSIs, RNA-seq and reports -> MoSARe subtype classifier.
# Stages in order: demo cohort (when configured) -> tiling -> embedding -> local features (GMM, text, RNA)
# -> training and evaluation -> cohort-level figures. Logic lives in src/mosare/; rules only wire files together.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/tiling.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/embedding.smk"
include: "workflow/rules/local_features.smk"
include: "workflow/rules/modalities.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/figures.smk"


onsuccess:
    # Problems that only reached job logs (slides without tissue, patients missing a modality), on screen.
    logger.info(end_of_run_summary())


rule all:
    input:
        get_final_output(),
    default_target: True
