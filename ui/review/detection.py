"""Review page panel of issue #33: what gives each synthetic set away (detection), shown beside
the worst column pairs."""

from __future__ import annotations

import streamlit as st

from core.metrics.ids import MetricId
from core.metrics.suite import Review
from core.report.review_report import DETECTION_IDS, detection_text

LEANING_COLUMNS = {
    "feature": "feature",
    "importance": "weight",
    "alone_auroc": "AUROC on its own",
    "direction": "direction",
}


def detection_panel(title: str, reviews: list[Review]) -> None:
    """Per set: both detectors' AUROC against the real-vs-real reference in words, the features
    they lean on, and the worst column pairs."""
    shown = [rv for rv in reviews if any(rv.get(i) is not None for i in DETECTION_IDS)]
    if not shown:
        return
    st.subheader(title)
    st.caption(
        "Two classifiers try to tell each synthetic set from the real training records (0.5 = "
        "they cannot; real holdout patients score about 0.5). The tables list the features they "
        "rely on most: red flags for the generator. Weight: the logistic model's coefficient on "
        "standardised features, or for gradient boosting how much worse it does when the "
        "feature is shuffled; 'AUROC on its own' is one feature's power alone."
    )
    for tab, rv in zip(st.tabs([rv.name for rv in shown]), shown, strict=True):
        with tab:
            for col, metric_id in zip(st.columns(2), DETECTION_IDS, strict=True):
                res = rv.get(metric_id)
                if res is None:
                    continue
                with col:
                    st.markdown(detection_text(res))
                    frame = res.per_feature[
                        [c for c in LEANING_COLUMNS if c in res.per_feature.columns]
                    ].rename(columns=LEANING_COLUMNS)
                    st.dataframe(
                        frame.style.format(precision=3),
                        hide_index=True,
                        key=f"review_detection_{rv.name}_{metric_id}",
                    )
            pairs = rv.get(MetricId.PAIR_TRENDS)
            if pairs is not None and len(pairs.per_feature):
                st.markdown(
                    f"**Column-pair trends** {pairs.value:.3f} over {pairs.details['pairs']:,} "
                    "pairs; the worst pairs:"
                )
                st.dataframe(
                    pairs.per_feature.head(20).style.format(precision=3, na_rep=""),
                    hide_index=True,
                    key=f"review_pairs_{rv.name}",
                )
