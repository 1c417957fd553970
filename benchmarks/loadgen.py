"""Fallback load generator when wrk is missing: keep-alive GET / on N connections.

``python loadgen.py PORT SECONDS CONNECTIONS [COOKIE]`` prints ``<requests/s> <errors> <requests>``.
Bounded by SECONDS; loopback only.
"""

from __future__ import annotations

import asyncio
import sys
import time


async def worker(port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            counts[0 if head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")) else 1] += 1
    finally:
        writer.close()


async def main(port: int, seconds: float, connections: int, cookie: str) -> None:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if cookie:
        request += b"Cookie: " + cookie.encode("latin-1") + b"\r\n"
    request += b"\r\n"
    counts = [0, 0]
    start = time.monotonic()
    deadline = start + seconds
    tasks = [worker(port, request, deadline, counts) for _ in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + 10)
    print(f"{counts[0] / (time.monotonic() - start):.1f} {counts[1]} {counts[0]}")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]),
            float(sys.argv[2]),
            int(sys.argv[3]),
            sys.argv[4] if len(sys.argv) > 4 else "",
        )
    )
