from django.contrib import admin, messages

from core.openstack.errors import APIError

from . import services
from .models import Volume, VolumeAttachment, VolumeSnapshot, VolumeType


def _each(modeladmin, request, queryset, service):
    for row in queryset:
        try:
            service(row)
        except APIError as exc:
            modeladmin.message_user(request, f"{row}: {exc.detail}", messages.ERROR)


@admin.register(VolumeType)
class VolumeTypeAdmin(admin.ModelAdmin):
    """Operators define the types tenants choose from; each maps to a backend."""

    list_display = ("name", "id", "backend_name", "is_public", "is_default", "description")
    list_filter = ("is_public", "is_default", "backend_name")
    search_fields = ("name", "id")


class VolumeAttachmentInline(admin.TabularInline):
    model = VolumeAttachment
    extra = 0
    can_delete = False
    readonly_fields = ("instance", "device", "mode", "status", "attached_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    """Volumes are made through the API and the dashboard (the driver holds
    their bytes); deleting and resetting go through storage.services."""

    list_display = ("name", "id", "project", "size", "status", "volume_type", "bootable", "availability_zone",
                    "created_at")
    list_filter = ("status", "volume_type", "bootable")
    search_fields = ("id", "name", "project__name")
    list_select_related = ("project", "volume_type")
    readonly_fields = ("id", "project", "user", "size", "status", "status_reason", "volume_type", "image_id",
                       "snapshot_id", "source_volid", "depends_on", "image_metadata", "availability_zone",
                       "created_at", "updated_at")
    fields = ("id", "name", "description", "project", "user", "size", "status", "status_reason", "volume_type",
              "bootable", "image_id", "snapshot_id", "source_volid", "depends_on", "metadata", "image_metadata",
              "availability_zone", "created_at", "updated_at")
    inlines = (VolumeAttachmentInline,)
    actions = ("reset_to_available", "reset_to_error", "flatten")

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        try:
            services.update_volume(obj, name=obj.name, description=obj.description, metadata=obj.metadata)
            services.set_bootable(obj, obj.bootable)
        except APIError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)

    def delete_model(self, request, obj):
        _each(self, request, [obj], services.delete_volume)

    def delete_queryset(self, request, queryset):
        _each(self, request, queryset, services.delete_volume)

    @admin.action(description="Reset status to available")
    def reset_to_available(self, request, queryset):
        _each(self, request, queryset, lambda v: services.reset_status(v, "available"))

    @admin.action(description="Reset status to error")
    def reset_to_error(self, request, queryset):
        _each(self, request, queryset, lambda v: services.reset_status(v, "error"))

    @admin.action(description="Flatten (detach from the snapshot it was cloned from)")
    def flatten(self, request, queryset):
        _each(self, request, queryset, services.flatten_volume)


@admin.register(VolumeSnapshot)
class VolumeSnapshotAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "project", "volume", "size", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "project__name", "volume__id")
    list_select_related = ("project", "volume")
    readonly_fields = ("id", "project", "user", "volume", "size", "status", "status_reason", "created_at",
                       "updated_at")

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        _each(self, request, [obj], services.delete_snapshot)

    def delete_queryset(self, request, queryset):
        _each(self, request, queryset, services.delete_snapshot)


@admin.register(VolumeAttachment)
class VolumeAttachmentAdmin(admin.ModelAdmin):
    list_display = ("volume", "instance", "device", "mode", "status", "attached_at")
    list_filter = ("status", "mode")
    search_fields = ("volume__id", "volume__name", "instance__id", "instance__name")
    list_select_related = ("volume", "instance")
    readonly_fields = ("volume", "instance", "device", "mode", "status", "attached_at", "created_at",
                       "updated_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # detaching is compute's job (the guest must let go of the disk first)
