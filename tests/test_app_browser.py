"""The web app, driven in headless Chromium against real app processes.

Screenshots go to test-artifacts/ (git-ignored). Besides the browser tests, a few
fast checks of the app's escaping and upload-name rules run without a browser.
"""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator

from tests.fixtures_app import ARTIFACTS

ANSWER_TIMEOUT = 90_000  # ms; an extractive answer takes ~2 s, but CI machines are slow
# Per-test timeouts include building the shared corpus index (1-4 min) when these tests run alone.


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#rag-question textarea").wait_for(state="visible", timeout=60_000)
    page.locator("#rag-status .rag-stat").first.wait_for(timeout=30_000)


def ask(page, question: str) -> Locator:
    """Type a question, send it, and return the locator of the finished answer."""
    answers = page.locator("#rag-chat .rag-answer:not(.rag-streaming), #rag-chat .rag-error")
    before = answers.count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        """n => document.querySelectorAll(
             '#rag-chat .rag-answer:not(.rag-streaming), #rag-chat .rag-error').length > n""",
        arg=before,
        timeout=ANSWER_TIMEOUT,
    )
    return answers.nth(before)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def find(page, query: str) -> None:
    """Search in the Find papers tab and wait for the first hit."""
    open_tab(page, "Find papers")
    box = page.locator("#rag-query textarea, #rag-query input").first
    box.fill(query)
    box.press("Enter")
    page.locator("#rag-results .rag-hit").first.wait_for(timeout=ANSWER_TIMEOUT)


def status_papers(page) -> int:
    text = page.locator("#rag-status .rag-stat b").first.inner_text()
    return int(text.replace(",", ""))


def assert_offline(page) -> None:
    assert page.external_requests == [], f"the page tried to reach the network: {page.external_requests}"


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_ask_then_find(app_url, page):
    open_app(page, app_url)
    assert status_papers(page) == 578
    shot(page, "app-start")

    t0 = time.monotonic()
    answer = ask(page, "How are retrieval-augmented generation systems evaluated?")
    seconds = time.monotonic() - t0
    assert answer.locator(".rag-error").count() == 0, answer.inner_text()
    text = answer.locator(".rag-text").first.inner_text()
    cited = sorted(cited_numbers(text))
    assert cited, f"no [n] citations in the answer: {text!r}"
    sources = {
        int(src.locator(".rag-src-n").inner_text()): src
        for src in answer.locator(".rag-sources .rag-src").all()
    }
    for n in cited:
        assert n in sources, f"[{n}] is cited but not in the sources list"
        title = sources[n].locator(".rag-src-title")
        assert title.inner_text().strip()
        href = title.get_attribute("href") or ""
        assert href.startswith("https://huggingface.co/papers?q="), href
        assert sources[n].locator(".rag-snippet").inner_text().strip()
    assert "answered by extractive" in answer.locator(".rag-backend").inner_text()
    print(f"answer shown after {seconds:.1f} s")
    # Once complete, the chat scrolls back to the question so the answer reads from its start.
    from playwright.sync_api import expect

    expect(page.locator("#rag-chat .user-row").last).to_be_in_viewport(timeout=5_000)
    shot(page, "app-ask")

    # A follow-up keeps the conversation (the history goes to lib.ask).
    follow = ask(page, "What about their limitations?")
    assert follow.is_visible()
    assert page.locator("#rag-chat .rag-answer:not(.rag-streaming)").count() == 2

    find(page, "dataset distillation")
    hits = page.locator("#rag-results .rag-hit")
    assert hits.count() >= 5
    ranks = [int(r) for r in hits.locator(".rag-hit-rank").all_inner_texts()]
    assert ranks == list(range(1, len(ranks) + 1))
    scores = [float(s.split()[-1]) for s in hits.locator(".rag-score").all_inner_texts()]  # "score 0.0325"
    assert scores == sorted(scores, reverse=True)
    assert all(t.strip() for t in hits.locator(".rag-hit-title").all_inner_texts())
    assert "distill" in hits.first.inner_text().lower()
    assert hits.first.locator(".rag-why mark").count() >= 1
    shot(page, "app-find")

    open_tab(page, "Summarize")
    topic = page.locator("#rag-topic textarea, #rag-topic input").first
    topic.fill("parameter-efficient fine-tuning")
    topic.press("Enter")
    page.locator("#rag-summary .rag-answer, #rag-summary .rag-error").first.wait_for(timeout=ANSWER_TIMEOUT)
    assert page.locator("#rag-summary .rag-error").count() == 0
    assert page.locator("#rag-summary .rag-src").count() >= 1
    shot(page, "app-summarize")
    assert_offline(page)
    assert page.dialogs == []


def cited_numbers(text: str) -> set[int]:
    return {int(n) for group in re.findall(r"\[([\d,\s–-]+)\]", text) for n in re.findall(r"\d+", group)}


def download_titles(page, button: str, tmp_path) -> list[str]:
    """Click a .bib download button; the titles the project's own .bib loader reads back."""
    from index.loaders import load_file

    page.locator(button).wait_for(state="visible", timeout=30_000)
    with page.expect_download() as info:
        page.locator(button).click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".bib", path
    papers, problems = load_file(path)
    assert problems == []
    return [" ".join(p.title.split()) for p in papers]


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_answer_and_find_results_download_as_bibtex(app_url, page, tmp_path):
    open_app(page, app_url)
    assert page.locator("#rag-ask-bib").is_hidden()  # nothing to download before an answer
    answer = ask(page, "What is the goal of dataset distillation?")
    cited = cited_numbers(answer.locator(".rag-text").first.inner_text())
    assert cited
    titles = {
        int(src.locator(".rag-src-n").inner_text()): " ".join(
            src.locator(".rag-src-title").inner_text().split()
        )
        for src in answer.locator(".rag-sources .rag-src").all()
    }
    got = download_titles(page, "#rag-ask-bib", tmp_path)
    assert sorted(got) == sorted(titles[n] for n in cited)

    find(page, "video-text retrieval")
    hits = [" ".join(t.split()) for t in page.locator("#rag-results .rag-hit-title").all_inner_texts()]
    assert download_titles(page, "#rag-find-bib", tmp_path) == hits  # same papers, same order
    assert_offline(page)


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_two_users_at_once_get_their_own_answers(app_url, browser):
    """Two sessions ask at the same moment (the queue runs two jobs at once)."""
    questions = {"audio": "(an example question)", "distill": "What is the goal of dataset distillation?"}
    contexts = [browser.new_context(viewport={"width": 1360, "height": 900}) for _ in questions]
    try:
        pages = [c.new_page() for c in contexts]
        for pg in pages:
            open_app(pg, app_url)
        pages[1].locator("#rag-question textarea").fill(questions["distill"])
        # The first user clicks an example question, the second types one: both at once.
        pages[0].get_by_role("button", name=re.compile("audio classification")).click()
        pages[1].locator("#rag-question textarea").press("Enter")
        for pg, word in zip(pages, questions, strict=True):
            done = pg.locator("#rag-chat .rag-answer:not(.rag-streaming), #rag-chat .rag-error").first
            done.wait_for(timeout=ANSWER_TIMEOUT)
            assert word in done.inner_text().lower()
            assert pg.locator("#rag-chat .rag-answer:not(.rag-streaming)").count() == 1
    finally:
        for c in contexts:
            c.close()


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_filters_and_errors_show_one_line(app_url, page):
    open_app(page, app_url)
    page.locator("#rag-from textarea, #rag-from input").first.fill("last week")
    answer = ask(page, "What is dataset distillation?")
    assert answer.get_attribute("class") == "rag-error"
    assert "not a date" in answer.inner_text()
    assert "Traceback" not in page.content()
    shot(page, "app-error")


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_paper_text_renders_as_text(tiny_app_url, page):
    """Abstracts with <script>, onerror and javascript: links show as characters, never run."""
    page.add_init_script("window.__xss = undefined")
    open_app(page, tiny_app_url)
    answer = ask(page, "Does quantum gardening improve tomato yield?")
    assert answer.locator(".rag-error").count() == 0, answer.inner_text()
    # The LLM endpoint is down: the extractive answer comes with a one-line notice above it.
    notice = answer.locator(".rag-notice")
    assert notice.is_visible()
    notice_box, text_box = notice.bounding_box(), answer.locator(".rag-text").bounding_box()
    assert notice_box and text_box and notice_box["y"] < text_box["y"]
    assert "answered by extractive" in answer.locator(".rag-backend").inner_text()
    shot(page, "app-ask-fallback")
    find(page, "quantum gardening tomato yield watering robots")
    page.locator("#rag-results .rag-excerpt summary").first.click()
    time.sleep(0.5)  # let an injected onerror fire if it could
    shot(page, "app-escaping")

    assert page.evaluate("window.__xss") is None
    assert page.dialogs == []
    for root in ("#rag-chat", "#rag-results"):
        assert page.locator(f"{root} script").count() == 0
        assert page.locator(f"{root} img").count() == 0
        assert page.locator(f"{root} a[href^='javascript']").count() == 0
        assert page.locator(f"{root} b:has-text('Bold'), {root} strong:has-text('drought')").count() == 0
    shown = page.locator("#rag-results").inner_text() + page.locator("#rag-chat").inner_text()
    assert "<script>window.__xss" in shown
    assert "[a helpful link](javascript:" in page.locator("#rag-results").inner_text()
    assert_offline(page)


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_upload_adds_papers_and_bad_files_say_why(tiny_app_url, page, tmp_path):
    open_app(page, tiny_app_url)
    before = status_papers(page)
    file_input = page.locator("#rag-upload input[type=file]")

    bad = tmp_path / "notes.txt"
    bad.write_text("just some words\nthat are not papers\n")
    file_input.set_input_files(str(bad))
    msg = page.locator("#rag-upload-msg .rag-error")
    msg.wait_for(timeout=60_000)
    assert "Nothing added" in msg.inner_text()
    assert "notes.txt" in msg.inner_text()
    assert "/uploads/" not in msg.inner_text()  # no server paths
    assert status_papers(page) == before
    shot(page, "app-upload-bad")

    good = tmp_path / "my papers.jsonl"
    good.write_text(
        '{"title": "Graph kernels for crystal structures", "abstract": "We define graph kernels over '
        'crystal structures and use them to predict band gaps accurately.", "date": "2024-02-02"}\n'
        '{"title": "not a paper"}\n'
    )
    file_input = page.locator("#rag-upload input[type=file]")
    file_input.set_input_files(str(good))
    ok = page.locator("#rag-upload-msg .rag-ingest-ok")
    ok.wait_for(timeout=90_000)
    assert "1 added" in ok.inner_text()
    assert "no 'abstract'" in ok.inner_text()  # the bad record is reported, the good one indexed
    page.wait_for_function(
        f"() => document.querySelector('#rag-status .rag-stat b').textContent != '{before}'"
    )
    assert status_papers(page) == before + 1
    shot(page, "app-upload-ok")
    assert_offline(page)


# --- no browser: the rules the UI relies on --------------------------------------------------
def test_text_html_is_inert():
    from rag.webapp import text_html

    out = text_html("<script>alert(1)</script> [x](javascript:alert(1)) **b** $$x$$ `c` https://e.org")
    for raw in ("<", ">", "[", "]", "(", ")", "*", "$", "`", ":", "/"):
        assert raw not in out
    assert text_html("a\nb") == "a<br>b"


def test_upload_names_are_sanitised(tmp_path):
    from rag.errors import RagError
    from rag.webapp import safe_upload_name, save_upload

    assert safe_upload_name("../../etc/passwd.jsonl") == "passwd.jsonl"
    assert safe_upload_name("/abs/path/My Papers (1).CSV") == "My_Papers_1.csv"
    assert safe_upload_name("..\\..\\win.txt") == "win.txt"
    assert safe_upload_name(".hidden.json") == "hidden.json"
    assert safe_upload_name("....") == "upload"
    src = tmp_path / "in.jsonl"
    src.write_text('{"title": "t", "abstract": "a"}\n')
    uploads = tmp_path / "uploads"
    first = save_upload(src, "../x.jsonl", uploads)
    assert first == (uploads / "x.jsonl", True)
    assert save_upload(src, "x.jsonl", uploads) == (first[0], False)  # same bytes: same file
    src.write_text('{"title": "u", "abstract": "b"}\n')
    assert save_upload(src, "x.jsonl", uploads) == (uploads / "x-2.jsonl", True)  # never overwrites
    with pytest.raises(RagError, match="only"):
        save_upload(src, "evil.exe", uploads)
    assert sorted(p.name for p in uploads.iterdir()) == ["x-2.jsonl", "x.jsonl"]


def test_answer_marks_unsupported_sentences_and_notice():
    from rag.types import Answer, Sentence, Source
    from rag.webapp import render_answer

    answer = Answer(
        question="q",
        answer="Tomatoes grow [1]. Robots <b>dance</b> at night [2].\n\nA second paragraph [1].",
        backend="llm:gemma3-270m",
        sources=[
            Source(n=1, paper_id="a", title="Tomato <i>growth</i>", date="2024-01-02", snippet="grow"),
            Source(n=2, paper_id="b", title="Robots", snippet="r"),
        ],
        sentences=[
            Sentence(text="Tomatoes grow.", citations=[1], supported=True),
            Sentence(text="Robots <b>dance</b> at night.", citations=[2], supported=False),
            Sentence(text="A second paragraph.", citations=[1], supported=True),
        ],
        notice="LLM timed out; showing the extractive answer instead",
        invalid_citations=1,
    )
    out = render_answer(answer)
    assert out.index("rag-notice") < out.index("rag-text")
    assert out.count("<p>") == 2
    found = re.search(r'<span class="rag-unsupported"[^>]*>(.*?)</p>', out)
    assert found
    unsupported = found.group(1)
    assert "Robots" in unsupported and "&#60;b&#62;dance" in unsupported and "Tomatoes" not in unsupported
    assert "1 sentence is not supported" in out
    assert "<b>dance" not in out and "<i>growth" not in out
    assert 'title="[1] Tomato &lt;i&gt;growth&lt;/i&gt;"' in out  # hovering a citation names the paper
    assert "https://huggingface.co/papers?q=Tomato%20%3Ci%3Egrowth%3C%2Fi%3E" in out
    assert "answered by LLM gemma3-270m · 1 invalid citation removed" in html.unescape(out)
