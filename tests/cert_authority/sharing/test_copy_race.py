"""Two first downloads of one annotated copy (加注件) at once: the copy is made on its link's first
download, so both may render and seal one. One is kept, and both get that one: a holder or a
department comparing what they downloaded finds one copy, never two differently sealed files."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, select

from cert_authority.actors import Actor
from cert_authority.sharing.service import SharingService
from cert_authority.store.models import SharedFileRow
from keys.sm2 import sm3
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, issue_example


def test_two_first_downloads_at_once_get_the_one_copy_kept(
    licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = licence_env
    sharing = env.services.sharing
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    sharing.allow_duty(Actor("cli", "admin", None), USER_USCC, FOOD_TYPE)
    use = sharing.use_licence(Actor("apikey:user", "user", USER_USCC), identifier, "办理变更")

    both_rendered = threading.Barrier(2, timeout=60)
    render = SharingService._render_copy

    def render_then_wait(self: SharingService, *args: object) -> bytes:
        sealed = render(self, *args)  # type: ignore[arg-type]
        both_rendered.wait()  # neither stores its copy before the other has made one
        return sealed

    monkeypatch.setattr(SharingService, "_render_copy", render_then_wait)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: sharing.shared_file(use.copy_token), range(2))

    assert first == second  # SM2 signatures are randomised: two renderings are never the same bytes
    with Session(env.engine) as session:
        kept = session.exec(select(SharedFileRow.file_sm3)).all()
    assert kept == [sm3(first).hex()]
    assert sharing.shared_file(use.copy_token) == first
