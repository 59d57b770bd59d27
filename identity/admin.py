from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApplicationCredential, Membership, Project, Token, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user", "project")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = (MembershipInline,)
    list_display = ("username", "email", "is_staff", "is_active", "last_login")
    fieldsets = BaseUserAdmin.fieldsets + (("Keystone", {"fields": ("default_project",)}),)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "id")
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "project__name")
    autocomplete_fields = ("user", "project")


@admin.register(ApplicationCredential)
class ApplicationCredentialAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "project", "role", "expires_at", "created_at")
    search_fields = ("name", "user__username", "project__name")
    readonly_fields = ("secret_hash",)
    exclude = ()


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    """Operators can see and revoke tokens, never read them (only hashes are kept)."""

    list_display = ("audit_id", "user", "project", "issued_at", "expires_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("audit_id", "user__username", "project__name")
    readonly_fields = ("key_hash", "audit_id", "user", "project", "application_credential", "methods", "issued_at",
                       "expires_at")
    actions = ("revoke",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        queryset.update(revoked=True)
