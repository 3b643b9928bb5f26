"""Importing this makes ``import mosare`` load the src/mosare of the checkout these scripts belong to.

The conda envs in envs/ hold third-party packages only, so a script running in one finds mosare here rather than
in the env, and a conda prefix shared by several checkouts never runs another checkout's code. Snakemake copies each
``script:`` into .snakemake/scripts/ but appends the script's own directory (``snakemake.scriptdir``) to sys.path
for local scripts, which is how this module, and with it this file's real location, is found. The checkout's src/
goes first on sys.path, ahead of any installed mosare; in a venv with this checkout installed editable, it is the
same directory.
"""

import sys
from pathlib import Path

CHECKOUT_SRC = str(Path(__file__).resolve().parents[2] / "src")

if sys.path[:1] != [CHECKOUT_SRC]:
    sys.path.insert(0, CHECKOUT_SRC)
