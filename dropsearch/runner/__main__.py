"""``python -m dropsearch.runner [--runner-id ID] [--ray-address ADDR]``: a runner process (used by drills and tests).

The CLI's ``dropsearch runner`` is the user-facing command; this entry point has no dependencies beyond the runner.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from dropsearch.config import get_settings
from dropsearch.runner.runner import Runner


def main(argv: list[str] | None = None) -> int:
    """Run a runner until SIGINT/SIGTERM (or until idle with ``--until-idle``)."""
    parser = argparse.ArgumentParser(prog="python -m dropsearch.runner")
    parser.add_argument("--runner-id", default=None)
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--until-idle", action="store_true", help="exit when nothing is queued or running")
    args = parser.parse_args(argv)
    logging.basicConfig(level=get_settings().log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runner = Runner(get_settings(), runner_id=args.runner_id, ray_address=args.ray_address, poll_s=0.5)
    if args.until_idle:
        runner.run_until_idle()
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner.start()
    stop.wait()
    runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
