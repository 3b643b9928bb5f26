"""Demo pathology reports: findings that lean towards the patient's class, noisily, and sometimes name it; for a
survival demo (:func:`survival_report`), findings that grow more aggressive with the patient's latent risk."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from mosare.demo.plan import DemoPlan, PatientPlan, random_stream


@dataclass(frozen=True)
class SubtypeText:
    organ: str
    specimens: tuple[str, ...]
    generic_diagnosis: tuple[str, ...]  # diagnosis lines that do not name the subtype
    subtype_names: tuple[str, ...]  # the leak: the subtype written out
    findings: tuple[str, ...]  # class-typical microscopy, never naming the subtype
    stains: dict[str, tuple[str, str]]  # marker -> (result typical of this class, the other result)


class OrganText(TypedDict):
    """The fields of ``SubtypeText`` that the subtypes of one organ share."""

    organ: str
    specimens: tuple[str, ...]
    generic_diagnosis: tuple[str, ...]


_LUNG = OrganText(
    organ="lung",
    specimens=(
        "Right upper lobe, lobectomy",
        "Left lower lobe, lobectomy",
        "Right lung, wedge resection",
        "Left upper lobe, segmentectomy",
        "CT-guided core biopsy of a peripheral lung nodule",
    ),
    generic_diagnosis=(
        "Non-small cell carcinoma, see comment",
        "Primary lung carcinoma, non-small cell type",
        "Malignant epithelial neoplasm of lung origin",
    ),
)
_KIDNEY = OrganText(
    organ="kidney",
    specimens=(
        "Left kidney, radical nephrectomy",
        "Right kidney, partial nephrectomy",
        "Right renal mass, core needle biopsy",
        "Left kidney, laparoscopic partial nephrectomy",
    ),
    generic_diagnosis=(
        "Renal cell carcinoma, see comment",
        "Renal epithelial neoplasm, malignant",
        "Renal cell carcinoma, subtype discussed below",
    ),
)
_BREAST = OrganText(
    organ="breast",
    specimens=(
        "Left breast, lumpectomy",
        "Right breast, simple mastectomy",
        "Left breast, ultrasound-guided core biopsy",
        "Right breast, wide local excision",
    ),
    generic_diagnosis=(
        "Invasive carcinoma of the breast, see comment",
        "Invasive mammary carcinoma",
        "Malignant breast neoplasm, invasive",
    ),
)
SUBTYPE_TEXT: dict[str, SubtypeText] = {
    "LUAD": SubtypeText(
        **_LUNG,
        subtype_names=(
            "invasive adenocarcinoma",
            "adenocarcinoma, acinar predominant",
            "adenocarcinoma with lepidic and papillary components",
            "lung adenocarcinoma",
        ),
        findings=(
            "Tumor cells form acinar glands lined by columnar cells.",
            "A lepidic growth pattern along alveolar walls is seen at the periphery.",
            "Intracytoplasmic mucin droplets are present in a subset of tumor cells.",
            "Gland-forming tumor with micropapillary tufts floating in alveolar spaces.",
        ),
        stains={
            "TTF-1": ("positive", "negative"),
            "Napsin A": ("positive", "negative"),
            "p40": ("negative", "positive"),
            "CK5/6": ("negative", "positive"),
        },
    ),
    "LUSC": SubtypeText(
        **_LUNG,
        subtype_names=(
            "squamous cell carcinoma",
            "keratinizing squamous cell carcinoma",
            "squamous carcinoma, moderately differentiated",
        ),
        findings=(
            "Sheets and nests of polygonal cells with abundant eosinophilic cytoplasm.",
            "Keratin pearls and intercellular bridges are identified.",
            "Individual cell keratinization and central necrosis within nests.",
            "Solid nests with peripheral palisading and no gland formation.",
        ),
        stains={
            "p40": ("positive", "negative"),
            "CK5/6": ("positive", "negative"),
            "TTF-1": ("negative", "positive"),
            "Napsin A": ("negative", "positive"),
        },
    ),
    "CCRCC": SubtypeText(
        **_KIDNEY,
        subtype_names=(
            "clear cell renal cell carcinoma",
            "renal cell carcinoma, clear cell type",
            "clear cell carcinoma of the kidney",
        ),
        findings=(
            "Nests of tumor cells with optically empty cytoplasm and distinct cell membranes.",
            "A delicate arborizing capillary network surrounds the tumor nests.",
            "Areas of hemorrhage and hemosiderin deposition with golden-yellow cut surface grossly.",
            "Alveolar and acinar architecture of cells with glycogen-rich cytoplasm.",
        ),
        stains={
            "CA-IX": ("diffuse membranous (box-like) positivity", "negative or perinecrotic only"),
            "CK7": ("negative", "diffusely positive"),
            "CD10": ("positive", "focal"),
        },
    ),
    "PRCC": SubtypeText(
        **_KIDNEY,
        subtype_names=(
            "papillary renal cell carcinoma",
            "renal cell carcinoma, papillary type",
            "papillary carcinoma of the kidney",
        ),
        findings=(
            "Fibrovascular cores lined by a single layer of tumor cells.",
            "Numerous foamy macrophages expand the cores.",
            "Psammoma bodies and hemosiderin-laden macrophages are present.",
            "Tubulopapillary architecture with a well-defined fibrous pseudocapsule.",
        ),
        stains={
            "CK7": ("diffusely positive", "negative"),
            "AMACR": ("strongly positive", "weak"),
            "CA-IX": ("negative or perinecrotic only", "diffuse membranous positivity"),
        },
    ),
    "IDC": SubtypeText(
        **_BREAST,
        subtype_names=(
            "invasive ductal carcinoma",
            "invasive ductal carcinoma, no special type",
            "ductal carcinoma, invasive",
        ),
        findings=(
            "Cohesive nests, cords and tubules of tumor cells in a desmoplastic stroma.",
            "Tumor cells form trabeculae and glandular structures with moderate pleomorphism.",
            "Tubule formation in about 30 percent of the tumor; mitoses are readily found.",
            "The tumor has an infiltrative border with solid nests and focal necrosis.",
        ),
        stains={
            "E-cadherin": ("positive, strong membranous", "negative (loss of membranous staining)"),
            "p120": ("membranous", "cytoplasmic"),
        },
    ),
    "ILC": SubtypeText(
        **_BREAST,
        subtype_names=(
            "invasive lobular carcinoma",
            "invasive lobular carcinoma, classic type",
            "lobular carcinoma, invasive",
        ),
        findings=(
            "Discohesive small cells infiltrate the stroma in single files.",
            "Tumor cells are arranged in a targetoid pattern around benign ducts.",
            "Intracytoplasmic vacuoles and occasional signet-ring forms are seen.",
            "Diffuse infiltration with little stromal reaction; no tubule formation.",
        ),
        stains={
            "E-cadherin": ("negative (loss of membranous staining)", "positive, strong membranous"),
            "p120": ("cytoplasmic", "membranous"),
        },
    ),
}

NEUTRAL_FINDINGS = (
    "The tumor shows moderate nuclear pleomorphism.",
    "Mitotic activity is brisk, up to {mitoses} per 10 high-power fields.",
    "Tumor-associated lymphocytes are {amount}.",
    "Necrosis involves approximately {necrosis} percent of the tumor.",
    "Lymphovascular invasion is {lvi}.",
    "Perineural invasion is not identified.",
    "The background parenchyma shows chronic inflammation and fibrosis.",
    "Crush artefact limits the evaluation of part of the specimen.",
)


def _generic_text(label: str, class_position: float) -> SubtypeText:
    """Report vocabulary for a class name the demo has no special text for (glandular vs solid, like the slides)."""
    glandular = (
        "Tumor cells form gland-like rings around small lumens.",
        "Tubular and acinar structures predominate.",
        "Lumens are lined by a single layer of columnar cells.",
    )
    solid = (
        "Tumor cells grow in solid nests without lumen formation.",
        "Sheets of densely packed cells with enlarged nuclei.",
        "Solid architecture with crowded, overlapping nuclei.",
    )
    return SubtypeText(
        organ="the submitted tissue",
        specimens=("Tissue, excision", "Tissue, core biopsy", "Tissue, resection"),
        generic_diagnosis=("Malignant neoplasm, see comment", "Carcinoma, subtype discussed below"),
        subtype_names=(f"carcinoma consistent with {label}", f"{label}"),
        findings=glandular if class_position < 0.5 else solid,
        stains={},
    )


def subtype_text(label: str, class_position: float) -> SubtypeText:
    return SUBTYPE_TEXT.get(label.upper()) or _generic_text(label, class_position)


def demo_report(plan: DemoPlan, patient: PatientPlan) -> str:
    """A synthetic pathology report whose findings lean towards the patient's class, noisily.

    About half name the subtype (the leak the text stage strips); findings are sometimes uninformative
    or borrowed from another class, and stains sometimes come out atypical.
    """
    rng = random_stream(int(plan.settings["seed"]), 3, patient.index)
    own = subtype_text(patient.label, patient.class_position)
    others = [subtype_text(c, i / (len(plan.classes) - 1)) for i, c in enumerate(plan.classes) if c != patient.label]

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    def fill(sentence: str) -> str:
        return sentence.format(
            mitoses=int(rng.integers(2, 30)),
            amount=pick(["sparse", "moderate", "brisk"]),
            necrosis=int(rng.integers(0, 40)),
            lvi=pick(["present", "not identified", "suspicious, not definitive"]),
        )

    size = rng.uniform(0.8, 6.5, 3)
    sex, age = pick(["male", "female"]), int(rng.integers(38, 86))
    findings = [fill(pick(NEUTRAL_FINDINGS)) for _ in range(int(rng.integers(1, 3)))]
    for _ in range(int(rng.integers(0, 3))):
        roll = rng.random()
        source = own if roll < 0.75 else others[int(rng.integers(len(others)))] if roll < 0.88 else None
        findings.append(pick(source.findings) if source else fill(pick(NEUTRAL_FINDINGS)))
    findings = list(dict.fromkeys(findings))
    rng.shuffle(findings)
    stain_lines = []
    for marker, (typical, atypical) in own.stains.items():
        if rng.random() < 0.55:
            result = typical if rng.random() < 0.85 else pick([atypical, "equivocal"])
            stain_lines.append(f"{marker}: {result}")
    names_subtype = rng.random() < 0.5
    diagnosis = pick(own.subtype_names) if names_subtype else pick(own.generic_diagnosis)
    nodes_total = int(rng.integers(0, 18))
    nodes_positive = int(rng.integers(0, nodes_total + 1)) if rng.random() < 0.4 else 0
    margin = pick(
        [
            "All margins are negative; the closest margin is {d:.1f} cm.",
            "Tumor is present at the {side} margin.",
            "Margins are free of tumor (closest {d:.1f} cm).",
        ]
    ).format(d=rng.uniform(0.1, 2.5), side=pick(["bronchial", "vascular", "deep", "medial", "superior"]))

    heading = str.upper if rng.random() < 0.5 else str.title
    sections = [
        (heading("specimen"), pick(own.specimens) + "."),
        (heading("clinical history"), f"{age}-year-old {sex} with a {size[0]:.1f} cm {own.organ} mass."),
        (
            heading("gross description"),
            f"The specimen measures {size[0] + 1:.1f} x {size[1] + 1:.1f} x {size[2] + 0.5:.1f} cm. Sectioning reveals a "
            f"{pick(['firm', 'tan-white', 'grey-white', 'variegated'])} {pick(['well-circumscribed', 'ill-defined', 'lobulated'])} "
            f"lesion measuring {size[0]:.1f} cm.",
        ),
        (heading("microscopic description"), " ".join(findings)),
    ]
    if stain_lines:
        sections.append((heading("immunohistochemistry"), "; ".join(stain_lines) + "."))
    sections.append((heading("margins"), margin))
    if nodes_total:
        sections.append(
            (heading("lymph nodes"), f"{nodes_positive} of {nodes_total} lymph nodes involved by carcinoma.")
        )
    grade = pick(["well differentiated", "moderately differentiated", "poorly differentiated", "grade 2", "grade 3"])
    sections.append((heading("diagnosis"), f"{own.organ.capitalize()}: {diagnosis}, {grade}, {size[0]:.1f} cm."))
    separator = ":\n" if rng.random() < 0.5 else ": "
    return "\n\n".join(f"{title}{separator}{body}" for title, body in sections) + "\n"


# The survival demo: how strongly each aggressive finding follows the latent risk r (standard normal). A finding is
# the aggressive one with probability sigmoid(RISK_SLOPE * r + its offset); ordinal ones (grade, pleomorphism) cut
# RISK_SLOPE * r plus logistic noise at two thresholds.
RISK_SLOPE = 1.2
SURVIVAL_NEUTRAL_FINDINGS = (
    "Tumor-associated lymphocytes are {amount}.",
    "The background parenchyma shows chronic inflammation and fibrosis.",
    "Crush artefact limits the evaluation of part of the specimen.",
    "Perineural invasion is not identified.",
)


def survival_report(plan: DemoPlan, patient: PatientPlan, risk: float) -> str:
    """A synthetic pathology report for a survival demo patient whose findings grow more aggressive with ``risk``.

    Grade and nuclear pleomorphism (three levels), the mitotic count, necrosis, lymphovascular invasion and involved
    lymph nodes each lean to the aggressive side as ``risk`` rises, noisily; each is mentioned in most reports, not
    all. It is given the risk and never the time or the event, so nothing in it states the outcome.
    """
    rng = random_stream(int(plan.settings["seed"]), 3, patient.index)
    own = subtype_text(patient.label, patient.class_position)

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    def aggressive(offset: float) -> bool:
        return bool(rng.random() < 1.0 / (1.0 + math.exp(-(RISK_SLOPE * risk + offset))))

    def level(low: str, middle: str, high: str) -> str:
        score = RISK_SLOPE * risk + rng.logistic()
        return low if score < -1.2 else high if score > 1.2 else middle

    size = rng.uniform(0.8, 6.5, 3)
    sex, age = pick(["male", "female"]), int(rng.integers(38, 86))
    pleomorphism = level("mild", "moderate", "marked")
    mitoses = int(rng.poisson(math.exp(1.6 + 0.6 * risk)))
    findings = [
        pick(own.findings),
        f"The tumor shows {pleomorphism} nuclear pleomorphism.",
        f"Mitotic activity: {mitoses} per 10 high-power fields.",
        (
            f"Tumor necrosis involves approximately {int(rng.integers(5, 40))} percent of the tumor."
            if aggressive(-0.5)
            else "No tumor necrosis is identified."
        ),
        f"Lymphovascular invasion is {'present' if aggressive(-0.7) else 'not identified'}.",
    ]
    findings = [finding for finding in findings if rng.random() < 0.8]
    neutral = pick(SURVIVAL_NEUTRAL_FINDINGS)
    findings.append(neutral.format(amount=pick(["sparse", "moderate", "brisk"])))
    rng.shuffle(findings)
    nodes_total = int(rng.integers(0, 18))
    nodes_positive = int(rng.integers(1, nodes_total + 1)) if nodes_total and aggressive(-1.2) else 0
    margin = pick(
        [
            "All margins are negative; the closest margin is {d:.1f} cm.",
            "Tumor is present at the {side} margin.",
            "Margins are free of tumor (closest {d:.1f} cm).",
        ]
    ).format(d=rng.uniform(0.1, 2.5), side=pick(["vascular", "deep", "medial", "superior"]))
    grade = level(
        "well differentiated (grade 1)", "moderately differentiated (grade 2)", "poorly differentiated (grade 3)"
    )

    heading = str.upper if rng.random() < 0.5 else str.title
    sections = [
        (heading("specimen"), pick(own.specimens) + "."),
        (heading("clinical history"), f"{age}-year-old {sex} with a {size[0]:.1f} cm {own.organ} mass."),
        (
            heading("gross description"),
            f"The specimen measures {size[0] + 1:.1f} x {size[1] + 1:.1f} x {size[2] + 0.5:.1f} cm. Sectioning reveals a "
            f"{pick(['firm', 'tan-white', 'grey-white', 'variegated'])} {pick(['well-circumscribed', 'ill-defined', 'lobulated'])} "
            f"lesion measuring {size[0]:.1f} cm.",
        ),
        (heading("microscopic description"), " ".join(findings)),
        (heading("margins"), margin),
    ]
    if nodes_total:
        sections.append(
            (heading("lymph nodes"), f"{nodes_positive} of {nodes_total} lymph nodes involved by carcinoma.")
        )
    diagnosis = pick(own.subtype_names) if rng.random() < 0.5 else pick(own.generic_diagnosis)
    sections.append((heading("diagnosis"), f"{own.organ.capitalize()}: {diagnosis}, {grade}, {size[0]:.1f} cm."))
    separator = ":\n" if rng.random() < 0.5 else ": "
    return "\n\n".join(f"{title}{separator}{body}" for title, body in sections) + "\n"
