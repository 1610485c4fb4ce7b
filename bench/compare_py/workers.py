"""Engine processes driven over a JSON-lines protocol (see peer_worker.py and Measure.swift).

Each engine lives in its own process with its own thread pools, loads its model once and then
waits on stdin, so engines never run at the same time and can be alternated cheaply.
"""

import json
import queue
import subprocess
import threading
import time
from pathlib import Path


class WorkerError(RuntimeError):
    pass


class Worker:
    def __init__(self, name, argv, log_dir, start_timeout=900):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self._next(start_timeout)
        if self.ready.get("event") != "ready":
            raise WorkerError(f"{name}: expected a ready line, got {self.ready}")

    def _pump(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.lines.put(line)
            elif line:   # a library writing to stdout: keep it in the log, out of the protocol
                self.log.write(f"[stdout] {line}\n")
        self.lines.put(None)

    def _next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(f"{self.name}: no answer within {timeout:.0f} s; log: {self.log_path}") from None
        if line is None:
            self.proc.wait(timeout=10)
            raise WorkerError(f"{self.name} exited with code {self.proc.returncode}; last log lines:\n{self.tail()}")
        return json.loads(line)

    def tail(self, n=15):
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def call(self, command, timeout=1800):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self._next(timeout)
        if answer.get("event") == "error":
            raise WorkerError(f"{self.name}: '{command}' failed: {answer.get('message')}")
        return answer

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.terminate()
                self.proc.wait(timeout=10)
        self.log.close()


def alternate(workers, command, rounds, pause=0.3, on_result=None):
    """Runs `command` on each worker in turn, `rounds` times (A B C A B C ...): slow drifts of the
    machine's load hit every engine alike. The pause lets spinning thread pools (OpenMP,
    onnxruntime) go to sleep before the next engine starts."""
    results = {w.name: [] for w in workers}
    for r in range(rounds):
        for w in workers:
            time.sleep(pause)
            answer = w.call(command)
            answer["round"] = r
            results[w.name].append(answer)
            if on_result:
                on_result(w, answer)
    return results
