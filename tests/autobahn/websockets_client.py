"""Sanity check with a real client: Python `websockets` (pip install websockets)
sends compressed, fragmented and control messages to an echo endpoint and
checks both directions used permessage-deflate.

Usage: python3 tests/autobahn/websockets_client.py PORT
"""
import asyncio, sys
import websockets

async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}", compression="deflate", max_size=2**24) as ws:
        print("negotiated:", ws.response.headers.get("Sec-WebSocket-Extensions"))
        ext = ws.protocol.extensions[0]
        sent_rsv1, recv_rsv1 = [], []
        enc, dec = ext.encode, ext.decode
        def encode(frame):
            out = enc(frame); sent_rsv1.append(out.rsv1); return out
        def decode(frame, *a, **k):
            recv_rsv1.append(frame.rsv1); return dec(frame, *a, **k)
        ext.encode, ext.decode = encode, decode
        msg = "hello compressed world " * 200
        await ws.send(msg)
        assert await ws.recv() == msg
        for i in range(3):  # context takeover across client messages
            await ws.send(b"\x00\x01" * 5000)
            assert await ws.recv() == b"\x00\x01" * 5000
        await ws.send("short")
        assert await ws.recv() == "short"
        await ws.send(["frag", "mented ", "ünïcode"])
        assert await ws.recv() == "fragmented ünïcode"
        await (await ws.ping(b"abc"))
        await ws.close(code=4001, reason="done")
        print("client frames compressed:", sent_rsv1)
        print("server frames compressed:", recv_rsv1)
        print("close code echoed:", ws.close_code)
        assert all(sent_rsv1[:5]) and recv_rsv1[:4] == [True] * 4 and ws.close_code == 4001

asyncio.run(main(sys.argv[1]))
