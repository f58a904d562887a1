"""Load test of the web app: N simulated users asking, finding and summarising at once.

    .venv/bin/python benchmarks/load.py [--users 8] [--seconds 300] [--data-dir DIR | --url URL]

Starts `python app.py` on a free loopback port over `--data-dir` (default: RAG_DATA_DIR, else
the app's default) and waits until it answers, or uses the app already running at `--url`
(loopback only). Every user is its own `gradio_client.Client` (its own Gradio session) and
loops over its own questions from evals/datasets/questions.jsonl (no two users share one):
find, then ask, then summarize, until `--seconds` have passed. Every response is checked:

* no error: the call returns, and no `rag-error` block is rendered;
* no cross-talk: find's header echoes this user's query; ask's chat comes back as exactly
  the chat this user sent plus its own question and one answer; the papers an answer or a
  summary cites are all among the top 10 this user's find returned for the text they were
  retrieved with (the three share one retriever, so another user's answer would cite other
  papers). A short question (≤ 12 words) after an earlier one is a follow-up: the app
  retrieves with the session's previous question prepended (rag/answer.py), so the ask check
  uses that text, checked by one extra, untimed find: this also catches a conversation
  history (gr.State) leaking between sessions.

Latency per mode (p50/p95, seconds, the whole call as a user waits for it), and the app
process's memory (RSS) after a warm-up (each user's questions once) and at the end (a growth over 10% is reported as
a possible leak), with the load average of the machine. Prints a table and writes
benchmarks/results/load.json. Bounded: users stop starting requests at the deadline, and
every request gives up after `--request-timeout` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "evals" / "datasets" / "questions.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "load.json"
MODES = ("find", "ask", "summarize")
LEAK_GROWTH = 0.10  # RSS growth over the run above this is reported as a leak
SHORT_FOLLOW_UP_WORDS = 12  # rag/answer.py: shorter questions are retrieved with the previous one

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradio_client import Client  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(stderr=True)

# --- what the app renders (rag/webapp.py) ---------------------------------------------------
_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~$:=/^@%"})
HIT_TITLE = re.compile(r'<a class="rag-hit-title"[^>]*>(.*?)</a>', re.S)
SOURCE_TITLE = re.compile(r'<a class="rag-src-title"[^>]*>(.*?)</a>', re.S)
ERROR = 'class="rag-error"'


def text_html(text: str) -> str:
    """rag.webapp.text_html, copied so that the script needs no project import."""
    return text.translate(_ENTITIES).replace("\r\n", "\n").replace("\n", "<br>")


def find_header(query: str) -> str:
    return f"papers for “{text_html(' '.join(query.split()))}”"


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


# --- the app process ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_app(
    data_dir: str | None, concurrency: int | None, log_path: Path, timeout: float
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    if data_dir:
        env["RAG_DATA_DIR"] = data_dir
    cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not answers(url):
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            stop_app(proc)
            raise SystemExit(f"the app did not answer within {timeout:.0f} s; see {log_path}")
        time.sleep(0.5)
    return proc, url


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def listening_pid(port: int) -> int | None:
    """The pid of the (same-user) process listening on a loopback TCP port, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc_dir.name)
        except OSError:
            continue
    return None


def rss_mb(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- users -------------------------------------------------------------------------------
@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    failures: list[dict[str, Any]] = field(default_factory=list)
    crosstalk: int = 0
    checked: Counter = field(default_factory=Counter)  # responses whose cross-talk check ran
    find_drift: int = 0  # the same query found different papers than its first time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, user: int, mode: str, kind: str, detail: str, question: str) -> None:
        with self.lock:
            self.failures.append(
                {"user": user, "mode": mode, "kind": kind, "detail": detail[:300], "question": question}
            )
            if kind == "crosstalk":
                self.crosstalk += 1


class User:
    def __init__(self, n: int, url: str, questions: list[str], stats: Stats, timeout: float) -> None:
        self.n = n
        self.questions = questions
        self.stats = stats
        self.timeout = timeout
        self.client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        self.chat: list[dict[str, Any]] = []
        self.first_find: dict[str, list[str]] = {}
        self.previous: str | None = None  # the last question the app's history for this session holds
        self.requests = 0
        self.verify_requests = 0

    def call(self, mode: str, *args: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        job = self.client.submit(*args, api_name=f"/{mode}")
        result = job.result(timeout=self.timeout)
        return result, time.perf_counter() - t0

    def round(self, question: str, timed: bool) -> None:
        """find, ask and summarize one question; each response checked."""
        found: list[str] | None = None
        for mode in MODES:
            self.requests += timed  # timed requests (the warm-up's are not counted)
            try:
                if mode == "find":
                    html_out, took = self.call("find", question, 10, "", "")
                    found = self.check_find(question, html_out)
                elif mode == "ask":
                    sent = list(self.chat)
                    (_, chat), took = self.call("ask", question, sent, "", "")
                    self.check_ask(question, sent, chat, found)
                    self.chat = chat if len(chat) < 12 else []  # the chat pane is cleared now and then
                else:
                    html_out, took = self.call("summarize", question, "", "")
                    self.check_cited(mode, question, html_out, found)
            except CheckFailed as err:
                self.stats.fail(self.n, mode, err.kind, str(err), question)
                continue
            except Exception as err:  # the call itself failed: timeout, queue full, server error
                self.stats.fail(self.n, mode, "exception", f"{type(err).__name__}: {err}", question)
                continue
            if timed:
                with self.stats.lock:
                    self.stats.latencies[mode].append(took)

    def check_find(self, question: str, out: Any, count: bool = True) -> list[str]:
        if not isinstance(out, str) or ERROR in out:
            raise CheckFailed("error", f"find rendered an error: {strip(out)}")
        if find_header(question) not in out:
            head = re.search(r'<div class="rag-find-head">(.*?)</div>', out, re.S)
            raise CheckFailed(
                "crosstalk", f"find answered another query: {strip(head.group(1) if head else out)}"
            )
        titles = HIT_TITLE.findall(out)
        if not titles:
            raise CheckFailed("error", "find returned no papers")
        if count:
            first = self.first_find.setdefault(question, titles)
            with self.stats.lock:
                self.stats.find_drift += first != titles
                self.stats.checked["find"] += 1
        return titles

    def check_ask(
        self, question: str, sent: list[dict[str, Any]], chat: Any, found: list[str] | None
    ) -> None:
        if not isinstance(chat, list) or len(chat) != len(sent) + 2:
            raise CheckFailed(
                "crosstalk",
                f"sent {len(sent)} messages, got {len(chat) if isinstance(chat, list) else type(chat).__name__}",
            )
        roles = [m.get("role") for m in chat]
        if roles[-2:] != ["user", "assistant"]:
            raise CheckFailed("error", f"chat ends with {roles[-2:]}")
        if [message_text(m) for m in chat[:-2]] != [message_text(m) for m in sent]:
            raise CheckFailed("crosstalk", "the earlier messages of this user's chat came back changed")
        if message_text(chat[-2]) != text_html(question):
            raise CheckFailed(
                "crosstalk", f"the chat shows another question: {strip(message_text(chat[-2]))}"
            )
        answer = message_text(chat[-1])
        if ERROR in answer:
            raise CheckFailed("error", f"ask rendered an error: {strip(answer)}")
        previous, self.previous = self.previous, question  # the app's history now ends with it
        if previous is not None and len(question.split()) <= SHORT_FOLLOW_UP_WORDS:
            query = f"{previous} {question}"  # what the app retrieved with for this follow-up
            self.verify_requests += 1
            try:
                out, _ = self.call("find", query, 10, "", "")
            except Exception as err:
                raise CheckFailed("exception", f"verifying find: {type(err).__name__}: {err}") from err
            found = self.check_find(query, out, count=False)
        self.check_cited("ask", question, answer, found)

    def check_cited(self, mode: str, question: str, out: Any, found: list[str] | None) -> None:
        """No error, and every paper cited is one this user's find returned for the same text."""
        if not isinstance(out, str) or ERROR in out:
            raise CheckFailed("error", f"{mode} rendered an error: {strip(out)}")
        if 'class="rag-answer' not in out:
            raise CheckFailed("error", f"{mode} returned no answer: {strip(out)}")
        if found is None:
            return  # find failed this round: nothing to compare with (already counted)
        cited = SOURCE_TITLE.findall(out)
        foreign = [t for t in cited if t not in found]
        if foreign:
            raise CheckFailed(
                "crosstalk", f"{mode} cites papers not found for this question: {strip(foreign[0])}"
            )
        with self.stats.lock:
            self.stats.checked[mode] += 1

    def run(self, deadline: float) -> None:
        i = 0
        while time.monotonic() < deadline:
            self.round(self.questions[i % len(self.questions)], timed=True)
            i += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class CheckFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def strip(value: Any) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", str(value)))[:160].strip()


# --- figures -----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile of a non-empty list (numpy's default method)."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def split_questions(users: int, seed: int) -> list[list[str]]:
    questions = [json.loads(line)["question"] for line in DATASET.read_text().splitlines() if line.strip()]
    questions = list(dict.fromkeys(" ".join(q.split()) for q in questions))
    if len(questions) < users:
        raise SystemExit(f"{len(questions)} questions cannot give {users} users their own")
    random.Random(seed).shuffle(questions)
    return [questions[i::users] for i in range(users)]


class Sampler(threading.Thread):
    """RSS of the app and the 1-minute load average every `every` seconds."""

    def __init__(self, pid: int | None, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[dict[str, float | None]] = []
        self.t0 = time.monotonic()
        self.done = threading.Event()

    def sample(self) -> None:
        self.samples.append(
            {
                "t": round(time.monotonic() - self.t0, 1),
                "rss_mb": round(v, 1) if (v := rss_mb(self.pid) if self.pid else None) else None,
                "load1": round(os.getloadavg()[0], 2),
            }
        )

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the timed run (default 300)")
    parser.add_argument("--url", help="an app already running on loopback (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for memory (default: found from the port)")
    parser.add_argument("--data-dir", help="RAG_DATA_DIR of the app started here (default: inherited)")
    parser.add_argument(
        "--concurrency", type=int, help="--concurrency of the app started here (app default 2)"
    )
    parser.add_argument("--request-timeout", type=float, default=180.0)
    parser.add_argument("--start-timeout", type=float, default=900.0, help="first start may build the index")
    parser.add_argument(
        "--warmup-rounds", type=int, default=0, help="warm-up rounds per user (default 0: all its questions)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    proc = None
    if args.url:
        url = args.url.rstrip("/")
        host = urlparse(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise SystemExit(f"--url must be a loopback address, not {host}")
        if not answers(url):
            raise SystemExit(f"nothing answers at {url}")
        pid = args.pid or listening_pid(urlparse(url).port or 80)
    else:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rag-load-app-{os.getpid()}.log"
        console.print(f"starting the app (log: {log_path}) …")
        t = time.monotonic()
        proc, url = start_app(args.data_dir, args.concurrency, log_path, args.start_timeout)
        pid = proc.pid
        console.print(f"app up at {url} in {time.monotonic() - t:.1f} s (pid {pid})")

    stats = Stats()
    users: list[User] = []
    sampler = Sampler(pid)
    try:
        split = split_questions(args.users, args.seed)
        users = [User(i, url, split[i], stats, args.request_timeout) for i in range(args.users)]

        # Warm-up: every user runs each of its questions once, all users at once (checked, not
        # timed); then memory is read. The app's first look at a question fills caches for good
        # (the papers' sentences and their embeddings, Chroma's pages): RSS grows by about 60%
        # over the first ~70 distinct questions and then stays flat, so memory measured after
        # a single round would call that warm-up a leak. The timed run asks them all again.
        rounds = args.warmup_rounds or max(len(u.questions) for u in users)
        console.print(f"warm-up: {args.users} users, {rounds} round(s) each …")
        t = time.monotonic()

        def warm_up(u: User) -> None:
            for q in u.questions[:rounds]:
                u.round(q, False)

        warm = [threading.Thread(target=warm_up, args=(u,)) for u in users]
        for th in warm:
            th.start()
        for th in warm:
            th.join()
        warmup_s = time.monotonic() - t
        rss_start = rss_mb(pid) if pid else None
        load_start = os.getloadavg()
        console.print(
            f"warm-up done in {warmup_s:.0f} s; app RSS {rss_start or float('nan'):.0f} MB; "
            f"load average {load_start[0]:.2f}; running for {args.seconds:.0f} s …"
        )

        sampler.t0 = time.monotonic()
        sampler.sample()
        sampler.start()
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=u.run, args=(deadline,), daemon=True) for u in users]
        t_run = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(args.seconds + 3 * args.request_timeout + 60)
        hung = sum(th.is_alive() for th in threads)
        wall = time.monotonic() - t_run
        sampler.done.set()
        sampler.sample()
        rss_end = rss_mb(pid) if pid else None
        time.sleep(10)  # idle: what the app keeps once the requests are gone
        rss_idle = rss_mb(pid) if pid else None
        load_end = os.getloadavg()
    finally:
        for u in users:
            u.close()
        if proc is not None:
            stop_app(proc)

    requests = sum(u.requests for u in users)
    failed = list(stats.failures)
    growth = (rss_end - rss_start) / rss_start if rss_start and rss_end else None
    loads = [s["load1"] for s in sampler.samples if s["load1"] is not None]
    rss_series = [s["rss_mb"] for s in sampler.samples if s["rss_mb"] is not None]
    result: dict[str, Any] = {
        "users": args.users,
        "seconds": args.seconds,
        "wall_seconds": round(wall, 1),
        "warmup_seconds": round(warmup_s, 1),
        "warmup_rounds": rounds,
        "app_concurrency": args.concurrency or 2,
        "app_malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")} if proc else None,
        "cpus": os.cpu_count(),
        "requests": requests,
        "verify_requests": sum(u.verify_requests for u in users),
        "responses": {m: len(stats.latencies[m]) for m in MODES},
        "failures": len(failed),
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "failure_examples": failed[:10],
        "crosstalk": stats.crosstalk,
        "crosstalk_checked": dict(stats.checked),
        "find_drift": stats.find_drift,
        "hung_users": hung,
        "latency_s": {
            m: {
                "n": len(v),
                "p50": round(percentile(v, 50), 3) if v else None,
                "p95": round(percentile(v, 95), 3) if v else None,
                "max": round(max(v), 3) if v else None,
                "mean": round(sum(v) / len(v), 3) if v else None,
            }
            for m, v in stats.latencies.items()
        },
        "throughput_per_min": round(sum(len(v) for v in stats.latencies.values()) / wall * 60, 1),
        "rss_mb": {
            "start": round(rss_start, 1) if rss_start else None,
            "end": round(rss_end, 1) if rss_end else None,
            "idle_10s_after": round(rss_idle, 1) if rss_idle else None,
            "peak": max(rss_series) if rss_series else None,
            "growth_pct": round(growth * 100, 1) if growth is not None else None,
            "leak_suspected": bool(growth is not None and growth > LEAK_GROWTH),
        },
        "load_average": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in load_end],
            "mean_1min_during": round(sum(loads) / len(loads), 2) if loads else None,
            "max_1min_during": max(loads) if loads else None,
        },
        "samples": sampler.samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table(
        title=f"{args.users} users for {wall:.0f} s against {url} "
        f"(app concurrency {result['app_concurrency']}, {os.cpu_count()} CPUs)"
    )
    for col in ("mode", "responses", "p50 s", "p95 s", "max s"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for m in MODES:
        lat = result["latency_s"][m]
        fmt = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
        table.add_row(m, str(lat["n"]), fmt(lat["p50"]), fmt(lat["p95"]), fmt(lat["max"]))
    out = Console()
    out.print(table)
    rss = result["rss_mb"]
    out.print(
        f"requests {requests} · failures {len(failed)} {result['failures_by_kind'] or ''} · cross-talk "
        f"{stats.crosstalk} (checked {sum(stats.checked.values())} responses) · find drift {stats.find_drift}"
    )
    out.print(
        f"app RSS {rss['start']} MB after warm-up → {rss['end']} MB at the end ({rss['growth_pct']}%), "
        f"{rss['idle_10s_after']} MB idle, peak {rss['peak']} MB"
        + ("  [bold red]LEAK SUSPECTED[/]" if rss["leak_suspected"] else "")
    )
    la = result["load_average"]
    out.print(
        f"load average (1 min) mean {la['mean_1min_during']}, max {la['max_1min_during']} · wrote {args.out}"
    )
    for f in failed[:5]:
        out.print(f"  user {f['user']} {f['mode']} {f['kind']}: {f['detail']}")
    return 1 if failed or hung or rss["leak_suspected"] else 0


if __name__ == "__main__":
    sys.exit(main())
