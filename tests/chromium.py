"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the
test of the console in a browser. No browser download and no node: the protocol is JSON over
a websocket, spoken here with aiohttp (which textual-serve brings anyway).

The console's page draws the terminal with xterm.js on a canvas, so its text is not in the
DOM. A script run before the page's own (`TERMINAL_HOOK`) keeps each xterm `Terminal` the page
makes, and `screen_text()` reads what that terminal shows from its buffer: what the browser
actually received and drew, row by row.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import aiohttp

from debian import require_binary

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--disable-extensions", "--mute-audio"]

TERMINAL_HOOK = """
(() => {
  window.__terminals = [];
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    set(value) {
      Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
      if (value && value.buffer && value.buffer.active) window.__terminals.push(value);
    },
  });
  window.__screen = () => {
    const t = window.__terminals[0];
    if (!t) return "";
    const buffer = t.buffer.active, rows = [];
    for (let y = 0; y < t.rows; y++) {
      const line = buffer.getLine(buffer.viewportY + y);
      rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\\n");
  };
})();
"""


class Chromium:
    """`chromium --headless … --remote-debugging-port=0` with a fresh profile in `directory`."""

    def __init__(self, directory: Path, width: int = 1000, height: int = 660) -> None:
        binary = require_binary("chromium", "chromium")
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={directory / 'profile'}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.browser_ws = ""

        def read() -> None:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m:
                    self.browser_ws = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60) or not self.browser_ws:
            self.close()
            raise AssertionError("chromium did not start:\n" + "\n".join(self.lines[-20:]))
        self.http = self.browser_ws.split("/devtools/")[0].replace("ws://", "http://")

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(30)
        if self.proc.stderr:
            self.proc.stderr.close()


class Page:
    """One tab, over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        rid = next(self._ids)
        await self.ws.send_str(json.dumps({"id": rid, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.receive_str(), 60))
            if message.get("id") == rid:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Emulation.setFocusEmulationEnabled", enabled=True)  # a headless tab has no focus; Textual's footer waits for it
        await self.call("Page.addScriptToEvaluateOnNewDocument", source=TERMINAL_HOOK)
        await self.call("Page.navigate", url=url)

    async def click(self, x: float, y: float) -> None:
        """A left click at (x, y) CSS pixels: focuses the terminal, as a person's first tap would."""
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def screen_text(self) -> str:
        return await self.evaluate("window.__screen ? window.__screen() : ''") or ""

    async def screenshot(self, path: Path) -> Path:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Poll what the terminal shows until every needle is in it (a liveness bound)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        text = ""
        while True:
            text = await self.screen_text()
            if all(n in text for n in needles):
                return text
            if loop.time() > deadline:
                raise AssertionError(f"the page never showed {needles}; it shows:\n{text}")
            await asyncio.sleep(0.2)


async def first_page(chromium: Chromium, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    async with session.get(f"{chromium.http}/json/list") as response:
        targets = await response.json(content_type=None)
    target = next(t for t in targets if t.get("type") == "page")
    return await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
