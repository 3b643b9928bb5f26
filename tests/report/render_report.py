"""Render a Snakemake HTML report in headless Chromium: check every embedded image loads, and save screenshots.

    python tests/report/render_report.py results/report.html OUT_DIR

Writes OUT_DIR/report.png (the report opened on its first picture, as a user would click to it) and
OUT_DIR/render.json; exits non-zero when the report's app did not render or an image failed to load.
No CDP client is needed: a small script appended to a copy of the report drives the report's own UI and writes
what it saw into the DOM, which ``chromium --dump-dom`` prints once the page's JavaScript has run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Timers in the page advance in virtual time, so the clicks below finish before the DOM/screenshot is taken.
    "--virtual-time-budget=15000",
)
WINDOW = "1600,1000"

# Clicks through the report as a user would (Results -> category -> subcategory -> the picture's eye button),
# loads every embedded image into an Image(), then writes the findings as JSON into <pre id="mosare-render">.
PROBE = """
<script>
(() => {
  const target = __TARGET__;
  const seen = {app_rendered: false, images: {}, shown: null, clicked: []};
  const links = () => [...document.querySelectorAll("#app a")];
  const clickLink = (text) => {
    const link = links().find((a) => a.textContent.trim() === text && !seen.clicked.includes(text));
    if (link) { link.click(); seen.clicked.push(text); }
    return !!link;
  };
  const clickEye = () => {
    const rows = [...document.querySelectorAll("#app tr")].filter((row) => row.querySelector("a[iconname=eye]"));
    const row = rows.find((r) => [...r.cells].some((c) => target.row_texts.includes(c.textContent.trim()))) || rows[0];
    if (row) { row.querySelector("a[iconname=eye]").click(); seen.clicked.push("eye"); }
    return !!row;
  };
  const navigate = (step) => {
    seen.app_rendered = seen.app_rendered || document.getElementById("app").children.length > 0;
    if (seen.clicked.includes("eye")) return;
    if (!clickEye()) { for (const text of target.path) { if (clickLink(text)) break; } }
    if (step < 12) setTimeout(() => navigate(step + 1), 400);
  };
  setTimeout(() => navigate(0), 400);

  const images = Object.entries(results).filter(([, r]) => (r.mime_type || "").startsWith("image/"));
  for (const [name, r] of images) {
    const img = new Image();
    img.onload = () => { seen.images[name] = [img.naturalWidth, img.naturalHeight]; };
    img.onerror = () => { seen.images[name] = null; };
    img.src = r.data_uri;
  }
  setTimeout(() => {
    const shown = [...document.querySelectorAll("#app img")].find((i) => i.src === target.data_uri);
    seen.shown = shown ? {name: target.name, width: shown.naturalWidth, height: shown.naturalHeight} : null;
    const out = document.createElement("pre");
    out.id = "mosare-render";
    out.textContent = JSON.stringify(seen);
    document.body.appendChild(out);
  }, 8000);
})();
</script>
"""


@dataclass
class RenderResult:
    app_rendered: bool
    images: dict[str, tuple[int, int] | None]  # every embedded image -> decoded (width, height), None if it failed
    shown: dict | None  # the picture the report displayed after clicking to it
    screenshot: Path

    @property
    def failed_images(self) -> list[str]:
        return sorted(name for name, size in self.images.items() if not size or min(size) == 0)


def _embedded_table(html: str, variable: str) -> dict:
    # Anchored at a line start: the bundled libraries declare their own `var results`.
    found = re.search(rf"^\s*var {variable} = \{{", html, re.M)
    if found is None:
        raise ValueError(f"no embedded `{variable}` table: not a Snakemake report?")
    table, _ = json.JSONDecoder().raw_decode(html, found.end() - 1)
    return table


def embedded_results(html: str) -> dict[str, dict]:
    """The report's results: name -> caption, mime type, data URI, size, job properties, ..."""
    return _embedded_table(html, "results")


def embedded_categories(html: str) -> dict[str, dict[str, list[str]]]:
    """The report's sections: category -> subcategory -> result names."""
    return _embedded_table(html, "categories")


def _target(html: str, results: dict[str, dict]) -> dict:
    """The report's first picture, and the menu entries to click to reach it."""
    for category, subcategories in embedded_categories(html).items():
        for subcategory, names in subcategories.items():
            for name in names:
                result = results[name]
                if (result.get("mime_type") or "").startswith("image/"):
                    path = ["Results", category, *([subcategory] if subcategory != "Other" else [])]
                    row_texts = [name, result.get("name") or name, *((result.get("labels") or {}).values())]
                    return {
                        "name": name,
                        "data_uri": result["data_uri"],
                        "path": path,
                        "row_texts": [str(t) for t in row_texts],
                    }
    raise ValueError("the report holds no picture")


def _probed_copy(html: str, results: dict[str, dict], directory: Path) -> Path:
    probe = PROBE.replace("__TARGET__", json.dumps(_target(html, results)))
    end = html.rindex("</body>")  # the last one: earlier ones live inside the app's JavaScript strings
    page = directory / "report-probed.html"
    page.write_text(html[:end] + probe + html[end:], encoding="utf-8")
    return page


def _chromium(page: Path, profile_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={WINDOW}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}) on {page}:\n{result.stderr[-3000:]}")
    return result.stdout


def render_report(report: Path, out_dir: Path) -> RenderResult:
    """Open ``report`` in headless Chromium, click to its first picture, save a screenshot, check all images."""
    html = report.read_text(encoding="utf-8")
    results = embedded_results(html)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mosare-chromium-") as scratch:
        scratch_dir = Path(scratch)
        page = _probed_copy(html, results, scratch_dir)
        dom = _chromium(page, scratch_dir / "profile-dom", "--dump-dom")
        screenshot = out_dir / "report.png"
        _chromium(page, scratch_dir / "profile-shot", f"--screenshot={screenshot}")
    found = re.search(r'<pre id="mosare-render">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"the report's page never finished its checks; is {report} a Snakemake report?")
    seen = json.loads(
        found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    images = {name: tuple(size) if size else None for name, size in seen["images"].items()}
    for name, result in results.items():
        if (result.get("mime_type") or "").startswith("image/"):
            images.setdefault(name, None)  # never loaded in time counts as failed
    rendered = RenderResult(seen["app_rendered"], images, seen["shown"], screenshot)
    (out_dir / "render.json").write_text(
        json.dumps({**seen, "images": images, "screenshot": str(screenshot)}, indent=2), encoding="utf-8"
    )
    return rendered


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    result = render_report(Path(argv[0]), Path(argv[1]))
    print(
        f"app rendered: {result.app_rendered}; images loaded: {len(result.images) - len(result.failed_images)}"
        f"/{len(result.images)}; shown: {result.shown}; screenshot: {result.screenshot}"
    )
    if result.failed_images:
        print(f"images that failed to load: {result.failed_images}", file=sys.stderr)
    return 0 if result.app_rendered and result.shown and not result.failed_images else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
