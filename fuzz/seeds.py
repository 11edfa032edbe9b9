#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into corpus/<target>/seed-*:
valid requests in every shape a client sends, for the fuzzer to mutate.
(The corpus the fuzzer grows from them is kept beside them.)"""
import json, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))

def mp(v):
    """A tiny MessagePack encoder (maps, strings, ints, bools, nil, lists)."""
    if v is None: return b"\xc0"
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if -32 <= v < 0: return struct.pack("b", v)
        return b"\xcf" + struct.pack(">Q", v) if v >= 0 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode(); return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, (bytes, bytearray)): return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list): return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)

ENVELOPES = [
    {"id": 1, "service": "ping", "data": {}},
    {"id": 2, "service": "echo", "data": {"text": "hi", "n": [1, 2, 3]}},
    {"id": "a", "service": "compute", "data": {"n": 1000}},
    {"id": 3, "service": "services", "data": {}},
    {"id": 4, "service": "stats"},
    {"id": 5, "service": "nope", "data": None},
    {"service": "ping", "data": {}},
    {"id": 6, "method": "echo", "params": {"x": 1}},
]

def frames(bodies):
    return b"".join(struct.pack(">I", len(b)) + b for b in bodies)

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def ws_frame(payload, opcode=1, mask=b"\x01\x02\x03\x04", fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126: head += bytes([0x80 | n])
    elif n < 65536: head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else: head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

def main():
    for i, e in enumerate(ENVELOPES):
        j = json.dumps(e).encode(); m = mp(e)
        write("rpc_message", f"json-{i}", j)
        write("rpc_message", f"msgpack-{i}", m)
        write("rpc_frames", f"json-{i}", frames([j]))
        write("rpc_frames", f"msgpack-{i}", frames([m]))
        write("websocket", f"text-{i}", ws_frame(j, 1))
        write("websocket", f"binary-{i}", ws_frame(m, 2))
    write("rpc_frames", "pipelined", frames([json.dumps(e).encode() for e in ENVELOPES] + [mp(e) for e in ENVELOPES]))
    write("rpc_frames", "too-large", struct.pack(">I", 1 << 30) + b"x")
    write("websocket", "fragmented", ws_frame(b'{"id":1,"serv', 1, fin=False) + ws_frame(b'ice":"ping","data":{}}', 0))
    write("websocket", "ping-close", ws_frame(b"p", 9) + ws_frame(struct.pack(">H", 1000) + b"bye", 8))
    reqs = {
        "get": b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "index": b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "range": b"GET /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,20-,-5\r\n\r\n",
        "gzip": b"GET /big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br;q=0.5\r\n\r\n",
        "cond": b'GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: "abc", W/"x"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n',
        "ifrange": b'GET /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=5-10\r\nIf-Range: "x"\r\n\r\n',
        "head": b"HEAD /sub/b.json HTTP/1.1\r\nHost: x\r\n\r\n",
        "traversal": b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /leak.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "health": b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n",
        "h10": b"GET /a.txt HTTP/1.0\r\n\r\n",
        "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        "absolute": b"GET http://x/a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "options": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for k, v in reqs.items():
        write("http_request", k, v)
    with open(os.path.join(HERE, "..", "config", "sys.toml"), "rb") as f:
        write("config", "sys", f.read())
    write("config", "small", b'[node]\nname = "n"\n[[listener]]\nname = "rpc"\nprotocol = "rpc"\nport = 0\n')
    write("config", "bad", b'[[listener]]\nname = 3\nport = -1\n')
    # zmtp: a first byte 0 puts a greeting and a DEALER's READY in front.
    def zframe(body, more=False, command=False):
        flags = (1 if more else 0) | (4 if command else 0)
        if len(body) > 255:
            return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body
        return bytes([flags, len(body)]) + body
    def zmsg(*parts):
        return b"".join(zframe(p, i < len(parts) - 1) for i, p in enumerate(parts))
    greeting = b"\xff" + b"\0" * 8 + b"\x7f\x03\x01NULL" + b"\0" * 16 + b"\x01" + b"\0" * 31
    ready = zframe(b"\x05READY\x0bSocket-Type" + struct.pack(">I", 3) + b"REQ", command=True)
    for i, e in enumerate(ENVELOPES):
        write("zmtp", "req-%d" % i, b"\0" + zmsg(b"", mp(e)) + zmsg(b"", json.dumps(e).encode()))
    write("zmtp", "dealer-bare", b"\0" + zmsg(mp(ENVELOPES[0])) + zmsg(b"id1", b"", mp(ENVELOPES[1])))
    write("zmtp", "long-frame", b"\0" + zmsg(b"", json.dumps({"id": 9, "service": "echo", "data": {"p": "x" * 400}}).encode()))
    write("zmtp", "ping", b"\0" + zframe(b"\x04PING\x00\x0a" + b"ctx", command=True) + zmsg(b"", mp(ENVELOPES[0])))
    write("zmtp", "raw-req", b"\x01" + greeting + ready + zmsg(b"", mp(ENVELOPES[0])))
    write("zmtp", "raw-half-greeting", b"\x01" + greeting[:11])
    write("zmtp", "raw-wrong-type", b"\x01" + greeting + zframe(b"\x05READY\x0bSocket-Type" + struct.pack(">I", 3) + b"PUB", command=True))

if __name__ == "__main__":
    main()
    sys.exit(0)
