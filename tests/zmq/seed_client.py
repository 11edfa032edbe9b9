#!/usr/bin/python3
"""A client of corral's ZeroMQ endpoints on libzmq (pyzmq), as the seeds'
clients are written: REQ/DEALER sockets sending MessagePack (or JSON)
envelopes {"service": .., "data": {..}}, SUB sockets reading [topic, body].

Run by tests/zmq_front.rs:  seed_client.py <role> <args as JSON>
Prints one JSON object per line (what it received, decoded) and exits 0; any
failure raises (exit 1, traceback on stderr). Roles:

  req     {"addr", "requests": [{"enc": "msgpack"|"json", "body": {..}}]}
          one REQ socket, each request in turn; prints each reply.
  dealer  {"addr", "requests": [..], "delimiter": bool}
          one DEALER socket; sends every request first (pipelined), with an
          empty delimiter frame when "delimiter"; prints each reply with the
          frames that came before its body.
  sub     {"addr", "topics": [..], "count": n, "ready_file": path,
           "rcvhwm": n?, "rcvbuf": n?, "sleep_before_read": s?}
          one SUB socket subscribed to each topic; writes ready_file once
          subscribed; prints each message [topic, body] until `count` or
          `timeout_ms` (default 10 s) without one.
  broker  {"front": port, "back": addr, "ready_file": path}
          the seeds' broker: a ROUTER bound on `front`, a DEALER connected
          to `back`, zmq.proxy between them, until killed.
  proxy   {"front": port, "back": addr, "ready_file": path}
          the seeds' pub/sub proxy: an XPUB bound on `front`, an XSUB
          connected to `back`, zmq.proxy between them, until killed.
"""
import json
import sys
import time

import msgpack
import zmq

TIMEOUT_MS = 10000


def encode(req):
    if req.get("enc", "msgpack") == "json":
        return json.dumps(req["body"]).encode()
    return msgpack.packb(req["body"], use_bin_type=True)


def decode(body):
    if body[:1] == b"{":
        return "json", json.loads(body)
    return "msgpack", msgpack.unpackb(body, raw=False)


def emit(obj):
    print(json.dumps(obj), flush=True)


def req(args, ctx):
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(args["addr"])
    for r in args["requests"]:
        s.send(encode(r))
        enc, reply = decode(s.recv())
        emit({"enc": enc, "reply": reply})


def dealer(args, ctx):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(args["addr"])
    for r in args["requests"]:
        if args.get("delimiter"):
            s.send_multipart([b"", encode(r)])
        else:
            s.send(encode(r))
    for _ in args["requests"]:
        frames = s.recv_multipart()
        enc, reply = decode(frames[-1])
        emit({"enc": enc, "envelope": [f.hex() for f in frames[:-1]], "reply": reply})


def sub(args, ctx):
    s = ctx.socket(zmq.SUB)
    if "rcvhwm" in args:
        s.setsockopt(zmq.RCVHWM, args["rcvhwm"])
    if "rcvbuf" in args:
        s.setsockopt(zmq.RCVBUF, args["rcvbuf"])
    s.setsockopt(zmq.RCVTIMEO, args.get("timeout_ms", TIMEOUT_MS))
    s.setsockopt(zmq.LINGER, 0)
    s.connect(args["addr"])
    for t in args["topics"]:
        s.setsockopt(zmq.SUBSCRIBE, t.encode())
    # A subscription travels asynchronously: give it time to arrive.
    time.sleep(0.5)
    with open(args["ready_file"], "w") as f:
        f.write("ready")
    if args.get("sleep_before_read"):
        time.sleep(args["sleep_before_read"])
    got = 0
    while got < args["count"]:
        try:
            frames = s.recv_multipart()
        except zmq.Again:
            break
        topic = frames[0].decode()
        body = msgpack.unpackb(frames[1], raw=False) if len(frames) > 1 else None
        emit({"topic": topic, "parts": len(frames), "body": body})
        got += 1


def forwarder(args, ctx, front_type, back_type):
    front = ctx.socket(front_type)
    front.bind("tcp://127.0.0.1:%d" % args["front"])
    back = ctx.socket(back_type)
    back.connect(args["back"])
    with open(args["ready_file"], "w") as f:
        f.write("ready")
    zmq.proxy(front, back)


def broker(args, ctx):
    forwarder(args, ctx, zmq.ROUTER, zmq.DEALER)


def proxy(args, ctx):
    forwarder(args, ctx, zmq.XPUB, zmq.XSUB)


def main():
    role, args = sys.argv[1], json.loads(sys.argv[2])
    ctx = zmq.Context()
    roles = {"req": req, "dealer": dealer, "sub": sub, "broker": broker, "proxy": proxy}
    roles[role](args, ctx)
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
