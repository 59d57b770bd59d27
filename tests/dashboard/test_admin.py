"""The Admin and Identity panels: operators only, every change through a service."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import quotas
from billing.models import ProjectQuota, QuotaDefault
from compute.models import Flavor, FlavorAccess
from identity.models import Membership, Project
from tests.factories import make_user

pytestmark = pytest.mark.django_db

User = get_user_model()

ADMIN_GETS = [
    "/operator/flavors/", "/operator/flavors/create/", "/operator/flavors/50/delete/", "/operator/flavors/50/access/",
    "/operator/projects/", "/operator/projects/create/", "/operator/users/", "/operator/users/create/",
    "/operator/memberships/", "/operator/quotas/",
]


@pytest.mark.parametrize("url", ADMIN_GETS)
def test_non_staff_get_403_on_admin_and_identity_panels(flavors, member_a, url):
    assert member_a.get(url).status_code == 403


def test_non_staff_cannot_change_anything(flavors, tenant_a, member_a):
    project = tenant_a.project
    membership = Membership.objects.get(user=tenant_a.reader)
    posts = [
        ("/operator/flavors/create/", {"name": "evil", "vcpus": 1, "ram": 1, "disk": 0, "ephemeral": 0, "swap": 0,
                                       "rxtx_factor": 1}),
        ("/operator/flavors/50/delete/", {}),
        ("/operator/projects/create/", {"name": "evil"}),
        (f"/operator/projects/{project.pk}/", {"user": tenant_a.member.pk, "role": "admin"}),
        ("/operator/users/create/", {"username": "evil", "password": "pw-evil-1", "password_again": "pw-evil-1"}),
        (f"/operator/users/{tenant_a.member.pk}/staff/", {"is_staff": "1"}),
        ("/operator/memberships/", {"user": tenant_a.member.pk, "project": project.pk, "role": "admin"}),
        (f"/operator/memberships/{membership.pk}/role/", {"role": "admin"}),
        (f"/operator/memberships/{membership.pk}/remove/", {}),
        (f"/operator/quotas/{project.pk}/", {"instances": 1}),
    ]
    for url, data in posts:
        assert member_a.post(url, data).status_code == 403, url
    assert Flavor.objects.filter(pk="50").exists() and not Flavor.objects.filter(name="evil").exists()
    assert not Project.objects.filter(name="evil").exists() and not User.objects.filter(username="evil").exists()
    tenant_a.member.refresh_from_db()
    assert not tenant_a.member.is_staff
    assert Membership.objects.get(pk=membership.pk).role == "reader"
    assert not ProjectQuota.objects.exists()


@pytest.mark.parametrize("url", ADMIN_GETS)
def test_operator_pages_render(flavors, operator_client, url):
    assert operator_client.get(url).status_code == 200


def flavor_data(**overrides):
    data = {"id": "", "name": "m1.test", "description": "", "vcpus": 2, "ram": 2048, "disk": 20, "ephemeral": 0,
            "swap": 0, "rxtx_factor": 1.0, "is_public": "on"}
    data.update(overrides)
    return data


def test_operator_creates_and_deletes_a_flavor(operator_client):
    response = operator_client.post("/operator/flavors/create/", flavor_data())
    assert response.status_code == 302
    flavor = Flavor.objects.get(name="m1.test")
    assert (flavor.vcpus, flavor.ram, flavor.disk, flavor.is_public) == (2, 2048, 20, True)
    response = operator_client.post(f"/operator/flavors/{flavor.pk}/delete/")
    assert response.status_code == 302
    assert not Flavor.objects.filter(pk=flavor.pk).exists()


@pytest.mark.parametrize("overrides, error", [
    ({"name": "gp1.semisonic"}, "Flavor with name gp1.semisonic already exists."),
    ({"id": "50"}, "Flavor with ID 50 already exists."),
    ({"vcpus": 0}, "Ensure this value is greater than or equal to 1."),
])
def test_flavor_form_errors(flavors, operator_client, overrides, error):
    response = operator_client.post("/operator/flavors/create/", flavor_data(**overrides))
    assert response.status_code == 200
    assert error in response.content.decode()


def test_private_flavor_access_is_managed_through_the_service(tenant_a, operator_client):
    response = operator_client.post("/operator/flavors/create/", flavor_data(id="priv", name="m1.private",
                                                                            is_public=""))
    assert response["Location"] == "/operator/flavors/priv/access/"
    response = operator_client.post("/operator/flavors/priv/access/", {"project": tenant_a.project.pk})
    assert response.status_code == 302
    assert FlavorAccess.objects.filter(flavor_id="priv", project=tenant_a.project).exists()
    page = operator_client.get("/operator/flavors/").content.decode()
    assert "alpha" in page
    response = operator_client.post(f"/operator/flavors/priv/access/{tenant_a.project.pk}/remove/")
    assert response.status_code == 302
    assert not FlavorAccess.objects.exists()


def test_access_to_a_public_flavor_is_a_form_error(flavors, tenant_a, operator_client):
    response = operator_client.post("/operator/flavors/50/access/", {"project": tenant_a.project.pk})
    assert response.status_code == 200
    assert "Can not add access to a public flavor." in response.content.decode()


def test_operator_creates_a_project_and_adds_a_member(operator_client):
    user = make_user(username="newcomer")
    response = operator_client.post("/operator/projects/create/", {"name": "gamma", "description": "third"})
    project = Project.objects.get(name="gamma")
    assert response["Location"] == f"/operator/projects/{project.pk}/"
    assert operator_client.post("/operator/projects/create/", {"name": "gamma"}).status_code == 200
    response = operator_client.post(f"/operator/projects/{project.pk}/", {"user": user.pk, "role": "member"})
    assert response.status_code == 302
    assert Membership.objects.get(user=user, project=project).role == "member"
    assert "newcomer" in operator_client.get(f"/operator/projects/{project.pk}/").content.decode()


def test_duplicate_project_is_a_form_error(tenant_a, operator_client):
    response = operator_client.post("/operator/projects/create/", {"name": "alpha"})
    assert response.status_code == 200
    assert "A project named &#x27;alpha&#x27; already exists." in response.content.decode()


def test_operator_creates_users_and_sets_staff(operator, operator_client):
    response = operator_client.post("/operator/users/create/", {
        "username": "carol", "email": "carol@example.org", "password": "carol-pass-1",
        "password_again": "carol-pass-1"})
    assert response.status_code == 302
    carol = User.objects.get(username="carol")
    assert carol.check_password("carol-pass-1") and not carol.is_staff
    assert operator_client.post(f"/operator/users/{carol.pk}/staff/", {"is_staff": "1"}).status_code == 302
    carol.refresh_from_db()
    assert carol.is_staff
    # An operator cannot demote themself (no lock-out).
    operator_client.post(f"/operator/users/{operator.pk}/staff/", {"is_staff": "0"})
    operator.refresh_from_db()
    assert operator.is_staff


@pytest.mark.parametrize("data, error", [
    ({"username": "operator", "password": "pw-123456", "password_again": "pw-123456"},
     "A user named &#x27;operator&#x27; already exists."),
    ({"username": "dave", "password": "pw-123456", "password_again": "other-123"}, "The two passwords differ."),
    ({"username": "bad name!", "password": "pw-123456", "password_again": "pw-123456"}, "Enter a valid username"),
    ({"username": "dave", "password": "pw", "password_again": "pw"}, "too short"),
])
def test_user_form_errors(operator, operator_client, data, error):
    response = operator_client.post("/operator/users/create/", data)
    assert response.status_code == 200
    assert error in response.content.decode()


def test_memberships_add_change_remove(tenant_a, tenant_b, operator_client):
    user = tenant_a.member
    response = operator_client.post("/operator/memberships/", {"user": user.pk, "project": tenant_b.project.pk,
                                                                "role": "reader"})
    assert response.status_code == 302
    membership = Membership.objects.get(user=user, project=tenant_b.project)
    assert membership.role == "reader"
    operator_client.post(f"/operator/memberships/{membership.pk}/role/", {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    # A bad role changes nothing.
    operator_client.post(f"/operator/memberships/{membership.pk}/role/", {"role": "owner"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    response = operator_client.post(f"/operator/memberships/{membership.pk}/remove/",
                                    {"next": f"/operator/projects/{tenant_b.project.pk}/"})
    assert response["Location"] == f"/operator/projects/{tenant_b.project.pk}/"
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_quota_overrides_and_defaults(tenant_a, operator_client):
    page = operator_client.get(f"/operator/quotas/{tenant_a.project.pk}/").content.decode()
    assert 'data-resource="instances"' in page and "counted per user" in page
    response = operator_client.post(f"/operator/quotas/{tenant_a.project.pk}/",
                                    {**{r: v for r, v in quotas.limits_for(tenant_a.project).items()},
                                     "key_pairs": 3, "instances": -1})
    assert response.status_code == 302
    assert dict(ProjectQuota.objects.filter(project=tenant_a.project).values_list("resource", "limit")) == {
        "key_pairs": 3, "instances": -1}
    response = operator_client.post("/operator/quotas/", {**quotas.defaults(), "volumes": 10})
    assert response.status_code == 302
    assert dict(QuotaDefault.objects.values_list("resource", "limit")) == {"volumes": 10}


def test_quota_below_minus_one_is_a_form_error(tenant_a, operator_client):
    response = operator_client.post(f"/operator/quotas/{tenant_a.project.pk}/",
                                    {**quotas.limits_for(tenant_a.project), "cores": -5})
    assert response.status_code == 200
    assert "greater than or equal to -1" in response.content.decode()
    assert not ProjectQuota.objects.exists()


def test_identity_lists_do_not_grow_queries_with_rows(tenant_a, tenant_b, operator_client):
    def count(url):
        with CaptureQueriesContext(connection) as queries:
            assert operator_client.get(url).status_code == 200
        return len(queries)

    urls = ("/operator/users/", "/operator/projects/", "/operator/memberships/", "/key-pairs/")
    for url in urls:
        operator_client.get(url)
    before = {url: count(url) for url in urls}
    for i in range(20):
        make_user(tenant_a.project, username=f"extra-{i}")
    after = {url: count(url) for url in urls}
    assert after == before
