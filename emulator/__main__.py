"""``python -m emulator serve --port 9100 --data-dir DIR --time-scale N [--seed-file FLEET.yaml] [--admin-token T]``.

The admin API's token is ``--admin-token``, else ``$EMULATOR_ADMIN_TOKEN``, else a fresh random one printed
at start (``admin token: ...``); the token in force is written to ``<data-dir>/admin-token`` (mode 0600)
either way, for local tools.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import yaml

from . import security
from .keys import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, KeyStore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Local Alibaba Cloud emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve ECS, VPC, RDS, STS and OSS on one port")
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default loopback only; anything else logs a WARNING)")
    serve.add_argument("--port", type=int, default=9100)
    serve.add_argument("--data-dir", default=".emulator-data", help="state and object data live here")
    serve.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    serve.add_argument("--seed-file", help="fleet spec (YAML/JSON) loaded when the state is fresh")
    serve.add_argument("--seed", type=int, default=0, help="seed for ids and fault injection")
    serve.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    serve.add_argument("--access-key-secret", default=DEFAULT_ACCESS_KEY_SECRET)
    serve.add_argument("--keys-file", help="JSON list of extra keys with RAM-style allow lists")
    serve.add_argument("--admin-token", default=os.environ.get(security.TOKEN_ENV) or None,
                       help=f"bearer token of the admin API (default ${security.TOKEN_ENV}, else a random one, "
                            "printed at start); written to <data-dir>/admin-token")
    serve.add_argument("--log-level", default="INFO")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    import signal

    from .admin import load_fleet
    from .server import Emulator

    keys = KeyStore.default(args.access_key_id, args.access_key_secret)
    if args.keys_file:
        keys.load_file(args.keys_file)
    generated = not args.admin_token
    token = args.admin_token or security.new_token()
    emulator = Emulator(data_dir=args.data_dir, time_scale=args.time_scale, keys=keys, seed=args.seed,
                        admin_token=token)
    token_file = security.write_token_file(args.data_dir, token)
    if generated:
        print(f"admin token: {token}", flush=True)
        print(f"(also in {token_file}; send it as 'Authorization: Bearer <token>')", flush=True)
    if args.seed_file and not emulator.state.table("admin").get("fleet_loaded"):
        load_fleet(emulator, yaml.safe_load(Path(args.seed_file).read_text()))
        emulator.state.table("admin")["fleet_loaded"] = args.seed_file
    await emulator.start(args.host, args.port)
    print(f"emulator ready on {emulator.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover
            pass
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
