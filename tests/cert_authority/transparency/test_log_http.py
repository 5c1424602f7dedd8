"""The published log over HTTP: a licence's proof, heads (latest and kept), consistency proofs and
C2SP tiles, each checked with the separate RFC 9162 verifier and the head signature with the
OpenSSL CLI; bad ranges and paths are precise 4xx."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cert_authority.http.app import create_app
from tests.conftest import FOOD_TYPE, ISSUER_USCC, USER_USCC, LicenceEnv, example_data, openssl
from tests.verification import rfc9162_verifier as rfc
from verification.transparency import LogLeaf

FOOD = example_data(FOOD_TYPE)


def test_proofs_heads_consistency_and_tiles(licence_env: LicenceEnv, tmp_path: Path) -> None:
    # Heads only on demand (no timer), so the kept sizes are exactly those the proofs asked for.
    app = create_app(licence_env.settings.model_copy(update={"log_interval_seconds": 0}))
    issuer = {"Authorization": f"Bearer {app.state.api_keys.create('issuer', ISSUER_USCC).key}"}
    user = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        assert client.get("/log/head").status_code == 404  # nothing logged yet

        def issue(name: str) -> str:
            body = {"type_code": FOOD_TYPE, "data": {**FOOD, "operator_name": name}}
            response = client.post("/api/v1/licences", json=body, headers=issuer)
            assert response.status_code == 201, response.text
            identifier: str = response.json()["identifier"]
            return identifier

        first = issue("演示餐饮一号店")
        assert client.get(f"/api/v1/licences/{first}/proof").status_code == 401
        one = client.get(f"/api/v1/licences/{first}/proof", headers=user).json()
        others = [issue(f"演示餐饮{n}号店") for n in range(2, 6)]
        proof = client.get(f"/api/v1/licences/{others[-1]}/proof", headers=user).json()

        # The proof, checked by the separate verifier against the head it names.
        size, root = proof["tree_size"], base64.b64decode(proof["root_hash"])
        leaf = base64.b64decode(proof["leaf"])
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        assert (size, proof["leaf_index"]) == (5, 4)
        assert rfc.inclusion_holds(rfc.sm3, proof["leaf_index"], size, leaf, hashes, root)
        assert LogLeaf.decode(leaf).identifier == others[-1] == proof["leaf_data"]["identifier"]
        assert proof["events"][0]["event"] == "issue" and proof["signed_head"]["tree_size"] == size

        # The head's SM2 signature with OpenSSL, from the certificate the head is published with.
        head = client.get("/log/head").json()
        assert head["tree_size"] == size and head["root_hash"] == proof["root_hash"]
        (tmp_path / "cert.pem").write_text(head["certificate"])
        (tmp_path / "body").write_bytes(head["checkpoint"].split("\n\n")[0].encode() + b"\n")
        (tmp_path / "sig").write_bytes(base64.b64decode(head["signature"]))
        openssl("x509", "-in", str(tmp_path / "cert.pem"), "-pubkey", "-noout", "-out", str(tmp_path / "pub.pem"))
        verified = openssl(
            "dgst",
            "-sm3",
            "-verify",
            str(tmp_path / "pub.pem"),
            "-sigopt",
            "distid:1234567812345678",
            "-signature",
            str(tmp_path / "sig"),
            str(tmp_path / "body"),
        )
        assert b"Verified OK" in verified.stdout
        assert client.get("/log/checkpoint").text == head["checkpoint"]

        # The first head is kept; the tree grew from it consistently.
        old = client.get("/log/head", params={"size": one["tree_size"]}).json()
        assert old["root_hash"] == one["root_hash"]
        consistency = client.get("/log/consistency", params={"from": old["tree_size"], "to": size}).json()
        assert rfc.consistency_holds(
            rfc.sm3,
            old["tree_size"],
            size,
            base64.b64decode(old["root_hash"]),
            root,
            [base64.b64decode(h) for h in consistency["hashes"]],
        )

        # Tiles: the leaves (entry bundle) and their hashes (level 0 tile) give the head's root.
        bundle = client.get(f"/log/tile/entries/000.p/{size}")
        assert bundle.status_code == 200 and "immutable" in bundle.headers["cache-control"]
        data, leaves = bundle.content, []
        while data:
            length = int.from_bytes(data[:2], "big")
            leaves.append(data[2 : 2 + length])
            data = data[2 + length :]
        assert rfc.mth(rfc.sm3, leaves) == root
        tile = client.get(f"/log/tile/0/000.p/{size}").content
        assert [tile[i : i + 32] for i in range(0, len(tile), 32)] == [rfc.leaf_hash(rfc.sm3, x) for x in leaves]

        # Precise refusals.
        for params in ({"from": 3, "to": 2}, {"from": 0, "to": 2}, {"from": 1, "to": 99}, {"from": "x", "to": 2}):
            assert client.get("/log/consistency", params=params).status_code == 422, params
        for path in ("0/000.p/6", "0/000", "0/001.p/1", "0/x000/001.p/1", "0/000.p/0", "9x/000", "entries/000.p/9"):
            assert client.get(f"/log/tile/{path}").status_code == 404, path
        assert client.get("/log/head", params={"size": 3}).status_code == 404
        unknown = client.get(f"/api/v1/licences/{first[:-1]}X/proof", headers=user)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_server_sequences_on_a_timer(licence_env: LicenceEnv) -> None:
    """Queued leaves get a signed head without anyone asking for a proof (the lifespan task)."""
    import time

    from cert_authority.actors import CLI_ACTOR

    licence_env.services.issuance.issue_licence(CLI_ACTOR, FOOD_TYPE, FOOD, issuer_uscc=ISSUER_USCC)
    settings = licence_env.settings.model_copy(update={"log_interval_seconds": 0.1})
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while client.get("/log/head").status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/log/head").json()["tree_size"] == 1
