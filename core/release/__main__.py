"""Release key administration from the command line.

    python -m core.release rotate-key [--key PEM] [--url URL]

``rotate-key`` makes a new server signing key (written atomically under the key's lock), records
the change in the audit ledger as a row signed by both the old and the new key, keeps the old
public key (in the ledger's key table and as ``<key>.<old key id>.pub.pem``) and puts the new key
in place: new releases are signed with it, old ones still verify with the key id they recorded.
Restart the app afterwards so it reads the new key. Exit status 0 done, 1 refused or failed.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from core.errors import CoreError
from core.release import settings
from core.release.ledger import Actor, Ledger
from core.release.publish import STEWARD
from core.release.rotation import rotate_key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate-key", help="replace the server signing key, recorded")
    rotate.add_argument(
        "--key", type=Path, default=None, help="the private key (default: CSS_SIGNING_KEY)"
    )
    rotate.add_argument(
        "--url",
        default=None,
        help="the audit ledger's URL (default: CSS_LEDGER_URL or CSS_LEDGER_URL_FILE)",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    actor = Actor(f"cli:{getpass.getuser()}", "command line", (STEWARD,))
    try:
        ledger = Ledger(args.url or settings.ledger_url())
        done = rotate_key(args.key or settings.signing_key_path(), ledger, actor)
    except CoreError as exc:
        print(f"key not rotated: {exc}", file=sys.stderr)
        return 1
    print(
        f"rotated: key {done.old_key_id} -> {done.new_key_id}; ledger row "
        f"{done.ledger_row if done.ledger_row is not None else '(recorded before)'} at "
        f"{ledger.url}; old public key kept at {done.retired_public_key} and in the ledger's key "
        "table. Restart the app so it signs with the new key."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
