from django.contrib import admin

from .models import ProjectQuota, QuotaDefault


@admin.register(QuotaDefault)
class QuotaDefaultAdmin(admin.ModelAdmin):
    list_display = ("resource", "limit")
    list_editable = ("limit",)


@admin.register(ProjectQuota)
class ProjectQuotaAdmin(admin.ModelAdmin):
    list_display = ("project", "resource", "limit")
    list_filter = ("resource",)
    search_fields = ("project__name",)
    autocomplete_fields = ("project",)
