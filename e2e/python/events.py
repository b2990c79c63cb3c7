"""Drives Tandem with python-socketio the way Python apps call it: every
event of the contract with no argument, with None and with {}, with and
without an ack, over long-polling and over WebSocket; then a matched pair
where `webrtc:hangup` is sent with no argument and must reach the partner.

Usage: events.py BASE_URL   (exit status 0 when every check passed)
"""
import json
import sys
import threading
import urllib.request

import socketio

BASE = sys.argv[1]
EVENTS = [
    "user:match", "user:cancel", "user:skip", "user:end", "user:block",
    "user:unblock", "user:report",
    "chat:message", "chat:typing", "chat:clear",
    "webrtc:offer", "webrtc:answer", "webrtc:ice-candidate", "webrtc:hangup",
    "room:join", "room:leave", "room:message", "room:typing",
    "call:start", "call:join", "call:signal", "call:leave", "call:invite",
]
failures = []


def guest():
    req = urllib.request.Request(
        BASE + "/api/auth/guest", data=b"{}", method="POST",
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)["data"]


def client(token, transport):
    sio = socketio.Client(reconnection=False)
    established = threading.Event()
    errors = []
    sio.on("connection:established", lambda info: established.set())
    sio.on("error", lambda e: errors.append(e))
    sio.connect(BASE, auth={"token": token}, transports=[transport], wait_timeout=10)
    if not established.wait(10):
        raise RuntimeError("no connection:established")
    return sio, errors


def check(what, err):
    if err and ("unreadable" in err.get("message", "") or "first element" in err.get("message", "")):
        failures.append(f"{what}: {err}")


FORMS = {
    # python-socketio sends no argument for data=None, and a tuple's items
    # as separate arguments: (None,) is one null argument.
    "none": None,
    "null": (None,),
    "empty": {},
}

for transport in ["polling", "websocket"]:
    g = guest()
    sio, errors = client(g["token"], transport)
    for event in EVENTS:
        for form, data in FORMS.items():
            res = sio.call(event, data, timeout=10)
            err = None if res.get("success") else res.get("error")
            check(f"{transport} {event} {form} (ack)", err)
            if event == "user:match" and not res.get("success"):
                failures.append(f"{transport} user:match {form}: {res}")
            before = len(errors)
            sio.emit(event, data)
            sio.call("user:cancel", timeout=10)  # answered after the event above
            for e in errors[before:]:
                check(f"{transport} {event} {form} (no ack)", e)
        sio.call("user:cancel", timeout=10)
    sio.disconnect()

    # A matched pair: hang-up with no argument reaches the partner.
    ga, gb = guest(), guest()
    a, _ = client(ga["token"], transport)
    b, _ = client(gb["token"], transport)
    matched = threading.Event()
    hung = []
    got_hangup = threading.Event()
    b.on("user:matched", lambda m: matched.set())
    b.on("webrtc:hangup", lambda m: (hung.append(m), got_hangup.set()))
    first = a.call("user:match", timeout=10)
    second = b.call("user:match", timeout=10)
    if first.get("data", {}).get("status") != "waiting" or second.get("data", {}).get("status") != "matched":
        failures.append(f"{transport} pairing: {first} {second}")
    elif not matched.wait(10):
        failures.append(f"{transport}: no user:matched")
    else:
        # Chat both ways, in order (on two connection shards, the first
        # message moves one of them onto the other's; README "Design").
        heard_a, heard_b = [], []
        all_heard = threading.Event()

        def on_chat(into, m):
            into.append(m["content"])
            if len(heard_a) == 5 and len(heard_b) == 5:
                all_heard.set()
        a.on("chat:message", lambda m: on_chat(heard_a, m))
        b.on("chat:message", lambda m: on_chat(heard_b, m))
        for i in range(5):
            for who, c in (("a", a), ("b", b)):
                sent = c.call("chat:message", {"content": f"{who}{i}"}, timeout=10)
                if not sent.get("success"):
                    failures.append(f"{transport}: chat:message {who}{i}: {sent}")
        if not all_heard.wait(10):
            failures.append(f"{transport}: chat heard {heard_a} {heard_b}")
        elif heard_b != [f"a{i}" for i in range(5)] or heard_a != [f"b{i}" for i in range(5)]:
            failures.append(f"{transport}: chat out of order {heard_a} {heard_b}")
        a.emit("webrtc:hangup")
        if not got_hangup.wait(10):
            failures.append(f"{transport}: webrtc:hangup with no argument did not reach the partner")
        elif hung[0].get("from") != ga["user"]["id"]:
            failures.append(f"{transport}: hangup from {hung[0]}")
        skipped = a.call("user:skip", timeout=10)
        if not skipped.get("success"):
            failures.append(f"{transport}: user:skip with no argument: {skipped}")
    # A lounge: both join general-en, a writes, b reads it.
    heard = threading.Event()
    got = []
    b.on("room:message", lambda m: (got.append(m), heard.set()))
    for c in (a, b):
        joined = c.call("room:join", {"roomId": "general-en"}, timeout=10)
        if not joined.get("success") or "epoch" not in joined.get("data", {}):
            failures.append(f"{transport}: room:join: {joined}")
    sent = a.call("room:message", {"roomId": "general-en", "content": "hello lounge"}, timeout=10)
    if not sent.get("success"):
        failures.append(f"{transport}: room:message: {sent}")
    elif not heard.wait(10):
        failures.append(f"{transport}: room:message did not reach the other member")
    elif got[0].get("content") != "hello lounge" or got[0].get("offset") != sent["data"]["offset"]:
        failures.append(f"{transport}: room:message {got[0]} vs ack {sent}")
    # A group call in the lounge: a starts it, both join (the server
    # offers), b sees a in call:participants, a leaves with the ack.
    started = a.call("call:start", {"roomId": "general-en"}, timeout=10)
    if not started.get("success"):
        failures.append(f"{transport}: call:start: {started}")
    else:
        call_id = started["data"]["callId"]
        seen = threading.Event()
        b.on("call:participants", lambda m: seen.set() if len(m["participants"]) == 2 else None)
        for c in (a, b):
            joined = c.call("call:join", {"callId": call_id}, timeout=10)
            if not joined.get("success") or joined["data"]["sdp"]["type"] != "offer":
                failures.append(f"{transport}: call:join: {joined}")
        if not seen.wait(10):
            failures.append(f"{transport}: call:participants with both did not arrive")
        for c in (a, b):
            out = c.call("call:leave", {"callId": call_id}, timeout=10)
            if not out.get("success"):
                failures.append(f"{transport}: call:leave: {out}")
    left = b.call("room:leave", {"roomId": "general-en"}, timeout=10)
    if not left.get("success"):
        failures.append(f"{transport}: room:leave: {left}")
    a.disconnect()
    b.disconnect()

for f in failures:
    print("FAIL", f)
print(f"python-socketio: {len(failures)} failures")
sys.exit(1 if failures else 0)
