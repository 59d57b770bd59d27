from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from identity.models import Token

pytestmark = pytest.mark.django_db


def password_auth(username, password, project=None, **scope):
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": username, "domain": {"name": "Default"}, "password": password}}}}}
    if project:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return body


def issue(client, *args):
    return client.post("/identity/v3/auth/tokens", password_auth(*args), format="json")


def test_password_token_has_what_keystoneauth_reads(tenant_a):
    response = issue(APIClient(), tenant_a.member.username, "secret-pass", "alpha")
    assert response.status_code == 201
    key = response["X-Subject-Token"]
    token = response.json()["token"]
    assert token["project"]["id"] == tenant_a.project.pk
    assert token["user"]["name"] == tenant_a.member.username
    assert {"expires_at", "issued_at", "methods", "audit_ids", "roles", "catalog"} <= set(token)
    assert {r["name"] for r in token["roles"]} == {"reader", "member"}
    types = {entry["type"] for entry in token["catalog"]}
    assert types == {"identity", "compute", "network", "image", "volumev3", "block-storage"}
    volume = next(e for e in token["catalog"] if e["type"] == "volumev3")
    assert volume["endpoints"][0]["url"].endswith(f"/volume/v3/{tenant_a.project.pk}")
    # Only a hash of the token is stored.
    assert not Token.objects.filter(key_hash=key).exists()
    assert Token.objects.count() >= 1


@pytest.mark.parametrize("username,password,project", [
    ("alpha-member", "wrong", "alpha"),
    ("nobody", "secret-pass", "alpha"),
    ("alpha-member", "secret-pass", "bravo"),  # not a member of bravo
    ("alpha-member", "secret-pass", "missing"),
])
def test_bad_credentials_or_scope_are_401(tenant_a, tenant_b, username, password, project):
    response = issue(APIClient(), username, password, project)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_validate_and_revoke(tenant_a):
    key = issue(APIClient(), tenant_a.member.username, "secret-pass", "alpha")["X-Subject-Token"]
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=key, HTTP_X_SUBJECT_TOKEN=key)
    assert client.get("/identity/v3/auth/tokens").status_code == 200
    assert client.head("/identity/v3/auth/tokens").status_code == 200
    assert client.get("/compute/v2.1/flavors").status_code == 200
    assert client.delete("/identity/v3/auth/tokens").status_code == 204
    assert client.get("/compute/v2.1/flavors").status_code == 401
    assert client.get("/identity/v3/auth/tokens").status_code == 401


def test_expired_token_is_401(tenant_a):
    key = issue(APIClient(), tenant_a.member.username, "secret-pass", "alpha")["X-Subject-Token"]
    Token.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=key)
    response = client.get("/compute/v2.1/flavors")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Keystone")


def test_removed_membership_kills_the_token(tenant_a):
    from identity import services

    assert tenant_a.api.get("/compute/v2.1/flavors").status_code == 200
    services.remove_membership(user=tenant_a.member, project=tenant_a.project)
    assert tenant_a.api.get("/compute/v2.1/flavors").status_code == 401


def test_application_credential_lifecycle(tenant_a):
    user = tenant_a.member
    created = tenant_a.api.post(f"/identity/v3/users/{user.id}/application_credentials",
                                {"application_credential": {"name": "ci"}}, format="json")
    assert created.status_code == 201, created.content
    cred = created.json()["application_credential"]
    assert cred["secret"] and cred["project_id"] == tenant_a.project.pk
    listed = tenant_a.api.get(f"/identity/v3/users/{user.id}/application_credentials").json()
    assert "secret" not in listed["application_credentials"][0]

    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}}
    issued = APIClient().post("/identity/v3/auth/tokens", body, format="json")
    assert issued.status_code == 201
    assert issued.json()["token"]["project"]["id"] == tenant_a.project.pk
    robot = APIClient()
    robot.credentials(HTTP_X_AUTH_TOKEN=issued["X-Subject-Token"])
    assert robot.get("/compute/v2.1/flavors").status_code == 200

    wrong = {"auth": {"identity": {"methods": ["application_credential"],
                                   "application_credential": {"id": cred["id"], "secret": "not-it"}}}}
    assert APIClient().post("/identity/v3/auth/tokens", wrong, format="json").status_code == 401

    deleted = tenant_a.api.delete(f"/identity/v3/users/{user.id}/application_credentials/{cred['id']}")
    assert deleted.status_code == 204
    assert robot.get("/compute/v2.1/flavors").status_code == 401
    assert APIClient().post("/identity/v3/auth/tokens", body, format="json").status_code == 401


def test_other_users_credentials_are_forbidden(tenant_a, tenant_b):
    response = tenant_b.api.get(f"/identity/v3/users/{tenant_a.member.id}/application_credentials")
    assert response.status_code == 403


def test_version_documents():
    client = APIClient()
    identity = client.get("/identity")
    assert identity.status_code == 300
    assert identity.json()["versions"]["values"][0]["id"].startswith("v3")
    compute = client.get("/compute/v2.1").json()["version"]
    assert (compute["id"], compute["version"], compute["min_version"]) == ("v2.1", "2.1", "2.1")
    assert client.get("/compute/").json()["versions"][0]["id"] == "v2.0"
    assert client.get("/volume/v3/").json()["version"]["id"] == "v3.0"
    assert client.get("/network").json()["versions"][0]["id"] == "v2.0"
