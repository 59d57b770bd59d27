from django.contrib import admin, messages

from core.openstack.errors import APIError

from . import images
from .models import Flavor, FlavorAccess, Image, ImageMember, KeyPair


class FlavorAccessInline(admin.TabularInline):
    model = FlavorAccess
    extra = 0
    autocomplete_fields = ("project",)


@admin.register(Flavor)
class FlavorAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "vcpus", "ram", "disk", "ephemeral", "swap", "is_public", "disabled")
    list_filter = ("is_public", "disabled")
    search_fields = ("id", "name")
    inlines = (FlavorAccessInline,)


@admin.register(KeyPair)
class KeyPairAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "type", "fingerprint", "created_at")
    search_fields = ("name", "user__username", "fingerprint")
    readonly_fields = ("fingerprint",)


class ImageMemberInline(admin.TabularInline):
    model = ImageMember
    extra = 0
    autocomplete_fields = ("project",)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    """Images get their data through the Glance API (or
    compute.images.seed_tiny_linux), so they are not added here; deleting and
    (de)activating go through compute.images like the API does."""

    list_display = ("name", "id", "owner", "status", "visibility", "disk_format", "size", "protected", "created_at")
    list_filter = ("status", "visibility", "disk_format", "protected")
    search_fields = ("id", "name", "owner__name")
    readonly_fields = ("id", "owner", "status", "status_reason", "disk_format", "container_format", "size",
                       "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "tags", "properties",
                       "created_at", "updated_at")
    fields = ("id", "name", "owner", "status", "status_reason", "visibility", "protected", "hidden", "min_disk",
              "min_ram", "disk_format", "container_format", "size", "virtual_size", "checksum", "os_hash_algo",
              "os_hash_value", "tags", "properties", "created_at", "updated_at")
    inlines = (ImageMemberInline,)
    actions = ("deactivate", "reactivate")

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        api_names = {column: attr for attr, column in images.MUTABLE.items()}
        patch = [{"op": "replace", "path": f"/{api_names[field]}", "value": form.cleaned_data[field]}
                 for field in form.changed_data if field in api_names]
        self._each(request, [obj], lambda image: images.update_image(image, patch, staff=True))

    def delete_model(self, request, obj):
        self._each(request, [obj], images.delete_image)

    def delete_queryset(self, request, queryset):
        self._each(request, queryset, images.delete_image)

    @admin.action(description="Deactivate the selected images")
    def deactivate(self, request, queryset):
        self._each(request, queryset, images.deactivate_image)

    @admin.action(description="Reactivate the selected images")
    def reactivate(self, request, queryset):
        self._each(request, queryset, images.reactivate_image)

    def _each(self, request, queryset, service):
        for image in queryset:
            try:
                service(image)
            except APIError as exc:
                self.message_user(request, f"{image}: {exc.detail}", messages.ERROR)
