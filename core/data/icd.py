"""ICD code normalisation and granularity (full code, EHRDiff 3-digit, chapter)."""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd

Granularity = Literal["full", "3digit", "chapter"]
GRANULARITIES: tuple[Granularity, ...] = ("full", "3digit", "chapter")

# Dotted spellings ('401.9', 'E849.7', 'E11.9') tell ICD-9 from ICD-10 by where the dot sits;
# undotted MIMIC spellings ('4019', 'E8497', 'E119') are ambiguous and need the source's version.
ICD9_DOTTED = re.compile(r"^(?:\d{3}(?:\.\d{1,2})?|V\d{2}(?:\.\d{1,2})?|E\d{3}(?:\.\d)?)$")
ICD10_DOTTED = re.compile(r"^[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?$")
ICD9_ANY = re.compile(r"^(?:\d{3}(?:\.?\d{1,2})?|V\d{2}(?:\.?\d{1,2})?|E\d{3}(?:\.?\d)?)$")
ICD10_ANY = re.compile(r"^[A-Z]\d[0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")

# ICD-9-CM chapters by the numeric range of their 3-digit category.
_ICD9_CHAPTERS = (
    (1, 139, "001-139 Infectious and parasitic"),
    (140, 239, "140-239 Neoplasms"),
    (240, 279, "240-279 Endocrine, nutritional, metabolic, immunity"),
    (280, 289, "280-289 Blood and blood-forming organs"),
    (290, 319, "290-319 Mental disorders"),
    (320, 389, "320-389 Nervous system and sense organs"),
    (390, 459, "390-459 Circulatory system"),
    (460, 519, "460-519 Respiratory system"),
    (520, 579, "520-579 Digestive system"),
    (580, 629, "580-629 Genitourinary system"),
    (630, 679, "630-679 Pregnancy and childbirth"),
    (680, 709, "680-709 Skin and subcutaneous tissue"),
    (710, 739, "710-739 Musculoskeletal and connective tissue"),
    (740, 759, "740-759 Congenital anomalies"),
    (760, 779, "760-779 Perinatal conditions"),
    (780, 799, "780-799 Symptoms and ill-defined conditions"),
    (800, 999, "800-999 Injury and poisoning"),
)
ICD9_V_CHAPTER = "V01-V91 Supplementary: health status and contact"
ICD9_E_CHAPTER = "E000-E999 Supplementary: external causes"

# ICD-10 chapters by first letter (and the split letters D and H by number).
_ICD10_CHAPTERS = {
    "A": "A00-B99 Infectious and parasitic", "B": "A00-B99 Infectious and parasitic",
    "C": "C00-D49 Neoplasms", "E": "E00-E89 Endocrine, nutritional, metabolic",
    "F": "F01-F99 Mental and behavioural", "G": "G00-G99 Nervous system",
    "I": "I00-I99 Circulatory system", "J": "J00-J99 Respiratory system",
    "K": "K00-K95 Digestive system", "L": "L00-L99 Skin", "M": "M00-M99 Musculoskeletal",
    "N": "N00-N99 Genitourinary", "O": "O00-O9A Pregnancy and childbirth",
    "P": "P00-P96 Perinatal", "Q": "Q00-Q99 Congenital", "R": "R00-R99 Symptoms and signs",
    "S": "S00-T88 Injury and poisoning", "T": "S00-T88 Injury and poisoning",
    "V": "V00-Y99 External causes", "W": "V00-Y99 External causes",
    "X": "V00-Y99 External causes", "Y": "V00-Y99 External causes",
    "Z": "Z00-Z99 Health status and contact", "U": "U00-U85 Special purposes",
}  # fmt: skip


def normalise(code: str) -> str:
    """Upper case, no dot, no spaces: the MIMIC spelling ('401.9' -> '4019')."""
    return code.strip().upper().replace(".", "").replace(" ", "")


def classify_dotted(token: str) -> int | None:
    """9 or 10 for a dotted code as eICU writes them ('401.9' / 'I10'); None if neither.

    ICD-9 wins where both patterns fit ('V30.00'): eICU lists the ICD-9 code first.
    """
    t = token.strip().upper()
    if ICD9_DOTTED.match(t):
        return 9
    if ICD10_DOTTED.match(t):
        return 10
    return None


def icd9_3digit(code: str) -> str:
    """EHRDiff's truncation: E-codes keep 4 characters ('E8889' -> 'E888'), others 3."""
    c = normalise(code)
    return c[:4] if c.startswith("E") else c[:3]


def icd9_chapter(code: str) -> str:
    c = normalise(code)
    if c.startswith("V"):
        return ICD9_V_CHAPTER
    if c.startswith("E"):
        return ICD9_E_CHAPTER
    try:
        number = int(c[:3])
    except ValueError:
        return "Unknown"
    for lo, hi, name in _ICD9_CHAPTERS:
        if lo <= number <= hi:
            return name
    return "Unknown"


def icd10_chapter(code: str) -> str:
    c = normalise(code)
    if c[:1] == "D":
        return (
            "C00-D49 Neoplasms"
            if c[1:3].isdigit() and int(c[1:3]) <= 49
            else "D50-D89 Blood and immune"
        )
    if c[:1] == "H":
        return "H00-H59 Eye" if c[1:3].isdigit() and int(c[1:3]) <= 59 else "H60-H95 Ear"
    return _ICD10_CHAPTERS.get(c[:1], "Unknown")


def coarsen(codes: pd.Series, version: int, granularity: Granularity) -> pd.Series:
    """Map normalised codes of one ICD version to the requested granularity (vectorised via unique)."""
    if granularity == "full":
        return codes
    uniq = pd.unique(codes.to_numpy())
    if granularity == "3digit":
        fn = icd9_3digit if version == 9 else (lambda c: normalise(c)[:3])
    else:
        fn = icd9_chapter if version == 9 else icd10_chapter
    mapping = {c: fn(c) for c in uniq}
    return codes.map(mapping)


def valid_mask(codes: pd.Series, version: int) -> np.ndarray:
    """Which codes (dotted or not) are well-formed codes of the given ICD version."""
    pattern = ICD9_ANY if version == 9 else ICD10_ANY
    return codes.str.upper().str.match(pattern.pattern).fillna(False).to_numpy(dtype=bool)
