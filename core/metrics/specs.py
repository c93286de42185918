"""The review's metrics, registered once: id, category, ideal, the text a steward reads, when the
metric applies to a dataset and how it is computed.

``review()`` loops over :data:`METRICS`; the Review page, the HTML report and the gate find
metrics and their explanations by these ids. A spec may yield several results (TSTR: one per
classifier and score); each result names its spec in ``MetricResult.spec``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.data.records import EHRTable
from core.data.visits import VisitCohort
from core.encoding.constraints import ConstraintSet, infer_constraints
from core.encoding.vectors import VectorEncoding
from core.metrics import (
    anonymeter,
    detection,
    domias,
    fidelity,
    mmd,
    pair_trends,
    precision_recall,
    privacy,
    sequences,
    utility,
    validity,
)
from core.metrics.base import Category, MetricResult
from core.metrics.ids import MetricId
from core.registry import Registry


@dataclass(frozen=True, eq=False)
class SequenceInputs:
    """Visit sequences behind the patient-level tables, for the sequence metrics."""

    train: VisitCohort
    holdout: VisitCohort
    synth: VisitCohort
    vocabularies: dict[str, tuple[str, ...]]


@dataclass(frozen=True, eq=False)
class ReviewInputs:
    """One synthetic set against the real split, encoded once for every metric."""

    train: EHRTable
    holdout: EHRTable
    synth: EHRTable
    encoding: VectorEncoding
    x_train: np.ndarray
    x_holdout: np.ndarray
    x_synth: np.ndarray
    seed: int
    bootstrap: int
    mmd_max_records: int | None
    sequences: SequenceInputs | None = None

    @property
    def names(self) -> list[str]:
        return self.encoding.dim_names

    @property
    def numeric_columns(self) -> list[str]:
        return [c.name for c in self.encoding.columns if c.kind == "numeric"]

    @functools.cached_property
    def constraints(self) -> ConstraintSet:
        """The rules every real training record obeys (aggregates of the training split)."""
        return infer_constraints(self.train)

    @functools.cached_property
    def neighbours(self) -> privacy.TrainNeighbours:
        """Synthetic->train and holdout->train neighbours, shared by exact copies and NNDR."""
        return privacy.train_neighbours(self.x_train, self.x_holdout, self.x_synth)

    @functools.cached_property
    def attack_tables(self) -> anonymeter.AttackTables:
        """The records as Anonymeter's attacks see them (mixed types, not the encoded vectors)."""
        return anonymeter.attack_tables(self.train, self.holdout, self.synth)

    @functools.cached_property
    def attribute_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Attacker knows the more prevalent half of the 0/1 dimensions and infers up to 20 of
        the rest."""
        binary = self.encoding.binary_dims
        dims = np.flatnonzero(binary & (self.x_train.mean(axis=0) > 0))
        order = dims[np.argsort(-self.x_train[:, dims].mean(axis=0), kind="stable")]
        half = len(order) // 2
        return order[:half], order[half:][:20]


Compute = Callable[[ReviewInputs], MetricResult | list[MetricResult]]


@dataclass(frozen=True)
class MetricSpec:
    id: str
    category: Category
    title: str
    explanation: str
    compute: Compute = field(repr=False, compare=False)
    applies: Callable[[ReviewInputs], bool] = field(
        default=lambda _inputs: True, repr=False, compare=False
    )


METRICS: Registry[MetricSpec] = Registry("metric")


def _labelled(inputs: ReviewInputs) -> bool:
    return all(t.labels is not None for t in (inputs.train, inputs.holdout, inputs.synth))


def _tstr(inputs: ReviewInputs) -> list[MetricResult]:
    def xy(x: np.ndarray, t: EHRTable) -> tuple[np.ndarray, np.ndarray]:
        known = t.labels >= 0
        return x[known], t.labels[known]

    return utility.tstr(
        xy(inputs.x_train, inputs.train),
        xy(inputs.x_synth, inputs.synth),
        xy(inputs.x_holdout, inputs.holdout),
        n_boot=inputs.bootstrap,
        seed=inputs.seed,
    )


def _has_missing_values(inputs: ReviewInputs) -> bool:
    static = inputs.train.static
    return static is not None and bool(static.isna().any().any())


def _pair_trends(inputs: ReviewInputs) -> MetricResult:
    """Static columns by their kind, plus every code as a 0/1 column."""
    kinds = {c.name: c.kind for c in inputs.encoding.columns}
    train, synth = inputs.train, inputs.synth
    codes = train.codes is not None and synth.codes is not None
    return pair_trends.pair_trends(
        train.static,
        synth.static,
        kinds,
        train.codes.matrix if codes else None,
        synth.codes.matrix if codes else None,
        train.codes.vocabulary if codes else (),
    )


for _spec in (
    MetricSpec(
        MetricId.DIMWISE_PROBABILITY,
        "fidelity",
        "Dimension-wise probability",
        "Share of records with each feature (or mean scaled value) in real vs synthetic data. R² "
        "against the diagonal: 1 means every prevalence matches. Pearson r (also shown) ignores "
        "offsets; R² does not.",
        lambda i: fidelity.dimension_wise_probability(i.x_train, i.x_synth, i.names),
    ),
    MetricSpec(
        MetricId.DIMWISE_PREDICTION,
        "fidelity",
        "Dimension-wise prediction",
        "Each 0/1 feature is predicted from all others by a linear model trained on real or on "
        "synthetic data and scored on real holdout patients. R² of the two AUROCs: 1 means the "
        "synthetic data keeps the relations between features.",
        lambda i: fidelity.dimension_wise_prediction(i.x_train, i.x_synth, i.x_holdout, i.names),
    ),
    MetricSpec(
        MetricId.MMD,
        "fidelity",
        "MMD",
        "Maximum mean discrepancy with a Gaussian kernel (median-heuristic bandwidth) over whole "
        "records, over all pairs up to 5,000 records per set; above that, averaged over blocks "
        "(about 1,000 records of the smaller set each), with a 95% interval from the blocks' "
        "spread. 0 means the two distributions cannot be told apart by this kernel.",
        lambda i: mmd.mmd(i.x_train, i.x_synth, max_records=i.mmd_max_records, seed=i.seed),
    ),
    MetricSpec(
        MetricId.CORRELATION,
        "fidelity",
        "Correlation matrix",
        "Mean absolute difference between feature-feature correlations in real and synthetic "
        "data. 0 is ideal.",
        lambda i: fidelity.correlation_difference(i.x_train, i.x_synth),
    ),
    MetricSpec(
        MetricId.NUMERIC_MARGINALS,
        "fidelity",
        "Numeric marginals",
        "Kolmogorov-Smirnov statistic per numeric column (0 = same distribution, 1 = disjoint); "
        "Wasserstein distances per column are in the breakdown.",
        lambda i: fidelity.numeric_marginals(i.train.static, i.synth.static, i.numeric_columns),
        applies=lambda i: bool(i.numeric_columns),
    ),
    MetricSpec(
        MetricId.COLUMN_FIDELITY,
        "fidelity",
        "Per-column fidelity",
        "Each column's real and synthetic values compared on their own: Kolmogorov-Smirnov for "
        "numeric columns, total variation for categorical ones (0 = same, 1 = disjoint); the "
        "off-support share counts synthetic values no real record has (a GCS of 11.37) or not at "
        "the real precision; the spike excess flags values piled up at one point. The row shows "
        "the worst column; the per-column table lists them all, worst first.",
        lambda i: fidelity.column_fidelity(
            i.train.static,
            i.synth.static,
            [(c.name, c.kind) for c in i.encoding.columns],
            {
                c.name: (c.marginal.discrete, c.marginal.decimals)
                for c in i.encoding.columns
                if c.marginal is not None
            },
        ),
        applies=lambda i: bool(i.encoding.columns),
    ),
    MetricSpec(
        MetricId.MISSINGNESS,
        "fidelity",
        "Missingness agreement",
        "How often each column is missing, real vs synthetic. 0 means identical missingness.",
        lambda i: fidelity.missingness_agreement(
            i.train.static, i.synth.static, [c.name for c in i.encoding.columns]
        ),
        applies=_has_missing_values,
    ),
    MetricSpec(
        MetricId.VALIDITY,
        "fidelity",
        "Validity",
        "Share of synthetic records that obey every rule all real training records obey: per "
        "variable min <= first, last, mean <= max, the variable's values within the training "
        "range (rounded outward) and never negative when no real value is, one level per "
        "categorical column, and fields missing together when real ones always are (visit "
        "sequences: no negative gaps, only codes the training sequences hold). 1 means "
        "every record is valid; the broken rules are listed with how many records break them "
        "(interval 95%, Wilson).",
        lambda i: validity.validity(
            i.synth,
            i.constraints,
            None if i.sequences is None else (i.sequences.synth, i.sequences.train),
        ),
    ),
    MetricSpec(
        MetricId.CODES_PER_RECORD,
        "fidelity",
        "Codes per record",
        "Distance between the distributions of distinct codes per record. 0 is ideal.",
        lambda i: fidelity.codes_per_record(
            i.train.codes.codes_per_record(), i.synth.codes.codes_per_record()
        ),
        applies=lambda i: i.train.codes is not None,
    ),
    # Issue #33: what tells synthetic records apart, and whether columns move together.
    MetricSpec(
        MetricId.DETECTION,
        "fidelity",
        "Detection",
        "A classifier is trained to tell synthetic records from real training records (equally "
        "many of each; each record predicted by a model that did not see it, 3 folds). AUROC 0.5 "
        "means it cannot tell them apart; 1 means it always can. The ideal shown is the same "
        "classifier telling real training from real holdout patients. Two classifiers: logistic "
        "regression (differences one feature at a time) and gradient boosting (combinations); the "
        "breakdown lists the features each leans on most, i.e. what gives the synthetic set away "
        "(interval 95%, bootstrap over records).",
        lambda i: detection.detection(
            i.x_train, i.x_synth, i.x_holdout, i.names, n_boot=i.bootstrap, seed=i.seed
        ),
    ),
    MetricSpec(
        MetricId.PRECISION_RECALL,
        "fidelity",
        "alpha-precision, beta-recall, authenticity",
        "Alaa et al. (ICML 2022) on the review's [0, 1] encoding: alpha-precision asks whether "
        "synthetic records fall where real ones are (1 = as often as they should at every depth "
        "of the real data), beta-recall whether the synthetic records cover all kinds of real "
        "records, authenticity the share of synthetic records that are not closer to a real "
        "record than real patients are to each other (a copy scores 0). The ideal shown is what "
        "real holdout patients score against the training patients.",
        lambda i: precision_recall.precision_recall_authenticity(
            i.x_train, i.x_synth, i.x_holdout, seed=i.seed
        ),
    ),
    MetricSpec(
        MetricId.PAIR_TRENDS,
        "fidelity",
        "Column-pair trends",
        "For every pair of columns: do they move together as in real data? Two numeric columns: "
        "1 - |real correlation - synthetic correlation| / 2; any other pair: 1 - the total "
        "variation distance between the real and synthetic tables of the pair's combinations "
        "(numbers cut into 10 bins, missing as its own value). 1 means every pair keeps its "
        "real trend; the worst pairs are listed and drawn as a heatmap.",
        _pair_trends,
        applies=lambda i: len(i.encoding.columns) + len(i.encoding.vocabulary) >= 2,
    ),
    MetricSpec(
        MetricId.TSTR,
        "utility",
        "TSTR",
        "A classifier trained on synthetic data and tested on real holdout patients (TSTR), "
        "against the same classifier trained on real training data (TRTR, the ideal shown). "
        "Close to TRTR = useful synthetic data.",
        _tstr,
        applies=_labelled,
    ),
    MetricSpec(
        MetricId.MIA,
        "privacy",
        "Membership inference",
        "An attacker calls a real patient a training member when a synthetic record lies very "
        "close. Accuracy 0.5 (and advantage 0) means the attacker does no better than a coin "
        "flip.",
        lambda i: privacy.membership_inference(i.x_train, i.x_holdout, i.x_synth, seed=i.seed),
    ),
    MetricSpec(
        MetricId.DOMIAS,
        "privacy",
        "DOMIAS density-ratio attack",
        "DOMIAS (van Breugel et al., AISTATS 2023) calls a real patient a member where the "
        "synthetic data is denser than unseen (holdout) patients are: local overfitting that "
        "distance checks miss. AUROC 0.5 means no better than chance; the breakdown gives the "
        "share of members found at 0.1%, 1% and 10% false alarms and the privacy loss (epsilon) "
        "this proves at 95% confidence.",
        lambda i: domias.domias(i.x_train, i.x_holdout, i.x_synth, seed=i.seed),
    ),
    MetricSpec(
        MetricId.DCR,
        "privacy",
        "DCR",
        "For each synthetic record, is its closest real record a training patient or a holdout "
        "patient? 50% closer to train is ideal; near 100% means records were memorised.",
        lambda i: privacy.distance_to_closest_record(
            i.x_train, i.x_holdout, i.x_synth, seed=i.seed
        ),
    ),
    MetricSpec(
        MetricId.EXACT_COPIES,
        "privacy",
        "Exact copies",
        "Share of synthetic records identical to a training record. Compare with the holdout "
        "baseline: identical code sets also occur naturally between different real patients.",
        lambda i: privacy.exact_copies(i.x_train, i.x_holdout, i.x_synth, i.neighbours),
    ),
    MetricSpec(
        MetricId.NNDR,
        "privacy",
        "Nearest-neighbour distance ratio",
        "Closest / second-closest training distance. Close to the holdout's value (the ideal "
        "shown) is good; near 0 means records sit on top of one patient.",
        lambda i: privacy.nearest_neighbour_distance_ratio(
            i.x_train, i.x_holdout, i.x_synth, i.neighbours
        ),
    ),
    MetricSpec(
        MetricId.ATTRIBUTE_INFERENCE,
        "privacy",
        "Attribute inference",
        "An attacker who knows half of a patient's features guesses the rest from the nearest "
        "synthetic records. The gap between training and holdout patients is the leak; 0 is "
        "ideal.",
        lambda i: privacy.attribute_inference(
            i.x_train,
            i.x_holdout,
            i.x_synth,
            known=i.attribute_split[0],
            sensitive=i.attribute_split[1],
            seed=i.seed,
        ),
        applies=lambda i: all(len(part) for part in i.attribute_split),
    ),
    # Anonymeter (Giomi et al., PoPETs 2023): risks beyond what unseen (holdout) patients show.
    MetricSpec(
        MetricId.SINGLING_OUT,
        "privacy",
        "Anonymeter: singling out",
        'Predicates that describe exactly one synthetic record ("the only patient aged 84 with '
        'lactate at least 6") tried on real patients: the risk is how much more often they '
        "point at exactly one training patient than at exactly one unseen patient, out of what "
        "was left to gain (0 = no more than chance; interval 95%, Wilson with error "
        "propagation).",
        lambda i: anonymeter.singling_out(i.attack_tables, seed=i.seed),
    ),
    MetricSpec(
        MetricId.LINKABILITY,
        "privacy",
        "Anonymeter: linkability",
        "An attacker holding two datasets with different columns of the same patients links a "
        "patient when both halves have the same nearest synthetic record; the risk is the excess "
        "over unseen patients (0 = none; 95% interval).",
        lambda i: anonymeter.linkability(i.attack_tables, seed=i.seed),
        applies=lambda i: len(i.train.columns) >= 2,
    ),
    MetricSpec(
        MetricId.INFERENCE,
        "privacy",
        "Anonymeter: attribute inference",
        "An attacker who knows all other columns of a patient guesses the outcome (or the most "
        "balanced categorical column) from the nearest synthetic record; the risk is the excess "
        "success on training over unseen patients (0 = none; 95% interval).",
        lambda i: anonymeter.inference(i.attack_tables, seed=i.seed),
        applies=lambda i: anonymeter.default_secret(i.attack_tables) is not None,
    ),
    # Visit sequences: shown when the sets are sequences (EHRPD, MEDS/MIMIC/eICU visits).
    MetricSpec(
        MetricId.VISITS_PER_PATIENT,
        "fidelity",
        "Visits per patient",
        "Wasserstein-1 distance between the distributions of visits per patient (0 = the same "
        "sequence lengths); means are in the breakdown.",
        lambda i: sequences.visits_per_patient(i.sequences.train, i.sequences.synth),
        applies=lambda i: i.sequences is not None,
    ),
    MetricSpec(
        MetricId.GAPS,
        "fidelity",
        "Gaps between visits",
        "Kolmogorov-Smirnov distance between the gaps (log days) of real and synthetic "
        "consecutive visits, known gaps only; Wasserstein distance and medians in the breakdown.",
        lambda i: sequences.gap_distribution(i.sequences.train, i.sequences.synth),
        applies=lambda i: i.sequences is not None,
    ),
    MetricSpec(
        MetricId.PREVALENCE_BY_VISIT,
        "fidelity",
        "Code prevalence by visit index",
        "Each code's share of first, second, ... fifth visits, real vs synthetic: R² to the "
        "diagonal (1 = every code as common at every visit index as in real sequences).",
        lambda i: sequences.prevalence_by_visit(
            i.sequences.train, i.sequences.synth, i.sequences.vocabularies
        ),
        applies=lambda i: i.sequences is not None,
    ),
    MetricSpec(
        MetricId.COOCCURRENCE,
        "fidelity",
        "Consecutive-visit co-occurrence",
        "How often code j follows code i at the next visit, real vs synthetic, over the 60 most "
        "common codes: R² to the diagonal (1 = what follows what is kept).",
        lambda i: sequences.consecutive_cooccurrence(
            i.sequences.train, i.sequences.synth, i.sequences.vocabularies
        ),
        applies=lambda i: i.sequences is not None,
    ),
    MetricSpec(
        MetricId.LONGITUDINAL_PERPLEXITY,
        "utility",
        "Longitudinal perplexity",
        "A next-visit code predictor fitted on synthetic sequences, scored on real holdout "
        "patients: the effective number of codes it hesitates between (lower is sharper). The "
        "ideal shown is the same predictor fitted on the real training sequences.",
        lambda i: sequences.longitudinal_perplexity(
            i.sequences.train, i.sequences.synth, i.sequences.holdout, i.sequences.vocabularies
        ),
        applies=lambda i: i.sequences is not None,
    ),
    MetricSpec(
        MetricId.CROSS_MODALITY_PERPLEXITY,
        "utility",
        "Cross-modality perplexity",
        "The same for one modality's codes predicted from the other modalities of the same "
        "visit; the ideal is the real-trained predictor.",
        lambda i: sequences.cross_modality_perplexity(
            i.sequences.train, i.sequences.synth, i.sequences.holdout, i.sequences.vocabularies
        ),
        applies=lambda i: i.sequences is not None and len(i.sequences.vocabularies) > 1,
    ),
    MetricSpec(
        MetricId.NEXT_VISIT_TSTR,
        "utility",
        "Next-visit TSTR",
        "Predict a common code at visit k+1 from visits up to k, trained on synthetic (TSTR) or "
        "real (TRTR, the ideal) sequences, scored on real holdout patients (AUROC).",
        lambda i: sequences.next_visit_tstr(
            i.sequences.train,
            i.sequences.synth,
            i.sequences.holdout,
            i.sequences.vocabularies,
            n_boot=i.bootstrap,
            seed=i.seed,
        ),
        applies=lambda i: i.sequences is not None,
    ),
):
    METRICS.register(_spec)


def explanation(spec_id: str) -> str:
    """What a steward reads about the metric with this spec id ("" for an unknown id)."""
    return METRICS.get(spec_id).explanation if spec_id in METRICS else ""


def title(spec_id: str) -> str:
    return METRICS.get(spec_id).title if spec_id in METRICS else spec_id
