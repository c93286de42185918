"""One row per record: the shared table every generator makes and the review compares.

A cohort's temporal part is summarised per stay (first / last / min / max / mean over the grid,
NaN when the variable was never observed), so one vector per stay can be generated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.cohort import CodeMatrix, Cohort, FeatureSpec
from core.data.tables import refuse_first_row
from core.errors import CohortError

SUMMARIES = ("first", "last", "min", "max", "mean")
LABEL_COLUMN = "label"
ID_COLUMN = "record_id"


@dataclass(frozen=True, eq=False)
class EHRTable:
    record_ids: np.ndarray
    static: pd.DataFrame | None
    static_features: tuple[FeatureSpec, ...]
    codes: CodeMatrix | None
    labels: np.ndarray | None = None
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.static is None and self.codes is None:
            raise CohortError("A record table needs static columns or codes.")

    @property
    def n_records(self) -> int:
        return len(self.record_ids)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in output order (static features, then codes)."""
        static = tuple(f.name for f in self.static_features)
        codes = () if self.codes is None else tuple(self.codes.vocabulary)
        return static + codes

    def subset(self, index: np.ndarray) -> EHRTable:
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            record_ids=self.record_ids[index],
            static=None if self.static is None else self.static.iloc[index].reset_index(drop=True),
            codes=None if self.codes is None else self.codes.subset(index),
            labels=None if self.labels is None else self.labels[index],
        )

    def to_frame(self) -> pd.DataFrame:
        """A flat table for download: id, static columns, one 0/1 column per code, label."""
        parts = [pd.DataFrame({ID_COLUMN: self.record_ids})]
        if self.static is not None:
            parts.append(self.static.reset_index(drop=True))
        if self.codes is not None:
            parts.append(
                pd.DataFrame(
                    self.codes.matrix.toarray().astype(np.int8), columns=list(self.codes.vocabulary)
                )
            )
        if self.labels is not None:
            classes = list(self.label_classes) or None
            values = (
                self.labels
                if classes is None
                else [classes[i] if i >= 0 else None for i in self.labels]
            )
            parts.append(pd.DataFrame({self.label_name or LABEL_COLUMN: values}))
        return pd.concat(parts, axis=1)


def summarise_temporal(
    cohort: Cohort, summaries: tuple[str, ...] = SUMMARIES
) -> tuple[pd.DataFrame, tuple[FeatureSpec, ...]]:
    """Per-record summaries of each temporal variable (NaN where never observed)."""
    t = cohort.temporal
    if t is None:
        raise CohortError("cohort has no temporal part to summarise")
    unknown = set(summaries) - set(SUMMARIES)
    if unknown:
        raise CohortError(f"unknown summaries {sorted(unknown)}; expected some of {SUMMARIES}")
    n, steps, d = t.values.shape
    observed = t.mask
    any_obs = observed.any(axis=1)  # [N, D]
    idx = np.arange(steps)[None, :, None]
    first_i = np.where(observed, idx, steps).min(axis=1)
    last_i = np.where(observed, idx, -1).max(axis=1)

    def take(index: np.ndarray) -> np.ndarray:
        clipped = np.clip(index, 0, steps - 1)[:, None, :]
        return np.take_along_axis(t.values, clipped, axis=1)[:, 0, :]

    with np.errstate(all="ignore"):
        lo = np.where(observed, t.values, np.inf).min(axis=1)
        hi = np.where(observed, t.values, -np.inf).max(axis=1)
        # Summed in float64: a float32 sum put the mean of equal values beside them (0.4 read
        # 0.40000004), outside [min, max] in 2% of stays; the clip keeps it inside exactly.
        total = np.where(observed, t.values, 0).sum(axis=1, dtype=np.float64)
        mean = np.clip(total / np.maximum(observed.sum(axis=1), 1), lo, hi)
        stats = {"first": take(first_i), "last": take(last_i), "min": lo, "max": hi, "mean": mean}
    columns: dict[str, np.ndarray] = {}
    specs = []
    for j, var in enumerate(t.variables):
        for s in summaries:
            name = f"{var}_{s}"
            columns[name] = np.where(any_obs[:, j], stats[s][:, j], np.nan).astype(float)
            specs.append(
                FeatureSpec(name, "numeric", t.units[j], description=f"{s} of {var} over the grid")
            )
    return pd.DataFrame(columns), tuple(specs)


def ehr_table(cohort: Cohort, summaries: tuple[str, ...] = SUMMARIES) -> EHRTable:
    """The record table of a cohort: static features + temporal summaries + codes."""
    frames = []
    specs: list[FeatureSpec] = []
    if cohort.static is not None:
        frames.append(cohort.static.reset_index(drop=True))
        specs.extend(cohort.static_features)
    if cohort.temporal is not None:
        frame, tspecs = summarise_temporal(cohort, summaries)
        frames.append(frame)
        specs.extend(tspecs)
    static = pd.concat(frames, axis=1) if frames else None
    return EHRTable(
        record_ids=cohort.record_ids,
        static=static,
        static_features=tuple(specs),
        codes=cohort.codes,
        labels=cohort.labels,
        label_name=cohort.label_name,
        label_classes=cohort.label_classes,
    )


def table_to_cohort(table: EHRTable, name: str, source: str) -> Cohort:
    """Wrap a (synthetic) record table as a static/code Cohort; each record is its own patient."""
    return Cohort(
        name=name,
        record_ids=table.record_ids,
        patient_ids=table.record_ids.copy(),
        static=table.static,
        static_features=table.static_features if table.static is not None else (),
        codes=table.codes,
        labels=table.labels,
        label_name=table.label_name,
        label_classes=table.label_classes,
        source=source,
    )


def codes_from_binary(
    x: np.ndarray, vocabulary: tuple[str, ...], system: str, granularity: str
) -> CodeMatrix:
    return CodeMatrix(sp.csr_array(x.astype(np.uint8)), vocabulary, system, granularity)


def table_from_frame(frame: pd.DataFrame, like: EHRTable, source: str) -> EHRTable:
    """Read a synthetic table (e.g. an upload from another tool) with the columns of ``like``.

    Refuses missing columns, unexpected columns and values of the wrong type, naming them. The
    optional id and label columns are recognised by the names this app writes.
    """
    frame = frame.astype(object).where(frame.notna())  # one missing marker, whatever the reader
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise CohortError("the synthetic table has no rows", source=source)
    expected = list(like.columns)
    label_col = like.label_name or LABEL_COLUMN
    optional = {ID_COLUMN, label_col}
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected and c not in optional]
    if missing or extra:
        raise CohortError(
            "columns differ from the real cohort: "
            f"missing {', '.join(missing[:8]) or 'none'}{' ...' if len(missing) > 8 else ''}; "
            f"unexpected {', '.join(extra[:8]) or 'none'}{' ...' if len(extra) > 8 else ''}",
            source=source,
        )
    static = None
    if like.static is not None:
        data = {}
        for spec in like.static_features:
            col = frame[spec.name]
            if spec.kind == "categorical":
                text = col.astype(str).str.strip().where(col.notna())
                bad = text.notna() & ~text.isin(spec.categories)
                if bad.any():
                    raise CohortError(
                        f"value {text[bad].iloc[0]!r} is not one of the cohort's levels",
                        source=source,
                        column=spec.name,
                    )
                data[spec.name] = pd.Categorical(text, categories=list(spec.categories))
            else:
                num = pd.to_numeric(col, errors="coerce")
                refuse_first_row(
                    num.isna() & col.notna(),
                    lambda row, col=col: f"expected a number, found {col.iloc[row]!r}",
                    source,
                    spec.name,
                )
                if spec.kind == "binary" and not num.dropna().isin((0, 1)).all():
                    raise CohortError("expected 0/1 values", source=source, column=spec.name)
                if np.isinf(num.to_numpy(dtype=float)).any():
                    raise CohortError("infinite value", source=source, column=spec.name)
                data[spec.name] = num.astype(float).to_numpy()
        static = pd.DataFrame(data)
    codes = None
    if like.codes is not None:
        block = frame[list(like.codes.vocabulary)].apply(pd.to_numeric, errors="coerce")
        bad = ~block.isin((0, 1))
        if bad.any().any():
            col = block.columns[bad.any().to_numpy()][0]
            raise CohortError(
                "code columns must hold 0 or 1 (no blanks)", source=source, column=str(col)
            )
        codes = CodeMatrix(
            sp.csr_array(block.to_numpy(dtype=np.uint8)),
            like.codes.vocabulary,
            like.codes.system,
            like.codes.granularity,
        )
    labels = None
    if like.labels is not None and label_col in frame.columns:
        classes = list(like.label_classes) or sorted(frame[label_col].dropna().astype(str).unique())
        text = frame[label_col].astype(str).str.strip()
        index = {c: i for i, c in enumerate(classes)} | {str(i): i for i in range(len(classes))}
        mapped = text.map(index)
        if mapped.isna().any():
            found = text[mapped.isna()].iloc[0]
            raise CohortError(
                f"label value {found!r} is not one of the cohort's {classes} "
                f"(nor their indices 0-{len(classes) - 1})",
                source=source,
                column=label_col,
            )
        labels = mapped.to_numpy(dtype=np.int64)
    ids = (
        frame[ID_COLUMN].astype(str).to_numpy(dtype=object)
        if ID_COLUMN in frame.columns
        else np.asarray([f"up-{i:06d}" for i in range(len(frame))], dtype=object)
    )
    return EHRTable(
        ids,
        static,
        like.static_features if static is not None else (),
        codes,
        labels,
        like.label_name,
        like.label_classes,
    )
