"""Lists page by key (issue 24): following next_cursor from the first page visits every licence
version that existed when the listing began exactly once, newest first, even when licences are
issued between pages, and even when versions share a creation time (the row id breaks the tie);
before (prev_cursor) walks back over the same pages. A cursor that is not one is a precise 422."""

from __future__ import annotations

import datetime as dt

import pytest

from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import InvalidRequestError
from cert_authority.issuing.schemas import LicencePage
from tests.conftest import DRAINAGE_TYPE, LicenceEnv, issue_example


def _walk(env: LicenceEnv, page_size: int, between: int = 0) -> tuple[list[str], list[LicencePage]]:
    queries = env.services.queries
    pages = [queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, page_size=page_size)]
    while pages[-1].next_cursor is not None:
        for _ in range(between):  # newer than every cursor: never on a later page
            issue_example(env, DRAINAGE_TYPE)
        pages.append(
            queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, page_size=page_size, cursor=pages[-1].next_cursor)
        )
    return [item.identifier for page in pages for item in page.items], pages


def test_paging_by_key_returns_each_version_once_with_inserts_between_pages(licence_env: LicenceEnv) -> None:
    env = licence_env
    same_time = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    for n in range(7):  # three share one creation time: the id orders them
        issue_example(env, DRAINAGE_TYPE, now=same_time if n < 3 else None)
    before = [
        i.identifier for i in env.services.queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, page_size=200).items
    ]
    assert len(before) >= 7
    seen, pages = _walk(env, page_size=2, between=1)
    assert seen == before  # each once, in order; none of those issued meanwhile
    assert [len(p.items) for p in pages[:-1]] == [2] * (len(pages) - 1)
    assert pages[0].prev_cursor is None and pages[-1].next_cursor is None
    # Back from the last page with `before`: the same pages in reverse.
    queries = env.services.queries
    back = [pages[-1]]
    while back[-1].prev_cursor is not None:
        back.append(queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, page_size=2, before=back[-1].prev_cursor))
    walked_back = [item.identifier for page in reversed(back) for item in page.items]
    newest = queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, page_size=200).items
    assert walked_back == [i.identifier for i in newest]  # the first page back includes those issued meanwhile
    assert set(before) <= set(walked_back) and len(walked_back) == len(set(walked_back))


def test_export_visits_everything_once(licence_env: LicenceEnv) -> None:
    env = licence_env
    for _ in range(5):
        issue_example(env, DRAINAGE_TYPE)
    pages = list(env.services.queries.search_all(CLI_ACTOR, page_size=2, type_code=DRAINAGE_TYPE))
    listed = [item.identifier for page in pages for item in page.items]
    total = pages[0].total
    assert len(listed) == len(set(listed)) == total >= 5


@pytest.mark.parametrize("cursor", ["", "x", "bm90LWEtY3Vyc29y", "MjAyNjAxMDFUMDAwMDAwLjAwMDAwMH5hYmM"])
def test_a_cursor_that_is_not_one_is_refused(shared_licence_env: LicenceEnv, cursor: str) -> None:
    queries = shared_licence_env.services.queries
    with pytest.raises(InvalidRequestError, match="cursor 无效"):
        queries.search(CLI_ACTOR, cursor=cursor)
    with pytest.raises(InvalidRequestError, match="只能使用其中一个"):
        queries.search(CLI_ACTOR, cursor="MjAyNjAxMDFUMDAwMDAwLjAwMDAwMH4x", page=2)
