"""Run the HubSpot emulator in the foreground: ``python -m segsync_hubspot.emulator [--port N]``."""

from __future__ import annotations

import argparse

from segsync.testing.serve import serve_until_interrupted

from segsync_hubspot.emulator import HubSpotEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="pat-na1-emulator-0000", help="the access token it accepts")
    args = parser.parse_args()
    emulator = HubSpotEmulator(access_token=args.token, port=args.port)
    emulator.state.add_segment_property("segsync_segments")
    emulator.start()
    print(f"HubSpot emulator on {emulator.url} (token {args.token}); Ctrl-C stops it")
    serve_until_interrupted(emulator.stop)


if __name__ == "__main__":
    main()
