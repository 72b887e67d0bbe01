"""The smallest D-Bus client that can call a method returning one string.

``status`` through the daemon must cost about what ``ostree admin status``
does; PyGObject alone takes longer to import.  This speaks the wire protocol
(EXTERNAL authentication, Hello, one method call) over the bus socket with
the standard library only.  Everything else uses dasbus.
"""

from __future__ import annotations

import os
import socket
import struct

SYSTEM_BUS_DEFAULT = "unix:path=/run/dbus/system_bus_socket"
METHOD_CALL, METHOD_RETURN, ERROR = 1, 2, 3


class WireError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _pad(n: int, align: int) -> int:
    return (align - n % align) % align


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def align(self, n: int) -> None:
        self.buf += b"\0" * _pad(len(self.buf), n)

    def byte(self, v: int) -> None:
        self.buf.append(v)

    def u32(self, v: int) -> None:
        self.align(4)
        self.buf += struct.pack("<I", v)

    def string(self, s: str) -> None:
        data = s.encode()
        self.u32(len(data))
        self.buf += data + b"\0"

    def signature(self, s: str) -> None:
        self.byte(len(s))
        self.buf += s.encode() + b"\0"


def _message(serial: int, path: str, interface: str, member: str, destination: str) -> bytes:
    fields = _Writer()
    for code, sig, value in ((1, "o", path), (2, "s", interface), (3, "s", member), (6, "s", destination)):
        fields.align(8)
        fields.byte(code)
        fields.signature(sig)
        fields.string(value)
    head = struct.pack("<cBBBIII", b"l", METHOD_CALL, 0, 1, 0, serial, len(fields.buf))
    msg = head + bytes(fields.buf)
    return msg + b"\0" * _pad(len(msg), 8)


def _address() -> str:
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
    for part in address.split(";"):
        if part.startswith("unix:"):
            kv = dict(item.split("=", 1) for item in part[5:].split(",") if "=" in item)
            if "path" in kv:
                return kv["path"]
            if "abstract" in kv:
                return "\0" + kv["abstract"]
    raise WireError("org.freedesktop.DBus.Error.BadAddress", f"unsupported bus address {address!r}")


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise WireError("org.freedesktop.DBus.Error.Disconnected", "the bus closed the connection")
        data += chunk
    return data


def _read_message(sock: socket.socket) -> tuple[int, dict[int, object], bytes]:
    head = _read_exact(sock, 16)
    if head[:1] != b"l":
        raise WireError("org.freedesktop.DBus.Error.NotSupported", "big-endian messages are not supported")
    mtype = head[1]
    body_len, _serial, fields_len = struct.unpack("<III", head[4:16])
    rest = _read_exact(sock, fields_len + _pad(16 + fields_len, 8) + body_len)
    fields_raw, body = rest[:fields_len], rest[fields_len + _pad(16 + fields_len, 8):]
    fields: dict[int, object] = {}
    pos = 0
    while pos < len(fields_raw):
        pos += _pad(pos + 16, 8)  # struct alignment is relative to the message start
        code = fields_raw[pos]
        siglen = fields_raw[pos + 1]
        sig = fields_raw[pos + 2:pos + 2 + siglen].decode()
        pos += 3 + siglen
        if sig in ("s", "o"):
            pos += _pad(pos + 16, 4)
            (n,) = struct.unpack_from("<I", fields_raw, pos)
            fields[code] = fields_raw[pos + 4:pos + 4 + n].decode()
            pos += 5 + n
        elif sig == "u":
            pos += _pad(pos + 16, 4)
            (fields[code],) = struct.unpack_from("<I", fields_raw, pos)
            pos += 4
        elif sig == "g":
            n = fields_raw[pos]
            fields[code] = fields_raw[pos + 1:pos + 1 + n].decode()
            pos += 2 + n
        else:
            raise WireError("org.freedesktop.DBus.Error.NotSupported", f"header field type {sig}")
    return mtype, fields, body


def _body_string(body: bytes) -> str:
    if len(body) < 4:
        return ""
    (n,) = struct.unpack_from("<I", body, 0)
    return body[4:4 + n].decode()


def call_string_method(destination: str, path: str, interface: str, member: str,
                       timeout: float = 30.0) -> str:
    """Call ``member`` (no arguments) and return its string result."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(_address())
        except OSError as e:
            raise WireError("org.freedesktop.DBus.Error.NoServer",
                            f"cannot connect to the system bus: {e}") from e
        sock.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += _read_exact(sock, 1)
        if not reply.startswith(b"OK "):
            raise WireError("org.freedesktop.DBus.Error.AuthFailed", "the bus refused authentication")
        sock.sendall(b"BEGIN\r\n")
        sock.sendall(_message(1, "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello",
                              "org.freedesktop.DBus"))
        sock.sendall(_message(2, path, interface, member, destination))
        while True:
            mtype, fields, body = _read_message(sock)
            if fields.get(5) != 2:  # not the reply to our call (Hello's reply, signals)
                continue
            if mtype == METHOD_RETURN:
                return _body_string(body)
            if mtype == ERROR:
                raise WireError(str(fields.get(4, "")), _body_string(body))
    finally:
        sock.close()
