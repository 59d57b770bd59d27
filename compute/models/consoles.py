from django.conf import settings
from django.db import models


class ConsoleToken(models.Model):
    """A single-use, short-lived credential for one instance's VNC console
    (Nova's console auth token). Only the SHA-256 of the token is stored;
    compute/vnc.py issues, checks and consumes them."""

    key_hash = models.CharField(max_length=64, unique=True)
    # Tokens are worthless without their instance or user: they go with them.
    instance = models.ForeignKey("compute.Instance", on_delete=models.CASCADE, related_name="console_tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self):
        return f"console token for {self.instance_id}"
