"""templates: licence-type templates and their rendering (see ../shared/DESIGN.md). Plain library:
values in, values out.

    spec         licence-type definitions (证照类型): identity, holder and validity policy, face fields
    layout_spec  template layouts: page size, background, where each thing goes (mm, top-left origin)
    identifier   licence identifiers (GB/T 36904) and holder codes (GB 11643 citizen ID numbers)
    images       uploaded pictures (base images, photos): checked, bounded, normalised to JPEG
    fonts        the CJK fonts: metrics, coverage checks, subsets to embed
    layout       where every glyph, image and QR module goes on the page
    render       the one entry point: layout → PDF, OFD or PNG
    pdf          PDF renderer, and the PDF writing helpers seals builds on
    ofd          OFD renderer (GB/T 33190), and the OFD package writer seals builds on
    png          PNG renderer at phone or print resolution
    qr           QR codes: the one encoder of the project
    units        where a line must not break: a number and its unit, a short parenthesis
    errors       the one exception tree (TemplateError, a ValueError)

Internal: backgrounds (base images; reached through render), cff_subset (the CFF font subsetter).
Each public module's `__all__` is its surface; tests/test_public_surface.py pins both lists.
"""

# The modules other packages may import (the rest are internal to templates).
__all__ = [
    "errors",
    "fonts",
    "identifier",
    "images",
    "layout",
    "layout_spec",
    "ofd",
    "pdf",
    "png",
    "qr",
    "render",
    "spec",
    "units",
]
