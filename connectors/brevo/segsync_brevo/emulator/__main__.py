"""``python -m segsync_brevo.emulator``: run the Brevo emulator until interrupted."""

from __future__ import annotations

import argparse
import json
import logging

from segsync.testing.serve import serve_until_interrupted
from segsync_brevo.emulator.server import BrevoEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local emulator of Brevo's API v3")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--seed", help="JSON file with lists, contacts, blocked and events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    emulator = BrevoEmulator(
        api_key=args.api_key,
        port=args.port,
        latency=args.latency,
        rate_limits=None if args.no_rate_limits else BrevoEmulator.__init__.__kwdefaults__["rate_limits"],
    )
    if args.seed:
        with open(args.seed, encoding="utf-8") as fh:
            emulator.seed(json.load(fh))
    emulator.start()
    print(f"Brevo emulator listening on {emulator.url} (api-key header: the --api-key value)", flush=True)
    serve_until_interrupted(emulator.stop)


if __name__ == "__main__":
    main()
