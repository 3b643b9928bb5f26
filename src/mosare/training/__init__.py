"""Training: one fold's inputs (``fold_inputs``), the training loop (``loop``), cross-validation under the missing-modality
scenarios (``cross_validation``) and the final models trained on a whole cohort (``final_models``).

May import every layer below it (``core`` to ``evaluation``), never ``deploy`` or ``reporting``.
"""
