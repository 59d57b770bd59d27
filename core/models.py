"""The one scoping mechanism: every project-owned model inherits from
ProjectScopedModel, every read goes through ``for_project()``."""

from django.db import models


class ProjectScopedQuerySet(models.QuerySet):
    def for_project(self, project):
        """Rows of ``project`` only. ``None`` (no project) matches nothing."""
        if project is None:
            return self.none()
        return self.filter(project=project)


class ProjectScopedModel(models.Model):
    project = models.ForeignKey("identity.Project", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        abstract = True
