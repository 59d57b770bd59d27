"""Nova 2.1 os-keypairs: generate, import, fingerprints, ownership, quota."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from django.db import connection

from billing import quotas
from compute.models import KeyPair

pytestmark = pytest.mark.django_db

KEYPAIRS = "/compute/v2.1/os-keypairs"


def openssh_public(private_key, comment=None):
    line = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def md5_fingerprint(public_line):
    """What `ssh-keygen -l -E md5` prints, without the MD5: prefix."""
    blob = base64.b64decode(public_line.split()[1])
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - the fingerprint format Nova uses
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def create(api, name, public_key=None):
    body = {"name": name}
    if public_key is not None:
        body["public_key"] = public_key
    return api.post(KEYPAIRS, {"keypair": body}, format="json")


def rows_containing(text):
    """How many rows of any table hold ``text`` in any column (PostgreSQL's
    row-to-text cast sees every column at once)."""
    assert connection.vendor == "postgresql"
    found = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # The table names come from the database itself, not from input.
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{text}%"])  # noqa: S608
            found += cursor.fetchone()[0]
    return found


def test_generated_key_pair_returns_the_private_key_once(tenant_a):
    response = create(tenant_a.api, "generated")
    assert response.status_code == 200, response.content  # Nova 2.1 answers 200
    body = response.json()["keypair"]
    assert {"name", "public_key", "private_key", "fingerprint", "user_id"} <= set(body)
    assert body["user_id"] == tenant_a.member.pk

    private = serialization.load_ssh_private_key(body["private_key"].encode(), password=None)
    assert openssh_public(private).split() == body["public_key"].split()[:2]  # the pair belongs together
    assert body["fingerprint"] == md5_fingerprint(body["public_key"])

    # The private key exists nowhere in the database, in no column of no table.
    secret_lines = [line for line in body["private_key"].splitlines() if line and not line.startswith("-----")]
    assert len(secret_lines) > 10
    middle = secret_lines[len(secret_lines) // 2]
    assert rows_containing(middle) == 0
    assert rows_containing(body["public_key"].split()[1][:60]) == 1  # the check itself can find things

    shown = tenant_a.api.get(f"{KEYPAIRS}/generated").json()["keypair"]
    assert "private_key" not in shown
    assert shown["public_key"] == body["public_key"] and shown["fingerprint"] == body["fingerprint"]
    listed = tenant_a.api.get(KEYPAIRS).json()
    assert listed == {"keypairs": [{"keypair": {"name": "generated", "public_key": body["public_key"],
                                                "fingerprint": body["fingerprint"]}}]}


@pytest.mark.parametrize("key_factory", [lambda: ed25519.Ed25519PrivateKey.generate(),
                                         lambda: ec.generate_private_key(ec.SECP384R1())],
                         ids=["ed25519", "ecdsa-p384"])
def test_import_has_the_md5_fingerprint_of_the_blob(tenant_a, key_factory):
    public = openssh_public(key_factory(), comment="me@laptop")
    response = create(tenant_a.api, "imported", public)
    assert response.status_code == 200, response.content
    body = response.json()["keypair"]
    assert "private_key" not in body
    assert body["public_key"] == public
    assert body["fingerprint"] == md5_fingerprint(public)
    assert len(body["fingerprint"]) == 47 and body["fingerprint"].count(":") == 15
    stored = KeyPair.objects.get(user=tenant_a.member, name="imported")
    assert (stored.public_key, stored.fingerprint) == (public, body["fingerprint"])


def test_fingerprint_matches_ssh_keygen(tenant_a):
    # `ssh-keygen -l -E md5` on this key prints MD5:ba:25:30:e5:74:53:37:2e:9a:e7:86:b1:4d:cd:4d:c3.
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw6ddffhfrBCFkiIWdOjlgwOhWKLgyUjp1bpYmqs/Ai x"
    assert md5_fingerprint(public) == "ba:25:30:e5:74:53:37:2e:9a:e7:86:b1:4d:cd:4d:c3"
    response = create(tenant_a.api, "vector", public)
    assert response.json()["keypair"]["fingerprint"] == "ba:25:30:e5:74:53:37:2e:9a:e7:86:b1:4d:cd:4d:c3"


@pytest.mark.parametrize("public_key", [
    "not a key",
    "ssh-rsa AAAAB3NzaC1yc2E",  # truncated blob
    "ssh-ed25519 !!!notbase64!!!",
    "ssh-ed25519",
    "",
    "   ",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw6ddffhfrBCFkiIWdOjlgwOhWKLgyUjp1bpYmqs/Ai\n"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw6ddffhfrBCFkiIWdOjlgwOhWKLgyUjp1bpYmqs/Ai",
    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
])
def test_invalid_public_key_is_400(tenant_a, public_key):
    response = create(tenant_a.api, "bad", public_key)
    assert response.status_code == 400, response.content
    assert response.json()["badRequest"]["code"] == 400
    assert "Keypair data is invalid" in response.json()["badRequest"]["message"]
    assert not KeyPair.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 256, " lead", "trail ", "semi;colon", "slash/name", 123, None])
def test_invalid_name_is_400(tenant_a, name):
    public = openssh_public(ed25519.Ed25519PrivateKey.generate())
    response = tenant_a.api.post(KEYPAIRS, {"keypair": {"name": name, "public_key": public}}, format="json")
    assert response.status_code == 400, response.content
    assert not KeyPair.objects.exists()


def test_name_of_255_characters_is_fine(tenant_a):
    public = openssh_public(ed25519.Ed25519PrivateKey.generate())
    assert create(tenant_a.api, "k" * 255, public).status_code == 200


def test_duplicate_name_is_409(tenant_a):
    public = openssh_public(ed25519.Ed25519PrivateKey.generate())
    assert create(tenant_a.api, "dup", public).status_code == 200
    again = create(tenant_a.api, "dup", openssh_public(ed25519.Ed25519PrivateKey.generate()))
    assert again.status_code == 409
    assert again.json() == {"conflictingRequest": {"code": 409, "message": "Key pair 'dup' already exists."}}
    assert KeyPair.objects.filter(name="dup").count() == 1


def test_other_users_key_pair_is_404(tenant_a, tenant_b):
    public = openssh_public(ed25519.Ed25519PrivateKey.generate())
    assert create(tenant_a.api, "mine", public).status_code == 200
    # Key pairs belong to users: another project's member, and another user of
    # the same project, both get 404 and never the key.
    for api in (tenant_b.api, tenant_a.reader_api):
        shown = api.get(f"{KEYPAIRS}/mine")
        assert shown.status_code == 404
        assert shown.json() == {"itemNotFound": {"code": 404, "message": "Keypair mine not found."}}
        assert api.get(KEYPAIRS).json() == {"keypairs": []}
    assert tenant_b.api.delete(f"{KEYPAIRS}/mine").status_code == 404
    assert tenant_a.api.get(f"{KEYPAIRS}/mine").status_code == 200
    # The same name is free for another user.
    assert create(tenant_b.api, "mine", public).status_code == 200


def test_delete_is_202_then_404(tenant_a):
    public = openssh_public(ed25519.Ed25519PrivateKey.generate())
    create(tenant_a.api, "gone", public)
    assert tenant_a.api.delete(f"{KEYPAIRS}/gone").status_code == 202
    assert tenant_a.api.get(f"{KEYPAIRS}/gone").status_code == 404
    assert tenant_a.api.delete(f"{KEYPAIRS}/gone").status_code == 404


def test_marker_of_a_name_other_users_also_hold(tenant_a, tenant_b):
    for api in (tenant_a.api, tenant_b.api):
        for name in ("a", "b", "c"):
            assert create(api, name, openssh_public(ed25519.Ed25519PrivateKey.generate())).status_code == 200
    page = tenant_a.api.get(KEYPAIRS, {"marker": "a"})
    assert page.status_code == 200
    assert [k["keypair"]["name"] for k in page.json()["keypairs"]] == ["b", "c"]


def test_key_pair_quota_override_is_403_naming_the_quota(tenant_a):
    quotas.set_limit(tenant_a.project, "key_pairs", 2)
    for name in ("one", "two"):
        assert create(tenant_a.api, name, openssh_public(ed25519.Ed25519PrivateKey.generate())).status_code == 200
    refused = create(tenant_a.api, "three", openssh_public(ed25519.Ed25519PrivateKey.generate()))
    assert refused.status_code == 403
    message = refused.json()["forbidden"]["message"]
    assert refused.json()["forbidden"]["code"] == 403
    assert "key_pairs" in message and "2" in message
    assert KeyPair.objects.filter(user=tenant_a.member).count() == 2
    # Generated keys count against the same quota.
    assert create(tenant_a.api, "four").status_code == 403
    # Deleting one frees a slot.
    assert tenant_a.api.delete(f"{KEYPAIRS}/one").status_code == 202
    assert create(tenant_a.api, "three", openssh_public(ed25519.Ed25519PrivateKey.generate())).status_code == 200


def test_limits_report_the_key_pair_quota(tenant_a):
    quotas.set_limit(tenant_a.project, "key_pairs", 7)
    absolute = tenant_a.api.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    assert absolute["maxTotalKeypairs"] == 7
