"""Keystone v3 beyond password tokens: the auth/projects and auth/catalog
views, users/{id}/projects, domains, rescoping, unscoped tokens and tokens
by user id (what the CLI, the SDK and Tempest's identity tests ask)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from identity import services
from identity.choices import Role
from identity.models import Token

from ..factories import make_project, make_user

pytestmark = pytest.mark.django_db

TOKENS = "/identity/v3/auth/tokens"


def password_body(password="secret-pass", scope=None, **user):  # noqa: S107 - the factories' test password
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {**user, "password": password}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def token_body(key, scope=None):
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": key}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def post_token(body):
    return APIClient().post(TOKENS, body, format="json")


def client_with(key):
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=key)
    return client


def unscoped_key(user):
    response = post_token(password_body(name=user.username, domain={"id": "default"}))
    assert response.status_code == 201
    assert "project" not in response.json()["token"]
    return response["X-Subject-Token"]


def test_unscoped_token_has_no_project_roles_or_catalog(tenant_a):
    response = post_token(password_body(name=tenant_a.member.username, domain={"name": "Default"}))
    assert response.status_code == 201
    token = response.json()["token"]
    assert token["user"]["id"] == tenant_a.member.pk
    assert token["methods"] == ["password"]
    assert {"expires_at", "issued_at", "audit_ids"} <= set(token)
    assert not {"project", "roles", "catalog"} & set(token)
    # It authenticates, but acts in no project.
    unscoped = client_with(response["X-Subject-Token"])
    assert unscoped.get("/identity/v3/auth/projects").status_code == 200
    assert unscoped.get("/compute/v2.1/os-keypairs").status_code == 403


def test_no_scope_uses_the_default_project_when_still_a_member(tenant_a):
    user = tenant_a.member
    user.default_project = tenant_a.project
    user.save()
    token = post_token(password_body(name=user.username)).json()["token"]
    assert token["project"]["id"] == tenant_a.project.pk
    assert token["catalog"]

    explicit = post_token(password_body(name=user.username, scope="unscoped")).json()["token"]
    assert "project" not in explicit and "catalog" not in explicit

    services.remove_membership(user=user, project=tenant_a.project)
    assert "project" not in post_token(password_body(name=user.username)).json()["token"]


def test_token_by_user_id(tenant_a):
    response = post_token(password_body(id=tenant_a.member.pk, scope={"project": {"id": tenant_a.project.pk}}))
    assert response.status_code == 201
    token = response.json()["token"]
    assert token["user"]["name"] == tenant_a.member.username
    assert token["project"]["name"] == tenant_a.project.name
    unscoped = post_token(password_body(id=tenant_a.member.pk))  # Tempest's unscoped token by user id
    assert unscoped.status_code == 201
    assert unscoped.json()["token"]["user"]["id"] == tenant_a.member.pk
    assert "project" not in unscoped.json()["token"] and "catalog" not in unscoped.json()["token"]
    assert post_token(password_body("wrong", id=tenant_a.member.pk)).status_code == 401
    assert post_token(password_body(id="0" * 32)).status_code == 401


def test_rescope_an_unscoped_token_to_a_project(tenant_a):
    key = unscoped_key(tenant_a.member)
    response = post_token(token_body(key, {"project": {"name": "alpha", "domain": {"id": "default"}}}))
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    assert token["project"]["id"] == tenant_a.project.pk
    assert token["methods"][0] == "token" and "password" in token["methods"]
    assert {r["name"] for r in token["roles"]} == {"reader", "member"}
    assert any(entry["type"] == "compute" for entry in token["catalog"])
    scoped = client_with(response["X-Subject-Token"])
    assert scoped.get("/compute/v2.1/os-keypairs").status_code == 200


def test_rescope_between_projects_of_the_same_user(tenant_a):
    second = make_project("second")
    services.set_membership(user=tenant_a.member, project=second, role=Role.READER)
    first = post_token(password_body(name=tenant_a.member.username, scope={"project": {"id": tenant_a.project.pk}}))
    response = post_token(token_body(first["X-Subject-Token"], {"project": {"id": second.pk}}))
    assert response.status_code == 201
    token = response.json()["token"]
    assert token["project"]["id"] == second.pk
    assert {r["name"] for r in token["roles"]} == {"reader"}


def test_rescope_never_outlives_the_original_token(tenant_a):
    key = unscoped_key(tenant_a.member)
    soon = timezone.now() + timedelta(minutes=5)
    Token.objects.filter(project=None).update(expires_at=soon)
    token = post_token(token_body(key, {"project": {"id": tenant_a.project.pk}})).json()["token"]
    assert parse_datetime(token["expires_at"]) <= soon


def test_rescope_to_a_foreign_project_or_with_a_dead_token_is_401(tenant_a, tenant_b):
    key = unscoped_key(tenant_a.member)
    assert post_token(token_body(key, {"project": {"id": tenant_b.project.pk}})).status_code == 401
    assert post_token(token_body(key, {"project": {"name": "nowhere"}})).status_code == 401
    assert post_token(token_body("gAAAAnot-a-token", {"project": {"id": tenant_a.project.pk}})).status_code == 401
    client = client_with(key)
    client.credentials(HTTP_X_AUTH_TOKEN=key, HTTP_X_SUBJECT_TOKEN=key)
    assert client.delete(TOKENS).status_code == 204
    response = post_token(token_body(key, {"project": {"id": tenant_a.project.pk}}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_auth_projects_lists_the_callers_enabled_projects(tenant_a, tenant_b):
    extra = make_project("extra")
    disabled = make_project("disabled")
    disabled.enabled = False
    disabled.save()
    for project in (extra, disabled):
        services.set_membership(user=tenant_a.member, project=project)
    response = tenant_a.api.get("/identity/v3/auth/projects")
    assert response.status_code == 200
    body = response.json()
    assert sorted(p["name"] for p in body["projects"]) == ["alpha", "extra"]
    assert body["links"]["self"].endswith("/identity/v3/auth/projects")
    project = next(p for p in body["projects"] if p["name"] == "alpha")
    assert (project["id"], project["domain_id"], project["enabled"]) == (tenant_a.project.pk, "default", True)
    assert [p["name"] for p in tenant_b.api.get("/identity/v3/auth/projects").json()["projects"]] == ["bravo"]
    assert APIClient().get("/identity/v3/auth/projects").status_code == 401


def test_auth_catalog_for_a_scoped_token(tenant_a):
    response = tenant_a.api.get("/identity/v3/auth/catalog")
    assert response.status_code == 200
    catalog = response.json()["catalog"]
    assert {"identity", "compute", "image", "network", "block-storage", "volumev3"} <= {e["type"] for e in catalog}
    for entry in catalog:
        public = [e for e in entry["endpoints"] if e["interface"] == "public"]
        assert len(public) == 1 and public[0]["region_id"] == "RegionOne" and public[0]["url"].startswith("http")
    volume = next(e for e in catalog if e["type"] == "block-storage")
    assert volume["endpoints"][0]["url"].endswith(f"/volume/v3/{tenant_a.project.pk}")


def test_auth_catalog_needs_a_project_scoped_token(tenant_a):
    response = client_with(unscoped_key(tenant_a.member)).get("/identity/v3/auth/catalog")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "A project-scoped token is required to produce a service catalog."


def test_users_projects_for_self_and_others(tenant_a, tenant_b, operator):
    own = tenant_a.api.get(f"/identity/v3/users/{tenant_a.member.pk}/projects")
    assert own.status_code == 200
    assert [p["id"] for p in own.json()["projects"]] == [tenant_a.project.pk]
    # Also with an unscoped token: it is the same user.
    unscoped = client_with(unscoped_key(tenant_a.member))
    assert unscoped.get(f"/identity/v3/users/{tenant_a.member.pk}/projects").status_code == 200

    for other in (tenant_b.member, tenant_a.reader):  # another project's user, or a colleague
        refused = tenant_a.api.get(f"/identity/v3/users/{other.pk}/projects")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == 403
        assert tenant_b.project.pk not in refused.content.decode()
    # Operators may look.
    seen = operator.api.get(f"/identity/v3/users/{tenant_b.member.pk}/projects")
    assert [p["name"] for p in seen.json()["projects"]] == ["bravo"]


def test_user_show_for_self_and_others(tenant_a, tenant_b):
    me = tenant_a.api.get(f"/identity/v3/users/{tenant_a.member.pk}").json()["user"]
    assert (me["id"], me["name"], me["domain_id"], me["enabled"]) == (tenant_a.member.pk, "alpha-member", "default",
                                                                      True)
    assert "password" not in me
    assert tenant_a.api.get(f"/identity/v3/users/{tenant_b.member.pk}").status_code == 403


def test_default_domain(tenant_a):
    response = tenant_a.api.get("/identity/v3/domains/default")
    assert response.status_code == 200
    domain = response.json()["domain"]
    assert (domain["id"], domain["name"], domain["enabled"]) == ("default", "Default", True)
    assert domain["links"]["self"].endswith("/identity/v3/domains/default")
    listed = tenant_a.api.get("/identity/v3/domains").json()["domains"]
    assert [d["id"] for d in listed] == ["default"]
    missing = tenant_a.api.get("/identity/v3/domains/other")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


def test_project_list_and_show_are_scoped(tenant_a, tenant_b, operator):
    names = [p["name"] for p in tenant_a.api.get("/identity/v3/projects").json()["projects"]]
    assert names == ["alpha"]
    assert tenant_a.api.get(f"/identity/v3/projects/{tenant_b.project.pk}").status_code == 404
    assert tenant_a.api.get("/identity/v3/projects", {"name": "bravo"}).json()["projects"] == []
    every = [p["name"] for p in operator.api.get("/identity/v3/projects").json()["projects"]]
    assert {"alpha", "bravo", "ops"} <= set(every)


def test_validate_token_returns_the_same_body_as_issue(tenant_a):
    issued = post_token(password_body(name=tenant_a.member.username, scope={"project": {"id": tenant_a.project.pk}}))
    key = issued["X-Subject-Token"]
    client = client_with(key)
    client.credentials(HTTP_X_AUTH_TOKEN=key, HTTP_X_SUBJECT_TOKEN=key)
    assert client.get(TOKENS).json() == issued.json()


def test_another_users_token_can_be_validated_but_not_found_after_revoke(tenant_a, tenant_b):
    key_b = post_token(password_body(name=tenant_b.member.username))["X-Subject-Token"]
    checker = APIClient()
    checker.credentials(HTTP_X_AUTH_TOKEN=unscoped_key(tenant_a.member), HTTP_X_SUBJECT_TOKEN=key_b)
    assert checker.head(TOKENS).status_code == 200
    revoker = client_with(key_b)
    revoker.credentials(HTTP_X_AUTH_TOKEN=key_b, HTTP_X_SUBJECT_TOKEN=key_b)
    assert revoker.delete(TOKENS).status_code == 204
    assert checker.head(TOKENS).status_code == 404
    assert checker.get(TOKENS).json()["error"]["code"] == 404


def test_user_without_projects_gets_unscoped_only(db):
    make_user(None, username="loner")
    assert "project" not in post_token(password_body(name="loner")).json()["token"]
    scoped = post_token(password_body(name="loner", scope={"project": {"name": "alpha"}}))
    assert scoped.status_code == 401
