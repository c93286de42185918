"""Widget groups used by several pages."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.data.clinical import VALUE_LABELS, coding
from core.device import DEVICE_CHOICES, describe_device, select_device
from core.errors import CoreError
from core.generation import SyntheticSet
from core.report.export import export_files
from ui import state


def device_sidebar() -> None:
    """Sidebar control for the compute device; the choice lives in session state."""
    with st.sidebar:
        current = state.device_preference()
        choice = st.selectbox(
            "Compute device",
            DEVICE_CHOICES,
            index=DEVICE_CHOICES.index(current) if current in DEVICE_CHOICES else 0,
            help="'auto' picks a CUDA GPU, then Apple MPS, then the CPU. Can also be set with CSS_DEVICE.",
        )
        try:
            device = select_device(choice)
        except CoreError as exc:
            st.warning(str(exc))
            return
        st.session_state[state.DEVICE] = choice
        st.caption(f"Running on: {describe_device(device)}")
        cohort_switcher()


SHELF_PICK = "css_shelf_pick"


def _size(entry: state.Shelved) -> str:
    c = entry.cohort
    if entry.kind == "visits":
        return f"{c.n_patients:,} patients, {c.n_visits:,} visits"
    return f"{c.n_records:,} records"


def cohort_switcher() -> None:
    """The sidebar's choice among the cohorts loaded in this session (shown from two on): the
    pages (Cohort, Generate, Review ...) use the one chosen, with its split."""
    held = state.shelf()
    active = state.active_shelf_name()
    if len(held) < 2 or active is None:
        return

    def switch() -> None:
        state.activate(st.session_state[SHELF_PICK])

    st.session_state[SHELF_PICK] = active  # follows a load made on the Cohort page
    st.selectbox(
        "Session cohort",
        list(held),
        key=SHELF_PICK,
        format_func=lambda n: f"{n} ({_size(held[n])})",
        on_change=switch,
        help="The cohorts loaded in this session stay here; the pages use the one chosen. "
        "Results made with another cohort say so.",
    )


def show_error(exc: CoreError, what: str) -> None:
    """A user-facing error box: what failed and why, never a traceback."""
    st.error(f"**{what} failed.** {exc}", icon=":material/error:")


def progress_callback(
    bar: st.delta_generator.DeltaGenerator, text: str
) -> Callable[[int, int], None]:
    def update(step: int, total: int) -> None:
        bar.progress(min(step / max(total, 1), 1.0), text=f"{text} ({step:,}/{total:,})")

    return update


def count_input(
    column: st.delta_generator.DeltaGenerator,
    label: str,
    limit: int,
    default: int,
    key: str,
    why: str,
) -> int:
    """A count field (records, patients) with no maximum in the browser: a browser maximum only
    turns the field red and blocks the form without a word (issue 31); :func:`refuse_over` says
    the limit instead."""
    return int(
        column.number_input(
            label, min_value=1, value=default, key=key, help=f"At most {limit:,} per run ({why})."
        )
    )


def refuse_over(value: int, limit: int, what: str, why: str) -> bool:
    """True, with an inline error naming the limit, when ``value`` is over ``limit``."""
    if value <= limit:
        return False
    st.error(
        f"**{value:,} {what} is over the limit:** at most {limit:,} {what} per run ({why}). "
        f"Lower the number, or run several times with other seeds.",
        icon=":material/block:",
    )
    return True


def share_label(classes: tuple[str, ...], unit: str, label_name: str | None) -> str:
    """What the label-mix slider asks: "Share of stays with In-hospital_death = 1", not a bare
    "Share of '1' stays" (a user's own model has its label's name but no class names)."""
    positive = classes[1]
    if label_name and positive in ("1", "1.0", "True"):
        return f"Share of {unit} with {label_name} = {positive}"
    return f"Share of '{positive}' {unit}"


def label_mix_and_guidance(
    n_classes: int,
    classes: tuple[str, ...],
    class_prior: tuple[float, ...],
    unit: str,
    key_prefix: str,
    fixed_guidance: float | None = None,
    label_name: str | None = None,
) -> tuple[float, tuple[float, float] | None]:
    """(guidance scale, class shares) for a binary label-conditional model; (1, None) otherwise.
    ``fixed_guidance``: the scale a model only samples at (shown, not asked)."""
    if n_classes != 2:
        return 1.0, None
    c1, c2 = st.columns(2)
    classes = classes or ("0", "1")
    share = c1.slider(
        share_label(classes, unit, label_name),
        0.0,
        1.0,
        float(class_prior[1]),
        0.01,
        key=f"{key_prefix}_mix",
    )
    if fixed_guidance is not None:
        c2.caption(f"Guidance scale: {fixed_guidance:g}, the one this sampler was distilled at.")
        return fixed_guidance, (1.0 - share, share)
    guidance = c2.slider(
        "Guidance scale",
        0.0,
        5.0,
        1.0,
        0.1,
        key=f"{key_prefix}_guidance",
        help="1 = plain conditional sampling; above 1 strengthens the label's effect; 0 ignores it.",
    )
    return guidance, (1.0 - share, share)


def generate_into_session(
    generate: Callable[[Callable[[int, int], None]], object],
    sets: dict,
    name: str,
    unit: str,
    label: str,
) -> None:
    """Run one generation under a progress bar and keep the result as a named session set."""
    bar = st.progress(0.0, text="Sampling")
    try:
        synth = generate(progress_callback(bar, label))
        key = state.unique_name(name, sets)
        sets[key] = synth
        st.session_state["gen_view"] = key
        st.toast(
            f"Generated {synth.table.n_records:,} {unit} in {synth.seconds:.1f} s",
            icon=":material/check_circle:",
        )
    except CoreError as exc:
        show_error(exc, "Generation")
    finally:
        bar.empty()


def value_label_note(columns) -> None:
    """Says which shown columns carry labels instead of their codes (the downloads keep codes)."""
    shown = [f"{c} ({coding(c)})" for c in columns if c in VALUE_LABELS]
    if shown:
        st.caption("Shown by their labels: " + "; ".join(shown) + ". The downloads keep the codes.")


DOWNLOADS = "css.downloads"


def download_data(owner: object, name: str, build: Callable[[], bytes]) -> bytes:
    """The bytes of one download button, built once for the object it shows (not on every
    rerun). Bytes rather than a deferred callable: Streamlit drops a session's deferred callable
    when another session's run ends while this one reruns, and the click then fetches nothing
    (seen with eight sessions at once in tests/browser/test_concurrent_sessions.py)."""
    cache = st.session_state.setdefault(DOWNLOADS, {})
    held = cache.get(name)
    if held is None or held[0] is not owner:
        held = cache[name] = (owner, build())
    return held[1]


def download_files(synth: SyntheticSet, name: str, prefix: str) -> None:
    """A row of download buttons, one per file :func:`core.report.export.export_files` offers
    for ``synth`` (keys ``{prefix}_dl_{id}``), each file built once per set."""
    files = export_files(name, synth)
    for col, f in zip(st.columns(len(files)), files, strict=True):
        col.download_button(
            f.label,
            download_data(synth, f"{prefix}_{f.id}", f.build),
            f.filename,
            f.mime,
            on_click="ignore",  # a download needs no rerun of the page
            key=f"{prefix}_dl_{f.id}",
            help=f.help,
        )
