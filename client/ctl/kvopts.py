"""The flags of get, put and del, shared by the commands and by the operations of a `txn`."""

from __future__ import annotations

import argparse

from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, CtlError, parse_hex_id
from corral.client.txn import DeleteOptions, PutOptions, RangeOptions, SortOrder, SortTarget

__all__ = [
    "add_delete_flags",
    "add_get_flags",
    "add_put_flags",
    "delete_options",
    "put_options",
    "range_options",
]

_SORT_TARGETS: dict[str, SortTarget] = {
    "CREATE": "CREATE",
    "KEY": "KEY",
    "MODIFY": "MOD",
    "VALUE": "VALUE",
    "VERSION": "VERSION",
}
_SORT_ORDERS: dict[str, SortOrder] = {"ASCEND": "ASCEND", "DESCEND": "DESCEND"}


def add_get_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", action="store_true", help="get keys with matching prefix")
    parser.add_argument("--from-key", action="store_true", help="get keys that are >= the given key (byte order)")
    parser.add_argument("--rev", type=int, default=0, help="specify the kv revision")
    parser.add_argument("--limit", type=int, default=0, help="maximum number of results")
    parser.add_argument("--sort-by", default="", help="sort target: CREATE, KEY, MODIFY, VALUE or VERSION")
    parser.add_argument("--order", default="", help="order of results: ASCEND or DESCEND (ASCEND by default)")
    parser.add_argument("--keys-only", action="store_true", help="get only the keys")
    parser.add_argument("--count-only", action="store_true", help="get only the count")


def add_put_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lease", default="0", help="lease ID (in hexadecimal) to attach to the key")
    parser.add_argument("--prev-kv", action="store_true", help="return the previous key-value pair")
    parser.add_argument("--ignore-value", action="store_true", help="update the key using its current value")
    parser.add_argument("--ignore-lease", action="store_true", help="update the key using its current lease")


def add_delete_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", action="store_true", help="delete keys with matching prefix")
    parser.add_argument("--from-key", action="store_true", help="delete keys that are >= the given key (byte order)")
    parser.add_argument("--prev-kv", action="store_true", help="return the deleted key-value pairs")


def _range_args(command: str, args: list[bytes], prefix: bool, from_key: bool) -> tuple[bytes, bytes | None]:
    if not 1 <= len(args) <= 2:
        raise CtlError(
            EXIT_BAD_ARGS, f"{command} command needs one argument as key and an optional argument as range_end"
        )
    if prefix and from_key:
        raise CtlError(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
    if len(args) == 2 and (prefix or from_key):
        raise CtlError(
            EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
        )
    return args[0], args[1] if len(args) == 2 else None


def range_options(ns: argparse.Namespace, args: list[bytes]) -> tuple[bytes, RangeOptions]:
    """The key and options of a get, checked as etcdctl checks them."""
    key, range_end = _range_args("get", args, ns.prefix, ns.from_key)
    if ns.keys_only and ns.count_only:
        raise CtlError(EXIT_BAD_ARGS, "`--keys-only` and `--count-only` cannot be set at the same time, choose one")
    options: RangeOptions = {
        "prefix": ns.prefix,
        "from_key": ns.from_key,
        "revision": ns.rev,
        "limit": ns.limit,
        "keys_only": ns.keys_only,
        "count_only": ns.count_only,
    }
    if range_end is not None:
        options["range_end"] = range_end
    if ns.sort_by:
        target = _SORT_TARGETS.get(ns.sort_by.upper())
        if target is None:
            raise CtlError(EXIT_BAD_FEATURE, f"bad sort target {ns.sort_by}")
        options["sort_target"] = target
    if ns.order:
        order = _SORT_ORDERS.get(ns.order.upper())
        if order is None:
            raise CtlError(EXIT_BAD_FEATURE, f"bad sort order {ns.order}")
        options["sort_order"] = order
    return key, options


def put_options(
    ns: argparse.Namespace, args: list[bytes], stdin_value: bytes | None
) -> tuple[bytes, bytes, PutOptions]:
    """The key, value and options of a put; `stdin_value` is the value when only the key is given."""
    if ns.ignore_value and len(args) == 2:
        raise CtlError(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    if len(args) == 2:
        key, value = args
    elif len(args) == 1 and (ns.ignore_value or stdin_value is not None):
        key, value = args[0], b"" if ns.ignore_value else (stdin_value or b"")
    else:
        raise CtlError(EXIT_BAD_ARGS, "put command needs 1 argument and input from stdin or 2 arguments")
    lease = parse_hex_id(ns.lease, "lease ID") if ns.lease else 0
    if ns.ignore_lease and lease:
        raise CtlError(EXIT_BAD_ARGS, "put command needs no --lease when 'ignore-lease' is set")
    options: PutOptions = {
        "lease": lease,
        "prev_kv": ns.prev_kv,
        "ignore_value": ns.ignore_value,
        "ignore_lease": ns.ignore_lease,
    }
    return key, value, options


def delete_options(ns: argparse.Namespace, args: list[bytes]) -> tuple[bytes, DeleteOptions]:
    key, range_end = _range_args("del", args, ns.prefix, ns.from_key)
    options: DeleteOptions = {"prefix": ns.prefix, "from_key": ns.from_key, "prev_kv": ns.prev_kv}
    if range_end is not None:
        options["range_end"] = range_end
    return key, options
