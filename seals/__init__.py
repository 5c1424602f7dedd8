"""seals: e-seals and sealing (see ../shared/DESIGN.md). Plain library: values in, values out.

    picture     seal pictures (印模): the drawn round official seal, checked uploads
    ses         GB/T 38540-2020 v4 SESeal / TBS_Sign / SES_Signature: make, sign (staged), parse
    ofd_seal    seal an OFD package (GB/T 33190 §18), staged: prepare → sign → finish
    pdf_seal    seal any PDF with SM2 through pyHanko, staged: prepare → sign → finish
    box         where the seal goes: mm from the page's top-left
    errors      the one exception tree (SealError; SealInputError is a ValueError)

Modules are imported by name (pyHanko is heavy; OFD-only callers need not load it).
"""
