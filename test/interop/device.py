#!/usr/bin/env python3
"""A device written with nothing but Python's cbor2 and websocket-client, as a
device maker would write one from docs/protocol.md: it connects, reads
`hello`, sends `batch` frames (and `cbatch` frames with RFC 8746 typed
arrays when asked), and waits for every ack. Prints one JSON line.

usage: device.py URL GROUP DEVICE TOKEN BATCHES READINGS FRAMES(batch|cbatch|both) T0_MS [VALUES(f64|f32)] [STEP_MS]
"""
import json
import struct
import sys

import cbor2
import websocket


def batch(seq, readings):
    return cbor2.dumps({"type": "batch", "seq": seq, "readings": [list(r) for r in readings]})


def cbatch(seq, readings, values="f64"):
    """One series per metric: offsets in the narrowest unsigned typed array
    (tag 64 uint8, 69 uint16, 70 uint32, little-endian) and values as
    float64 (tag 86) or float32 (tag 85), as docs/protocol.md shows."""
    t0 = min(r[0] for r in readings)
    series = {}
    for ts, metric, value in readings:
        series.setdefault(metric, []).append((ts, value))
    out = []
    for metric, points in series.items():
        points.sort(key=lambda p: p[0])
        dts = [points[0][0] - t0] + [b[0] - a[0] for a, b in zip(points, points[1:])]
        top = max(dts)
        tag, fmt = (64, "B") if top < 1 << 8 else (69, "H") if top < 1 << 16 else (70, "I")
        vtag, vfmt = (85, "f") if values == "f32" else (86, "d")
        out.append({
            "metric": metric,
            "dt": cbor2.CBORTag(tag, struct.pack("<%d%s" % (len(dts), fmt), *dts)),
            "values": cbor2.CBORTag(vtag, struct.pack("<%d%s" % (len(points), vfmt), *[v for _, v in points])),
        })
    return cbor2.dumps({"type": "cbatch", "seq": seq, "t0": t0, "series": out})


def main():
    url, group, device, token, batches, per, frames, t0 = sys.argv[1:9]
    values = sys.argv[9] if len(sys.argv) > 9 else "f64"
    step = int(sys.argv[10]) if len(sys.argv) > 10 else 10
    batches, per, t0 = int(batches), int(per), int(t0)
    ws = websocket.create_connection(
        f"{url.replace('http', 'ws', 1)}/v1/groups/{group}/devices/{device}/ws",
        header=[f"Authorization: Bearer {token}"],
        timeout=60,
    )
    hello = cbor2.loads(ws.recv())
    assert hello["type"] == "hello", hello
    seq = hello["lastSeq"]
    sent_sum, sent = 0.0, 0
    for b in range(batches):
        readings = []
        for i in range(per):
            k = b * per + i
            value = k * 0.25
            readings.append((t0 + k * step, ("temp", "hum", "co2")[k % 3], value))
            sent_sum += value
        seq += 1
        use_c = frames == "cbatch" or (frames == "both" and b % 2 == 1)
        ws.send_binary(cbatch(seq, readings, values) if use_c else batch(seq, readings))
        sent += per
    acked, errors = 0, []
    while acked < batches:
        frame = cbor2.loads(ws.recv())
        if frame["type"] == "ack":
            acked += 1
        elif frame["type"] == "error":
            errors.append(frame)
            break
    ws.close()
    print(json.dumps({"acked": acked, "readings": sent, "sum": sent_sum, "lastSeq": seq, "errors": errors}))


if __name__ == "__main__":
    main()
