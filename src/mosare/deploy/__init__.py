"""Saved final models applied to new cohorts (``apply``), and where they looked: patch attention per slide
(``attention``, ``slide_attention``). Returns data; pictures are drawn by ``mosare.reporting``.

May import every layer below it, never ``reporting``.
"""
