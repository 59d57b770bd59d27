import pytest
from django.test import Client


def signed_in(user):
    """A client with ``user`` logged in. Django's test client skips CSRF
    checks; test_pages.py checks them separately."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member_a(tenant_a):
    return signed_in(tenant_a.member)


@pytest.fixture
def reader_a(tenant_a):
    return signed_in(tenant_a.reader)


@pytest.fixture
def member_b(tenant_b):
    return signed_in(tenant_b.member)


@pytest.fixture
def operator_client(operator):
    return signed_in(operator)
