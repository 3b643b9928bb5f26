"""What a job may really use of the machine it landed on."""

from __future__ import annotations

import os


def usable_cores(requested: int) -> int:
    """The rule's threads, capped at the CPUs this process may run on.

    ``snakemake --cores 16`` on a 2-core laptop still hands a rule its declared threads; more torch threads than
    cores only makes concurrent jobs fight over them.
    """
    return max(1, min(int(requested), len(os.sched_getaffinity(0))))
