"""PDFs built by hand, for the tests and bench/ingest.py: pypdf can't write text, and a PDF is a few objects."""

from __future__ import annotations


def assemble_pdf(objects: list[bytes]) -> bytes:
    """Return a PDF file of these objects (numbered from 1; the first is the catalog), with its xref table."""
    pdf, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(pdf)
