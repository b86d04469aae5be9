"""A headless Chromium driven over the DevTools protocol, for checking the rendered book as readers see it.

Dependency-free: Chromium's ``--remote-debugging-pipe`` speaks JSON messages
ending in NUL over file descriptors 3 (to the browser) and 4 (from it), so
nothing beyond Debian's ``chromium`` package is needed (no driver, no Selenium).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The path of a Chromium binary (``$CWI_CHROMIUM`` first), or None."""
    for name in (os.environ.get("CWI_CHROMIUM"), *CANDIDATES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _above_nine(fd: int) -> int:
    """A copy of `fd` numbered 10 or more (the original is closed)."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


class Browser:
    """One headless Chromium with one page; :meth:`open` a URL, then :meth:`evaluate` JavaScript in it.

    Every host name but this machine resolves to nothing (the book must work offline), and the
    page's uncaught JavaScript exceptions collect in :attr:`errors`.
    """

    def __init__(self, binary: str, width: int = 1280, height: int = 900, timeout: float = 60.0):
        self.timeout, self.errors = timeout, []
        self._process = None
        self._profile = tempfile.mkdtemp(prefix="cwi-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # The child's ends move above 9, so that putting them on fds 3 and 4 cannot overwrite one with the other.
        to_browser_read, from_browser_write = (_above_nine(fd) for fd in (to_browser_read, from_browser_write))
        try:
            # The protocol's pipes must be the child's fds 3 and 4: bash puts them there, then execs Chromium
            # (sh takes no fd number above 9).
            with open(os.path.join(self._profile, "stderr.log"), "wb") as log:
                self._process = subprocess.Popen(
                    ["/bin/bash", "-c", f'exec "$@" 3<&{to_browser_read} 4>&{from_browser_write}', "bash", binary,
                     "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                     f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                    pass_fds=(to_browser_read, from_browser_write), start_new_session=True)
        except Exception:
            self.close()
            raise
        finally:
            os.close(to_browser_read)
            os.close(from_browser_write)
        try:
            self._buffer, self._next_id, self._session = b"", 0, None
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self._call("Runtime.enable", session=True)
            self._call("Page.enable", session=True)
            self._call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
        except Exception:
            self.close()
            raise

    def _stderr(self) -> str:
        try:
            with open(os.path.join(self._profile, "stderr.log"), errors="replace") as log:
                return log.read()[-2000:]
        except OSError:
            return ""

    def _call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and wait (at most :attr:`timeout` seconds) for its reply; keep the events seen."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                    raise TimeoutError(f"Chromium did not answer {method} in {self.timeout:.0f} s")
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe during {method}: {self._stderr()}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("method") == "Runtime.exceptionThrown":
                details = reply["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text"))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript `expression` in the page (promises awaited)."""
        result = self._call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                            returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Load `url` and wait until it is the page shown and has loaded (images included)."""
        navigation = self._call("Page.navigate", session=True, url=url)
        if navigation.get("errorText"):
            raise RuntimeError(f"Chromium could not open {url}: {navigation['errorText']}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"document.readyState === 'complete' && location.href === {json.dumps(url)}"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{url} did not finish loading in {timeout:.0f} s")

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to the viewport point (`x`, `y`), as a reader's pointer would."""
        self._call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=x, y=y)

    def screenshot(self, path, selector: str | None = None, margin: int = 10) -> None:
        """Save a PNG of the viewport, or of the first element matching the CSS `selector`."""
        import base64

        params = {"format": "png"}
        if selector:
            box = self.evaluate(f"""(() => {{
                const element = document.querySelector({json.dumps(selector)});
                element.scrollIntoView({{block: "start"}});
                const r = element.getBoundingClientRect();
                return {{x: r.x + scrollX - {margin}, y: r.y + scrollY - {margin},
                         width: r.width + {2 * margin}, height: r.height + {2 * margin}}};
            }})()""")
            params["clip"] = {**box, "scale": 1}
        with open(path, "wb") as file:
            file.write(base64.b64decode(self._call("Page.captureScreenshot", session=True, **params)["data"]))

    def close(self) -> None:
        """End Chromium (its whole process group) and remove its profile."""
        if self._process is not None and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def readme_screenshots(html: Path, out: Path, width: int = 1280) -> list[Path]:
    """The README's pictures of a built book: a chapter as it opens, the explorer, the hover scatter, the pair explorer."""
    out.mkdir(parents=True, exist_ok=True)
    # book.png: the window, scrolled to the Correlations chapter's claims and their tests (the page's chrome included).
    shots = [("05_correlations.html", "#the-claims-and-their-tests", "book.png"),
             ("04_attribution.html", ".cwi-explorer", "explorer.png"),
             ("05_correlations.html", ".cwi-scatter", "scatter.png"),
             ("07_similarity.html", ".cwi-similarity", "pairs.png")]
    binary = find_chromium()
    if binary is None:
        raise SystemExit("Chromium not found: apt install chromium, or set CWI_CHROMIUM")
    with Browser(binary, width=width, height=900) as browser:
        for page, selector, name in shots:
            browser.open((html / "book" / page).as_uri())
            if selector == ".cwi-scatter":  # show a word's tooltip, as a reader hovering would
                browser.hover(*browser.evaluate("""(() => {
                    document.querySelector(".cwi-scatter").scrollIntoView({block: "start"});  // as screenshot() will
                    const dots = document.querySelectorAll(".cwi-scatter circle");
                    const dot = dots[Math.floor(dots.length / 3)];
                    const r = dot.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()"""))
            if name == "book.png":
                browser.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'start'}})")
                browser.screenshot(out / name)
            else:
                browser.screenshot(out / name, selector)
    return [out / name for _, _, name in shots]


if __name__ == "__main__":
    import sys

    # python tests/browser.py _build/html book/images: the README's screenshots of the built book.
    for path in readme_screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
