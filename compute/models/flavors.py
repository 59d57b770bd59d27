from django.core.validators import MinValueValidator
from django.db import models


class FlavorQuerySet(models.QuerySet):
    def visible_to(self, project, *, staff=False):
        """Public flavors plus private ones shared with ``project``.
        Operators see all; a disabled flavor is never offered."""
        if staff:
            return self
        query = models.Q(is_public=True)
        if project is not None:
            query |= models.Q(access__project=project)
        return self.filter(query).distinct()


class Flavor(models.Model):
    """A size of instance. Ids are strings chosen by the operator (Nova's
    ``flavorid``): DreamCompute's are "50", "100", … "500"."""

    id = models.CharField(primary_key=True, max_length=255)
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    vcpus = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    ram = models.PositiveIntegerField("RAM (MiB)", validators=[MinValueValidator(1)])
    disk = models.PositiveIntegerField("root disk (GB)", default=0)
    ephemeral = models.PositiveIntegerField("ephemeral disk (GB)", default=0)
    swap = models.PositiveIntegerField("swap (MiB)", default=0)
    rxtx_factor = models.FloatField(default=1.0)
    is_public = models.BooleanField(default=True)
    disabled = models.BooleanField(default=False)
    extra_specs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FlavorQuerySet.as_manager()

    class Meta:
        ordering = ("ram", "vcpus", "id")
        constraints = [models.CheckConstraint(condition=models.Q(vcpus__gte=1) & models.Q(ram__gte=1),
                                              name="flavor_vcpus_ram_positive")]

    def __str__(self):
        return self.name


class FlavorAccess(models.Model):
    """A private flavor shared with one project (``os-flavor-access``)."""

    flavor = models.ForeignKey(Flavor, on_delete=models.CASCADE, related_name="access")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="flavor_access")

    class Meta:
        constraints = [models.UniqueConstraint(fields=("flavor", "project"), name="flavoraccess_unique")]

    def __str__(self):
        return f"{self.flavor} → {self.project}"
