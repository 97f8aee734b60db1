"""Chat while a 200-page PDF is ingested: time to first token beside idle, and the page's responsiveness.

    python -m bench.ingest                  # 200 pages, 6 questions idle, then as many as fit the ingest
    python -m bench.ingest --pause 0        # questions back to back: the worst case for the ingest

Glassbox (`python app.py`, the local model and MiniLM) runs in its own process, as in production.
A generated 200-page PDF (about 2,400 sentences) is uploaded through POST /api/kb/manual/documents
while questions about the sample shop go through /api/chat/stream one after another (a viewer
reads each answer for `--pause` seconds first), and /api/health is timed every half second.
The upload's embedding gives way while an answer is written (rag/priority.py), so the ingest
takes longer the more the chat is used: its time is printed beside the time it takes alone. Figures, not assertions: nothing here fails a build.
Target (issue 7): TTFT during the ingest at most 2x idle, and the page stays responsive.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.load import process
from bench.pdf import assemble_pdf
from bench.run import free_port, percentile

QUESTIONS = ["How long can I return a faulty item?", "How much does standard shipping cost?",
             "Can I return opened headphones?", "Do you ship to Mexico?", "How long is the warranty?",
             "Which payment methods do you accept?"]
TARGET_RATIO = 2.0


def make_pdf(pages: int, sentences_per_page: int = 12) -> bytes:
    """A text PDF of `pages` pages (Helvetica, one sentence a line), built by hand: no PDF library writes text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in range(pages):
        lines = [f"Section {page + 1}.{line + 1}: the part number {1000 + page * 31 + line} fits model "
                 f"{chr(65 + line % 26)}-{page % 97} and must be tightened to {5 + (page + line) % 40} Nm."
                 for line in range(sentences_per_page)]
        text = "".join(f"({line}) Tj T* " for line in lines)
        stream = f"BT /F1 10 Tf 14 TL 50 780 Td ({'Chapter ' + str(page + 1)}) Tj T* T* {text}ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % content)
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), pages)
    return assemble_pdf(objects)


async def first_token_s(client: httpx.AsyncClient, url: str, question: str) -> float:
    """Seconds from sending a question to its first token, as a client sees it."""
    started = time.perf_counter()
    async with client.stream("POST", f"{url}/api/chat/stream", json={"message": question, "events": ["token"]},
                             timeout=300) as response:
        response.raise_for_status()
        first = None
        async for line in response.aiter_lines():  # read to the end, as a reader would
            if first is None and line.startswith("data: ") and '"token"' in line:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no token")
    return first


async def ask_all(url: str, rounds: int, keep_going: threading.Event | None = None, pause_s: float = 0.0) -> list[float]:
    """Ask the questions one after another; with `keep_going`, for as long as it is set."""
    timings: list[float] = []
    async with httpx.AsyncClient() as client:
        index = 0
        while (len(timings) < rounds) if keep_going is None else keep_going.is_set():
            timings.append(await first_token_s(client, url, QUESTIONS[index % len(QUESTIONS)]))
            index += 1
            await asyncio.sleep(pause_s)
    return timings


def upload_s(url: str, name: str, pdf: bytes) -> tuple[float, dict]:
    """Upload the PDF into a new knowledge base; return the seconds it took and the answer."""
    httpx.post(f"{url}/api/kb", json={"name": name}, timeout=30).raise_for_status()
    started = time.perf_counter()
    answer = httpx.post(f"{url}/api/kb/{name}/documents", files=[("files", ("manual.pdf", pdf))], timeout=3600)
    return time.perf_counter() - started, answer.json()


def health_while(url: str, running: threading.Event, timings: list[float]) -> None:
    """Time GET /api/health every half second while `running` is set."""
    with httpx.Client() as client:
        while running.is_set():
            started = time.perf_counter()
            client.get(f"{url}/api/health", timeout=60)
            timings.append(time.perf_counter() - started)
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6, help="questions asked idle")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds a viewer reads each answer")
    args = parser.parse_args(argv)

    pdf = make_pdf(args.pages)
    work = Path(tempfile.mkdtemp(prefix="glassbox-ingest-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"APP_STATE_DIR": str(work / "state"), "GRADIO_SERVER_PORT": str(port), "LLM_PROVIDER": "local"}
    with process(["python", "app.py"], env, f"{url}/api/prewarm", work / "app.log", timeout_s=300):
        asyncio.run(ask_all(url, 2))  # the first answers warm the model's caches
        idle = asyncio.run(ask_all(url, args.rounds))
        alone_s, _ = upload_s(url, "alone", pdf)

        uploading, health, outcome = threading.Event(), [], {}
        uploading.set()

        def upload() -> None:
            seconds, answer = upload_s(url, "manual", pdf)
            outcome.update(answer, seconds=seconds)
            uploading.clear()

        uploader = threading.Thread(target=upload)
        poller = threading.Thread(target=health_while, args=(url, uploading, health))
        uploader.start()
        poller.start()
        time.sleep(0.5)  # the upload is under way
        during = asyncio.run(ask_all(url, 0, uploading, args.pause))
        uploader.join()
        poller.join()

    result = outcome.get("results", [{}])[0]
    print(f"PDF: {args.pages} pages, {len(pdf) / 1e6:.1f} MB: {result.get('message', outcome)}; ingest alone "
          f"{alone_s:.1f} s, beside the chat (a question every answer + {args.pause:g} s) {outcome.get('seconds', 0):.1f} s")
    print(f"{'':24}{'n':>4}{'p50 s':>9}{'p95 s':>9}")
    for label, values in (("TTFT idle", idle), ("TTFT during the ingest", during), ("/api/health during", health)):
        if values:
            print(f"{label:24}{len(values):>4}{statistics.median(values):>9.3f}{percentile(values, 95):>9.3f}")
    if idle and during:
        ratio = statistics.median(during) / statistics.median(idle)
        print(f"TTFT during / idle (p50): {ratio:.2f}x  target <= {TARGET_RATIO:g}x  "
              f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
