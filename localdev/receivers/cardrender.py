"""Parse and render Adaptive Cards with Microsoft's own renderer in headless Chromium.

Boundary: one long-lived Chromium (system ``/usr/bin/chromium``, driven by Playwright)
with the ``adaptivecards`` npm package's ``dist/adaptivecards.js`` loaded in a blank page.
A card is parsed with a ``SerializationContext`` targeting 1.5 (what Teams renders), its
parse events and ``validateProperties()`` events are collected with every console
warning or error and page error, then it is rendered and screenshotted to PNG. Any event
at all counts as a problem: the receiver wants a card with no errors or warnings.

Playwright's own browser download is not used (it cannot work here); the launch flags
keep Chromium from calling home.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ADAPTIVECARDS_JS = ROOT / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
# A Teams channel on a laptop; "msteams": {"width": "Full"} cards fill it.
VIEWPORT = {"width": 760, "height": 600}

_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<style>body{margin:0;background:#f5f5f5;font-family:'Segoe UI',sans-serif}
#card{width:720px;margin:20px;background:#fff;border:1px solid #e1e1e1;border-radius:4px}</style>
</head><body><div id="card"></div></body></html>"""

# Runs in the page: parse (events), validate (events), render. Names come from the
# library's own enums so a problem reads as e.g. "UnknownElementType: ...".
_SCRIPT = """(card) => {
  const AC = window.AdaptiveCards;
  const problems = [];
  // Teams processes a Markdown subset in TextBlock and Fact text; without a processor the
  // library warns and shows raw text. This one knows what a card author can do to a
  // reader (bold, italic, links) and honours backslash escapes as CommonMark does, so a
  // sender that escapes untrusted text is seen to render it literally.
  AC.AdaptiveCard.onProcessMarkdown = (text, result) => {
    const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
                        .replace(/"/g, "&quot;");
    const kept = [];
    let out = text.replace(/\\\\([\\\\`*_\\[\\]()#>~|!-])/g, (m, c) => {
      kept.push(c); return "\\u0000" + (kept.length - 1) + "\\u0000"; });
    out = esc(out)
      .replace(/\\[([^\\]]+)\\]\\(([^)\\s]+)\\)/g, '<a href="$2">$1</a>')
      .replace(/\\*\\*([^*]+)\\*\\*/g, "<strong>$1</strong>")
      .replace(/\\*([^*]+)\\*/g, "<em>$1</em>")
      .replace(/\\u0000(\\d+)\\u0000/g, (m, i) => esc(kept[Number(i)]));
    result.outputHtml = out;
    result.didProcess = true;
  };
  const ctx = new AC.SerializationContext(AC.Versions.v1_5);
  const c = new AC.AdaptiveCard();
  c.parse(card, ctx);
  for (let i = 0; i < ctx.eventCount; i++) {
    const e = ctx.getEventAt(i);
    problems.push(AC.ValidationEvent[e.event] + ": " + e.message);
  }
  for (const e of c.validateProperties().validationEvents) {
    problems.push(AC.ValidationEvent[e.event] + ": " + e.message);
  }
  const host = document.getElementById("card");
  host.innerHTML = "";
  const el = c.render();
  if (!el) { problems.push("Render: the card rendered to nothing"); }
  else { host.appendChild(el); }
  return {problems, text: host.innerText, links: host.querySelectorAll("a").length};
}"""


@dataclass(frozen=True)
class Rendered:
    problems: list[str]
    text: str
    links: int  # <a> elements Markdown made inside the card (actions are buttons, not links)


class CardRenderer:
    """Serialises renders through one browser page set; start lazily, close on shutdown."""

    def __init__(self, script: Path = ADAPTIVECARDS_JS, executable: str = CHROMIUM) -> None:
        self.script = script
        self.executable = executable
        self._lock = asyncio.Lock()
        self._pw: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._console: list[str] = []

    async def _ensure(self) -> Any:
        """The one page with adaptivecards.js loaded (parsing the 1 MB bundle per card
        cost seconds on this machine)."""
        if self._page is not None and not self._page.is_closed():
            return self._page
        if self._browser is None:
            if not self.script.is_file():
                raise RuntimeError(f"{self.script} is missing: run `npm ci` (make setup)")
            if not Path(self.executable).exists():
                raise RuntimeError(f"{self.executable} is missing: run `make chromium`")
            from playwright.async_api import async_playwright

            self._pw = await async_playwright().start()
            self._browser = await self._pw.chromium.launch(
                executable_path=self.executable, args=CHROMIUM_ARGS)
        page = await self._browser.new_page(viewport=VIEWPORT)
        page.on("console", lambda m: self._console.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self._console.append(f"pageerror: {e}"))
        await page.set_content(_PAGE)
        await page.add_script_tag(path=str(self.script))
        self._page = page
        return page

    async def render(self, card: dict[str, Any], png: Path | None) -> Rendered:
        async with self._lock:
            page = await self._ensure()
            self._console.clear()
            out = await page.evaluate(_SCRIPT, json.loads(json.dumps(card)))
            if png is not None:
                await page.locator("#card").screenshot(path=str(png))
            return Rendered(problems=[*out["problems"], *self._console], text=out["text"],
                            links=int(out["links"]))

    async def close(self) -> None:
        self._page = None
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None
