"""Reviews shared by the server's sessions, and what a review is bound to (the staleness and
release binding: cohort, split, each set's released file, settings)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from core.errors import CoreError
from core.generation import SyntheticSet
from core.metrics.suite import Review, ReviewKey, ReviewSettings, review
from core.report import export
from ui import state, widgets
from ui.review.reference import RealReference

# Reviews shared by every session of the server, keyed by fingerprints. Not st.cache_resource:
# it replays the progress bar the review drives into the next session, which has no such bar.
_REVIEWS: OrderedDict[tuple, Review] = OrderedDict()
_REVIEWS_LOCK = threading.Lock()
MAX_CACHED_REVIEWS = 64


def run_review(
    ref: RealReference,
    name: str,
    synth: SyntheticSet,
    settings: ReviewSettings,
    callback: Callable[[int, int, str], None] | None = None,
) -> Review:
    """Cached per (name, what is reviewed): the :func:`review_key` (cohort, split, file,
    settings), which the review carries into its release manifest."""
    reviewed = review_key(ref, synth, settings)
    key = (name, reviewed)
    with _REVIEWS_LOCK:
        if key in _REVIEWS:
            _REVIEWS.move_to_end(key)
            return _REVIEWS[key]
    result = review(
        name,
        ref.train,
        ref.holdout,
        synth.table,
        encoding=ref.encoding,
        settings=settings,
        callback=callback,
        sequences=ref.sequences_for(synth),
        key=reviewed,
    )
    with _REVIEWS_LOCK:
        _REVIEWS[key] = result
        while len(_REVIEWS) > MAX_CACHED_REVIEWS:
            _REVIEWS.popitem(last=False)
    return result


def run_reviews(
    ref: RealReference, chosen: list[str], sets: dict, settings: ReviewSettings
) -> None:
    """Reviews the ``chosen`` sets under a progress bar and keeps the results bound to what they
    reviewed (:func:`review_inputs`); an error is shown, and the previous results kept."""
    bar = st.progress(0.0, text="Computing metrics")
    reviews = []
    try:
        for k, name in enumerate(chosen):
            bar.progress(k / len(chosen), text=f"Reviewing {name} ({k + 1} of {len(chosen)})")

            def report(i: int, total: int, label: str, k: int = k, name: str = name) -> None:
                done = (k + i / max(total, 1)) / len(chosen)
                bar.progress(done, text=f"{name}: {label} ({k + 1} of {len(chosen)} sets)")

            reviews.append(run_review(ref, name, sets[name], settings, report))
        state.set_review_results(
            chosen, reviews, settings, review_inputs(ref, chosen, sets, settings)
        )
    except CoreError as exc:
        widgets.show_error(exc, "The review")
    finally:
        bar.empty()


def kept_reviews(ref: RealReference, sets: dict, settings: ReviewSettings) -> state.Bound | None:
    """The last review run, (names, reviews, settings), with what changed since among the
    cohort, split, sets and settings on the page now."""
    return state.review_results(lambda names: review_inputs(ref, names, sets, settings))


SET_SHA256 = "css.set_sha256"


def set_sha256(synth: SyntheticSet) -> str:
    """sha256 of the file ``synth`` is released as: what its review is bound to. Built once
    per set object (a regenerated set of the same name is another object, another file)."""
    cache = st.session_state.setdefault(SET_SHA256, {})
    held = cache.get(id(synth))
    if held is None or held[0] is not synth:
        live = {id(s) for s in state.synthetic_sets().values()}
        for stale in [k for k in cache if k not in live]:  # removed sets
            del cache[stale]
        held = cache[id(synth)] = (
            synth,
            hashlib.sha256(export.release_file("", synth).build()).hexdigest(),
        )
    return held[1]


def review_key(ref: RealReference, synth: SyntheticSet, settings: ReviewSettings) -> ReviewKey:
    """What reviewing ``synth`` against ``ref`` with ``settings`` reviews."""
    return ReviewKey.of(ref.fingerprint, ref.split, set_sha256(synth), settings)


def _settings_shown(s: ReviewSettings) -> str:
    mmd = "all records" if s.mmd_max_records is None else f"on {s.mmd_max_records:,} records"
    return f"seed {s.seed}, MMD {mmd}, {s.bootstrap:,} bootstrap resamples"


def review_inputs(
    ref: RealReference, names: list[str], sets: dict, settings: ReviewSettings
) -> dict[str, state.Input]:
    """What a review of ``names`` is bound to: the cohort, its split, each set's released file
    and the settings (a set no longer in ``sets`` shows as removed)."""
    split = ref.split.summary()
    inputs = {
        "cohort": state.Input(
            "the cohort",
            f"`{ref.fingerprint[:12]}` ({ref.cohort.name}, {len(ref.table.record_ids):,} {ref.unit})",
            ref.fingerprint,
        ),
        "split": state.Input.of(
            "the split",
            split,
            f"{split['train']:,} train / {split['holdout']:,} holdout {ref.unit}, "
            f"seed {split['seed']}",
        ),
        "settings": state.Input.of("the review settings", settings, _settings_shown(settings)),
    }
    for name in names:
        sha = set_sha256(sets[name]) if name in sets else "removed"
        shown = "removed" if name not in sets else f"file sha256 `{sha[:12]}`"
        inputs[f"set:{name}"] = state.Input(f"the set '{name}'", shown, sha)
    return inputs
