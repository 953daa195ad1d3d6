"""`corral` / `corral serve`: start a member, with etcd's flag names; `corral snapshot restore|status`.

Scripts written for etcd start Corral by swapping the binary name: the flags are etcd's (one or two
leading dashes, as Go's flag package allows), and each can also come from an `ETCD_<FLAG>` environment
variable, as etcd reads them. `corral snapshot` does what `etcdutl snapshot` (etcdctl's in 3.4) does
with a file saved from `/v3/maintenance/snapshot`: `restore` makes a data directory from it, `status`
prints its hash, revision, key count and size.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
import uvloop
from corral import __version__

from . import logs, runtime, snapshot_file
from .app import create_app
from .server import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    DEFAULT_SNAPSHOT_COUNT,
    SNAPSHOT_CATCH_UP_ENTRIES,
    CorralServer,
    ServerConfig,
)

logger = logging.getLogger("corral")


def _flag(parser: argparse.ArgumentParser, name: str, default: object, help: str, type: type = str) -> None:
    env = os.environ.get("ETCD_" + name.upper().replace("-", "_"))
    parser.add_argument(f"--{name}", f"-{name}", default=type(env) if env is not None else default,
                        type=type, help=help)


def duration(text: str) -> float:
    """Seconds in a Go duration string such as "1s", "500ms", "10m" or "1h30m"."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    matches = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    if not matches or "".join(n + u for n, u in matches) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return sum(float(number) * units[unit] for number, unit in matches)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral", description="Corral: a coordination service that speaks etcd v3's HTTP/JSON API."
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    _flag(parser, "name", "default", "human-readable name for this member")
    _flag(parser, "data-dir", "", "path to the data directory (default: ${name}.etcd)")
    _flag(parser, "listen-client-urls", "http://localhost:2379", "comma-separated URLs to serve clients on")
    _flag(parser, "advertise-client-urls", "http://localhost:2379", "client URLs to advertise to the cluster")
    _flag(parser, "listen-peer-urls", "http://localhost:2380", "comma-separated URLs to listen on for peers")
    _flag(parser, "initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs")
    _flag(parser, "initial-cluster", "", "initial cluster configuration, name=peerURL,...")
    _flag(parser, "initial-cluster-state", "new", "'new' or 'existing'")
    _flag(parser, "initial-cluster-token", "etcd-cluster", "initial cluster token")
    _flag(parser, "snapshot-count", DEFAULT_SNAPSHOT_COUNT, "applied entries between snapshots", int)
    _flag(parser, "max-request-bytes", DEFAULT_MAX_REQUEST_BYTES, "largest request a client may send", int)
    _flag(parser, "max-txn-ops", DEFAULT_MAX_TXN_OPS, "most operations in one txn", int)
    _flag(parser, "heartbeat-interval", 100, "time (in milliseconds) of a heartbeat interval", int)
    _flag(parser, "election-timeout", 1000, "time (in milliseconds) for an election to timeout", int)
    _flag(parser, "experimental-watch-progress-notify-interval", "10m",
          "interval between watch progress notifications (a Go duration: 500ms, 1s, 10m)", duration)  # fmt: skip
    _flag(parser, "experimental-snapshot-catchup-entries", SNAPSHOT_CATCH_UP_ENTRIES,
          "entries kept after a snapshot for slow followers to catch up from", int)  # fmt: skip
    _flag(parser, "log-level", "info", "debug, info, warn or error")
    _flag(parser, "log-format", "text", "text or json: one line per event, with member, term and trace id")
    parser.add_argument("--experimental-fault-injection", "-experimental-fault-injection", action="store_true",
                        help="serve /corral/faults/* (tests only: lets a client cut this member off)")  # fmt: skip
    return parser


def _urls(text: str) -> tuple[str, ...]:
    return tuple(url.strip() for url in text.split(",") if url.strip())


def _initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    cluster: dict[str, list[str]] = {}
    for item in _urls(text):
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise SystemExit(f"corral: invalid --initial-cluster entry {item!r} (want name=url)")
        cluster.setdefault(name, []).append(url)
    return {name: tuple(urls) for name, urls in cluster.items()}


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if args.initial_cluster_state not in ("new", "existing"):
        state = args.initial_cluster_state
        raise SystemExit(f"corral: --initial-cluster-state must be 'new' or 'existing', not {state!r}")
    return ServerConfig(
        name=args.name,
        data_dir=Path(args.data_dir or f"{args.name}.etcd"),
        listen_client_urls=_urls(args.listen_client_urls),
        advertise_client_urls=_urls(args.advertise_client_urls),
        listen_peer_urls=_urls(args.listen_peer_urls),
        initial_advertise_peer_urls=_urls(args.initial_advertise_peer_urls),
        initial_cluster=_initial_cluster(args.initial_cluster),
        initial_cluster_state=args.initial_cluster_state,
        initial_cluster_token=args.initial_cluster_token,
        snapshot_count=args.snapshot_count,
        max_request_bytes=args.max_request_bytes,
        max_txn_ops=args.max_txn_ops,
        heartbeat_interval_ms=args.heartbeat_interval,
        election_timeout_ms=args.election_timeout,
        watch_progress_notify_interval=args.experimental_watch_progress_notify_interval,
        snapshot_catch_up_entries=args.experimental_snapshot_catchup_entries,
        fault_injection=args.experimental_fault_injection,
    )


def _bind(url: str) -> socket.socket:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.port is None:
        raise SystemExit(f"corral: cannot listen on {url!r}: want http://host:port")
    host = parts.hostname or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, parts.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(config: ServerConfig, log_level: str = "info", fields: logs.MemberFields | None = None) -> None:
    sockets = [_bind(url) for url in config.listen_client_urls]
    server = CorralServer(config)
    if fields is not None:
        fields.term = lambda: server.log.term
        if server.tracing is not None:
            fields.trace_id = server.tracing.current_trace_id
    await server.start()
    runtime.tune()
    logger.info("member %x (%s) serving clients on %s", server.member_id, config.name,
                ", ".join(config.listen_client_urls))
    uv_config = uvicorn.Config(
        create_app(server), http="httptools", lifespan="off", access_log=False, proxy_headers=False,
        log_level=log_level.replace("warn", "warning"), timeout_graceful_shutdown=5, log_config=None,
    )  # fmt: skip
    try:
        await uvicorn.Server(uv_config).serve(sockets=sockets)
    finally:
        await server.stop()


def build_snapshot_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral snapshot", description="Work with a saved snapshot file.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    restore = commands.add_parser(
        "restore", help="create a data directory whose member starts with the snapshot's state",
        description="Create a data directory from a snapshot file, for a single-member Corral started with "
                    "--data-dir on it (as `make run` starts one). The etcd flags that name the member are "
                    "checked and otherwise unused: a single member's ids come from the flags it starts with.",
    )  # fmt: skip
    restore.add_argument("file", help="the snapshot file (from `corralctl snapshot save`)")
    restore.add_argument("--data-dir", default="", help="the directory to create (default: ${name}.etcd)")
    restore.add_argument("--name", default="default", help="human-readable name for the member")
    restore.add_argument("--initial-cluster", default="", help="name=peerURL; one member only")
    restore.add_argument("--initial-cluster-token", default="etcd-cluster", help="initial cluster token")
    restore.add_argument(
        "--initial-advertise-peer-urls", default="http://localhost:2380", help="the member's peer URLs"
    )
    restore.add_argument("--skip-hash-check", action="store_true", help="do not check the file's SHA-256")
    status = commands.add_parser("status", help="print a snapshot file's hash, revision, key count and size")
    status.add_argument("file", help="the snapshot file")
    status.add_argument("-w", "--write-out", choices=("simple", "table", "json", "fields"), default="simple",
                        help="output format (etcdctl's)")  # fmt: skip
    return parser


def snapshot_main(argv: list[str]) -> int:
    """`corral snapshot ...`: 0, or 1 with `Error: ...` on stderr as etcdctl exits (2 for bad usage)."""
    args = build_snapshot_parser().parse_args(argv)
    try:
        if args.command == "restore":
            data_dir = Path(args.data_dir or f"{args.name}.etcd")
            cluster = _initial_cluster(args.initial_cluster) or {args.name: _urls(args.initial_advertise_peer_urls)}
            if args.name not in cluster:
                raise snapshot_file.SnapshotFileError(
                    f"couldn't find local name {args.name!r} in the initial cluster configuration"
                )
            if len(cluster) > 1:
                raise snapshot_file.SnapshotFileError(
                    f"--initial-cluster names {len(cluster)} members; a snapshot restores into a single member"
                )
            found = snapshot_file.restore(Path(args.file), data_dir, args.skip_hash_check)
            what = f"revision {found.revision}, total keys {found.total_keys}"
            print(f"Restored snapshot {args.file} into {data_dir} ({what})")
        else:
            _print_status(snapshot_file.status(Path(args.file)), args.write_out)
    except snapshot_file.SnapshotFileError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_status(status: snapshot_file.SnapshotStatus, write_out: str) -> None:
    """etcdctl's `snapshot status` output in each of its formats."""
    from corral.client.ctl.textfmt import human_bytes, table  # etcdctl's formatting; only this command needs it

    row = [f"{status.hash:x}", str(status.revision), str(status.total_keys), human_bytes(status.total_size)]
    if write_out == "json":
        print(f'{{"hash":{status.hash},"revision":{status.revision},"totalKey":{status.total_keys},'
              f'"totalSize":{status.total_size}}}')  # fmt: skip
    elif write_out == "fields":
        print(f'"Hash" : {status.hash}\n"Revision" : {status.revision}\n"Keys" : {status.total_keys}\n'
              f'"Size" : {status.total_size}')  # fmt: skip
    elif write_out == "table":
        print(table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], [row]), end="")
    else:
        print(", ".join(row))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["snapshot"]:
        raise SystemExit(snapshot_main(argv[1:]))
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.log_format not in ("text", "json"):
        raise SystemExit(f"corral: --log-format must be text or json, not {args.log_format!r}")
    fields = logs.configure(args.log_format, args.log_level, args.name)
    config = config_from_args(args)
    uvloop.run(serve(config, args.log_level, fields))
