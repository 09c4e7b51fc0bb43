"""``python -m segsync_mailchimp.emulator``: run the emulator in the foreground.

Prints the host to give the connector (``host = "..."`` in segsync.toml) and the API key it
accepts, then serves until interrupted.
"""

from __future__ import annotations

import argparse

from segsync.testing.serve import serve_until_interrupted
from segsync_mailchimp.emulator.server import DEFAULT_API_KEY, MailchimpEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m segsync_mailchimp.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the API key the emulator accepts")
    parser.add_argument("--list-id", default="aud0001", help="id of the audience to create")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--max-connections", type=int, default=10)
    parser.add_argument("--no-validate", action="store_true", help="skip OpenAPI request checks")
    args = parser.parse_args(argv)

    emulator = MailchimpEmulator(api_key=args.api_key, latency=args.latency, port=args.port,
                                 max_connections=args.max_connections, validate=not args.no_validate)
    emulator.state.create_audience(args.list_id)
    emulator.start()
    print(f"Mailchimp emulator at {emulator.url} (audience {args.list_id}); "
          "API key from --api-key; Ctrl-C stops it", flush=True)
    serve_until_interrupted(emulator.stop)


if __name__ == "__main__":
    main()
