"""The three modalities, in the order every presence mask, table column and plot uses (no torch, no I/O)."""

from __future__ import annotations

from typing import Final

MODALITIES: Final[tuple[str, str, str]] = ("wsi", "rna", "text")
