"""The layout, navigation, escaping, CSRF and the project switcher."""

import pytest
from django.test import Client

from identity import services
from identity.middleware import SESSION_KEY
from tests.factories import make_project, make_user

from .conftest import signed_in

pytestmark = pytest.mark.django_db

PROJECT_PAGES = ["/", "/flavors/", "/key-pairs/"]


@pytest.mark.parametrize("url", PROJECT_PAGES + ["/operator/flavors/", "/operator/projects/"])
def test_pages_need_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/login/?next=")


def test_member_sees_the_project_panels_only(member_a):
    page = member_a.get("/flavors/").content.decode()
    assert 'href="/key-pairs/"' in page
    assert 'aria-current="page"' in page and 'class="nav-link active" href="/flavors/"' in page
    assert "/operator/" not in page
    assert 'href="/admin/"' not in page


def test_operator_sees_admin_and_identity(operator_client):
    page = operator_client.get("/").content.decode()
    for url in ("/operator/flavors/", "/operator/projects/", "/operator/users/", "/operator/memberships/",
                "/operator/quotas/", "/admin/"):
        assert f'href="{url}"' in page


def test_live_pages_carry_data_live_and_the_scripts(member_a):
    page = member_a.get("/").content.decode()
    assert "<body data-live " in page
    assert "dreamcompute/status.js" in page
    assert "dreamcompute/charts.js" in page
    assert 'id="quota-usage"' in page
    # CSP-friendly: no inline script or handler anywhere.
    assert "<script>" not in page and "onchange=" not in page and "onclick=" not in page


def test_overview_shows_project_and_per_user_usage(tenant_a, member_a):
    page = member_a.get("/").content.decode()
    assert 'data-resource="instances"' in page
    assert 'data-resource="key_pairs" data-label="Key pairs"' in page
    assert "<canvas" in page


def test_user_without_project_gets_a_hint_and_no_socket(db):
    client = signed_in(make_user(username="lonely"))
    page = client.get("/").content.decode()
    assert "not a member of any project" in page
    assert "data-live" not in page


def test_user_strings_are_escaped(db):
    project = make_project("<script>alert(1)</script>")
    user = make_user(project, username="escaper")
    page = signed_in(user).get("/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_forms_carry_csrf_and_posts_without_it_are_refused(tenant_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.member)
    page = client.get("/key-pairs/create/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    assert client.post("/key-pairs/create/", {"name": "x"}).status_code == 403
    assert client.post("/auth/logout/").status_code == 403


def test_switch_project(tenant_a, tenant_b):
    user = tenant_a.member
    services.set_membership(user=user, project=tenant_b.project)
    client = signed_in(user)
    page = client.get("/").content.decode()
    assert 'id="project-switcher"' in page and f'value="{tenant_b.project.pk}"' in page
    response = client.post("/auth/switch-project/", {"project": tenant_b.project.pk, "next": "/flavors/"})
    assert response.status_code == 302 and response["Location"] == "/flavors/"
    assert client.session[SESSION_KEY] == tenant_b.project.pk


def test_switch_to_a_project_i_am_not_member_of_is_refused(tenant_a, tenant_b, member_a):
    member_a.get("/")
    response = member_a.post("/auth/switch-project/", {"project": tenant_b.project.pk})
    assert response.status_code == 400
    assert member_a.session[SESSION_KEY] == tenant_a.project.pk
    assert tenant_b.project.name not in member_a.get("/").content.decode()


def test_switch_project_ignores_an_offsite_next(tenant_a, member_a):
    response = member_a.post("/auth/switch-project/", {"project": tenant_a.project.pk,
                                                        "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_login_page_sets_no_session_and_ignores_offsite_next(client, tenant_a):
    page = client.get("/auth/login/?next=https://evil.example/")
    assert page.status_code == 200
    assert "sessionid" not in page.cookies
    assert "evil.example" not in page.content.decode()
    response = client.post("/auth/login/?next=https://evil.example/", {
        "username": tenant_a.member.username, "password": "secret-pass", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logout_is_a_post(member_a):
    assert member_a.get("/auth/logout/").status_code == 405
    assert member_a.post("/auth/logout/").status_code == 302
    assert member_a.get("/").status_code == 302


def test_404_page_is_ours(member_a):
    response = member_a.get("/no-such-page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()
