from django.db import models


class Role(models.TextChoices):
    """Keystone's three default roles; each includes the one before it."""

    READER = "reader", "Reader"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.READER: 0, Role.MEMBER: 1, Role.ADMIN: 2}
# Stable role ids, as Keystone would report them.
ROLE_IDS = {Role.READER: "5fa9ad8b1e3c4c1e9b0f1d2a3c4e5f60", Role.MEMBER: "6fa9ad8b1e3c4c1e9b0f1d2a3c4e5f61",
            Role.ADMIN: "7fa9ad8b1e3c4c1e9b0f1d2a3c4e5f62"}
