"""Cohort figure plugins: each module registers one ``CohortFigure`` (``mosare.reporting.cohort_figures``)."""
