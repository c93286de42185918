"""Kill writers and see what survives: each trial forks a child that writes (a model save or
replace, an import, the signing key's creation, a ledger record), killed with SIGKILL at a named
point (``core.faults``), at a random moment, or run on a "full disk" (``RLIMIT_FSIZE``); then the
store, key and ledger are opened again as the next process would and checked:

- every listed model verifies and loads; no confirmed model vanished (a replaced one holds the
  old or the new weights); nothing half-written is listed; no leftover folder survives the open;
- the key loads and its public half matches it; every confirmed ledger row is there and verifies;
  the ledger's hash chain and signed head verify; the next save and the next release work;
- the child raised nothing but a ``CoreError``.

Children are forked (no interpreter start, no torch import), so a trial takes milliseconds; toy
checkpoints hold a few parameters. ``python -m tests.core.fault_harness --trials 30`` prints the
table of the closing note.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core import faults
from core.checkpoints import LOCKS, Manifest, load_checkpoint, save_checkpoint
from core.cli import claim_output
from core.errors import CoreError
from core.release.gate import GateThresholds, GateVerdict, release_manifest
from core.release.ledger import Actor, Ledger
from core.release.publish import STEWARD, publish
from core.release.signing import load_or_create_key, public_path, public_pem, verify_manifest
from core.store import ModelStore

FORK = mp.get_context("fork")
ACTOR = Actor("steward@example.org", "Steward", (STEWARD,))

SAVE_POINTS = ("checkpoint.save.after_weights", "checkpoint.save.after_manifest")
REPLACE_POINTS = (
    "checkpoint.replace.before_renames",
    "checkpoint.replace.after_first_rename",
    "checkpoint.replace.after_second_rename",
)
IMPORT_POINTS = ("store.import.after_extract",)
KEY_POINTS = ("key.before_rename", "key.after_private", "key.public_before_rename")
LEDGER_POINTS = ("ledger.record.before_commit", "ledger.record.after_commit")


def toy(k: int, n: int = 8) -> dict[str, torch.Tensor]:
    return {"w": torch.arange(float(n)) + k}


def toy_sha(k: int, n: int = 8) -> str:
    from safetensors.torch import save

    return hashlib.sha256(save(toy(k, n))).hexdigest()


def save_toy(folder: Path, k: int, n: int = 8) -> str:
    manifest = Manifest(model_id=folder.name, family="toy", config={"k": k})
    return save_checkpoint(folder, toy(k, n), manifest).sha256


def toy_zip(k: int, tmp: Path) -> bytes:
    src = ModelStore(tmp / f"zip-src-{k}")
    save_toy(src.root / "z", k)
    return src.export_zip("z")


def release(state: Path, k: int) -> int:
    from core.metrics.suite import ReviewKey, ReviewSettings, settings_dict

    sha = hashlib.sha256(str(k).encode()).hexdigest()
    # the review bound to what is released (publish refuses an unbound one since #28.2)
    reviewed = ReviewKey("c" * 64, (("seed", 0),), sha, ReviewSettings())
    verdict = GateVerdict(f"set {k}", (), GateThresholds(), reviewed)
    manifest = release_manifest(
        verdict,
        cohort_fingerprint="c" * 64,
        split={"seed": 0},
        provenance={"source": "toy"},
        review_settings=settings_dict(ReviewSettings()),
        synthetic_sha256=sha,
    )
    _, entry = publish(manifest, ACTOR, ledger=ledger(state), key_path=state / "key.pem")
    return entry


def ledger(state: Path) -> Ledger:
    return Ledger(f"sqlite:///{state / 'ledger.sqlite3'}")


# --- one child -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    killed: bool
    confirmed: list[str]  # what the child finished before it died ("model NAME SHA", "row ID")
    error: str = ""  # "CoreError subclass: message" or "RAW type: message"

    @property
    def raw(self) -> bool:
        return self.error.startswith("RAW")


def run_child(
    work: Callable[[Callable[[str], None]], None],
    *,
    point: str | None = None,
    kill_after: float | None = None,
    fsize: int | None = None,
    timeout: float = 60.0,
) -> Outcome:
    """``work(confirm)`` in a forked child; ``confirm(line)`` records what it finished."""
    read, write = os.pipe()

    def child() -> None:
        os.close(read)
        out = os.fdopen(write, "w", buffering=1)
        if point:
            os.environ[faults.ENV] = point
        if fsize is not None:  # a "full disk": writes past fsize bytes fail with EFBIG
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        try:
            work(lambda line: out.write(line + "\n"))
        except CoreError as exc:
            out.write(f"error {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
        except SystemExit as exc:  # a command's refusal, printed for its user
            out.write(f"error Refused: {exc}".replace("\n", " ") + "\n")
        except BaseException as exc:  # what the fault tests look for
            text = traceback.format_exception_only(exc)[-1].strip()
            out.write(f"error RAW {text}".replace("\n", " ") + "\n")
        out.flush()
        os._exit(0)

    proc = FORK.Process(target=child)
    proc.start()
    os.close(write)
    if kill_after is not None:
        proc.join(kill_after)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    with os.fdopen(read) as fh:
        lines = fh.read().splitlines()
    errors = [ln[6:] for ln in lines if ln.startswith("error ")]
    return Outcome(
        proc.exitcode == -signal.SIGKILL,
        [ln for ln in lines if not ln.startswith("error ")],
        errors[0] if errors else "",
    )


# --- the checks after a trial ----------------------------------------------------------------------
@dataclass
class Tally:
    path: str
    trials: int = 0
    kills: int = 0
    lost: int = 0
    half_written: int = 0
    leftovers: int = 0
    raw: int = 0
    problems: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"| {self.path} | {self.trials} | {self.kills} | {self.lost} | {self.half_written} "
            f"| {self.leftovers} | {self.raw} |"
        )


def check_store(root: Path, expected: dict[str, set[str]], tally: Tally) -> None:
    """``expected``: name -> the weights' sha256s it may hold (old or new)."""
    store = ModelStore(root)  # the next open: recovers and cleans
    listed = {m.name: m for m in store.list()}
    for m in listed.values():
        if not m.ok:
            tally.half_written += 1
            tally.problems.append(f"{tally.path}: {m.name} listed but broken: {m.detail}")
            continue
        load_checkpoint(m.folder)  # raises if it does not load
    for name, shas in expected.items():
        m = listed.get(name)
        if m is None or not m.ok or m.manifest.sha256 not in shas:
            tally.lost += 1
            tally.problems.append(f"{tally.path}: model {name} lost ({m and m.detail})")
    left = [p.name for p in root.iterdir() if p.name.startswith(".") and p.name != LOCKS]
    if left:
        tally.leftovers += len(left)
        tally.problems.append(f"{tally.path}: leftovers after the next open: {left}")
    save_toy(root / "next save", 99)  # the next save works
    assert ModelStore(root).get("next save").ok


def check_release_state(state: Path, rows: list[int], tally: Tally) -> None:
    key = load_or_create_key(state / "key.pem")
    if public_path(state / "key.pem").read_bytes() != public_pem(key.public_key()):
        tally.problems.append(f"{tally.path}: public half does not match the key")
    book = ledger(state)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys = [load_pem_public_key(p.encode()) for p in book.public_keys().values()]
    for entry in rows:
        if not verify_manifest(book.manifest(entry), trusted=keys).ok:
            tally.lost += 1
            tally.problems.append(f"{tally.path}: ledger row {entry} does not verify")
    chain = book.verify([key.public_key()])  # one unbroken chain, its head signed
    if not chain.ok:
        tally.half_written += 1
        tally.problems.append(f"{tally.path}: the ledger chain does not verify: {chain.findings}")
    present = {r["id"] for r in book.entries()}
    tally.lost += len(set(rows) - present)
    if set(rows) - present:
        tally.problems.append(f"{tally.path}: confirmed rows {set(rows) - present} missing")
    left = [p.name for p in state.iterdir() if ".tmp-" in p.name]
    tally.leftovers += len(left)
    if left:
        tally.problems.append(f"{tally.path}: leftovers after the next release: {left}")
    release(state, 999)  # the next release works


def confirmed_models(outcome: Outcome) -> dict[str, str]:
    """name -> sha256 of each "model NAME SHA" line (a name may hold spaces)."""
    lines = [ln.removeprefix("model ") for ln in outcome.confirmed if ln.startswith("model ")]
    return dict(ln.rsplit(" ", 1) for ln in lines)


def _count(tally: Tally, outcome: Outcome) -> None:
    tally.trials += 1
    tally.kills += outcome.killed
    if outcome.raw:
        tally.raw += 1
        tally.problems.append(f"{tally.path}: raw exception {outcome.error}")


# --- the paths -------------------------------------------------------------------------------------
def trial_save(tmp: Path, tally: Tally, point: str) -> None:
    """A first save into a free name, killed at ``point``: the name holds nothing or the model."""
    root = tmp / "store"
    save_toy(root / "kept", 1)
    outcome = run_child(lambda ok: ok(f"model new {save_toy(root / 'new', 2)}"), point=point)
    _count(tally, outcome)
    expected = {"kept": {toy_sha(1)}}
    if confirmed_models(outcome) or (root / "new").exists():
        expected["new"] = {toy_sha(2)}
    check_store(root, expected, tally)


def trial_replace(tmp: Path, tally: Tally, point: str) -> None:
    """A retraining into an existing name, killed at ``point``: old or new, never nothing."""
    root = tmp / "store"
    save_toy(root / "model", 1)
    (root / "model" / "README.md").write_text("card")
    outcome = run_child(lambda ok: ok(f"model model {save_toy(root / 'model', 2)}"), point=point)
    _count(tally, outcome)
    shas = {toy_sha(2)} if confirmed_models(outcome) else {toy_sha(1), toy_sha(2)}
    check_store(root, {"model": shas}, tally)
    if not (root / "model" / "README.md").is_file():
        tally.problems.append(f"{tally.path}: the model card was lost")


def trial_import(tmp: Path, tally: Tally, point: str) -> None:
    root = tmp / "store"
    save_toy(root / "kept", 1)
    data = toy_zip(3, tmp)
    outcome = run_child(
        lambda ok: ok(
            f"model imported {ModelStore(root).import_zip(data, {'toy'}, 'imported').manifest.sha256}"
        ),
        point=point,
    )
    _count(tally, outcome)
    expected = {"kept": {toy_sha(1)}}
    if confirmed_models(outcome):
        expected["imported"] = {toy_sha(3)}
    check_store(root, expected, tally)


def trial_key(tmp: Path, tally: Tally, point: str) -> None:
    state = tmp / "state"
    state.mkdir()
    outcome = run_child(lambda ok: ok(f"key {load_or_create_key(state / 'key.pem')}"), point=point)
    _count(tally, outcome)
    check_release_state(state, [], tally)


def trial_ledger(tmp: Path, tally: Tally, point: str) -> None:
    state = tmp / "state"
    state.mkdir()
    first = release(state, 1)
    outcome = run_child(lambda ok: ok(f"row {release(state, 2)}"), point=point)
    _count(tally, outcome)
    rows = [first] + [int(ln.split()[1]) for ln in outcome.confirmed if ln.startswith("row")]
    check_release_state(state, rows, tally)


def trial_random(tmp: Path, tally: Tally, rng: random.Random) -> None:
    """A child that saves, replaces, imports and releases in a loop, killed at a random moment;
    everything it confirmed must be there afterwards."""
    root, state = tmp / "store", tmp / "state"
    state.mkdir()
    data = toy_zip(7, tmp)

    def work(ok: Callable[[str], None]) -> None:
        store = ModelStore(root)
        for i in range(1000):
            name = f"m{i % 3}"
            ok(f"model {name} {save_toy(root / name, i)}")
            ok(f"model i{i} {store.import_zip(data, {'toy'}, f'i{i}').manifest.sha256}")
            ok(f"row {release(state, i)}")

    outcome = run_child(work, kill_after=rng.uniform(0.0, 0.4))
    _count(tally, outcome)
    expected = {name: {sha} for name, sha in confirmed_models(outcome).items()}
    # a replace in flight when killed may have finished: its new weights are fine too
    for name in ("m0", "m1", "m2"):
        if name in expected:
            expected[name] |= {toy_sha(i) for i in range(1000) if f"m{i % 3}" == name}
    check_store(root, expected, tally)
    rows = [int(ln.split()[1]) for ln in outcome.confirmed if ln.startswith("row")]
    if (state / "key.pem").exists() or rows:
        check_release_state(state, rows, tally)


def trial_disk_full(tmp: Path, tally: Tally, what: str) -> None:
    """The write on a disk that takes only a few bytes more: a StorageError, nothing lost."""
    root, state = tmp / "store", tmp / "state"
    state.mkdir()
    save_toy(root / "model", 1)
    if what == "ledger":
        release(state, 1)
        fsize = 512  # SQLite's journal needs more
        work: Callable = lambda ok: ok(f"row {release(state, 2)}")  # noqa: E731
    elif what == "key":
        fsize = 16
        work = lambda ok: ok(f"key {load_or_create_key(state / 'key.pem')}")  # noqa: E731
    else:
        fsize = 4096  # the new weights (64 KB) do not fit
        work = lambda ok: ok(f"model model {save_toy(root / 'model', 2, 16_384)}")  # noqa: E731
    outcome = run_child(work, fsize=fsize)
    _count(tally, outcome)
    if not outcome.error.startswith("StorageError"):
        tally.problems.append(f"{tally.path}: expected a StorageError, got {outcome}")
    check_store(root, {"model": {toy_sha(1)}}, tally)
    rows = [1] if what == "ledger" else []
    check_release_state(state, rows, tally)


def trial_concurrent(tmp: Path, tally: Tally, how: str) -> None:
    """Two processes write one name at once: both land under distinct names (the store), or
    one is refused with a clear error (two trainings into one --out); nothing is replaced."""
    root = tmp / "store"
    root.mkdir()
    go = FORK.Event()

    def cli(k: int) -> Callable:
        def work(ok: Callable[[str], None]) -> None:
            go.wait(10)
            _held = claim_output(root / "out")  # what a training command does at its start
            time.sleep(0.05)  # the training
            ok(f"model out {save_toy(root / 'out', k)}")

        return work

    def store_save(k: int) -> Callable:
        def work(ok: Callable[[str], None]) -> None:
            go.wait(10)
            m = ModelStore(root).save(lambda f: save_toy(f, k), "shared")
            ok(f"model {m.name} {m.manifest.sha256}")

        return work

    make = cli if how == "cli --out" else store_save
    results: list[Outcome] = []
    import threading

    threads = [
        threading.Thread(target=lambda k=k: results.append(run_child(make(k)))) for k in (1, 2)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)
    go.set()
    for t in threads:
        t.join()
    for outcome in results:
        _count(tally, outcome)
    confirmed: dict[str, set[str]] = {}
    for outcome in results:
        for name, sha in confirmed_models(outcome).items():
            if name in confirmed:  # two confirmations of one name: one replaced the other
                tally.lost += 1
                tally.problems.append(f"{tally.path}: both writers confirmed {name}")
            confirmed.setdefault(name, set()).add(sha)
    refused = [o for o in results if "being written" in o.error]
    if how == "cli --out" and len(confirmed) + len(refused) != 2:
        tally.problems.append(f"{tally.path}: neither confirmed nor refused: {results}")
    check_store(root, confirmed, tally)


# --- the runs --------------------------------------------------------------------------------------
def run_path(path: str, trials: int, base: Path, seed: int = 0) -> Tally:
    tally = Tally(path)
    rng = random.Random(seed)
    kinds = {
        "save": (trial_save, SAVE_POINTS),
        "replace": (trial_replace, REPLACE_POINTS),
        "import": (trial_import, IMPORT_POINTS),
        "key creation": (trial_key, KEY_POINTS),
        "ledger record": (trial_ledger, LEDGER_POINTS),
        "disk full": (trial_disk_full, ("model", "key", "ledger")),
        "concurrent writers": (trial_concurrent, ("cli --out", "store save")),
    }
    for i in range(trials):
        tmp = base / f"{path.replace(' ', '-')}-{i}"
        tmp.mkdir(parents=True)
        if path == "random kills":
            trial_random(tmp, tally, rng)
        else:
            trial, options = kinds[path]
            trial(tmp, tally, options[i % len(options)])
    return tally


PATHS = (
    "save",
    "replace",
    "import",
    "key creation",
    "ledger record",
    "random kills",
    "disk full",
    "concurrent writers",
)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=30)
    args = p.parse_args(argv)
    print(
        "| path | trials | kills | models lost | half-written listed | leftovers after the "
        "next open | raw exceptions |"
    )
    print("|---|---|---|---|---|---|---|")
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in PATHS:
            started = time.perf_counter()
            tally = run_path(path, args.trials, Path(tmp))
            print(tally.row(), flush=True)
            problems += tally.problems
            _ = started
    for line in problems:
        print("problem:", line)
    return 1 if problems else 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
