"""Cluster and maintenance commands: member, endpoint status/health, move-leader, snapshot save."""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
from corral.client._errors import CorralError, ServerError
from corral.client.ctl import rpc
from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, emit, help_of, parse_hex_id, warn
from corral.client.ctl.printers import EndpointHealth, EndpointStatus

if TYPE_CHECKING:
    from corral.client.ctl.app import Context

__all__ = ["register"]


def register(commands: Any, flags: argparse.ArgumentParser) -> None:
    member = commands.add_parser("member", parents=[flags], help="membership commands (list, add, ...)")
    member.set_defaults(run=help_of(member))
    members = member.add_subparsers(dest="member_command", metavar="COMMAND", parser_class=type(member))
    listing = members.add_parser("list", parents=[flags], help="list the cluster's members")
    listing.set_defaults(run=run_member_list)
    add = members.add_parser(
        "add", parents=[flags], help="add a member", usage="corralctl member add <memberName> [options]"
    )
    add.add_argument("--peer-urls", default="", help="comma-separated peer URLs of the new member")
    add.add_argument("--learner", action="store_true", help="add as a learner (a non-voting member)")
    add.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    add.set_defaults(run=run_member_add)
    for name, text in (("remove", "remove a member"), ("promote", "promote a learner to a voting member")):
        cmd = members.add_parser(name, parents=[flags], help=text, usage=f"corralctl member {name} <memberID>")
        cmd.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        cmd.set_defaults(run=run_member_change, member_action=name)
    update = members.add_parser(
        "update",
        parents=[flags],
        help="update a member's peer URLs",
        usage="corralctl member update <memberID> [options]",
    )
    update.add_argument("--peer-urls", default="", help="comma-separated new peer URLs")
    update.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    update.set_defaults(run=run_member_change, member_action="update")

    endpoint = commands.add_parser("endpoint", parents=[flags], help="endpoint status and health")
    endpoint.set_defaults(run=help_of(endpoint))
    endpoints = endpoint.add_subparsers(dest="endpoint_command", metavar="COMMAND", parser_class=type(endpoint))
    for name, run, text in (
        ("status", run_endpoint_status, "the status of each endpoint"),
        ("health", run_endpoint_health, "whether each endpoint serves linearizable reads"),
    ):
        cmd = endpoints.add_parser(name, parents=[flags], help=text)
        cmd.add_argument("--cluster", action="store_true", help="use every member's client URLs")
        cmd.set_defaults(run=run)

    move = commands.add_parser(
        "move-leader",
        parents=[flags],
        help="transfer leadership to another member",
        usage="corralctl move-leader <transferee-member-id>",
    )
    move.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    move.set_defaults(run=run_move_leader)

    snapshot = commands.add_parser("snapshot", parents=[flags], help="snapshot commands (save)")
    snapshot.set_defaults(run=help_of(snapshot))
    snapshots = snapshot.add_subparsers(dest="snapshot_command", metavar="COMMAND", parser_class=type(snapshot))
    save = snapshots.add_parser(
        "save",
        parents=[flags],
        help="stream a member's snapshot into a file",
        usage="corralctl snapshot save <filename>",
    )
    save.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    save.set_defaults(run=run_snapshot_save)


def _urls(text: str) -> list[str]:
    return [url.strip() for url in text.split(",") if url.strip()]


def _url(endpoint: str) -> str:
    return endpoint.rstrip("/") if "://" in endpoint else f"http://{endpoint.rstrip('/')}"


def run_member_list(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields", "table")
    ctx.printer.member_list(rpc.member_list(ctx.client()))
    return 0


def run_member_add(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json")
    args = [*ns.args, *extra]
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "member name not provided" if not args else "too many arguments")
    peer_urls = _urls(ns.peer_urls)
    if not peer_urls:
        raise CtlError(EXIT_BAD_ARGS, "member peer urls not provided")
    ctx.printer.member_add(rpc.member_add(ctx.client(), peer_urls, ns.learner), args[0], peer_urls)
    return 0


def run_member_change(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json")
    args = [*ns.args, *extra]
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "member ID is not provided")
    member_id = parse_hex_id(args[0], "member ID arg")
    client = ctx.client()
    if ns.member_action == "update":
        peer_urls = _urls(ns.peer_urls)
        if not peer_urls:
            raise CtlError(EXIT_BAD_ARGS, "member peer urls not provided")
        change, what = rpc.member_update(client, member_id, peer_urls), "updated in"
    elif ns.member_action == "promote":
        change, what = rpc.member_promote(client, member_id), "promoted in"
    else:
        change, what = rpc.member_remove(client, member_id), "removed from"
    ctx.printer.member_changed(change, member_id, what)
    return 0


def _endpoints(ctx: Context, cluster: bool) -> list[str]:
    """The endpoints as given, or (`--cluster`) every member's client URLs."""
    if not cluster:
        return ctx.endpoints
    urls: list[str] = []
    for m in rpc.member_list(ctx.client()).members:
        urls += [url for url in m.client_urls if url not in urls]
    if not urls:
        raise CtlError(EXIT_ERROR, "no member of the cluster lists a client URL yet")
    return urls


def _statuses(ctx: Context, endpoints: list[str]) -> tuple[list[EndpointStatus], bool]:
    """The status of each endpoint that answered (others reported on stderr), and whether all answered."""
    client = ctx.client()

    def one(endpoint: str) -> EndpointStatus | None:
        try:
            return EndpointStatus(endpoint, client.status(_url(endpoint)))
        except (CorralError, httpx.HTTPError, OSError) as exc:  # status() never fails over: raw httpx errors
            warn(f"Failed to get the status of endpoint {endpoint} ({exc})")
            return None

    with ThreadPoolExecutor(max_workers=min(len(endpoints), 16) or 1) as pool:
        results = list(pool.map(one, endpoints))
    return [r for r in results if r is not None], all(r is not None for r in results)


def run_endpoint_status(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields", "table")
    statuses, all_answered = _statuses(ctx, _endpoints(ctx, ns.cluster))
    ctx.printer.endpoint_status(statuses)
    return 0 if all_answered else EXIT_ERROR


def run_endpoint_health(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    """Healthy means a linearizable read of the key `health` goes through, as etcdctl checks it."""
    ctx.printer.require("simple", "json", "fields", "table")

    def one(endpoint: str) -> EndpointHealth:
        started = time.monotonic()
        try:
            ctx.client([_url(endpoint)]).get("health")
        except (CorralError, OSError) as exc:
            message = exc.message if isinstance(exc, ServerError) else str(exc)
            return EndpointHealth(endpoint, False, time.monotonic() - started, message)
        return EndpointHealth(endpoint, True, time.monotonic() - started)

    endpoints = _endpoints(ctx, ns.cluster)
    with ThreadPoolExecutor(max_workers=min(len(endpoints), 16) or 1) as pool:
        results = list(pool.map(one, endpoints))
    ctx.printer.endpoint_health(results)
    if not all(r.health for r in results):
        raise CtlError(EXIT_ERROR, "unhealthy cluster")
    return 0


def run_move_leader(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json")
    args = [*ns.args, *extra]
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    target = parse_hex_id(args[0], "leader ID arg")
    statuses, _ = _statuses(ctx, ctx.endpoints)
    leaders = [s for s in statuses if s.status.is_leader]
    if not leaders:
        raise CtlError(EXIT_ERROR, f"no leader endpoint given at {ctx.endpoints}")
    leader = leaders[0]
    ctx.client([_url(leader.endpoint)]).move_leader(target)
    ctx.printer.move_leader(leader.status.header.member_id, target)
    return 0


def run_snapshot_save(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    """Stream the snapshot into `<file>.part`, then rename it: a file at `<file>` is always whole."""
    args = [*ns.args, *extra]
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot save expects one argument")
    if len(ctx.endpoints) != 1:
        raise CtlError(EXIT_BAD_ARGS, f"snapshot must be requested to one selected node, not multiple {ctx.endpoints}")
    path, partial = args[0], args[0] + ".part"
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as into:
            try:
                size = ctx.client().snapshot(into)
            except ServerError as exc:
                if exc.status != 404:
                    raise
                message = f"{ctx.endpoints[0]} does not serve snapshots (no /v3/maintenance/snapshot)"
                raise CtlError(EXIT_ERROR, message) from None
            into.flush()
            os.fsync(into.fileno())
        if size == 0:
            raise CtlError(EXIT_ERROR, "snapshot: the server sent no data")
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    emit(f"Snapshot saved at {path}\n")
    return 0
