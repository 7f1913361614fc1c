"""A real headless browser for tests: Debian's chromium driven over the Chrome DevTools protocol.

No browser download and no driver package: the system ``chromium`` (``scripts/ensure-tools``
installs it) runs headless with a fresh profile and ``--remote-debugging-port=0``; the test talks
to its page target over one WebSocket (``websockets``, already a dependency of uvicorn).

    async with headless_chromium() as page:
        await page.goto("http://127.0.0.1:8003/")
        await page.evaluate("document.title")
        await page.set_files("#file", [path])
        await page.wait_for("document.querySelector('.source') !== null", timeout_s=20)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One page target: navigate, run JavaScript, set file inputs, wait for conditions."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are skipped)."""
        message_id = next(self._ids)
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self._socket.recv(), timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not await self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s} s: {condition}")
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(
            "location.href.startsWith('http') && document.readyState === 'complete'", timeout_s=20
        )

    async def set_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in an ``<input type=file>`` as a user would."""
        document = await self.send("DOM.getDocument")
        node = await self.send(
            "DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector
        )
        await self.send(
            "DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(p) for p in paths]
        )


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Page]:
    """Start chromium headless with a fresh profile; yield its first page; always stop it."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (scripts/ensure-tools installs it)")
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped whole (zygote, renderers)
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port")
                await asyncio.sleep(0.1)
            port = int(port_file.read_text().split("\n")[0])
            async with httpx.AsyncClient(timeout=10) as client:
                targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with websockets.connect(url, max_size=None) as socket:
                yield Page(socket)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            for _ in range(50):  # children leave the group shortly after the main process
                try:
                    os.killpg(process.pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.1)
