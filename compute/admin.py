from django.contrib import admin

from .models import Flavor, FlavorAccess, KeyPair


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
