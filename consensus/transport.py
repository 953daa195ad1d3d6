"""Peer transport: persistent TCP connections carrying Raft messages between members.

Each member listens on one address and opens one outbound connection per peer; a connection carries
messages in one direction only. Per peer, a bounded queue feeds a sender task that writes frames in
batches, so a slow or dead peer fills its own queue (and drops, reporting it unreachable) without
delaying any other peer. Raft tolerates loss, so dropping is always preferred to blocking the caller.

Frames are a u32 big-endian length followed by that many bytes. The first frame of a connection is a
handshake: ``>4sBQQ`` magic ``CRLR``, version 1, sender member id, intended receiver id (0: any). The
receiver answers with the 5-byte ack ``CRLA`` + version, or closes the connection. Every later frame
is one message encoded by `corral.consensus.wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from corral.consensus.raft.types import Message
from corral.consensus.wire import MessageDecodeError, decode_message, encode_message

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
HANDSHAKE_MAGIC = b"CRLR"
HANDSHAKE = struct.Struct(">4sBQQ")  # magic, version, sender id, receiver id (0 = any)
HANDSHAKE_ACK = b"CRLA" + bytes([PROTOCOL_VERSION])
FRAME_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
_BATCH_BYTES = 4 * 1024 * 1024  # drain after this many bytes even if more messages are queued
_WRITE_HIGH_WATER = 1024 * 1024


def parse_url(url: str) -> tuple[str, int]:
    """The (host, port) of a peer URL such as ``http://127.0.0.1:2380``; the scheme is informational."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in peer URL {url!r}") from exc
    if not parts.hostname or port is None:
        raise ValueError(f"peer URL needs a host and a port: {url!r}")
    return parts.hostname, port


class _Peer:
    """Outbound state for one peer: its address, queue, sender task and connection status."""

    __slots__ = ("id", "url", "host", "port", "queue", "wakeup", "task", "connected", "lost")

    def __init__(self, peer_id: int, url: str) -> None:
        self.id = peer_id
        self.url = url
        self.host, self.port = parse_url(url)
        self.queue: deque[Message] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.lost = False  # the current connection was closed by the other side


class PeerTransport:
    """Sends Raft messages to peers and hands received ones to `on_message`, over persistent TCP.

    `send` never blocks: a message for a peer whose queue is full, or that is unknown, is dropped and
    `on_unreachable(peer)` is called. `on_unreachable` is also called whenever connecting to a peer or
    writing to it fails; messages queued for a peer that cannot be reached are dropped at that point.
    All callbacks run on the event loop and must not block.
    """

    def __init__(
        self,
        member_id: int,
        listen_url: str,
        peers: Mapping[int, str],
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None] | None = None,
        queue_limit: int = 4096,
        *,
        rng: random.Random | None = None,
        backoff_min: float = 0.05,
        backoff_max: float = 1.0,
        connect_timeout: float = 2.0,
        handshake_timeout: float = 5.0,
        max_frame: int = MAX_FRAME,
    ) -> None:
        if member_id <= 0:
            raise ValueError("member_id must be positive")
        if queue_limit < 1:
            raise ValueError("queue_limit must be at least 1")
        self.member_id = member_id
        self.listen_url = listen_url
        self._listen = parse_url(listen_url)
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._queue_limit = queue_limit
        self._rng = rng if rng is not None else random.Random()
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        self._max_frame = max_frame
        self._peers: dict[int, _Peer] = {}
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()  # connection handlers
        self._retired: set[asyncio.Task[None]] = set()  # senders of removed peers, still stopping
        self._started = False
        self._closing = False
        self._address: tuple[str, int] | None = None
        self.set_peers(peers)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on `listen_url` and start one sender per peer."""
        if self._started:
            raise RuntimeError("transport already started")
        host, port = self._listen
        self._server = await asyncio.start_server(self._serve, host, port)
        sockname = self._server.sockets[0].getsockname()
        self._address = (sockname[0], sockname[1])
        self._started = True
        for peer in self._peers.values():
            self._start_sender(peer)

    async def close(self) -> None:
        """Stop listening, close every connection and wait for all tasks to finish."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        tasks += [*self._retired, *self._inbound]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for peer in self._peers.values():
            peer.queue.clear()
            peer.connected = False

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound; useful when `listen_url` asked for port 0."""
        if self._address is None:
            raise RuntimeError("transport not started")
        return self._address

    # -- membership ------------------------------------------------------------------------------

    def set_peers(self, peers: Mapping[int, str]) -> None:
        """Replace the peer set: start senders for new peers, stop those of removed or moved ones."""
        wanted = {pid: url for pid, url in peers.items() if pid != self.member_id}
        for pid in list(self._peers):
            if wanted.get(pid) != self._peers[pid].url:
                self._stop_sender(self._peers.pop(pid))
        for pid, url in wanted.items():
            if pid <= 0:
                raise ValueError(f"peer ids must be positive: {pid}")
            if pid not in self._peers:
                peer = _Peer(pid, url)
                self._peers[pid] = peer
                if self._started and not self._closing:
                    self._start_sender(peer)

    def connected(self, peer: int) -> bool:
        """Whether an outbound connection to `peer` is established and handshaken."""
        p = self._peers.get(peer)
        return p is not None and p.connected

    def _start_sender(self, peer: _Peer) -> None:
        peer.task = asyncio.create_task(self._run_sender(peer), name=f"raft-sender-{self.member_id}->{peer.id}")

    def _stop_sender(self, peer: _Peer) -> None:
        peer.queue.clear()
        peer.connected = False
        task = peer.task
        if task is not None and not task.done():
            task.cancel()
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    # -- sending ---------------------------------------------------------------------------------

    def send(self, messages: Iterable[Message]) -> None:
        """Queue messages for their `to` peers without blocking; drop (and report) what cannot queue."""
        unreachable: set[int] = set()
        woken: set[int] = set()
        for m in messages:
            peer = self._peers.get(m.to)
            if peer is None or self._closing or len(peer.queue) >= self._queue_limit:
                unreachable.add(m.to)
                continue
            peer.queue.append(m)
            if m.to not in woken:
                woken.add(m.to)
                peer.wakeup.set()
        for pid in unreachable:
            self._report_unreachable(pid)

    def _report_unreachable(self, peer: int) -> None:
        if self._on_unreachable is None:
            return
        try:
            self._on_unreachable(peer)
        except Exception:
            logger.exception("on_unreachable(%d) failed", peer)

    async def _run_sender(self, peer: _Peer) -> None:
        """Connect, pump the queue until the connection breaks, back off, repeat; until cancelled."""
        backoff = self._backoff_min
        while True:
            conn = await self._connect(peer)
            if conn is not None:
                reader, writer = conn
                backoff = self._backoff_min
                peer.connected, peer.lost = True, False
                watcher = asyncio.create_task(self._watch_eof(reader, peer))
                try:
                    await self._pump(peer, writer)
                except (OSError, EOFError) as exc:
                    logger.info("raft peer %d (%s) connection lost: %s", peer.id, peer.url, exc)
                finally:
                    peer.connected = False
                    watcher.cancel()
                    await _close_writer(writer, abort=True)
                    await asyncio.wait([watcher])  # unlike `await watcher`, never mistakes its cancel for ours
            peer.queue.clear()
            self._report_unreachable(peer.id)
            await asyncio.sleep(backoff * (0.5 + self._rng.random()))
            backoff = min(backoff * 2, self._backoff_max)

    async def _connect(self, peer: _Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Open and handshake a connection to `peer`; None (logged at debug) if that fails."""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(peer.host, peer.port)
                _set_nodelay(writer)
                writer.transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
                hello = HANDSHAKE.pack(HANDSHAKE_MAGIC, PROTOCOL_VERSION, self.member_id, peer.id)
                writer.write(FRAME_HEADER.pack(len(hello)) + hello)
                await writer.drain()
                ack = await reader.readexactly(len(HANDSHAKE_ACK))
            if ack != HANDSHAKE_ACK:
                raise ConnectionError(f"bad handshake ack {ack!r}")
            return reader, writer
        except (OSError, EOFError, TimeoutError) as exc:
            logger.debug("raft peer %d (%s) unreachable: %r", peer.id, peer.url, exc)
            if writer is not None:
                await _close_writer(writer, abort=True)
            return None
        except asyncio.CancelledError:
            if writer is not None:
                writer.transport.abort()
            raise

    async def _pump(self, peer: _Peer, writer: asyncio.StreamWriter) -> None:
        """Write queued messages in batches, one drain per batch; return or raise when the link breaks."""
        queue = peer.queue
        pack_len = FRAME_HEADER.pack
        while True:
            if not queue and not peer.lost:  # no await between the check and clear: no lost wakeup
                peer.wakeup.clear()
                await peer.wakeup.wait()
            if peer.lost:
                raise EOFError("closed by peer")
            parts: list[bytes] = []
            size = 0
            while queue and size < _BATCH_BYTES:
                m = queue.popleft()
                try:
                    data = encode_message(m)
                except ValueError:
                    logger.exception("cannot encode message for peer %d; dropped", peer.id)
                    continue
                if len(data) > self._max_frame:
                    logger.warning("dropping %s to %d: %d bytes exceeds frame cap", m.type, peer.id, len(data))
                    self._report_unreachable(peer.id)
                    continue
                parts.append(pack_len(len(data)))
                parts.append(data)
                size += len(data) + FRAME_HEADER.size
            if parts:
                writer.write(b"".join(parts))
                await writer.drain()

    async def _watch_eof(self, reader: asyncio.StreamReader, peer: _Peer) -> None:
        """The receiver never writes after the ack, so any read completing means the link is gone."""
        with contextlib.suppress(OSError):
            await reader.read(1)
        peer.lost = True
        peer.wakeup.set()

    # -- receiving -------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one inbound connection: handshake, then decode frames in order until it ends."""
        task = asyncio.current_task()
        assert task is not None
        if self._closing:
            await _close_writer(writer)
            return
        self._inbound.add(task)
        peername = writer.get_extra_info("peername")
        try:
            _set_nodelay(writer)
            sender = await self._accept(reader, writer, peername)
            if sender is not None:
                await self._receive(reader, sender, peername)
        except asyncio.CancelledError:
            # Only close() cancels handlers. Ending normally matters on 3.11, whose StreamReaderProtocol
            # calls task.exception() on a finished handler and would log a cancelled one as an error.
            pass
        except (OSError, EOFError) as exc:
            logger.info("raft connection from %s ended: %r", peername, exc)
        except Exception:
            logger.exception("raft connection from %s failed", peername)
        finally:
            self._inbound.discard(task)
            await _close_writer(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peername: object) -> int | None:
        """Check the handshake and ack it; the sender's member id, or None if rejected (logged)."""
        try:
            async with asyncio.timeout(self._handshake_timeout):
                (length,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
                if length != HANDSHAKE.size:
                    logger.warning("rejected raft connection from %s: not a handshake", peername)
                    return None
                magic, version, sender, receiver = HANDSHAKE.unpack(await reader.readexactly(length))
        except (OSError, EOFError, TimeoutError) as exc:
            logger.warning("rejected raft connection from %s: handshake failed: %r", peername, exc)
            return None
        if magic != HANDSHAKE_MAGIC or version != PROTOCOL_VERSION or sender == 0:
            logger.warning("rejected raft connection from %s: bad handshake %r v%d", peername, magic, version)
            return None
        if receiver not in (0, self.member_id):
            logger.warning(
                "rejected raft connection from member %d: meant for %d, I am %d", sender, receiver, self.member_id
            )
            return None
        writer.write(HANDSHAKE_ACK)
        await writer.drain()
        return int(sender)

    async def _receive(self, reader: asyncio.StreamReader, sender: int, peername: object) -> None:
        on_message = self._on_message
        header_size = FRAME_HEADER.size
        unpack_len = FRAME_HEADER.unpack
        while True:
            try:
                header = await reader.readexactly(header_size)
            except EOFError:
                return  # a clean close between frames
            (length,) = unpack_len(header)
            if length > self._max_frame:
                logger.warning("closing raft connection from member %d: %d-byte frame over cap", sender, length)
                return
            body = await reader.readexactly(length)
            try:
                m = decode_message(body)
            except MessageDecodeError as exc:
                logger.warning("closing raft connection from member %d (%s): %s", sender, peername, exc)
                return
            try:
                on_message(m)
            except Exception:
                logger.exception("on_message failed for %s from member %d", m.type, sender)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close_writer(writer: asyncio.StreamWriter, abort: bool = False) -> None:
    """Close a stream, waiting briefly for it; never raises (cancellation aside).

    `abort` discards unsent data at once; a plain close would keep the socket until a stalled peer reads it.
    """
    if abort:
        writer.transport.abort()
    else:
        writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
