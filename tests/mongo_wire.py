"""A MongoDB wire-protocol server for the real-MongoDB test variants (test tooling only).

`python -m tests.mongo_wire DATA_DIR` starts briskdb's MongoDB-subset listener on 127.0.0.1
behind a loopback shim, prints `mongodb://127.0.0.1:<port>` once it accepts connections, and
runs until stdin closes or it gets SIGTERM. The shim fixes the handshake: briskdb 0.1.0b3 rejects
the `backpressure` field that pymongo 4.20 adds to `hello`, and reports wire version 8 where
pymongo needs 9 (MongoDB 4.4). And it does what mongod does itself with a write conflict outside a
transaction: briskdb answers a command that met a busy database (SQLite's lock) with WriteConflict
(code 112), which mongod never shows a client for a single-document write but retries inside the
server; the shim sends such a command again (it had no effect) instead of handing that answer on.
Every other message passes byte for byte. docs/data-model.md says what this stand-in proves and
what only CI's mongo:7 job does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import struct
import sys
from typing import Any

import bson

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HANDSHAKES = {"hello", "ismaster", "isMaster"}
CLIENT_FIELDS_REFUSED = ("backpressure",)
MIN_WIRE_VERSION_NEEDED = 9
HEADER = struct.Struct("<iiii")
WRITE_CONFLICT = 112
CONFLICT_RETRIES = 50  # each after a short pause: a busy SQLite frees its lock in milliseconds
CONFLICT_PAUSE_SECONDS = 0.01


def _rewrite_request(message: bytes) -> tuple[bytes, bool]:
    """Drop the handshake fields briskdb refuses; returns the message and whether it is a handshake."""
    _, request_id, response_to, op_code = HEADER.unpack_from(message)
    if op_code == OP_MSG:
        flags = struct.unpack_from("<I", message, 16)[0]
        if message[20] != 0 or flags & 1:  # body not first, or a checksum: never a driver handshake
            return message, False
        size = struct.unpack_from("<i", message, 21)[0]
        command: dict[str, Any] = bson.decode(message[21 : 21 + size])
        if next(iter(command), None) not in HANDSHAKES:
            return message, False
        body = struct.pack("<IB", flags, 0) + _encode_without(command) + message[21 + size :]
    elif op_code == OP_QUERY:
        name_end = message.index(b"\0", 20) + 1
        start = name_end + 8  # numberToSkip, numberToReturn
        size = struct.unpack_from("<i", message, start)[0]
        command = bson.decode(message[start : start + size])
        if next(iter(command), None) not in HANDSHAKES:
            return message, False
        body = message[16:start] + _encode_without(command) + message[start + size :]
    else:
        return message, False
    return HEADER.pack(16 + len(body), request_id, response_to, op_code) + body, True


def _encode_without(command: dict[str, Any]) -> bytes:
    return bson.encode({name: value for name, value in command.items() if name not in CLIENT_FIELDS_REFUSED})


def _rewrite_handshake_reply(message: bytes) -> bytes:
    _, request_id, response_to, op_code = HEADER.unpack_from(message)
    offset = {OP_MSG: 21, OP_REPLY: 36}.get(op_code)
    if offset is None:
        return message
    size = struct.unpack_from("<i", message, offset)[0]
    reply: dict[str, Any] = bson.decode(message[offset : offset + size])
    if reply.get("maxWireVersion", MIN_WIRE_VERSION_NEEDED) >= MIN_WIRE_VERSION_NEEDED:
        return message
    reply["maxWireVersion"] = MIN_WIRE_VERSION_NEEDED
    body = message[16:offset] + bson.encode(reply) + message[offset + size :]
    return HEADER.pack(16 + len(body), request_id, response_to, op_code) + body


def _is_write_conflict(message: bytes) -> bool:
    """A reply whose command failed with WriteConflict (an OP_MSG body `{ok: 0, code: 112}`)."""
    if HEADER.unpack_from(message)[3] != OP_MSG or message[20] != 0:
        return False
    size = struct.unpack_from("<i", message, 21)[0]
    reply: dict[str, Any] = bson.decode(message[21 : 21 + size])
    return reply.get("ok") == 0 and reply.get("code") == WRITE_CONFLICT


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(HEADER.size)
    length = HEADER.unpack(header)[0]
    return header + await reader.readexactly(length - HEADER.size)


class _Connection:
    """What one client connection's two directions share: the handshakes awaiting their reply, and
    the requests in flight (a driver sends the next on a socket after the reply), for a resend."""

    def __init__(self, server: asyncio.StreamWriter) -> None:
        self.server = server
        self.handshakes: set[int] = set()
        self.in_flight: dict[int, tuple[bytes, int]] = {}  # request id -> (message, resends)


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, connection: _Connection, *, requests: bool
) -> None:
    try:
        while True:
            message = await _read_message(source)
            if requests:
                message, is_handshake = _rewrite_request(message)
                request_id = HEADER.unpack_from(message)[1]
                if is_handshake:
                    connection.handshakes.add(request_id)
                connection.in_flight[request_id] = (message, 0)
            else:
                answered = HEADER.unpack_from(message)[2]
                request, resends = connection.in_flight.pop(answered, (b"", CONFLICT_RETRIES))
                if resends < CONFLICT_RETRIES and _is_write_conflict(message):
                    await asyncio.sleep(CONFLICT_PAUSE_SECONDS)
                    connection.in_flight[answered] = (request, resends + 1)
                    connection.server.write(request)
                    await connection.server.drain()
                    continue
                if answered in connection.handshakes:
                    connection.handshakes.discard(answered)
                    message = _rewrite_handshake_reply(message)
            sink.write(message)
            await sink.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        sink.close()


async def _serve(upstream_host: str, upstream_port: int) -> None:
    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        connection = _Connection(server_writer)
        with contextlib.suppress(asyncio.CancelledError):  # the stand-in is stopping
            await asyncio.gather(
                _pipe(client_reader, server_writer, connection, requests=True),
                _pipe(server_reader, client_writer, connection, requests=False),
            )

    shim = await asyncio.start_server(connect, "127.0.0.1", 0)
    port = shim.sockets[0].getsockname()[1]
    # briskdb serves at most 8 sockets: every client pools at most 2 of them (plus its monitor).
    print(f"mongodb://127.0.0.1:{port}/?maxPoolSize=2", flush=True)
    stop = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.cancel)
    loop.add_reader(sys.stdin, lambda: sys.stdin.read(1) or stop.done() or stop.cancel())
    async with shim:
        try:
            await stop
        except asyncio.CancelledError:
            pass


def main() -> None:
    import briskdb

    with briskdb.open(sys.argv[1], shards=2, documents=True) as db, db.serve(mongo="127.0.0.1:0", admin=None) as server:
        host, port = str(server.mongo_address).rsplit(":", 1)
        asyncio.run(_serve(host, int(port)))


if __name__ == "__main__":
    main()
