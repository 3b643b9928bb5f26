"""Synthetic demo cohorts: the plan (``plan``, cheap, read while planning), slides (``render``), reports
(``reports``) and the files written for a cohort (``writer``).

May import ``mosare.core`` only.
"""
