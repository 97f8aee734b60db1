"""Reading uploaded documents: every hostile or broken file gets a plain reason, never a crash."""

from __future__ import annotations

import random
import re
import struct
import time
import zipfile
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from bench.pdf import assemble_pdf
from rag.loading import (
    BINARY,
    EMPTY,
    HTML_NO_TEXT,
    PDF_DAMAGED,
    PDF_NO_TEXT,
    PDF_PROTECTED,
    SUPPORTED_SUFFIXES,
    UnreadableDocument,
    load_text,
    text_of,
)
from rag.splitting import split_into_chunks

# Words that only a leaked exception or library message would put in a reason.
LEAKED = re.compile(
    r"error|exception|traceback|pypdf|errno|codec|decode|xref|trailer|stream|object|"
    r"unexpected|invalid|(?-i:\bNone\b)|\[|\]|<|>",
    re.IGNORECASE,
)


def reason_for(name: str, data: bytes) -> str:
    """Return the reason `text_of` refuses the document, checking it reads as ours."""
    with pytest.raises(UnreadableDocument) as caught:
        text_of(name, data)
    reason = caught.value.reason
    assert reason == reason.strip() and reason[:1].islower(), reason
    assert not LEAKED.search(reason), f"library text in {reason!r}"
    assert caught.value.path == name and name in str(caught.value)
    return reason


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return escaped.encode("latin-1")


def minimal_pdf(lines: list[str], *, broken_page: bool = False) -> bytes:
    """Return a one-page PDF showing `lines` in Helvetica; optionally a second, unreadable page."""
    shown = b" T* ".join(b"(%s) Tj" % _pdf_string(line) for line in lines)
    stream = b"BT /F1 12 Tf 14 TL 72 720 Td " + shown + b" ET"
    kids = b"[3 0 R 6 0 R]" if broken_page else b"[3 0 R]"
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids %s /Count %d >>" % (kids, 2 if broken_page else 1),
        page % 4,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if broken_page:  # its contents claim a compression no reader knows
        objects += [
            page % 7,
            b"<< /Length %d /Filter /NoSuchFilter >>\nstream\n%s\nendstream" % (len(stream), stream),
        ]
    return assemble_pdf(objects)


def encrypted(pdf: bytes, user_password: str) -> bytes:
    """Return `pdf` encrypted with AES-256; an empty user password opens it without asking."""
    writer = PdfWriter(clone_from=PdfReader(BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def tiny_png() -> bytes:
    """Return a real 1x1 PNG image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def tiny_zip() -> bytes:
    """Return a real zip archive holding one text file (as a .docx or .xlsx would)."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", "<w:document>Returns policy</w:document>" * 20)
    return out.getvalue()


# Plain text and Markdown


def test_utf8_text_is_returned_without_its_byte_order_mark() -> None:
    assert text_of("notes.md", "\ufeff# Café\n\nOpen daily.\n".encode()) == "# Café\n\nOpen daily.\n"


def test_latin1_text_names_the_first_bad_byte() -> None:
    reason = reason_for("latin1.txt", "Our café opens at 9.".encode("latin-1"))
    assert reason == "not UTF-8 text (byte 0xe9 at position 7)"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.md", tiny_png()),
        ("policy.md", tiny_zip()),
        ("notes.txt", b"Returns are free.\x00\x00\x00 Within 45 days."),
        ("page.html", b"<p>Hello</p>\x00"),
        ("noise.txt", bytes(range(1, 9)) * 200 + b"some words"),
    ],
    ids=["png-renamed-md", "zip-renamed-md", "nul-in-txt", "nul-in-html", "control-characters"],
)
def test_binary_files_are_refused_as_binary(name: str, data: bytes) -> None:
    assert reason_for(name, data) == BINARY


def test_binary_without_nul_bytes_that_is_not_utf8_is_called_binary() -> None:
    noise = random.Random(7).randbytes(4000).replace(b"\x00", b"\x01")
    assert reason_for("renamed.md", noise) == BINARY


def test_a_few_control_characters_are_tolerated_and_dropped() -> None:
    text = "Refunds take 5 days.\x07 Call us\x1b on weekdays.\f\n"
    assert text_of("faq.txt", text.encode()) == "Refunds take 5 days. Call us on weekdays.\f\n"


def test_utf16_text_is_told_to_be_saved_as_utf8() -> None:
    assert "UTF-16" in reason_for("windows.txt", "Hello there".encode("utf-16"))


@pytest.mark.parametrize("name", ["empty.md", "blank.txt", "empty.pdf", "empty.html", "blank.htm"])
@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n "])
def test_empty_files_are_empty_whatever_their_type(name: str, data: bytes) -> None:
    assert reason_for(name, data) == EMPTY


def test_a_byte_order_mark_alone_is_an_empty_file() -> None:
    assert reason_for("bom.md", b"\xef\xbb\xbf\n") == EMPTY


@pytest.mark.parametrize(
    ("name", "shown"), [("notes.docx", "'.docx'"), ("README", "(none)"), ("archive.tar.gz", "'.gz'")]
)
def test_unsupported_types_are_refused_with_the_supported_list(name: str, shown: str) -> None:
    reason = reason_for(name, b"hello")
    assert reason == f"unsupported file type {shown}; use .md, .txt, .pdf, .html or .htm"
    assert all(suffix in reason for suffix in SUPPORTED_SUFFIXES)


def test_suffixes_are_matched_whatever_their_case() -> None:
    assert text_of("SHOUTING.TXT", b"Hello.") == "Hello."


# HTML


PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Help centre</title>
<style>body { color: red }</style>
<script>var tracking = "SECRET-SCRIPT-TEXT"; if (a < b && c > d) {}</script></head>
<body>
<h1>Shop help</h1>
<p>We answer within one working day &mdash; usually faster.</p>
<h2>Returns &amp; refunds</h2>
<div>Faulty items can be returned within 45 days of delivery.<br>We pay the return shipping for every faulty item.</div>
<ul><li>Keep the receipt.</li><li><p>Pack the item <b>carefully</b> in its box.</p></li></ul>
<h3>Prices</h3>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>&euro;10 a month</td></tr></table>
<noscript>Please enable JavaScript.</noscript><template><p>Hidden template text.</p></template>
<svg><title>cart icon</title><text>svg label</text></svg>
</body></html>"""


def test_html_headings_become_sections_of_the_split_chunks() -> None:
    chunks = [chunk.text for chunk in split_into_chunks(text_of("help.html", PAGE), "help.html")]
    assert "Shop help: We answer within one working day — usually faster." in chunks
    assert "Returns & refunds: Faulty items can be returned within 45 days of delivery." in chunks
    assert "Returns & refunds: We pay the return shipping for every faulty item." in chunks
    assert "Returns & refunds: Pack the item carefully in its box." in chunks


def test_html_becomes_markdown_ish_lines() -> None:
    text = text_of("help.htm", PAGE)
    lines = text.splitlines()
    assert lines[0] == "# Shop help"  # the page has an <h1>, so its <title> is not used
    assert "## Returns & refunds" in lines and "### Prices" in lines
    assert "- Keep the receipt." in lines and "- Pack the item carefully in its box." in lines
    assert "Basic | €10 a month" in lines
    assert "Help centre" not in text


@pytest.mark.parametrize(
    "hidden",
    ["SECRET-SCRIPT-TEXT", "color: red", "enable JavaScript", "template text", "cart icon", "svg label"],
)
def test_html_scripts_styles_and_hidden_parts_are_dropped(hidden: str) -> None:
    assert hidden not in text_of("help.html", PAGE)


def test_html_title_is_the_heading_when_there_is_no_h1() -> None:
    page = b"<html><head><title>Delivery &amp; tracking</title></head><body><p>Parcels arrive in 3 days.</p>"
    text = text_of("delivery.html", page)
    assert text.splitlines()[0] == "# Delivery & tracking"
    assert [c.text for c in split_into_chunks(text, "delivery.html")] == [
        "Delivery & tracking: Parcels arrive in 3 days."
    ]


@pytest.mark.parametrize(
    "meta",
    [
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        "<meta charset=ISO-8859-1>",  # what old pages say when they mean Windows-1252
    ],
)
def test_html_in_a_declared_charset_is_decoded_with_it(meta: str) -> None:
    page = f"<html><head>{meta}<body><p>Caf\u00e9 \u201cLe Monde\u201d opens at 9.</p>"
    assert text_of("cafe.html", page.encode("cp1252")) == "Caf\u00e9 \u201cLe Monde\u201d opens at 9.\n"


@pytest.mark.parametrize(
    "meta",
    [b"", b'<meta charset="x-no-such-charset">', b'<meta charset="utf-8">', b'<meta charset="base64">'],
)
def test_html_that_is_not_utf8_without_a_usable_charset_is_refused(meta: bytes) -> None:
    page = meta + "<p>Caf\u00e9 opens at 9.</p>".encode("latin-1")
    assert reason_for("cafe.html", page).startswith("not UTF-8 text (byte 0xe9")


def test_html_with_nothing_to_read_says_so() -> None:
    assert (
        reason_for("app.html", b"<html><head><script>boot()</script></head><body><div></div>") == HTML_NO_TEXT
    )


MALFORMED = {
    "unclosed-inline": b"<p>Unclosed <b>bold <i>and <div>nested",
    "unclosed-heading": b"<h2>Heading never closed<p>Body text here.",
    "stray-end-tags": b"</p></div></li></h1></script>Stray end tags.",
    "unclosed-script": b"<p>Before.</p><script>never closed, everything after is script <p>gone",
    "unclosed-svg": b"<svg><p>Inside an unclosed svg",
    "unclosed-comment": b"<p>Before.</p><!-- an unclosed comment <p>text",
    "declarations": b"<![CDATA[ odd ]]><!DOCTYPE><!ELEMENT x><? processing ?><p>After declarations.</p>",
    "conditional-comments": b"<![if !IE]><p>Conditional.</p><![endif]>",
    "unknown-marked-section": b"<![foo[ bar ]]><p>After an unknown section.</p>",
    "broken-quotes": b"<a href='x\" title=<<<>>>broken quotes</a>",
    "bad-character-references": b"&#xFFFFFFFF; &#0; &#x110000; &bogus; &amp text",
    "many-less-thans": b"<" * 5000 + b"p>text",
    "unclosed-title": b"<title>" + b"x" * 100 + b"<h1>",
    "loose-table": b"<table><td>cell<td>cell<tr><th>",
    "binary-charset": b'<meta charset="\xff\xfe">\xff\xfe<p>',
}


@pytest.mark.parametrize("page", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_html_gives_text_or_a_reason_never_a_crash(page: bytes) -> None:
    try:
        text = text_of("broken.html", page)
    except UnreadableDocument as error:
        assert not LEAKED.search(error.reason)
    else:
        assert isinstance(text, str) and text.strip()


def test_unfinished_or_unknown_markup_costs_only_itself() -> None:
    assert text_of("a.html", b"<p>Before.</p><!-- never closed <p>hidden") == "Before.\n"
    assert text_of("b.html", b"<p>Before.</p><script>never closed <p>hidden") == "Before.\n"
    assert text_of("c.html", b"<p>Fish &amp; chips, and &chips") == "Fish & chips, and &chips\n"
    assert (
        text_of("d.html", b"<![foo[ bar ]]><p>After an unknown section.</p>") == "After an unknown section.\n"
    )


@pytest.mark.parametrize("unfinished", ["<a ", "<a a=", "</a a=", "<!--x>", "<![CDATA[x>", '<a b="x>'])
def test_unfinished_markup_repeated_is_read_in_linear_time(unfinished: str) -> None:
    # Python 3.11.7's HTMLParser.close() takes minutes on 100 KB of these (CVE-2025-6069).
    page = ("<p>Opening hours are 9 to 5.</p>" + unfinished * 30_000).encode()
    started = time.monotonic()
    assert text_of("slow.html", page).startswith("Opening hours are 9 to 5.")
    assert time.monotonic() - started < 5


def test_deeply_nested_html_keeps_its_text() -> None:
    assert text_of("deep.html", b"<div>" * 20000 + b"Deep text." + b"</div>" * 20000) == "Deep text.\n"


# PDF


def test_minimal_pdf_text_is_extracted() -> None:
    text = text_of("manual.pdf", minimal_pdf(["Hold the pairing button (5 s).", "Then release it."]))
    assert "Hold the pairing button (5 s)." in text and "Then release it." in text


def test_a_pdf_font_mapping_a_glyph_to_a_lone_surrogate_costs_only_that_character() -> None:
    # A font's ToUnicode map can send a glyph to half a UTF-16 pair (pypdf decodes "surrogatepass"):
    # such text can't be stored, embedded or tokenised, so it becomes U+FFFD like any other.
    cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <00> <FF> "
            b"endcodespacerange 1 beginbfchar <41> <D800> endbfchar endcmap end end")
    stream = b"BT /F1 12 Tf 72 720 Td (Whitening A costs 5 dollars.) Tj ET"
    pdf = assemble_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap),
    ])
    text = text_of("hostile.pdf", pdf)
    assert text == "Whitening \ufffd costs 5 dollars." and text.encode()


def test_password_protected_pdf_says_so() -> None:
    assert (
        reason_for("locked.pdf", encrypted(minimal_pdf(["Secret prices."]), "open-sesame")) == PDF_PROTECTED
    )


def test_pdf_with_only_an_owner_password_reads_normally() -> None:
    assert "Printing restricted." in text_of(
        "restricted.pdf", encrypted(minimal_pdf(["Printing restricted."]), "")
    )


def test_pdf_without_text_needs_ocr() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = BytesIO()
    writer.write(out)
    assert reason_for("scan.pdf", out.getvalue()) == PDF_NO_TEXT


def test_an_unreadable_page_is_skipped_when_others_have_text() -> None:
    assert "The first page is fine." in text_of(
        "mixed.pdf", minimal_pdf(["The first page is fine."], broken_page=True)
    )


@pytest.mark.parametrize(
    "data",
    [
        minimal_pdf(["Truncated in the middle of its content."])[:300],
        minimal_pdf(["Truncated just after the header."])[:20],
        b"%PDF-1.7\n" + random.Random(3).randbytes(3000),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj trailer << /Root 1 0 R >>",
        b"%PDF-1.4\n1 0 obj\n" + b"[" * 50000 + b"\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF",
        b"This is a text file someone renamed to .pdf.",
        tiny_png(),
    ],
    ids=["truncated", "header-only", "garbage", "self-referencing", "deep-nesting", "text", "png"],
)
def test_damaged_or_fake_pdfs_are_not_readable(data: bytes) -> None:
    assert reason_for("broken.pdf", data) == PDF_DAMAGED


def test_mangled_pdfs_give_text_or_our_reason_never_a_crash() -> None:
    good, rng = minimal_pdf(["Faulty items can be returned within 45 days."]), random.Random(11)
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            text_of("mangled.pdf", bytes(data))
        except UnreadableDocument as error:
            assert error.reason in (PDF_DAMAGED, PDF_NO_TEXT, PDF_PROTECTED)


@pytest.mark.parametrize("name", ["x.md", "x.txt", "x.html", "x.pdf"])
def test_random_bytes_never_crash_the_reader(name: str) -> None:
    rng = random.Random(name)
    for size in (1, 7, 100, 5000):
        data = rng.randbytes(size)
        try:
            text_of(name, data)
        except UnreadableDocument as error:
            assert not LEAKED.search(error.reason)


# Files on disk


def test_load_text_reads_the_file_and_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "ok.htm").write_bytes(b"<h2>Hours</h2><p>Open 9 to 5.</p>")
    assert load_text(tmp_path / "ok.htm") == "## Hours\n\nOpen 9 to 5.\n"
    (tmp_path / "photo.md").write_bytes(tiny_png())
    with pytest.raises(UnreadableDocument) as caught:
        load_text(tmp_path / "photo.md")
    assert caught.value.path == tmp_path / "photo.md" and caught.value.reason == BINARY
    assert str(caught.value) == f"Cannot read {tmp_path / 'photo.md'}: {BINARY}."


def test_load_text_says_a_folder_or_missing_file_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "folder.md").mkdir()
    for path, reason in [
        (tmp_path / "folder.md", "is a folder, not a file"),
        (tmp_path / "gone.txt", "does not exist"),
    ]:
        with pytest.raises(UnreadableDocument) as caught:
            load_text(path)
        assert reason in caught.value.reason and not LEAKED.search(caught.value.reason)


def test_unreadable_document_takes_a_name_or_a_path() -> None:
    by_name = UnreadableDocument("upload.md", EMPTY)
    by_path = UnreadableDocument(Path("docs/upload.md"), EMPTY)
    assert (by_name.path, by_name.reason) == ("upload.md", "file is empty")
    assert by_path.path == Path("docs/upload.md")
    assert str(by_name) == "Cannot read upload.md: file is empty."
