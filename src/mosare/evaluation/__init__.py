"""The evaluation protocol: patient-level folds (``splits``), missing-modality scenarios (``scenarios``), metrics,
statistical evidence (bootstrap CIs, DeLong, Holm, calibration) and the result tables built from cross-validation
outputs (``results``). Returns data; figures are drawn by ``mosare.reporting``.

May import every layer below it (``core`` to ``model``), never ``training``, ``deploy`` or ``reporting``.
"""
