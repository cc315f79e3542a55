"""Running the `kiln` program: options from keyword arguments, output lines to callbacks,
Kiln's one-line error message raised as KilnError, Ctrl-C passed on."""
from __future__ import annotations

import signal
import subprocess
import threading
from typing import Any, Callable, List, Mapping, Optional

from ._native import KilnError, program_path

# Flags whose off form is spelled --no-NAME.
_NEGATABLE = {"flip"}


def cli_options(options: Mapping[str, Any]) -> List[str]:
    """Keyword arguments as command-line options: `crop_padding=2` → `--crop-padding 2`,
    `flip=True` → `--flip` (False → `--no-flip`), `randaugment=(2, 9)` → `--randaugment 2,9`;
    None (and False for a flag without an off form) leaves the option out."""
    args: List[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            args.append(flag)
        elif value is False:
            if key in _NEGATABLE:
                args.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


class Process:
    """The kiln program running `args`, its stdout and stderr read line by line on threads."""

    def __init__(self, args: List[str], on_stdout: Optional[Callable[[str], None]] = None,
                 on_stderr: Optional[Callable[[str], None]] = None) -> None:
        self.stderr_lines: List[str] = []
        try:
            self.popen = subprocess.Popen([program_path()] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        except OSError as e:
            raise KilnError(f"cannot start kiln: {e}") from None
        self.readers = [threading.Thread(target=self._read, args=(self.popen.stdout, on_stdout, False), daemon=True),
                        threading.Thread(target=self._read, args=(self.popen.stderr, on_stderr, True), daemon=True)]
        for r in self.readers:
            r.start()

    def _read(self, stream: Any, each: Optional[Callable[[str], None]], keep: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            if keep:
                self.stderr_lines.append(line)
            if each:
                each(line)

    def interrupt(self) -> None:
        """Stops the run as Ctrl-C in a terminal would (the program's files stay intact)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits for the end (passing a KeyboardInterrupt on to the program) and returns its
        exit code, once its output has been read."""
        try:
            code = self.popen.wait(timeout)
        except KeyboardInterrupt:
            self.interrupt()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
            raise
        for r in self.readers:
            r.join()
        return code

    def error(self, code: int) -> KilnError:
        """Kiln's own message for a failed run (its `kiln: error:` line), else the last line."""
        lines = self.stderr_lines
        errors = [l for l in lines if l.startswith("kiln: error: ")]
        if errors:
            return KilnError(errors[-1][len("kiln: error: "):])
        # An option the command line parser refused: "Error: …", then any allowed values.
        for k, line in enumerate(lines):
            if line.startswith("Error: "):
                values = []
                for more in lines[k + 1:]:
                    if not more.startswith("  - "):
                        break
                    values.append(more[4:])
                return KilnError(line[len("Error: "):] + (" " + ", ".join(values) if values else ""))
        last = next((l for l in reversed(self.stderr_lines) if l.strip()), None)
        if code < 0:
            return KilnError(f"kiln was stopped by signal {-code}" + (f": {last}" if last else ""))
        return KilnError(last or f"kiln exited with code {code}")
