"""Which slides share an embedding job: a stable, deterministic chunking of a cohort (no torch; planning uses it).

One job per slide pays the process start, the imports and the model load per slide (seconds; as long as the
slide's own embedding on a GPU), so slides are embedded in chunks with the model loaded once. A slide's chunk is
its id's hash modulo the chunk count, the smallest power of two that keeps chunks at about ``slides_per_job``
slides or fewer. It depends only on the slide's own id and that count, so adding, removing or changing a slide
changes one chunk's slides: Snakemake reruns that chunk (its input set changed, or an input is newer) and no
other. Only when the cohort's size crosses ``slides_per_job`` times a power of two does the count double; every
chunk then splits in two and the cohort is embedded once more (a power of two, not ``ceil(n / slides_per_job)``,
so that happens once per doubling of the cohort instead of every ``slides_per_job`` slides).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass


def slide_key(slide_id: str) -> int:
    """A 64-bit key of the slide id that is the same in every process and on every machine (not ``hash()``)."""
    return int.from_bytes(hashlib.sha256(slide_id.encode("utf-8")).digest()[:8], "big")


def chunk_count(n_slides: int, slides_per_job: int) -> int:
    """The smallest power of two with at most ``slides_per_job`` slides per chunk on average."""
    if slides_per_job < 1:
        raise ValueError(f"encoder.slides_per_job must be >= 1, got {slides_per_job}")
    return 1 << max(0, math.ceil(math.log2(max(1.0, n_slides / slides_per_job))))


@dataclass(frozen=True)
class EmbeddingChunk:
    """The slides one embedding job embeds, in sample-sheet order."""

    index: int
    slide_ids: tuple[str, ...]


def embedding_chunks(slide_ids: Sequence[str], slides_per_job: int) -> list[EmbeddingChunk]:
    """The cohort's slides in hash chunks (``chunk_count``); empty chunks are left out."""
    n_chunks = chunk_count(len(slide_ids), slides_per_job)
    members: dict[int, list[str]] = {index: [] for index in range(n_chunks)}
    for slide_id in slide_ids:
        members[slide_key(slide_id) % n_chunks].append(slide_id)
    return [EmbeddingChunk(index, tuple(ids)) for index, ids in members.items() if ids]
