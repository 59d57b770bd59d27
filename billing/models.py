from django.db import models

from .choices import QuotaResource


class QuotaDefault(models.Model):
    """The limit every project gets unless it has an override. -1: unlimited."""

    resource = models.CharField(max_length=32, choices=QuotaResource.choices, unique=True)
    limit = models.IntegerField()

    class Meta:
        ordering = ("resource",)
        constraints = [models.CheckConstraint(condition=models.Q(limit__gte=-1), name="quotadefault_limit_gte_minus1")]

    def __str__(self):
        return f"{self.resource} = {self.limit}"


class ProjectQuota(models.Model):
    """An operator's override of one limit for one project."""

    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="quotas")
    resource = models.CharField(max_length=32, choices=QuotaResource.choices)
    limit = models.IntegerField()

    class Meta:
        ordering = ("project__name", "resource")
        constraints = [
            models.UniqueConstraint(fields=("project", "resource"), name="projectquota_unique_project_resource"),
            models.CheckConstraint(condition=models.Q(limit__gte=-1), name="projectquota_limit_gte_minus1"),
        ]

    def __str__(self):
        return f"{self.project}: {self.resource} = {self.limit}"
