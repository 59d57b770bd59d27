import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from billing import quotas
from compute import services
from compute.models import KeyPair

pytestmark = pytest.mark.django_db

# A valid OpenSSH public key line, as a user would paste it.
PUBLIC_KEY = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " laptop"


def test_list_shows_only_my_key_pairs(tenant_a, member_a):
    services.create_keypair(user=tenant_a.member, project=tenant_a.project, name="mine", public_key=PUBLIC_KEY)
    services.create_keypair(user=tenant_a.reader, project=tenant_a.project, name="readers-key", public_key=PUBLIC_KEY)
    page = member_a.get("/key-pairs/").content.decode()
    assert "mine" in page
    assert "readers-key" not in page


def test_create_hands_out_the_private_key_once_and_never_stores_it(tenant_a, member_a):
    response = member_a.post("/key-pairs/create/", {"name": "deploy"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in page
    assert 'download="deploy.pem"' in page
    keypair = KeyPair.objects.get(user=tenant_a.member, name="deploy")
    assert keypair.public_key.startswith("ssh-rsa ")
    # Nothing about the pair, nor the session, holds the private half.
    for value in (keypair.public_key, keypair.fingerprint, keypair.type, keypair.name):
        assert "PRIVATE" not in value
    session = member_a.session
    assert all("PRIVATE" not in str(v) for v in session.values())
    # Looking again shows no private key.
    assert "PRIVATE KEY" not in member_a.get("/key-pairs/").content.decode()


def test_import_adds_the_key_and_says_so(tenant_a, member_a):
    response = member_a.post("/key-pairs/import/", {"name": "laptop", "public_key": PUBLIC_KEY}, follow=True)
    assert response.redirect_chain[-1][0] == "/key-pairs/"
    assert "Key pair laptop imported." in response.content.decode()
    assert KeyPair.objects.get(user=tenant_a.member, name="laptop").public_key == PUBLIC_KEY


@pytest.mark.parametrize("data, error", [
    ({"name": "bad", "public_key": "ssh-rsa not-base64-at-all"}, "Keypair data is invalid"),
    ({"name": "bad", "public_key": ""}, "This field is required."),
    ({"name": "bad/name", "public_key": PUBLIC_KEY}, "unsafe characters"),
])
def test_bad_import_is_a_form_error(tenant_a, member_a, data, error):
    response = member_a.post("/key-pairs/import/", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not KeyPair.objects.filter(user=tenant_a.member).exists()


def test_duplicate_name_is_a_form_error(tenant_a, member_a):
    services.create_keypair(user=tenant_a.member, project=tenant_a.project, name="dup", public_key=PUBLIC_KEY)
    response = member_a.post("/key-pairs/create/", {"name": "dup"})
    assert response.status_code == 200
    assert "Key pair &#x27;dup&#x27; already exists." in response.content.decode()
    assert "PRIVATE KEY" not in response.content.decode()


def test_over_quota_is_a_form_error(tenant_a, member_a):
    quotas.set_limit(tenant_a.project, "key_pairs", 1)
    services.create_keypair(user=tenant_a.member, project=tenant_a.project, name="first", public_key=PUBLIC_KEY)
    for url, data in (("/key-pairs/create/", {"name": "second"}),
                      ("/key-pairs/import/", {"name": "second", "public_key": PUBLIC_KEY})):
        response = member_a.post(url, data)
        assert response.status_code == 200
        assert "Quota exceeded for key_pairs" in response.content.decode()
    assert KeyPair.objects.filter(user=tenant_a.member).count() == 1


def test_delete_asks_first_then_deletes(tenant_a, member_a):
    keypair, _ = services.create_keypair(user=tenant_a.member, project=tenant_a.project, name="old",
                                         public_key=PUBLIC_KEY)
    url = f"/key-pairs/{keypair.pk}/delete/"
    confirm = member_a.get(url)
    assert confirm.status_code == 200
    assert "Delete the key pair old?" in confirm.content.decode()
    assert KeyPair.objects.filter(pk=keypair.pk).exists()
    response = member_a.post(url)
    assert response.status_code == 302
    assert not KeyPair.objects.filter(pk=keypair.pk).exists()


def test_cannot_delete_someone_elses_key_pair(tenant_a, tenant_b, member_b):
    keypair, _ = services.create_keypair(user=tenant_a.member, project=tenant_a.project, name="alpha-key",
                                         public_key=PUBLIC_KEY)
    assert member_b.post(f"/key-pairs/{keypair.pk}/delete/").status_code == 404
    assert KeyPair.objects.filter(pk=keypair.pk).exists()


def test_reader_sees_the_panel_but_may_not_change_it(tenant_a, reader_a):
    keypair, _ = services.create_keypair(user=tenant_a.reader, project=tenant_a.project, name="given",
                                         public_key=PUBLIC_KEY)
    page = reader_a.get("/key-pairs/")
    assert page.status_code == 200
    assert "given" in page.content.decode()
    assert "Create key pair" not in page.content.decode()
    assert reader_a.post("/key-pairs/create/", {"name": "nope"}).status_code == 403
    assert reader_a.post("/key-pairs/import/", {"name": "nope", "public_key": PUBLIC_KEY}).status_code == 403
    assert reader_a.post(f"/key-pairs/{keypair.pk}/delete/").status_code == 403
    assert reader_a.get("/key-pairs/create/").status_code == 403
    assert KeyPair.objects.filter(user=tenant_a.reader).count() == 1
