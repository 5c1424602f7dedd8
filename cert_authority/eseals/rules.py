"""What a seal must be to be filed (印章备案), apart from its cryptography.

- Its name is the applicant department's registered name followed by the seal's purpose
  (某局 + 电子证照专用章), and names no other department: a department seals in its own name only.
- Its picture is not another department's seal picture: copied, re-saved, moved or scaled
  (`seals.picture.PictureFingerprint` decides what resembles).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from cert_authority.errors import SealNameError, SealPictureConflictError
from cert_authority.store.models import DepartmentRow, SealRow
from seals.picture import PictureFingerprint

MAX_PURPOSE_CHARS = 20


def _plain(text: str) -> str:
    # Compatibility forms (full-width letters, variant presentation forms) compared as what they show.
    return unicodedata.normalize("NFKC", text)


def seal_purpose(
    name: str, purpose: str | None, department: DepartmentRow, departments: Sequence[DepartmentRow]
) -> str:
    """The purpose part of `name` (what follows the department's name), or SealNameError (422)."""
    own = _plain(department.name)
    plain = _plain(name)
    example = f"「{department.name}电子证照专用章」"
    if not plain.startswith(own):
        raise SealNameError(
            f"印章名称「{name}」不符合备案规则：印章名称须以本部门登记名称「{department.name}」开头，"
            f"后接印章用途，如{example}"
        )
    suffix = plain[len(own) :]
    if not suffix:
        raise SealNameError(f"印章名称须在本部门名称「{department.name}」之后写明印章用途，如{example}")
    if len(suffix) > MAX_PURPOSE_CHARS:
        raise SealNameError(f"印章名称中部门名称之后的用途「{suffix}」过长（上限 {MAX_PURPOSE_CHARS} 个字）")
    if purpose is not None and _plain(purpose) != suffix:
        raise SealNameError(
            f"印章名称「{name}」与印章用途「{purpose}」不符：印章名称应为「{department.name}{purpose}」"
        )
    for other in departments:
        if other.id == department.id:
            continue
        theirs = _plain(other.name)
        # A longer name that begins like ours (某局 → 某局某分局), or any other name in the purpose.
        if (len(theirs) > len(own) and plain.startswith(theirs)) or theirs in suffix:
            raise SealNameError(
                f"印章名称「{name}」含有另一部门「{other.name}」（{other.uscc}）的名称：部门只能以本部门的名义备案印章"
            )
    return suffix


STATUS_WORDS = {
    "applied": "申请备案",
    "active": "已备案",
    "suspended": "已备案（暂停使用）",
    "revoked": "已备案（已吊销）",
}


def ensure_picture_is_own(
    fingerprint: PictureFingerprint, others: Iterable[tuple[SealRow, DepartmentRow, PictureFingerprint]]
) -> None:
    """SealPictureConflictError (409) when the picture resembles a seal of another department."""
    for seal, department, theirs in others:
        if fingerprint.resembles(theirs):
            word = STATUS_WORDS.get(seal.status, "已备案")
            raise SealPictureConflictError(
                f"印章图片与另一部门「{department.name}」（{department.uscc}）{word}的印章「{seal.name}」"
                f"（编号 {seal.id}）相似，不能备案：部门只能使用本部门的印模"
            )
