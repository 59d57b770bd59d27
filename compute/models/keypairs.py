from django.conf import settings
from django.db import models


class KeyPair(models.Model):
    """An SSH public key, owned by a user as in Nova. The private key of a
    generated pair is handed out once and never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="keypairs")
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=16, default="ssh", choices=(("ssh", "SSH"), ("x509", "x509")))
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [models.UniqueConstraint(fields=("user", "name"), name="keypair_unique_user_name")]

    def __str__(self):
        return self.name
