"""The console side of an export: per-file lines, a progress bar, the summary.

Events come from :func:`pixelpipe.batch.runner.run_export`, in this process
or through the ``pixelpipe serve`` socket. Lines for written files go to
stdout (unless ``-q``); errors, stale outputs and notices to stderr; the
progress bar (tqdm: count, rate, time left) to stderr, only when stderr is a
terminal and not ``-q``. Each distinct notice is shown once per batch.
Standard library and tqdm only (the thin client imports this).
"""
from __future__ import annotations

import sys
from typing import Any


class ConsoleReporter:
    def __init__(self, *, quiet: bool = False, progress: bool | None = None, debug: bool = False):
        self.quiet, self.debug = quiet, debug
        self.progress = (not quiet and sys.stderr.isatty()) if progress is None else progress
        self.bar = None
        self.single = False
        self.seen_notices: set[str] = set()
        self.repeated = 0
        self.exit_code = 0

    # ------------------------------------------------------------------ output
    def _out(self, line: str, err: bool = False) -> None:
        f = sys.stderr if err else sys.stdout
        if self.bar is not None:
            self.bar.write(line, file=f)
        else:
            print(line, file=f, flush=True)

    def _notice(self, msg: str, key: str | None = None) -> None:
        k = key or msg
        if k in self.seen_notices:
            self.repeated += 1
            return
        self.seen_notices.add(k)
        self._out(f"pixelpipe: notice: {msg}", err=True)

    # ------------------------------------------------------------------ events
    def handle(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "start":
            self.single = bool(ev.get("single"))
            if self.progress and not self.single and ev.get("inputs", 0) > 1:
                from tqdm import tqdm

                self.bar = tqdm(total=ev["inputs"], unit="file", file=sys.stderr, dynamic_ncols=True,
                                smoothing=0.1, desc="export", leave=False)
        elif kind == "notice":
            self._notice(ev["message"])
        elif kind == "result":
            self._result(ev)
            if self.bar is not None:
                self.bar.update(1)
        elif kind == "done":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._summary(ev)
            self.exit_code = ev.get("exit_code", 0)

    def _result(self, r: dict) -> None:
        for n in r.get("notices", []):
            self._notice(f"{r['input']}: {n}", key=n)
        if r.get("error"):
            self._out(f"pixelpipe: error: {r['error']}", err=True)
            if self.debug and r.get("traceback"):
                self._out(r["traceback"].rstrip(), err=True)
            return
        for o in r["outputs"]:
            st = o["status"]
            if st == "written":
                if not self.quiet:
                    self._out(f"{r['input']} -> {o['display']} ({o['seconds']:.2f} s)")
            elif st == "skipped":
                if not self.quiet:
                    self._out(f"{r['input']} -> {o['display']} (up to date, skipped)")
            elif st == "stale":
                self._out(f"pixelpipe: warning: {o['display']}: exists and is not an up-to-date export of "
                          f"{r['input']} with these settings; left alone (--overwrite replaces it)", err=True)
            elif st == "failed":
                self._out(f"pixelpipe: error: {o['reason']}", err=True)
                if self.debug and o.get("traceback"):
                    self._out(o["traceback"].rstrip(), err=True)

    def _summary(self, s: dict) -> None:
        if self.repeated:
            self._out(f"pixelpipe: notice: {self.repeated} repeated notices not shown", err=True)
        if s.get("single"):
            return
        parts = [f"{s['written']} written", f"{s['failed']} failed"]
        if s.get("skipped"):
            parts.append(f"{s['skipped']} skipped (up to date)")
        if s.get("stale"):
            parts.append(f"{s['stale']} stale (left alone; --overwrite replaces them)")
        secs = s.get("seconds", 0.0)
        n = s.get("done_inputs", 0)
        rate = f", {n / secs:.2f} files/s" if secs > 0 and n else ""
        line = ", ".join(parts) + f" ({n} of {s['inputs']} input files in {secs:.1f} s{rate})"
        if s.get("interrupted"):
            line += "; interrupted"
        self._out(line)
